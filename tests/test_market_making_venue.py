"""What the strategy hears from ``MarketMakingBroker`` and when (``market_making.venue``):
reports ``response`` after the exchange acted, the order states a live venue gives
(``strategies.orders.OrderView``), Bybit's cancel before the ack and a cancel that arrives
before the order, per-event feed latency from a ``recv`` line, and the analyzer booking
the exchange's side."""

import math

import backtrader as bt
import pytest
from mm_helpers import T0, Scripted, bar_frame, run, tick_frame

from analyzers.market_making import MarketMakingAnalyzer
from feeds.ticks import TickData
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker
from s4_strategies.market_making.latency import Latency
from s4_strategies.strategies.orders import OrderView

# events 5 ms apart: a sell through the bid 99.99 at 50 ms
FAST = [{"t": 0.005 * i} for i in range(10)] + [{"t": 0.050, "tp": 99.98, "ts": 1.0, "side": -1}]
FAST += [{"t": 0.055 + 0.005 * i} for i in range(10)]


def _seen(strat, ref=None):
    """``{status: event the strategy heard it on}`` (first report of each)."""
    out = {}
    for event, r, status in strat.reports:
        if ref is None or r == ref:
            out.setdefault(status, event)
    return out


def test_reports_come_back_a_response_latency_after_the_exchange_acted():
    lat = Latency(0.0, 0.010, 0.020)  # entry 10 ms, response 20 ms: the ack at 30 ms
    strat, broker = run(tick_frame(FAST), {0: [("bid", 99.99, 1.0)]}, latency=lat)
    (fill,) = strat.fills
    (seen,) = strat.seen_fills
    assert fill["event"] == 10                      # t = 50 ms: the exchange filled it
    assert seen["event"] == 14                      # t = 70 ms: 20 ms later it is heard of
    heard = _seen(strat)
    assert heard["Submitted"] == 1                  # local (backtrader hands it on next step)
    assert heard["Accepted"] == 6                   # arrives at 10 ms, acked at 30 ms
    assert heard["Completed"] == 14
    assert broker.reports_in_flight() == 0
    # without a response latency the strategy hears of the fill on the event that made it
    strat, _ = run(tick_frame(FAST), {0: [("bid", 99.99, 1.0)]}, latency=Latency(0, 0.010, 0))
    assert [f["event"] for f in strat.seen_fills] == [10] and _seen(strat)["Accepted"] == 2


def test_the_feed_latency_brings_reports_forward_in_event_time():
    # the strategy sees the event stamped s at s + 15 ms: a report of 50 ms + 20 ms response
    # reaches it with the event stamped 55 ms
    strat, _ = run(tick_frame(FAST), {0: [("bid", 99.99, 1.0)]},
                   latency=Latency(0.015, 0.010, 0.020))
    assert [f["event"] for f in strat.seen_fills] == [11]


def test_a_cancel_is_confirmed_a_response_later_and_the_order_can_fill_meanwhile():
    events = [{"t": 0.0}, {"t": 1.0}, {"t": 1.005, "tp": 99.98, "ts": 1.0, "side": -1},
              {"t": 1.02}, {"t": 1.03}, {"t": 2.0}]
    plan = {0: [("bid", 99.99, 1.0)], 1: [("cancel", 0, None)]}
    strat, _ = run(tick_frame(events), plan, latency=Latency(0.0, 0.010, 0.020))
    assert [f["event"] for f in strat.fills] == [2]          # in flight: filled at 1.005
    assert _seen(strat)["Completed"] == 4                    # heard at 1.025 → event 4
    assert "Canceled" not in _seen(strat)
    strat, _ = run(tick_frame(events[:2] + events[3:]), plan, latency=Latency(0.0, 0.010, 0.020))
    assert _seen(strat)["Canceled"] == 3                     # lands 1.010, heard 1.030


def test_bybit_cancel_before_the_ack_is_allowed():
    # placed at 0 (acked at 20 ms), cancelled at 5 ms: lands at 15 ms, after the order
    events = [{"t": 0.005 * i} for i in range(12)]
    plan = {0: [("bid", 99.99, 1.0)], 1: [("cancel", 0, None)]}
    strat, broker = run(tick_frame(events), plan, latency=Latency(0.0, 0.010, 0.010))
    heard = _seen(strat)
    assert heard["Accepted"] == 4 and heard["Canceled"] == 5  # the ack, then the cancel
    assert broker.cancel_rejects == 0 and not strat.orders[0].alive()


def test_a_cancel_that_reaches_the_engine_before_the_order_is_rejected_and_the_order_rests():
    # entry 20 ms, cancel 1 ms: the cancel sent at 5 ms lands at 6 ms, the order at 20 ms
    events = [{"t": 0.005 * i} for i in range(12)] + [
        {"t": 0.1, "tp": 99.98, "ts": 1.0, "side": -1}, {"t": 0.2}]
    plan = {0: [("bid", 99.99, 1.0)], 1: [("cancel", 0, None)]}
    strat, broker = run(tick_frame(events), plan, latency=Latency(0.0, 0.020, 0.010, 0.001))
    assert broker.cancel_rejects == 1
    assert [f["event"] for f in strat.fills] == [12]          # it rested, and filled
    # heard at 6 + 10 = 16 ms (event 4), with the order's status unchanged; its ack at 30 ms
    assert strat.cancel_rejected == [(4, strat.orders[0].ref)]
    assert [e for e, _, s in strat.reports if s == "Accepted"] == [4, 6]


def test_the_order_view_walks_the_states_of_a_live_venue():
    class Viewed(Scripted):
        def __init__(self):
            super().__init__()
            self.view, self.states = OrderView(), []

        def notify_order(self, order):
            super().notify_order(order)
            self.view.on_report(order)

        def next(self):
            super().next()
            for o in self.orders:
                if self.view.get(o) is None and o.ref not in self.sent:
                    self.sent.add(o.ref)
                    self.view.sent(o)
            if self.i == 8:
                self.view.cancel_sent(self.view.get(self.orders[0]))
            rec = self.view.get(self.orders[0]) if self.orders else None
            self.states.append(rec.state if rec is not None else "gone")

        def start(self):
            super().start()
            self.sent = set()

    events = [{"t": 0.005 * i} for i in range(16)]
    plan = {0: [("bid", 99.98, 1.0)], 8: [("cancel", 0, None)]}
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(latency=Latency(0.0, 0.010, 0.010))
    cerebro.broker.setcash(1e6)
    cerebro.adddata(TickData(dataname=tick_frame(events)), name="X")
    cerebro.addstrategy(Viewed, plan=plan)
    strat = cerebro.run()[0]
    # sent on 0; acked 20 ms later (event 4); cancel sent on 8, lands at 50, heard at 60
    assert strat.states[:4] == ["pending_new"] * 4
    assert strat.states[4:8] == ["open"] * 4
    assert strat.states[8:12] == ["pending_cancel"] * 4
    assert set(strat.states[12:]) == {"gone"}           # cancelled: final, let go
    assert strat.view.working(strat.data0) == []


def test_order_view_position_and_worst_case_count_what_working_orders_can_still_fill():
    view = OrderView()

    class Report:  # the parts of a backtrader order the view reads
        def __init__(self, ref, size, status, done=0.0):
            self.ref, self.data, self.status = ref, "X", status
            self.created = type("C", (), {"price": 100.0, "size": size})()
            self.executed = type("E", (), {"size": done})()

        def isbuy(self):
            return self.created.size > 0

    bid, ask = Report(1, 2.0, bt.Order.Submitted), Report(2, -1.0, bt.Order.Submitted)
    rb, ra = view.sent(bid), view.sent(ask)
    assert view.worst_case("X") == (2.0, -1.0)
    view.on_report(Report(1, 2.0, bt.Order.Partial, 0.5))
    assert view.position("X") == 0.5 and rb.state == "open" and rb.remaining == 1.5
    assert view.worst_case("X") == (2.0, -0.5)
    view.cancel_sent(ra)
    assert ra.state == "pending_cancel"
    view.on_report(Report(2, -1.0, bt.Order.Canceled))
    assert ra.final and view.worst_case("X") == (2.0, 0.5)
    view.on_report(Report(1, 2.0, bt.Order.Completed, 2.0))
    assert rb.state == "filled" and view.position("X") == 2.0
    assert view.worst_case("X") == (2.0, 2.0) and view.working("X") == []


def test_on_bars_reports_come_on_the_bar_and_a_cancel_is_at_once():
    bars = [(100, 100.5, 99.5, 100)] * 3 + [(100, 100.5, 98.0, 100)]
    strat, broker = run(bar_frame(bars), {0: [("bid", 99.0, 1.0)], 1: [("cancel", 0, None)]},
                        tick=False, latency=Latency(0.005, 0.010, 0.010))
    assert strat.fills == [] and _seen(strat)["Canceled"] == 2
    strat, _ = run(bar_frame(bars), {0: [("bid", 99.0, 1.0)]}, tick=False,
                   latency=Latency(0.005, 0.010, 0.010))
    assert [f["event"] for f in strat.fills] == [f["event"] for f in strat.seen_fills] == [3]


class RecvTicks(TickData):
    lines = ("recv",)


def test_a_recv_line_gives_each_event_its_own_feed_latency():
    # the event at 0 is received 30 ms late: an order placed on it reaches the book at 40 ms
    frame = tick_frame([{"t": 0.0}, {"t": 0.035, "tp": 99.98, "ts": 1.0, "side": -1},
                        {"t": 0.045, "tp": 99.98, "ts": 1.0, "side": -1}, {"t": 1.0}])
    base = T0.timestamp()
    frame["recv"] = [base + 0.030, base + 0.036, base + 0.046, base + 1.0]
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(latency=Latency(0.0, 0.010, 0.010))
    cerebro.broker.setcash(1e6)
    cerebro.adddata(RecvTicks(dataname=frame), name="X")
    cerebro.addstrategy(Scripted, plan={0: [("bid", 99.99, 1.0)]})
    strat = cerebro.run()[0]
    assert [f["event"] for f in strat.fills] == [2]
    (rec,) = cerebro.broker.fill_log
    assert rec["arrived"] - base == pytest.approx(0.040, abs=1e-5)
    # filled at 45 ms, reported at 55 ms local: the event stamped 1.0 s carries it
    assert [f["event"] for f in strat.seen_fills] == [3]


def test_the_analyzer_books_the_exchange_side_not_the_delayed_reports():
    events = [{"t": 0.005 * i} for i in range(6)] + [
        {"t": 0.030, "tp": 99.98, "ts": 1.0, "side": -1}] + [
        {"t": 0.035 + 0.005 * i, "bid": 99.9, "ask": 99.91} for i in range(10)]
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(latency=Latency(0.0, 0.010, 0.030))
    cerebro.broker.setcash(1e6)
    cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
    cerebro.adddata(TickData(dataname=tick_frame(events)), name="X")
    cerebro.addstrategy(Scripted, plan={0: [("bid", 99.99, 1.0)]})
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    strat = cerebro.run()[0]
    series = strat.analyzers.mm.series()
    assert series["position"].iloc[6] == 1.0 and series["position"].iloc[5] == 0.0
    s = strat.analyzers.mm.get_analysis()["X"]
    # marked to the mid before the fill (99.995), not the one when it was reported
    assert s["spread_pnl"] == pytest.approx(99.995 - 99.99)
    assert strat.analyzers.mm.get_analysis()["total"]["reconciles"]
    quotes = strat.analyzers.mm.quote_log()
    assert len(quotes) == 1 and math.isclose(quotes["start"].iloc[0].timestamp() -
                                             T0.timestamp(), 0.010, abs_tol=1e-5)


@pytest.mark.parametrize("step", [-1, 0, float("nan"), "0.001", {"BTCUSDT": -0.5}])
def test_a_size_step_that_is_not_a_positive_number_is_refused(step):
    from s4_strategies.market_making.broker import MarketMakingBroker

    with pytest.raises(ValueError, match="size_step.* must be a number > 0 or None"):
        MarketMakingBroker(size_step=step)


@pytest.mark.parametrize("step", [0, -0.001])
def test_the_strategys_size_step_must_be_positive_or_none(step):
    from s4_strategies.market_making.instrument import validate_params

    with pytest.raises(ValueError, match="size_step must be a finite number > 0 or None"):
        validate_params({"size_step": step})
    assert validate_params({"size_step": None}) == {"size_step": None}
