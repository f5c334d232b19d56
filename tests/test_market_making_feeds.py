"""Tick feeds: trades and best bid/offer merged into one event stream."""

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from feeds.errors import DataError
from feeds.ticks import TICK_LINES, TickData, load_ticks, merge_ticks

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def ms(x):
    return T0 + pd.Timedelta(milliseconds=x)


def test_merge_orders_trades_before_bbo_and_sees_the_previous_book():
    bbo = pd.DataFrame({"bid": [10.0, 11.0, 12.0], "ask": [10.2, 11.2, 12.2],
                        "bid_size": [1.0, 2.0, 3.0], "ask_size": [1.0, 2.0, 3.0]},
                       index=[ms(0), ms(2), ms(4)])
    trades = pd.DataFrame({"price": [10.2, 11.0], "size": [0.5, 0.7], "side": ["buy", "sell"]},
                          index=[ms(2), ms(3)])
    ev = merge_ticks(trades, bbo)
    assert list(ev.index) == [ms(0), ms(2), ms(2), ms(3), ms(4)]
    tr = ev[ev["trade_price"].notna()]
    # the trade stamped with the second BBO update still sees the first book
    assert tr["mid"].tolist() == [10.1, 11.1]
    assert tr["trade_side"].tolist() == [1.0, -1.0]
    assert tr["high"].tolist() == [10.2, 11.1] and tr["low"].tolist() == [10.1, 11.0]
    assert (ev["close"] == ev["mid"]).all()
    assert ev["volume"].tolist() == [0.0, 0.5, 0.0, 0.7, 0.0]
    assert ev.loc[ev["trade_price"].isna(), "trade_size"].isna().all()


def test_trades_of_one_match_are_aggregated_to_their_sweep_depth():
    bbo = pd.DataFrame({"bid": [99.0], "ask": [100.0], "bid_size": [1.0], "ask_size": [1.0]},
                       index=[ms(0)])
    trades = pd.DataFrame({"price": [100.0, 100.5, 100.5, 99.0],
                           "size": [1.0, 0.2, 0.3, 0.4],
                           "side": ["buy", "buy", "buy", "sell"],
                           "match_id": [7, 7, 7, 8]},
                          index=[ms(1), ms(1), ms(1), ms(5)])
    ev = merge_ticks(trades, bbo)
    tr = ev[ev["trade_price"].notna()]
    assert tr["trade_price"].tolist() == [100.5, 99.0]
    assert tr["trade_size"].tolist() == pytest.approx([0.5, 0.4])  # size at the worst price
    assert tr["volume"].tolist() == pytest.approx([1.5, 0.4])
    raw = merge_ticks(trades, bbo, aggregate=False)
    assert raw["trade_price"].notna().sum() == 4


def test_embedded_tick_sample_loads_on_one_clock():
    ev = load_ticks("binance:BTCUSDT")
    assert len(ev) > 70_000
    assert ev.index.is_monotonic_increasing
    assert {"open", "high", "low", "close", "volume", *TICK_LINES} <= set(ev.columns)
    assert ev["mid"].notna().all() and (ev["bid"] < ev["ask"]).all()
    tr = ev[ev["trade_price"].notna()]
    inside = ((tr["trade_price"] >= tr["bid"] - 1e-9) & (tr["trade_price"] <= tr["ask"] + 1e-9))
    # aligned on the receive clock most trades print at the pre-trade touch
    assert inside.mean() > 0.8
    assert len(ev) == 80_309 and len(tr) == 7_135  # trades aggregated per match
    short = load_ticks("binance:BTCUSDT:trades", max_events=500)
    assert len(short) == 500
    cut = load_ticks("binance-usdm:BTCUSDT", fromdate="2024-08-08 23:55",
                     todate="2024-08-08 23:55:30")
    assert cut.index[0] >= pd.Timestamp("2024-08-08 23:55", tz="UTC")
    assert cut.index[-1] <= pd.Timestamp("2024-08-08 23:55:30", tz="UTC")
    exch = load_ticks("binance:BTCUSDT", clock="exchange")
    tx = exch[exch["trade_price"].notna()]
    inside = (tx["trade_price"] >= tx["bid"] - 1e-9) & (tx["trade_price"] <= tx["ask"] + 1e-9)
    assert inside.mean() < 0.4
    with pytest.raises(DataError):
        load_ticks("binance:ETHUSDT")
    with pytest.raises(ValueError):
        load_ticks("binance:BTCUSDT", clock="wall")


def _at_or_through_touch(ev):
    """Share of trade events that print at or through the pre-trade best on their side."""
    tr = ev[ev["trade_price"].notna()]
    buy = tr["trade_side"] > 0
    return ((buy & (tr["trade_price"] >= tr["ask"] - 1e-9))
            | (~buy & (tr["trade_price"] <= tr["bid"] + 1e-9))).mean()


def test_usdm_sample_runs_on_the_exchange_clock_and_each_match_keeps_its_own_time():
    auto = load_ticks("binance-usdm:BTCUSDT")
    local = load_ticks("binance-usdm:BTCUSDT", clock="local")
    exch = load_ticks("binance-usdm:BTCUSDT", clock="exchange")
    pd.testing.assert_frame_equal(auto, exch)
    # both streams on the matching engine's clock: trades meet the book they traded against
    assert _at_or_through_touch(exch) > 0.99 > _at_or_through_touch(local)
    # the first two prints came 22 ms apart at the exchange but in one receive batch
    first = exch[exch["trade_price"].notna()].index[:2]
    assert (first[1] - first[0]) == pd.Timedelta("22ms")
    batch = local[local["trade_price"].notna()].index[:2]
    assert (batch[1] - batch[0]) < pd.Timedelta("1ms")
    # spot bookTicker has no exchange time: "auto" keeps spot on the receive clock
    pd.testing.assert_frame_equal(load_ticks("binance:BTCUSDT", max_events=2000),
                                  load_ticks("binance:BTCUSDT", clock="local", max_events=2000))


def test_tick_data_feed_exposes_the_mid_and_trades_to_a_strategy():
    seen = []

    class Look(bt.Strategy):
        def next(self):
            d = self.data
            seen.append((d.mid[0], d.close[0], d.bid[0], d.ask[0], d.trade_price[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(TickData(name="binance:BTCUSDT", max_events=300), name="BTCUSDT")
    cerebro.addstrategy(Look)
    cerebro.run()
    arr = np.array(seen)
    assert len(arr) == 300
    np.testing.assert_allclose(arr[:, 0], arr[:, 1])
    np.testing.assert_allclose(arr[:, 0], (arr[:, 2] + arr[:, 3]) / 2)
    assert np.isfinite(arr[:, 4]).any() and np.isnan(arr[:, 4]).any()


def _book():
    return pd.DataFrame({"bid": [99.0, 99.5], "ask": [100.0, 100.5], "bid_size": [1.0, 1.0],
                         "ask_size": [1.0, 1.0]}, index=[ms(0), ms(4)])


def _trades(side=("buy", "sell"), price=(100.0, 99.5)):
    return pd.DataFrame({"price": list(price), "size": [0.3, 0.2], "side": list(side)},
                        index=[ms(1), ms(5)])


def test_merge_reads_sides_in_any_case_and_rejects_unknown_ones():
    ev = merge_ticks(_trades(side=("BUY", "Sell")), _book())
    assert ev["trade_side"].dropna().tolist() == [1.0, -1.0]  # used to be NaN: side lost
    numeric = merge_ticks(_trades(side=(1, -1)), _book())
    assert numeric["trade_side"].dropna().tolist() == [1.0, -1.0]
    with pytest.raises(DataError, match=r"1 trades with an unknown side \['bid'\]"):
        merge_ticks(_trades(side=("buy", "bid")), _book())
    with pytest.raises(DataError, match="unknown side"):
        merge_ticks(_trades(side=(1, 0)), _book())


def test_merge_rejects_bad_trades_and_quotes_naming_the_rows():
    with pytest.raises(DataError, match=r"trades: 1 events with price non-positive, NaN or inf "
                                        r"at 2024-01-01 00:00:00.005"):
        merge_ticks(_trades(price=(100.0, float("nan"))), _book())
    book = _book()
    book.iloc[1, book.columns.get_loc("bid")] = float("nan")  # used to drop the row silently
    with pytest.raises(DataError, match=r"bbo: 1 events with bid non-positive.*00:00:00.004"):
        merge_ticks(_trades(), book)
    book = _book()
    book.index = pd.DatetimeIndex([ms(0), pd.NaT])
    with pytest.raises(DataError, match=r"bbo: 1 rows have no timestamp \(NaT\) at rows 1"):
        merge_ticks(_trades(), book)
    with pytest.raises(DataError, match=r"trades: missing column 'side'"):
        merge_ticks(_trades().drop(columns="side"), _book())
