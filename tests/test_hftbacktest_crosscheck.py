"""Cross-check of MarketMakingBroker against hftbacktest (a dev dependency): the event
conversion, the book hftbacktest rebuilds from it, a hand-made case whose fills are known, and
(slow) the constant-spread rule on the embedded USD-M sample within a stated band."""

import math

import numpy as np
import pandas as pd
import pytest
from mm_helpers import T0, tick_frame

hb = pytest.importorskip("hftbacktest")

from s4_strategies.apps import crosscheck  # noqa: E402
from s4_strategies.fees import BYBIT_MAKER  # noqa: E402
from s4_strategies.market_making import hftbacktest_ref as ref  # noqa: E402

EXCH_LOCAL = hb.EXCH_EVENT | hb.LOCAL_EVENT
#: one tick off the book: bid 99.98, ask 100.01 on the default 99.99 / 100.00
TIE_RULE = dict(half_spread=0.01, skew=0.0, lot=1.0, tick=0.01, max_inventory=10.0)


def _ns(seconds: float) -> int:
    return int((T0 + pd.Timedelta(seconds=seconds)).value)


# ----------------------------------------------------------------- the event conversion
TINY = [
    {},                                                    # 0: bid 99.99 x2, ask 100.00 x2
    {"tp": 99.99, "ts": 0.5, "side": -1},                  # 1: a sell print at the bid
    {"bs": 1.5},                                           # 2: the bid size changes
    {"bs": 1.5, "t": 2.5},                                 # nothing changes
    {"bid": 99.97, "ask": 99.98, "t": 3.0},                # 3: the book falls two ticks
    {"bid": 99.97, "ask": 99.98, "tp": 99.98, "ts": 0.1, "side": 1, "t": 3.0},  # 4: same stamp
]


def _visible(events):
    """``(kind, side, price, qty, exch_ts)`` of the events that are not hidden levels."""
    out = []
    for e in events:
        if e["qty"] == ref.HIDDEN_QTY:
            continue
        side = "buy" if e["ev"] & hb.BUY_EVENT else "sell" if e["ev"] & hb.SELL_EVENT else "?"
        out.append((int(e["ev"]) & 0xFF, side, round(float(e["px"]), 2), float(e["qty"]),
                    int(e["exch_ts"])))
    return out


def test_events_counts_flags_order_and_stamps():
    events = ref.hftbacktest_events(tick_frame(TINY), feed_latency=0.005, tick=0.01)
    D, T = hb.DEPTH_EVENT, hb.TRADE_EVENT
    assert _visible(events) == [
        (D, "sell", 100.00, 2.0, _ns(0)), (D, "buy", 99.99, 2.0, _ns(0)),
        (T, "sell", 99.99, 0.5, _ns(1)),
        (D, "buy", 99.99, 1.5, _ns(2)),
        (D, "buy", 99.99, 1.5, _ns(2.5)),  # wakes the strategy: local only
        # falling: the bid side first (old levels deleted, then the new best), then the ask
        (D, "buy", 99.99, 0.0, _ns(3)), (D, "buy", 99.98, 0.0, _ns(3)),
        (D, "buy", 99.97, 2.0, _ns(3)), (D, "sell", 99.98, 2.0, _ns(3)),
        (T, "buy", 99.98, 0.1, _ns(3) + 1),  # a repeated stamp moves 1 ns on
        (D, "buy", 99.97, 2.0, _ns(3) + 2),  # after the last row: local only
    ]
    local_only = (events["ev"] & EXCH_LOCAL) == hb.LOCAL_EVENT
    assert np.flatnonzero(local_only).tolist() == [2 * ref.HIDDEN_TICKS + 4, len(events) - 1]
    assert np.all(events["ev"][~local_only] & EXCH_LOCAL == EXCH_LOCAL)
    assert np.all(events["local_ts"] - events["exch_ts"] == 5_000_000)
    assert np.all(np.diff(events["exch_ts"]) >= 0)
    hidden = events[events["qty"] == ref.HIDDEN_QTY]
    # first row: 1000 levels behind each best; row 3: two more bids, two asks better than 100.00
    assert len(hidden) == 2 * ref.HIDDEN_TICKS + 4
    asks = np.round(hidden["px"][(hidden["ev"] & hb.SELL_EVENT) > 0], 2)
    assert {99.99, 100.0} <= set(asks) and asks.min() == 99.99


def test_trades_without_a_side_are_refused():
    frame = tick_frame([{}, {"tp": 99.99, "ts": 0.5}])
    with pytest.raises(ValueError, match="aggressor side"):
        ref.hftbacktest_events(frame, tick=0.01)


def test_hftbacktest_book_follows_the_frame_event_by_event():
    from feeds.ticks import load_ticks

    frame = load_ticks("binance-usdm:BTCUSDT", max_events=3000)
    events = ref.hftbacktest_events(frame, 0.0)
    hbt = hb.HashMapMarketDepthBacktest([ref._asset(hb, events, 0, "prob", 3.0, True, 0.0, 0.0,
                                                    0.1, 0.001)])
    seen = []
    while hbt.wait_next_feed(False, 60_000_000_000) == 2:
        d = hbt.depth(0)
        seen.append((d.best_bid, d.best_ask, d.best_bid_qty, d.best_ask_qty))
    hbt.close()
    want = frame[["bid", "ask", "bid_size", "ask_size"]].to_numpy()[: len(seen)]
    assert len(seen) == len(frame)  # one step per row
    np.testing.assert_allclose(np.asarray(seen), want, rtol=0, atol=1e-6)


def test_quote_rule_rounds_clamps_and_caps():
    kw = dict(half_spread=0.5, skew=0.1, lot=0.01, tick=0.1, max_inventory=2.0)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, 0.0, **kw) == (995, 1006)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, 0.01, **kw) == (994, 1005)
    # post-only: never at or through the opposite best
    wide = dict(half_spread=0.0, skew=1.0, lot=0.01, tick=0.1, max_inventory=50)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, -0.2, **wide) == (1000, 1201)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, 0.2, **wide) == (800, 1001)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, -0.2, **{**wide, "post_only": False}
                                      ) == (1200, 1201)
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, 0.02, **kw)[0] is None
    assert ref.constant_spread_quotes(100.05, 100.0, 100.1, -0.02, **kw)[1] is None


# ----------------------------------------------------------------- both engines agree
KNOWN = [
    {},                                          # 0: quotes bid 99.97, ask 100.02 (+10 ms)
    {},
    {"tp": 99.96, "ts": 0.5, "side": -1},        # 2: a sell through the bid: filled, 1 lot
    {"tp": 100.02, "ts": 5.0, "side": 1},        # 3: a buy at the ask's price, deeper than the
                                                 #    best: its queue is unknown, no fill
    {"bid": 100.02, "ask": 100.03},              # 4: the book moves through the ask: filled
    {"bid": 100.02, "ask": 100.03},
]


@pytest.mark.parametrize("queue", ["prob", "risk_averse"])
def test_both_engines_fill_a_hand_made_case_the_same_known_way(queue):
    rule = dict(half_spread=0.02, skew=0.0, lot=1.0, tick=0.01, max_inventory=10.0)
    ours, theirs = crosscheck.compare(tick_frame(KNOWN), latency=(0.0, 0.01, 0.01),
                                     queue=queue, **rule)
    fees = BYBIT_MAKER * (99.97 + 100.02)
    known = dict(fills_bid=1, fills_ask=1, volume_bid=1.0, volume_ask=1.0, quotes_rejected=0,
                 spread_pnl=0.05, inventory_pnl=0.0, fees=fees, total_pnl=0.05 - fees,
                 final_position=0.0)
    for key, value in known.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), ("ours", key)
        assert theirs[key] == pytest.approx(value, abs=1e-9), ("hftbacktest", key)
    fills = [[(round(f["t"] - T0.timestamp(), 3), f["sign"], round(f["price"], 2))
              for f in r["fill_log"]] for r in (ours, theirs)]
    assert fills[0] == fills[1] == [(2.0, 1.0, 99.97), (4.0, -1.0, 100.02)]
    assert (ours["quotes_bid"], ours["quotes_ask"]) == (theirs["quotes_bid"],
                                                        theirs["quotes_ask"])


@pytest.mark.parametrize("in_flight, placed", [(True, 0.005), (False, 0.02)])
def test_a_quote_still_in_flight_is_replaced_at_once_or_once_it_has_arrived(in_flight, placed):
    # the bid sent at 0 (99.98, in the book at 0.01) should move to 99.99 at 0.005
    frame = tick_frame([{"t": 0.0}, {"t": 0.005, "bid": 100.0, "ask": 100.01},
                        {"t": 0.02, "bid": 100.0, "ask": 100.01},
                        {"t": 1.0, "bid": 100.0, "ask": 100.01, "tp": 99.97, "ts": 1.0,
                         "side": -1}])
    ours = crosscheck.run_ours(frame, latency=(0.0, 0.01, 0.01), cancel_in_flight=in_flight,
                              **TIE_RULE)
    (fill,) = ours["fill_log"]  # the cancelled 99.98 bid never fills, its replacement does
    assert round(fill["price"], 2) == 99.99
    assert fill["placed"] - T0.timestamp() == pytest.approx(placed, abs=1e-4)


def test_latency_with_different_entry_and_cancel_is_refused():
    with pytest.raises(ValueError, match="entry must equal"):
        ref.run_hftbacktest(tick_frame(KNOWN), half_spread=0.02, skew=0.0, lot=1.0, tick=0.01,
                            max_inventory=10.0, latency=(0.0, 0.01, 0.02), maker=0.0, taker=0.0)


# ----------------------------------------------------------------- known disagreements
# Where our broker parts from hftbacktest: the reference's answer is asserted, ours is an
# expected failure (strict: it fails loudly once the broker is fixed, to drop the marker).


def _tie_frame(base: float):
    """A bid (99.98, sent at ``base``) reaches the book 10 ms later, exactly when a sell
    prints through it."""
    return tick_frame([{"t": base}, {"t": base + 0.01, "tp": 99.97, "ts": 1.0, "side": -1},
                       {"t": base + 1.0}])


def test_hftbacktest_fills_an_order_reaching_the_book_at_a_trades_stamp():
    for k in range(10):
        theirs = ref.run_hftbacktest(_tie_frame(0.001 * k), latency=(0.0, 0.01, 0.01),
                                     maker=0.0, taker=0.0, **TIE_RULE)
        assert theirs["fills_bid"] == 1, k


def test_our_broker_fills_an_order_reaching_the_book_at_a_trades_stamp():
    for k in range(10):
        ours = crosscheck.run_ours(_tie_frame(0.001 * k), latency=(0.0, 0.01, 0.01), **TIE_RULE)
        assert ours["fills_bid"] == 1, k


# trades at the bid (1.0, then 0.5) before the book shows the level smaller (2.0 -> 0.5): no
# cancellation, so 0.5 is still ahead of the bid and the last 0.5 print does not reach it
CONSECUTIVE = [{}, {}, {"tp": 99.99, "ts": 1.0, "side": -1}, {"tp": 99.99, "ts": 0.5, "side": -1},
               {"bs": 0.5}, {"tp": 99.99, "ts": 0.5, "side": -1, "bs": 0.5}, {"bs": 0.5}]
AT_THE_BEST = dict(half_spread=0.005, skew=0.0, lot=1.0, tick=0.01, max_inventory=10.0)


def test_hftbacktest_does_not_count_consecutive_trades_as_cancellations():
    theirs = ref.run_hftbacktest(tick_frame(CONSECUTIVE), latency=(0.0, 0.01, 0.01),
                                 queue="prob", maker=0.0, taker=0.0, **AT_THE_BEST)
    assert theirs["fills_bid"] == 0


def test_our_broker_does_not_count_consecutive_trades_as_cancellations():
    ours = crosscheck.run_ours(tick_frame(CONSECUTIVE), latency=(0.0, 0.01, 0.01), queue="prob",
                              **AT_THE_BEST)
    assert ours["fills_bid"] == 0


# ----------------------------------------------------------------- the USD-M sample (slow)
#: ours/hftbacktest on the first 120 s of the USD-M sample at 10 ms, prob queue: the band
#: and its reasons are in ``s4_strategies.market_making.hftbacktest_ref`` ("Agreement").
#: Measured: the same in both: fills 69+62, quotes 319+309, fees 16.07, total PnL -22.32,
#: spread PnL 0.41, inventory PnL -6.66
BAND = {"fills": 0.02, "fill_ratio": 0.02, "quotes": 0.02, "fees": 0.02, "total_pnl": 0.02}
BAND_PNL_ABS = 0.25  # USD, spread and inventory PnL (near zero: ratios mislead)


@pytest.mark.slow
def test_usdm_sample_at_10ms_agrees_with_hftbacktest_within_the_band():
    from feeds.ticks import load_ticks

    frame = load_ticks("binance-usdm:BTCUSDT")
    frame = frame[frame.index < frame.index[0] + pd.Timedelta(seconds=120)]
    ours, theirs = crosscheck.compare(frame, latency=(0.0, 0.01, 0.01), queue="prob")

    def close(key, a, b):
        assert b > 0 and abs(a / b - 1) <= BAND[key], (key, a, b)

    close("fills", ours["fills_bid"] + ours["fills_ask"],
          theirs["fills_bid"] + theirs["fills_ask"])
    close("quotes", ours["quotes_bid"] + ours["quotes_ask"],
          theirs["quotes_bid"] + theirs["quotes_ask"])
    close("fill_ratio", ours["fill_ratio"], theirs["fill_ratio"])
    close("fees", ours["fees"], theirs["fees"])
    close("total_pnl", -ours["total_pnl"], -theirs["total_pnl"])  # a loss in both
    for key in ("spread_pnl", "inventory_pnl"):
        assert abs(ours[key] - theirs[key]) <= BAND_PNL_ABS, (key, ours[key], theirs[key])
    assert math.isfinite(theirs["median_fill_delay"]) and theirs["median_fill_delay"] >= 0.01
