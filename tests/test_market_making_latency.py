"""Latency, queue position on arrival, cancels in flight and the fill log of
``MarketMakingBroker``; the queue models against hand-computed cases."""

import math

import backtrader as bt
import numpy as np
import pytest
from mm_helpers import bar_frame, run, tick_frame

from feeds.ticks import TickData
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker
from s4_strategies.market_making.latency import LATENCY_PRESETS, Latency, parse_latency
from s4_strategies.market_making.queue import QueuePosition, cancel_share_ahead, displayed_ahead

ZERO = Latency(0.0, 0.0, 0.0)
TEN_MS = Latency(0.0, 0.010, 0.010)  # entry, response and cancel 10 ms


# ----------------------------------------------------------------- latency specs
def test_latency_specs_and_presets():
    cloud = Latency(0.005, 0.010, 0.010, 0.010)
    assert parse_latency(None) == LATENCY_PRESETS["cloud"] == cloud
    assert Latency(0.005, 0.010, 0.020).cancel == 0.010  # the cancel travels like an entry
    assert parse_latency("10") == Latency(0.0, 0.010, 0.010, 0.010)
    assert parse_latency("5,10,20") == Latency(0.005, 0.010, 0.020, 0.010)
    assert parse_latency("5,10,20,1") == Latency(0.005, 0.010, 0.020, 0.001)
    assert parse_latency("entry=10, response=30") == Latency(0.0, 0.010, 0.030, 0.010)
    assert parse_latency(0.002) == Latency(0.0, 0.002, 0.002, 0.002)
    assert parse_latency((0.001, 0.002, 0.003)).order == pytest.approx(0.003)
    assert parse_latency((0.001, 0.002, 0.003, 0.004)).cancel_total == pytest.approx(0.005)
    assert parse_latency({"feed": 0.001, "response": 0.004}).response == 0.004
    assert parse_latency("colocated") == Latency(0.0005, 0.001, 0.001, 0.001)
    assert "response 10 ms" in cloud.ms()
    for bad in ("fast", -1.0, (1, 2), {"send": 1}, "1,2", "1,2,3,4,5", "ack=3", math.inf,
                (0.0, 0.01, -0.01)):
        with pytest.raises(ValueError, match="latency"):
            parse_latency(bad)


# ----------------------------------------------------------------- queue models
def test_cancel_share_ahead_is_the_power_probability():
    assert cancel_share_ahead(2.0, 2.0, 3) == pytest.approx(0.5)
    assert cancel_share_ahead(3.0, 1.0, 2) == pytest.approx(9 / 10)
    assert cancel_share_ahead(1.0, 3.0, 1) == pytest.approx(1 / 4)
    assert cancel_share_ahead(0.0, 5.0) == 0.0 and cancel_share_ahead(5.0, 0.0) == 1.0
    assert cancel_share_ahead(1.0, 1e6, 50) == pytest.approx(0.0)  # no overflow


def test_prob_model_moves_ahead_by_the_expected_share_of_cancels():
    q = QueuePosition("prob", power=1.0)
    q.join(3.0)
    q.on_depth(4.0, 2.0)  # 2 cancelled; front 3, back 1: 3/4 from ahead, back - p*chg = 0.5
    assert q.front == pytest.approx(3.0 - 0.75 * 2.0)
    q = QueuePosition("prob", power=1.0)
    q.join(3.0)
    q.on_depth(4.0, 0.5)  # 3.5 cancelled but only 1 behind: the excess came from ahead
    # 3 − 0.75·3.5 + min(1 − 0.25·3.5, 0) = 0.375, capped by the displayed 0.5
    assert q.front == pytest.approx(0.375)


def test_risk_averse_model_advances_only_with_trades_and_the_displayed_size():
    q = QueuePosition("risk_averse")
    q.join(3.0)
    q.on_depth(4.0, 3.5)
    assert q.front == 3.0
    q.on_depth(3.5, 1.0)
    assert q.front == 1.0
    assert q.on_trade(0.4) == 0.0 and q.front == pytest.approx(0.6)
    assert q.on_trade(1.0) == pytest.approx(0.4) and q.front == 0.0


def test_a_trade_is_not_counted_again_as_a_cancellation():
    q = QueuePosition("prob", power=3.0)
    q.join(2.0)
    assert q.on_trade(1.5) == 0.0
    q.on_depth(4.0, 2.5)  # the level fell by the traded 1.5: no cancellation
    assert q.front == pytest.approx(0.5)


def test_joining_deeper_than_the_best_leaves_the_place_unknown():
    q = QueuePosition("prob")
    q.join(None)
    assert q.on_trade(5.0) == 0.0
    q.see(1.2)
    assert q.front == 1.2
    with pytest.raises(ValueError):
        QueuePosition("fifo")


# ----------------------------------------------------------------- entry latency
def _quick(t_trade):
    """A bid at the best, then a sell trading through it ``t_trade`` seconds later."""
    return tick_frame([{"t": 0.0}, {"t": t_trade, "tp": 99.98, "ts": 1.0, "side": -1},
                       {"t": 1.0}])


def test_an_order_cannot_trade_before_it_reaches_the_book():
    plan = {0: [("bid", 99.99, 1.0)]}
    strat, broker = run(_quick(0.005), plan, latency=TEN_MS)
    assert strat.fills == []
    strat, broker = run(_quick(0.005), plan, latency=ZERO)
    assert [(f["event"], f["price"]) for f in strat.fills] == [(1, 99.99)]
    (rec,) = broker.fill_log
    assert rec["kind"] == "through" and rec["arrived"] == rec["placed"]
    strat, broker = run(_quick(0.020), plan, latency=Latency(0.005, 0.010, 0.010))
    (rec,) = broker.fill_log
    assert rec["arrived"] - rec["placed"] == pytest.approx(0.015, abs=1e-5)
    assert rec["t"] - rec["placed"] == pytest.approx(0.020, abs=1e-5)


def test_the_queue_is_joined_as_it_stands_when_the_order_arrives():
    # placed behind 2.0; 4.0 more join before it arrives; trades at its price follow
    events = [{"t": 0.0}, {"t": 0.004, "bs": 6.0}, {"t": 0.5, "bs": 6.0},
              {"t": 1.0, "tp": 99.99, "ts": 3.0, "side": -1, "bs": 6.0},
              {"t": 2.0, "tp": 99.99, "ts": 4.0, "side": -1, "bs": 3.0}]
    plan = {0: [("bid", 99.99, 1.0)]}
    strat, _ = run(tick_frame(events), plan, latency=TEN_MS, queue="risk_averse")
    assert [(f["event"], f["size"]) for f in strat.fills] == [(4, 1.0)]  # 6 ahead, 3+4 traded
    strat, _ = run(tick_frame(events), plan, latency=ZERO, queue="risk_averse")
    assert [(f["event"], f["size"]) for f in strat.fills] == [(3, 1.0)]  # 2 ahead on arrival


def test_marketable_on_arrival_takes_the_book_as_it_then_stands():
    # quoted one tick below the ask; the ask drops onto it before the order arrives
    events = [{"t": 0.0}, {"t": 0.004, "bid": 99.98, "ask": 99.99}, {"t": 1.0}]
    plan = {0: [("bid", 99.99, 1.0)]}
    strat, broker = run(tick_frame(events), plan, latency=TEN_MS)
    (f,) = strat.fills
    assert (f["event"], f["price"], f["taker"]) == (2, 99.99, True)
    assert broker.fill_log[0]["kind"] == "taker"
    strat, _ = run(tick_frame(events), {0: [("bid", 99.99, 1.0, {"post_only": True})]},
                   latency=TEN_MS)
    assert strat.fills == [] and "Rejected" in {s for _, s in strat.statuses}
    # without latency it was resting when the ask came down: a maker fill at its limit
    strat, broker = run(tick_frame(events), plan, latency=ZERO)
    assert [(f["price"], f["taker"]) for f in strat.fills] == [(99.99, False)]
    assert broker.fill_log[0]["kind"] == "book"


def test_marketable_limit_on_bars_takes_the_open_or_is_rejected():
    bars = [(100, 100.5, 99.5, 100), (99.0, 100.5, 98.0, 100), (100, 100.5, 99.5, 100)]
    strat, broker = run(bar_frame(bars), {0: [("bid", 99.5, 1.0)]}, tick=False)
    (f,) = strat.fills
    assert (f["event"], f["price"], f["taker"]) == (1, 99.0, True)  # not 99.5 as a maker
    assert f["comm"] == pytest.approx(99.0 * 0.00055)
    strat, _ = run(bar_frame(bars), {0: [("bid", 99.5, 1.0, {"post_only": True})]}, tick=False)
    assert strat.fills == []


# ----------------------------------------------------------------- cancels in flight
def test_a_fill_can_arrive_on_a_cancelled_order_while_the_cancel_is_in_flight():
    events = [{"t": 0.0}, {"t": 1.0}, {"t": 1.005, "tp": 99.98, "ts": 1.0, "side": -1},
              {"t": 2.0, "tp": 99.90, "ts": 1.0, "side": -1}]
    plan = {0: [("bid", 99.99, 1.0)], 1: [("cancel", 0, None)]}
    strat, broker = run(tick_frame(events), plan, latency=TEN_MS)
    assert [f["event"] for f in strat.fills] == [2]
    (rec,) = broker.fill_log
    assert rec["cancel_sent"] == pytest.approx(rec["placed"] + 1.0)
    strat, _ = run(tick_frame(events), plan, latency=Latency(0.0, 0.010, 0.0, 0.001))
    assert strat.fills == []  # the cancel arrived 1 ms after it was sent
    assert [s for _, s in strat.statuses][-1] == "Canceled"


def test_cancel_pending_until_the_cancel_reaches_the_book():
    events = [{"t": 0.0}, {"t": 1.0}, {"t": 1.005}, {"t": 1.02}]
    plan = {0: [("bid", 99.98, 1.0)], 1: [("cancel", 0, None)]}
    strat, broker = run(tick_frame(events), plan, latency=TEN_MS)
    order = strat.orders[0]
    assert not order.alive() and order.getstatusname() == "Canceled"
    assert [s for _, s in strat.statuses].count("Canceled") == 1


# ----------------------------------------------------------------- intensity fills
def test_intensity_without_a_calibrated_A_rests_instead_of_failing():
    events = [{}, {"tp": 99.90, "ts": 1.0, "side": -1}, {"tp": 99.90, "ts": 1.0, "side": -1}]
    plan = {0: [("bid", 99.98, 1.0, {"mid": 99.995, "A": None, "kappa": 0.5})]}
    strat, _ = run(tick_frame(events), plan, fill_model="intensity")
    assert strat.fills == []


def test_intensity_on_ticks_needs_a_trade_at_or_through_the_quote():
    plan = {0: [("bid", 99.98, 1.0, {"mid": 99.995})]}
    quiet = [{}, {}, {}, {}]
    strat, _ = run(tick_frame(quiet), plan, fill_model="intensity", intensity=(1e6, 0.1))
    assert strat.fills == []
    strat, _ = run(tick_frame(quiet), plan, fill_model="intensity", intensity=(1e6, 0.1),
                   require_touch=False)
    assert [f["event"] for f in strat.fills] == [1]
    touched = [{}, {}, {"tp": 99.98, "ts": 1.0, "side": -1}, {}]
    strat, broker = run(tick_frame(touched), plan, fill_model="intensity", intensity=(1e6, 0.1))
    assert [f["event"] for f in strat.fills] == [2]
    assert broker.fill_log[0]["kind"] == "intensity"


# ----------------------------------------------------------------- latency's effects
class JoinTheBest(bt.Strategy):
    """Quotes ``size`` at the best bid and ask on every event (post-only), cancel-and-replace
    when the best moves, placing the replacement while a cancel is in flight."""

    params = dict(size=0.01)

    def __init__(self):
        self.quotes = {"bid": None, "ask": None}

    def next(self):
        for side, price in (("bid", self.data.bid[0]), ("ask", self.data.ask[0])):
            order = self.quotes[side]
            if order is not None and order.alive():
                if abs(order.created.price - price) < 1e-9:
                    continue
                self.cancel(order)
                if order.alive() and not self.broker.cancel_pending(order):
                    continue
            make = self.buy if side == "bid" else self.sell
            self.quotes[side] = make(price=price, size=self.p.size, exectype=bt.Order.Limit,
                                     post_only=True)


def _replay(frame, latency):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(latency=latency)
    cerebro.broker.setcash(1e6)
    cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
    cerebro.adddata(TickData(dataname=frame), name="X")
    cerebro.addstrategy(JoinTheBest)
    cerebro.run()
    return cerebro.broker.fill_log


def _markout(log, frame, horizon=1.0):
    """Mean sign·(mid ``horizon`` s after the fill − price) over the fills."""
    t, mid = frame.index.asi8 / 1e9, frame["mid"].to_numpy()
    j = np.searchsorted(t, np.array([f["t"] for f in log]) + horizon + 1e-4, side="right") - 1
    return float(np.mean([f["sign"] * (mid[k] - f["price"]) for f, k in zip(log, j)]))


def _random_walk(seed=0, n=1500, tick=0.1):
    """A seeded tick stream: every ~20 ms the touch moves a tick (30 % down, 30 % up, after a
    trade sweeping it in that direction) or its sizes change."""
    rng = np.random.default_rng(seed)
    rows, t, bid = [], 0.0, 1000.0
    for _ in range(n):
        t += rng.exponential(0.02)
        move = rng.choice([-1, 0, 1], p=[0.3, 0.4, 0.3])
        if move:
            rows.append({"t": t, "bid": bid, "ask": bid + tick, "tp": bid + tick * (move > 0),
                         "ts": 3.0, "side": move})
            t += 0.001
            bid += move * tick
        rows.append({"t": t, "bid": bid, "ask": bid + tick, "bs": rng.uniform(0.5, 2),
                     "as": rng.uniform(0.5, 2)})
    return tick_frame(rows)


def test_more_latency_fewer_fills():
    frame = _random_walk()
    fills = [len(_replay(frame, Latency(0.0, ms / 1e3, ms / 1e3))) for ms in (0, 5, 20, 50)]
    assert fills[0] > fills[1] > fills[2] > fills[3] > 0, fills
    assert fills[3] < 0.3 * fills[0]  # quotes that arrive late miss the prints at their price


def test_with_latency_the_fills_that_remain_are_the_adverse_ones():
    # a falling market: every 100 ms the touch drops a tick (the new ask at the old bid), and
    # 20 ms later a sell sweeps the new best bid. The quoter joins the best bid each time.
    rows = []
    for k in range(20):
        bid = 100.0 - 0.1 * k
        rows += [{"t": 0.1 * k, "bid": bid, "ask": bid + 0.1, "bs": 1.0},
                 {"t": 0.1 * k + 0.02, "bid": bid, "ask": bid + 0.1, "bs": 1.0, "tp": bid,
                  "ts": 5.0, "side": -1}]
    frame = tick_frame(rows)
    fast = [f for f in _replay(frame, ZERO) if f["sign"] > 0]
    slow = [f for f in _replay(frame, Latency(0.0, 0.050, 0.050)) if f["sign"] > 0]
    # instantly in the book, the bid catches every sweep (behind the 1 displayed) and, requoted
    # at the same price, is crossed when the market drops
    kinds = [f["kind"] for f in fast]
    assert (kinds.count("queue"), kinds.count("book")) == (20, 19)
    # 50 ms late it misses every sweep and is only ever filled by the market dropping onto it
    assert [f["kind"] for f in slow] == ["book"] * 19
    assert _markout(slow, frame) < _markout(fast, frame) - 0.03


def test_a_trade_row_repeating_the_book_is_not_a_depth_update():
    q = QueuePosition("prob", power=1.0)
    q.join(2.0)
    assert q.on_trade(1.0) == 0.0
    q.on_depth(2.0, 2.0)  # the trade's row shows the pre-trade book: nothing happened
    q.on_depth(2.0, 1.0)  # now the level shows the trade: still no cancellation
    assert q.front == pytest.approx(1.0)


def test_displayed_ahead_on_arrival():
    assert displayed_ahead(99.99, True, 99.99, 2.0) == 2.0      # joins the best
    assert displayed_ahead(100.00, True, 99.99, 2.0) == 0.0     # improves it
    assert displayed_ahead(99.98, True, 99.99, 2.0) is None     # deeper: unknown
    assert displayed_ahead(100.01, False, 100.00, 3.0) is None  # an ask above the best
    assert displayed_ahead(99.995, False, 100.00, 3.0) == 0.0   # an ask improving the best


def test_partial_fills_come_in_whole_lot_steps():
    events = [{}, {}, {"tp": 99.99, "ts": 2.0037, "side": -1}, {"tp": 99.99, "ts": 1.0, "side": -1}]
    plan = {0: [("bid", 99.99, 1.0)]}  # behind 2.0: the first print leaves 0.0037 past it
    strat, _ = run(tick_frame(events), plan, queue="risk_averse", size_step=0.001)
    assert [(f["event"], round(f["size"], 9)) for f in strat.fills] == [(2, 0.003), (3, 0.997)]
    strat, _ = run(tick_frame(events), plan, queue="risk_averse", size_step={"X": 0.01})
    assert [(f["event"], round(f["size"], 9)) for f in strat.fills] == [(3, 1.0)]
