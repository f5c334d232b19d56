"""Fill quality (analyzers.mm_fills) by hand, and through MarketMakingAnalyzer on a scripted run."""

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from analyzers import mm_fills
from analyzers.market_making import MarketMakingAnalyzer, format_table
from feeds.ticks import TickData
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker

NONE_STATS = {"price": None, "bps": None, "n": 0, "volume": 0.0}


# ----------------------------------------------------------------- markouts
MID_T = np.arange(11.0)                       # one mid a second, t = 0 … 10
MID = 100.0 + np.arange(11.0)                 # mid(t) = 100 + t


def test_markouts_by_hand():
    # buy 2 @ 100 at t=0.5, sell 1 @ 104 at t=3, buy 1 @ 108 at t=9.5
    res = mm_fills.markouts([0.5, 3.0, 9.5], [1, -1, 1], [100.0, 104.0, 108.0], [2.0, 1.0, 1.0],
                            MID_T, MID, horizons=(1.0, 7.0))
    # h=1: mid at or before 1.5 is 101 (buy: +1); at 4.0 exactly is 104 (sell: −(104−104) = 0);
    # 10.5 is past the data: left out
    one = res[1.0]
    assert one["bid"] == pytest.approx({"price": 1.0, "bps": 1e4 * 1.0 / 100.0, "n": 1,
                                        "volume": 2.0, "left_out": 1})
    assert one["ask"] == pytest.approx({"price": 0.0, "bps": 0.0, "n": 1, "volume": 1.0,
                                        "left_out": 0})
    assert one["all"]["price"] == pytest.approx((2.0 * 1.0 + 1.0 * 0.0) / 3.0)
    assert one["all"]["bps"] == pytest.approx((2.0 * 100.0 + 0.0) / 3.0)
    assert (one["all"]["n"], one["all"]["left_out"]) == (2, 1)
    # h=7: buy → mid(7.5) = 107: +7; sell → mid(10) = 110: −(110 − 104) = −6
    seven = res[7.0]
    assert seven["bid"]["price"] == pytest.approx(7.0)
    assert seven["ask"]["price"] == pytest.approx(-6.0)
    assert seven["ask"]["bps"] == pytest.approx(-1e4 * 6.0 / 104.0)
    assert seven["all"]["price"] == pytest.approx((2.0 * 7.0 - 6.0) / 3.0)
    assert seven["all"]["bps"] == pytest.approx((2.0 * 700.0 - 1e4 * 6.0 / 104.0) / 3.0)


def test_markouts_with_no_fills_or_no_data():
    empty = mm_fills.markouts([], [], [], [], MID_T, MID)
    assert set(empty) == set(mm_fills.HORIZONS)
    for sides in empty.values():
        for st in sides.values():
            assert st == {**NONE_STATS, "left_out": 0}
    no_mid = mm_fills.markouts([1.0], [1], [100.0], [1.0], [], [], horizons=(1.0,))
    assert no_mid[1.0]["all"] == {**NONE_STATS, "left_out": 1}


def test_markouts_near_the_end_and_before_the_start_are_left_out():
    # t + h = 10 is the last mid: used; 10.001 and a fill before the first mid are not
    res = mm_fills.markouts([9.0, 9.001, -5.0], [-1, -1, 1], [110.0, 110.0, 100.0],
                            [1.0, 1.0, 1.0], MID_T, MID, horizons=(1.0,))
    assert res[1.0]["ask"] == pytest.approx({"price": 0.0, "bps": 0.0, "n": 1, "volume": 1.0,
                                             "left_out": 1})
    assert res[1.0]["bid"] == {**NONE_STATS, "left_out": 1}
    assert res[1.0]["all"]["left_out"] == 2


def test_markouts_count_times_within_tol_as_equal():
    # 3.99999 + 1 misses the mid stamped 5, and 9.00001 + 1 is past the end, unless tol
    # covers it: 104 − 100 and left out, or 105 − 100 and 110 − 100
    args = ([3.99999, 9.00001], [1, 1], [100.0, 100.0], [1.0, 1.0], MID_T, MID)
    assert mm_fills.markouts(*args, horizons=(1.0,))[1.0]["all"] == pytest.approx(
        {"price": 4.0, "bps": 400.0, "n": 1, "volume": 1.0, "left_out": 1})
    assert mm_fills.markouts(*args, horizons=(1.0,), tol=1e-4)[1.0]["all"] == pytest.approx(
        {"price": 7.5, "bps": 750.0, "n": 2, "volume": 2.0, "left_out": 0})


def test_markouts_on_one_side_only():
    res = mm_fills.markouts([0.0, 2.0], [-1, -1], [100.0, 101.0], [1.0, 3.0], MID_T, MID,
                            horizons=(1.0,))
    # −(101 − 100) = −1 and −(103 − 101) = −2, weighted 1 and 3
    assert res[1.0]["ask"]["price"] == pytest.approx((-1.0 - 6.0) / 4.0)
    assert res[1.0]["all"]["price"] == res[1.0]["ask"]["price"]
    assert res[1.0]["bid"] == {**NONE_STATS, "left_out": 0}


def test_pooled_markouts_are_the_markouts_of_all_fills():
    t, sign, price, size = [0.5, 3.0, 4.0, 6.0], [1, -1, -1, 1], [100.0, 104.0, 103.0, 105.0], \
        [2.0, 1.0, 0.5, 1.5]
    whole = mm_fills.markouts(t, sign, price, size, MID_T, MID, horizons=(1.0, 5.0))
    parts = [mm_fills.markouts(t[a:b], sign[a:b], price[a:b], size[a:b], MID_T, MID,
                               horizons=(1.0, 5.0)) for a, b in ((0, 1), (1, 4))]
    pooled = mm_fills.pool_markouts(parts, horizons=(1.0, 5.0))
    for h in (1.0, 5.0):
        for side in ("bid", "ask", "all"):
            assert pooled[h][side] == pytest.approx(whole[h][side])


def test_markout_keys_flatten_per_horizon_and_side():
    res = mm_fills.markouts([0.0], [1], [100.0], [1.0], MID_T, MID, horizons=(1.0, 60.0))
    keys = mm_fills.markout_keys(res)
    assert keys["markout_1s_bid"] == pytest.approx(1.0) == keys["markout_1s"]
    assert keys["markout_1s_bid_bps"] == pytest.approx(100.0) == keys["markout_1s_bps"]
    assert keys["markout_1s_ask"] is None and keys["markout_1s_ask_bps"] is None
    assert (keys["markout_1s_n"], keys["markout_1s_left_out"]) == (1, 0)
    assert keys["markout_60s"] is None and keys["markout_60s_left_out"] == 1
    assert len(keys) == 2 * 8


# ----------------------------------------------------------------- fill log
def entry(kind, size, t, placed, arrived=None, cancel_sent=None, data="X", sign=1.0):
    return dict(ref=0, data=data, t=t, sign=sign, price=100.0, size=size, kind=kind,
                taker=kind in ("taker", "market"), placed=placed,
                arrived=placed if arrived is None else arrived, cancel_sent=cancel_sent)


LOG = [entry("through", 1.0, 10.0, 9.0, 9.5), entry("queue", 0.5, 12.0, 10.0, 10.5),
       entry("queue", 0.25, 13.0, 10.0, 10.5, cancel_sent=12.5),
       entry("book", 2.0, 20.0, 17.0, 17.5, data="Y"),
       entry("market", 1.5, 21.0, 20.0, 20.5, data="Y", sign=-1.0),
       entry("odd", 1.0, 30.0, 25.0, 25.5, cancel_sent=26.0, data="Y")]


def test_fills_by_kind_counts_and_volume():
    res = mm_fills.fills_by_kind(LOG)
    assert res["fills_by_kind"] == {"through": 1, "queue": 2, "book": 1, "taker": 0, "market": 1,
                                    "intensity": 0, "touch": 0, "odd": 1}
    assert res["volume_by_kind"] == pytest.approx({"through": 1.0, "queue": 0.75, "book": 2.0,
                                                   "taker": 0.0, "market": 1.5,
                                                   "intensity": 0.0, "touch": 0.0, "odd": 1.0})
    empty = mm_fills.fills_by_kind([])
    assert empty["fills_by_kind"] == dict.fromkeys(mm_fills.KINDS, 0)
    assert empty["volume_by_kind"] == dict.fromkeys(mm_fills.KINDS, 0.0)


def test_placement_to_fill_by_hand():
    res = mm_fills.placement_to_fill(LOG)
    # placed → fill: 1, 2, 3, 3, 1, 5 → sorted 1 1 2 3 3 5; arrival 0.5 s later for every one
    assert res["placed"] == pytest.approx({"median": 2.5, "mean": 15.0 / 6, "p10": 1.0,
                                           "p90": 4.0, "n": 6})
    assert res["arrived"] == pytest.approx({"median": 2.0, "mean": 15.0 / 6 - 0.5, "p10": 0.5,
                                            "p90": 3.5, "n": 6})
    # p10/p90 linearly interpolated: [1, 2, 3] → 1 + 0.2·1 and 2 + 0.8·1
    three = mm_fills.placement_to_fill(pd.DataFrame(LOG[:3]))["placed"]
    assert (three["p10"], three["p90"]) == pytest.approx((1.2, 2.8))
    none = {"median": None, "mean": None, "p10": None, "p90": None, "n": 0}
    assert mm_fills.placement_to_fill([]) == {"placed": none, "arrived": none}


def test_fills_in_flight_from_lists_and_frames():
    assert mm_fills.fills_in_flight(LOG) == {"fills_in_flight": 2, "volume_in_flight": 1.25}
    # a DataFrame turns the None of cancel_sent into NaN
    assert mm_fills.fills_in_flight(pd.DataFrame(LOG)) == {"fills_in_flight": 2,
                                                           "volume_in_flight": 1.25}
    assert mm_fills.fills_in_flight(LOG[:2]) == {"fills_in_flight": 0, "volume_in_flight": 0.0}
    assert mm_fills.fills_in_flight([]) == {"fills_in_flight": 0, "volume_in_flight": 0.0}


def test_fill_log_keys_per_feed_and_without_a_log():
    x = mm_fills.fill_log_keys(LOG, "X")
    assert x["fills_by_kind"]["queue"] == 2 and x["fills_by_kind"]["book"] == 0
    assert (x["fill_latency_median"], x["arrival_to_fill_median"]) == (2.0, 1.5)
    assert x["fill_latency_p90"] == pytest.approx(2.0 + 0.8 * 1.0)  # 1, 2, 3 s
    assert (x["fills_in_flight"], x["volume_in_flight"]) == (1, 0.25)
    assert mm_fills.fill_log_keys(LOG)["fills_in_flight"] == 2
    assert mm_fills.fill_log_keys(None) == {
        "fills_by_kind": None, "volume_by_kind": None, "fill_latency_median": None,
        "fill_latency_p90": None, "arrival_to_fill_median": None, "fills_in_flight": 0,
        "volume_in_flight": 0.0}
    assert mm_fills.fill_log_keys([], "X")["fill_latency_median"] is None


# ----------------------------------------------------------------- inventory breaches
def test_inventory_breaches_by_hand():
    t = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 10.0]
    pos = [0.0, 1.2, -1.5, 0.5, -1.1, 1.0, 2.0]
    res = mm_fills.inventory_breaches(t, pos, 1.0)
    # over at events 1, 2 (one episode), 4, 6; held 1 + 1 + 1 + 0 (the last event) seconds;
    # exactly at the limit (event 5) is not a breach
    assert res == pytest.approx({"inventory_breaches": 4, "breach_episodes": 3,
                                 "max_breach": 1.0, "time_over_limit": 3.0})


def test_inventory_breaches_tolerance_no_limit_and_no_events():
    lot3 = 0.01 + 0.01 + 0.01  # 0.030000000000000002: float noise, not a breach
    assert mm_fills.inventory_breaches([0.0, 1.0], [lot3, 0.0], 0.03)["inventory_breaches"] == 0
    assert mm_fills.inventory_breaches([0.0], [1.0 + 1e-13], 1.0)["inventory_breaches"] == 0
    assert mm_fills.inventory_breaches([0.0], [1.0 + 1e-9], 1.0)["inventory_breaches"] == 1
    nothing = {"inventory_breaches": 0, "breach_episodes": 0, "max_breach": 0.0,
               "time_over_limit": 0.0}
    assert mm_fills.inventory_breaches([0.0, 1.0], [1e9, -1e9], math.inf) == nothing
    assert mm_fills.inventory_breaches([], [], 1.0) == nothing


def test_pool_breaches_adds_counts_and_time_and_keeps_the_largest():
    a = mm_fills.inventory_breaches([0.0, 2.0, 3.0], [2.0, 0.0, 0.0], 1.0)
    b = mm_fills.inventory_breaches([0.0, 1.0, 5.0], [0.0, 1.5, 0.0], 1.0)
    assert mm_fills.pool_breaches([a, b]) == pytest.approx({
        "inventory_breaches": 2, "breach_episodes": 2, "max_breach": 1.0,
        "time_over_limit": 2.0 + 4.0})


# ----------------------------------------------------------------- through the analyzer
T0 = pd.Timestamp("2024-08-08 23:00", tz="UTC")
NAN = float("nan")


def tick_frame(rows):
    """One event a second from dicts with bid/ask (default 99.99/100.00, sizes 2) and an
    optional trade (``tp``, ``ts``, ``side``)."""
    out = []
    for r in rows:
        bid, ask = r.get("bid", 99.99), r.get("ask", 100.00)
        mid, tp = (bid + ask) / 2, r.get("tp", NAN)
        out.append(dict(open=mid, high=np.fmax(mid, tp), low=np.fmin(mid, tp), close=mid,
                        volume=0.0 if math.isnan(tp) else r["ts"], bid=bid, ask=ask,
                        bid_size=2.0, ask_size=2.0, mid=mid, trade_price=tp,
                        trade_size=r.get("ts", NAN), trade_side=r.get("side", NAN)))
    return pd.DataFrame(out, index=T0 + pd.to_timedelta(np.arange(len(rows)), unit="s"))


SELL_THROUGH = {"tp": 99.97, "ts": 0.1, "side": -1}
EVENTS = [{}, {}, SELL_THROUGH, {"bid": 100.01, "ask": 100.02}, {}, {}, SELL_THROUGH, {}, {}, {},
          {}, {"tp": 99.99, "ts": 2.0, "side": -1}, {"tp": 99.99, "ts": 1.0, "side": -1},
          {}, {}, {}]
# event → orders: (kind, price, size); "cancel" cancels the order placed on event 4
PLAN = {0: [("bid", 99.98, 1.0), ("ask", 100.01, 1.0)],   # through on 2, book crossing on 3
        4: [("bid", 99.98, 1.5)],                          # cancelled on 5, filled in flight on 6
        5: [("cancel",)],
        8: [("sell", None, 1.5)],                          # flattens on 9 at the best bid
        10: [("bid", 99.99, 1.0)]}                         # queue of 2 ahead: filled on 12


class Scripted(bt.Strategy):
    """Places ``plan[i]`` on event ``i``; a hard inventory limit of ``limit`` contracts."""

    params = dict(plan=None, limit=1.0)

    def __init__(self):
        self.i, self.orders = -1, []

    def inventory_limit(self, data):
        return self.p.limit

    def prenext(self):
        self.next()

    def next(self):
        self.i += 1
        for kind, *args in self.p.plan.get(self.i, []):
            if kind == "cancel":
                self.cancel(self.orders[-1])
            elif kind == "sell":
                self.orders.append(self.sell(size=args[1], exectype=bt.Order.Market))
            else:
                order = self.buy if kind == "bid" else self.sell
                self.orders.append(order(price=args[0], size=args[1], exectype=bt.Order.Limit))


def run(broker, plan=PLAN, strategy=Scripted):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.broker.setcash(1e6)
    cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
    cerebro.adddata(TickData(dataname=tick_frame(EVENTS)), name="X")
    cerebro.addstrategy(strategy, plan=plan)
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    return cerebro.run()[0].analyzers.mm.get_analysis()


def test_the_analyzer_reports_markouts_kinds_latency_in_flight_fills_and_breaches():
    # entry 0.5 s, cancel 2 s: the cancel sent on event 5 reaches the book on event 7
    m = run(MarketMakingBroker(latency=(0.0, 0.5, 0.0, 2.0)))
    s = m["X"]
    assert s["fills_by_kind"] == {"through": 2, "queue": 1, "book": 1, "taker": 0, "market": 1,
                                  "intensity": 0, "touch": 0}
    assert s["volume_by_kind"]["through"] == pytest.approx(2.5)
    # placed → fill: 2, 3, 2, 1, 2 s; arrival half a second later (backtrader's float dates
    # keep times to some microseconds)
    assert s["fill_latency_median"] == pytest.approx(2.0, abs=1e-4)
    assert s["fill_latency_p90"] == pytest.approx(2.6, abs=1e-4)
    assert s["arrival_to_fill_median"] == pytest.approx(1.5, abs=1e-4)
    assert (s["fills_in_flight"], s["volume_in_flight"]) == (1, 1.5)
    # +1.5 from event 6 to the market sell on event 9 against a limit of 1; +1 on 12 is at it
    assert s["inventory_breaches"] == 3 and s["breach_episodes"] == 1
    assert s["max_breach"] == pytest.approx(0.5)
    assert s["time_over_limit"] == pytest.approx(3.0, abs=1e-4)
    # 1 s markouts against the mid a second later (99.995 but 100.015 on event 3):
    # buys 1 @ 99.98 (+0.035), 1.5 @ 99.98 (+0.015), 1 @ 99.99 (+0.005);
    # sells 1 @ 100.01 (+0.015), 1.5 @ 99.99 (−0.005)
    bid = (0.035 + 1.5 * 0.015 + 0.005) / 3.5
    ask = (0.015 - 1.5 * 0.005) / 2.5
    assert s["markout_1s_bid"] == pytest.approx(bid)
    assert s["markout_1s_ask"] == pytest.approx(ask)
    assert s["markout_1s"] == pytest.approx((3.5 * bid + 2.5 * ask) / 6.0)
    assert s["markout_1s_bid_bps"] == pytest.approx(
        1e4 * (0.035 / 99.98 + 1.5 * 0.015 / 99.98 + 0.005 / 99.99) / 3.5)
    # 10 s later (last event 15): only the fills of events 2 and 3, both +0.015
    assert s["markout_10s"] == pytest.approx(0.015)
    assert (s["markout_10s_n"], s["markout_10s_left_out"]) == (2, 3)
    assert s["markout_60s"] is None and s["markout_60s_left_out"] == 5
    tot = m["total"]
    for key in ("markout_1s_bid", "markout_10s_bps", "inventory_breaches", "time_over_limit",
                "fills_in_flight", "fill_latency_median", "fills_by_kind"):
        assert tot[key] == s[key], key
    table = format_table(m)
    for row in ("markout 1s bid / ask (bps)", "fills by kind", "  queue", "fills in flight",
                "placement→fill median (ms)", "inventory breaches / episodes"):
        assert row in table, row
    assert "2000.0" in table and "3 / 1" in table


class NoLimit(Scripted):
    inventory_limit = None


def test_without_a_fill_log_or_a_limit_the_keys_are_there_and_empty():
    m = run(bt.brokers.BackBroker(), plan={0: [("bid", 99.98, 1.0)], 8: [("sell", None, 1.0)]},
            strategy=NoLimit)
    for s in (m["X"], m["total"]):
        assert s["fills_by_kind"] is None and s["volume_by_kind"] is None
        assert s["fill_latency_median"] is None and s["fill_latency_p90"] is None
        assert s["fills_in_flight"] == 0
        assert s["inventory_breaches"] == 0 and s["time_over_limit"] == 0.0
        # markouts come from the analyzer's own fills: any broker has them
        assert s["markout_1s_n"] == 2
    assert "n/a" in format_table(m)
