"""How ``AvellanedaStoikovStrategy`` requotes (``strategies.orders.TwoSidedQuoting``): live
by default (one working order per side, a replacement only once the cancel is confirmed,
the limit counting worst-case fills in flight, so never breached), ``"aggressive"`` as
before (replace at once; fills in flight can pass the limit)."""

import backtrader as bt
import pandas as pd
import pytest
from mm_helpers import tick_frame

from analyzers.market_making import MarketMakingAnalyzer
from feeds.ticks import TickData, load_ticks
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker
from s4_strategies.market_making.latency import Latency
from s4_strategies.strategies.constant_spread import ConstantSpreadStrategy

#: quote the best bid and ask of a two-tick spread, one lot of 1, a limit of one lot
AT_BEST = dict(half_spread=0.01, skew=0.0, lot=1.0, size_step=1.0, tick=0.01,
               max_inventory=1.0)
#: the book steps up a tick at 50 ms; a sell sweeps through 99.98 at 65 ms
UP = {"bid": 100.0, "ask": 100.02}
SWEEP = [{"t": 0.0, "ask": 100.01}, {"t": 0.025, "ask": 100.01}, {"t": 0.05, **UP},
         {"t": 0.065, **UP, "tp": 99.98, "ts": 5.0, "side": -1},
         {"t": 0.2, "bid": 99.96, "ask": 99.98}, {"t": 1.0, "bid": 99.96, "ask": 99.98}]
SLOW_CANCEL = Latency(0.0, 0.010, 0.010, 0.020)  # the cancel lands 10 ms after a new order


class Checked(ConstantSpreadStrategy):
    """Counts, on every event, the orders alive at the exchange per side and the true
    position against the limit."""

    def __init__(self):
        super().__init__()
        self.alive_max = {1: 0, -1: 0}
        self.placed = []  # (event, side, price)

    def next(self):
        super().next()
        alive = [o for o in self.broker.orders if o.alive()]
        for sign in (1, -1):
            k = sum(1 for o in alive if (o.isbuy() if sign > 0 else o.issell()))
            self.alive_max[sign] = max(self.alive_max[sign], k)

    def buy(self, *args, **kwargs):
        order = super().buy(*args, **kwargs)
        self.placed.append((len(self.data) - 1, 1, kwargs.get("price")))
        return order

    def sell(self, *args, **kwargs):
        order = super().sell(*args, **kwargs)
        self.placed.append((len(self.data) - 1, -1, kwargs.get("price")))
        return order


def _run(frame, requote, latency, **params):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(latency=latency, queue="risk_averse",
                                        size_step=params.get("size_step"))
    cerebro.broker.setcash(1e7)
    cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
    cerebro.adddata(TickData(dataname=frame), name="X")
    cerebro.addstrategy(Checked, requote=requote, **params)
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    strat = cerebro.run()[0]
    return strat, strat.analyzers.mm.get_analysis()["X"]


def test_live_requoting_waits_for_the_cancel_and_never_passes_the_limit():
    strat, s = _run(tick_frame(SWEEP), "live", SLOW_CANCEL, **AT_BEST)
    bids = [(e, p) for e, side, p in strat.placed if side > 0]
    # the 99.99 bid on 0 (acked at 20 ms, event 1); the move on 50 ms sends its cancel; it
    # lands at 70 ms and is confirmed at 80 ms: the sweep at 65 ms fills the old bid only
    assert bids[0] == (0, 99.99) and all(e >= 4 for e, _ in bids[1:])
    assert s["fills_bid"] == 1 and s["max_abs_inventory"] == pytest.approx(1.0)
    assert s["inventory_breaches"] == 0 and strat.alive_max[1] == 1


def test_aggressive_requoting_replaces_at_once_and_fills_in_flight_pass_the_limit():
    strat, s = _run(tick_frame(SWEEP), "aggressive", SLOW_CANCEL, **AT_BEST)
    bids = [(e, p) for e, side, p in strat.placed if side > 0]
    assert bids[:2] == [(0, 99.99), (2, 100.0)]  # replaced on the move, cancel in flight
    assert strat.alive_max[1] == 2
    assert s["fills_bid"] == 2 and s["max_abs_inventory"] == pytest.approx(2.0)
    assert s["inventory_breaches"] > 0 and s["fills_in_flight"] == 1


def test_live_requoting_on_the_usdm_sample_keeps_one_order_a_side_within_the_limit():
    frame = load_ticks("binance-usdm:BTCUSDT")
    frame = frame[frame.index < frame.index[0] + pd.Timedelta(seconds=20)]
    strat, s = _run(frame, "live", "cloud", half_spread=0.05, skew=0.1, lot=0.01,
                    size_step=0.001, tick=0.1, max_inventory=1.0)
    assert s["fills_bid"] + s["fills_ask"] > 5 and s["fills_in_flight"] > 0
    assert strat.alive_max == {1: 1, -1: 1}
    assert s["inventory_breaches"] == 0 and s["max_abs_inventory"] <= 0.01 + 1e-12
