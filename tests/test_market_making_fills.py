"""Fill models (trade-through with queue rules, intensity, touch) and maker/taker fees."""

import backtrader as bt
import pandas as pd
import pytest
from mm_helpers import Scripted, bar_frame, run, tick_frame

from feeds import ArrayData
from s4_strategies.fees import BYBIT_MAKER, BYBIT_TAKER, MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker

# ----------------------------------------------------------------- trade-through on ticks
DEEP = {0: [("bid", 99.98, 1.0)]}
DEEP_EVENTS = [{}, {"tp": 99.98, "ts": 5.0, "side": -1}, {"tp": 99.97, "ts": 0.1, "side": -1}]


def test_trade_at_price_does_not_fill_under_through_rule_but_trade_below_does():
    strat, _ = run(tick_frame(DEEP_EVENTS), DEEP, fill_model="trade_through", queue="through")
    assert [(f["event"], f["size"], f["price"]) for f in strat.fills] == [(2, 1.0, 99.98)]
    assert strat.fills[0]["comm"] == pytest.approx(99.98 * 1.0 * 0.0002)
    assert not strat.fills[0]["taker"]


def test_touch_queue_rule_fills_at_price_up_to_the_trade_size():
    events = [{}, {"tp": 99.98, "ts": 0.4, "side": -1}, {"tp": 99.98, "ts": 5.0, "side": -1}]
    strat, _ = run(tick_frame(events), DEEP, fill_model="trade_through", queue="touch")
    assert [(f["event"], f["size"]) for f in strat.fills] == [(1, 0.4), (2, 0.6)]


def test_queue_rule_waits_for_the_displayed_size_ahead():
    plan = {0: [("bid", 99.99, 1.0)]}  # joins the best bid behind 2.0
    events = [{}, {}, {"tp": 99.99, "ts": 1.5, "side": -1}, {"tp": 99.99, "ts": 1.0, "side": -1},
              {"tp": 99.99, "ts": 1.0, "side": -1}]
    strat, _ = run(tick_frame(events), plan, fill_model="trade_through", queue="queue")
    assert [(f["event"], f["size"]) for f in strat.fills] == [(3, 0.5), (4, 0.5)]


def test_queue_ahead_shrinks_with_the_displayed_size():
    plan = {0: [("bid", 99.99, 1.0)]}
    events = [{}, {}, {"bs": 0.3}, {"tp": 99.99, "ts": 0.5, "side": -1, "bs": 0.3}]
    strat, _ = run(tick_frame(events), plan, fill_model="trade_through", queue="queue")
    assert [(f["event"], f["size"]) for f in strat.fills] == [(3, pytest.approx(0.2))]


def test_deeper_level_fills_only_by_trade_through_under_queue_rule():
    strat, _ = run(tick_frame(DEEP_EVENTS), DEEP, fill_model="trade_through", queue="queue")
    assert [f["event"] for f in strat.fills] == [2]


def test_buy_prints_do_not_fill_bids():
    events = [{}, {"tp": 99.97, "ts": 1.0, "side": 1}, {}]
    strat, _ = run(tick_frame(events), DEEP, fill_model="trade_through")
    assert strat.fills == []


def test_book_moving_through_a_resting_order_fills_it_as_maker():
    events = [{}, {}, {"bid": 99.97, "ask": 99.98}]
    strat, _ = run(tick_frame(events), DEEP, fill_model="trade_through")
    assert [(f["event"], f["price"], f["taker"]) for f in strat.fills] == [(2, 99.98, False)]


def test_marketable_limit_takes_liquidity_or_is_rejected_post_only():
    events = [{}, {}, {}]
    strat, _ = run(tick_frame(events), {0: [("bid", 100.01, 1.0)]}, fill_model="trade_through")
    (f,) = strat.fills
    assert (f["price"], f["taker"]) == (100.00, True)
    assert f["comm"] == pytest.approx(100.0 * 0.00055)
    strat, _ = run(tick_frame(events), {0: [("bid", 100.01, 1.0, {"post_only": True})]},
                   fill_model="trade_through")
    assert strat.fills == []
    assert ("Rejected" in {s for _, s in strat.statuses})


def test_market_orders_fill_at_the_opposite_best_with_taker_fee():
    strat, broker = run(tick_frame([{}, {}, {}]), {0: [("sell", None, 2.0)]},
                        fill_model="trade_through")
    (f,) = strat.fills
    assert (f["size"], f["price"], f["taker"]) == (-2.0, 99.99, True)
    assert f["comm"] == pytest.approx(2 * 99.99 * 0.00055)


def test_a_user_filler_caps_queue_fills():
    events = [{}, {}, {"tp": 99.99, "ts": 3.0, "side": -1}, {"tp": 99.99, "ts": 3.0, "side": -1}]

    def filler(order, price, ago):
        return 0.3

    # the queue (2.0 ahead) lets 1.0 then 3.0 through; the filler caps each fill at 0.3
    strat, _ = run(tick_frame(events), {0: [("bid", 99.99, 1.0)]},
                   broker=MarketMakingBroker(filler=filler))
    assert [(f["event"], f["size"]) for f in strat.fills] == [(2, 0.3), (3, 0.3)]
    broker = MarketMakingBroker()
    broker.set_filler(filler)
    strat, _ = run(tick_frame(events), {0: [("bid", 99.99, 1.0)]}, broker=broker)
    assert [(f["event"], f["size"]) for f in strat.fills] == [(2, 0.3), (3, 0.3)]


# ----------------------------------------------------------------- bars
BARS = [(100, 100.5, 99.5, 100), (100, 100.5, 99.0, 100), (98.7, 99.2, 98.5, 99)]


def test_trade_through_on_bars_needs_the_low_strictly_below_and_fills_at_the_limit():
    plan = {0: [("bid", 99.0, 1.0)]}
    strat, _ = run(bar_frame(BARS), plan, tick=False, fill_model="trade_through")
    assert [(f["event"], f["price"]) for f in strat.fills] == [(2, 99.0)]  # not the 98.7 open
    strat, _ = run(bar_frame(BARS), plan, tick=False, fill_model="trade_through", queue="touch")
    assert [(f["event"], f["price"]) for f in strat.fills] == [(1, 99.0)]
    strat, _ = run(bar_frame(BARS), plan, tick=False, fill_model="touch")
    assert [f["event"] for f in strat.fills] == [1]


def test_intensity_fills_follow_the_rate_and_require_a_touch():
    plan = {0: [("bid", 99.0, 1.0, {"mid": 100.0})]}
    kw = dict(tick=False, fill_model="intensity", seed=3)
    strat, _ = run(bar_frame(BARS), plan, intensity=(1e6, 0.1), **kw)
    assert [f["event"] for f in strat.fills] == [1]
    strat, _ = run(bar_frame(BARS), plan, intensity=(1e-12, 0.1), **kw)
    assert strat.fills == []
    untouched = [(100, 101, 99.5, 100)] * 3
    strat, _ = run(bar_frame(untouched), plan, intensity=(1e6, 0.1), **kw)
    assert strat.fills == []
    strat, _ = run(bar_frame(untouched), plan, intensity=(1e6, 0.1), require_touch=False, **kw)
    assert [f["event"] for f in strat.fills] == [1]


def test_intensity_draws_are_seeded():
    rng_bars = [(100, 100.5, 98.0, 100)] * 60
    plan = {i: [("bid", 99.0, 0.01, {"mid": 100.0}), ("ask", 101.0, 0.01, {"mid": 100.0})]
            for i in range(0, 60, 2)}

    def events(seed):
        strat, _ = run(bar_frame(rng_bars), plan, tick=False, fill_model="intensity",
                       intensity=(1 / 3600, 0.5), seed=seed)
        return [f["event"] for f in strat.fills]

    assert events(1) == events(1)
    assert events(1) != events(2)
    assert 0 < len(events(1)) < 30


class _OnA(Scripted):
    def next(self):
        self.i += 1
        if self.i == 0:
            self.buy(data=self.datas[0], price=99.0, size=1.0, exectype=bt.Order.Limit)


@pytest.mark.parametrize("broker_cls", [MarketMakingBroker, bt.brokers.BackBroker])
def test_orders_on_a_feed_that_did_not_move_are_not_rematched(broker_cls):
    a = bar_frame([(100, 100, 98, 100), (100, 101, 100, 100)], freq="10s")
    b = bar_frame([(1, 1, 1, 1)] * 15, freq="1s")
    b.index = b.index + pd.Timedelta("500ms")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker_cls(fill_model="touch") if broker_cls is MarketMakingBroker \
        else broker_cls()
    cerebro.broker.setcash(1e6)
    cerebro.adddata(ArrayData(dataname=a), name="A")
    cerebro.adddata(ArrayData(dataname=b), name="B")
    cerebro.addstrategy(_OnA, plan={})
    strat = cerebro.run()[0]
    if broker_cls is MarketMakingBroker:
        # A's first bar (low 98) predates the order and A's next bar stays above 99
        assert strat.fills == []
    else:
        # backtrader re-matches A's stale bar while only B moves: a fill from the past
        assert [f["price"] for f in strat.fills] == [99.0]


# ----------------------------------------------------------------- fees
def test_maker_rebate_is_a_negative_fee():
    strat, broker = run(tick_frame(DEEP_EVENTS), DEEP, queue="through",
                        comm=MakerTakerCommInfo(maker=-0.0001))
    (f,) = strat.fills
    assert f["comm"] == pytest.approx(-99.98 * 0.0001)
    # cash: 1e6 − cost + rebate
    assert broker.getcash() == pytest.approx(1e6 - 99.98 + 99.98 * 0.0001)


def test_per_contract_commission_round_turn():
    bars = [(100, 100.5, 99.5, 100), (100, 100.2, 98.0, 99), (99, 102.0, 99, 101),
            (101, 101, 101, 101)]
    plan = {0: [("bid", 99.0, 2.0)], 1: [("ask", 101.0, 2.0)]}
    comm = MakerTakerCommInfo.futures(round_turn=14.0, mult=5.0, margin=2000.0)
    strat, broker = run(bar_frame(bars), plan, tick=False, comm=comm)
    assert [f["comm"] for f in strat.fills] == [14.0, 14.0]  # 7 a side per contract, 2 contracts
    # futures PnL: 2 contracts · (101 − 99) · mult 5 = 20, minus 28 of fees
    assert broker.getvalue() == pytest.approx(1e6 + 20.0 - 28.0)


def test_bybit_defaults_and_bad_parameters():
    ci = MakerTakerCommInfo()  # Bybit linear by default
    assert (ci.p.maker, ci.p.taker) == (BYBIT_MAKER, BYBIT_TAKER) == (0.0002, 0.00055)
    assert ci.getcommission(2.0, 100.0) == pytest.approx(2 * 100 * 0.0002)
    ci.liquidity = "taker"
    assert ci.getcommission(2.0, 100.0) == pytest.approx(2 * 100 * 0.00055)
    with pytest.raises(ValueError):
        MarketMakingBroker(fill_model="magic")
    with pytest.raises(ValueError):
        MarketMakingBroker(queue="magic")


def test_an_order_closing_part_of_a_position_completes_despite_float_noise():
    # short 0.001, then a bid of 0.01 fills through: backtrader executes closed + opened =
    # 0.001 + 0.009000000000000001 = 0.010000000000000002, leaving remsize −1.7e-18. That
    # order stayed alive, and each later print through it executed |remsize|, doubling.
    events = [{}, {}, {}, {"tp": 99.97, "ts": 1.0, "side": -1},
              {"tp": 99.96, "ts": 1.0, "side": -1}, {"tp": 99.95, "ts": 1.0, "side": -1}]
    plan = {0: [("sell", None, 0.001)], 2: [("bid", 99.99, 0.01)]}
    strat, broker = run(tick_frame(events), plan, latency=(0.0, 0.0, 0.0))
    bid = strat.orders[1]
    assert bid.status == bt.Order.Completed and not bid.alive()
    assert [(f["event"], f["size"]) for f in strat.fills] == [(1, -0.001),
                                                              (3, pytest.approx(0.01))]
    assert broker.getposition(strat.data0).size == pytest.approx(0.009)
    assert ("Completed" in [s for r, s in strat.statuses if r == bid.ref])
