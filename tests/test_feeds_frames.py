"""User frames through ``ArrayData`` and ``TickData``: validated like every other feed."""

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from feeds import ArrayData, DataError
from feeds.ticks import TickData, load_ticks

T0 = pd.Timestamp("2024-01-01", tz="UTC")
NAN = float("nan")


def bars(n=6):
    idx = pd.date_range(T0, periods=n, freq="1h")
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close - 0.5, "high": close + 1.0, "low": close - 1.0,
                         "close": close, "volume": 1.0 + np.arange(n, dtype=float)}, index=idx)


def events(n=6):
    """A valid merged event frame: BBO on every row, a trade on the odd rows."""
    idx = T0 + pd.to_timedelta(np.arange(n), unit="s")
    mid = 100.0 + 0.01 * np.arange(n)
    trade = np.where(np.arange(n) % 2 == 1, mid + 0.005, NAN)
    size = np.where(np.isnan(trade), NAN, 0.5)
    return pd.DataFrame({"open": mid, "high": np.fmax(mid, trade), "low": np.fmin(mid, trade),
                         "close": mid, "volume": np.nan_to_num(size), "bid": mid - 0.005,
                         "ask": mid + 0.005, "bid_size": 1.0, "ask_size": 2.0, "mid": mid,
                         "trade_price": trade, "trade_size": size,
                         "trade_side": np.where(np.isnan(trade), NAN, 1.0)}, index=idx)


class Rec(bt.Strategy):
    def __init__(self):
        self.rows = []

    def next(self):
        d = self.data
        self.rows.append((d.datetime.datetime(0), d.close[0], d.volume[0]))


def run(*datas, stdstats=False):
    cerebro = bt.Cerebro(stdstats=stdstats)
    for data in datas:
        cerebro.adddata(data)
    cerebro.addstrategy(Rec)
    return cerebro.run()[0]


def set_cell(df, row, col, value):
    df = df.copy()
    df.iloc[row, df.columns.get_loc(col)] = value
    return df


# ------------------------------------------------------------------ ArrayData
@pytest.mark.parametrize("col, value, match", [
    ("close", NAN, r"1 bars have NaN or inf values: 2024-01-01 03:00"),
    ("high", 50.0, r"high below low.*2024-01-01 03:00"),
    ("low", -1.0, r"non-positive prices at 2024-01-01 03:00"),
    ("volume", -2.0, r"negative volume at 2024-01-01 03:00"),
])
def test_array_data_rejects_bad_bars_naming_the_row(col, value, match):
    with pytest.raises(DataError, match=match):
        run(ArrayData(dataname=set_cell(bars(), 3, col, value)))


def test_array_data_rejects_nat_timestamps_naming_the_rows():
    df = bars()
    df.index = pd.DatetimeIndex([*df.index[:2], pd.NaT, *df.index[3:]])
    with pytest.raises(DataError, match=r"1 rows have no timestamp \(NaT\) at rows 2"):
        run(ArrayData(dataname=df))


def test_array_data_sorts_rows_and_drops_identical_duplicates():
    df = bars()
    shuffled = pd.concat([df.iloc[[3, 0, 5, 1]], df.iloc[[4, 2, 2]]])
    rows = run(ArrayData(dataname=shuffled)).rows
    assert [r[0] for r in rows] == list(df.index.tz_localize(None).to_pydatetime())
    assert [r[1] for r in rows] == df["close"].tolist()
    conflicting = pd.concat([df, set_cell(df.iloc[[2]], 0, "close", 101.5)])
    with pytest.raises(DataError, match="1 timestamps carry different bars: 2024-01-01 02:00"):
        run(ArrayData(dataname=conflicting))


def test_array_data_needs_volume_and_a_datetime_index():
    with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
        run(ArrayData(dataname=bars().drop(columns="volume")))
    with pytest.raises(DataError, match="not timestamps"):
        run(ArrayData(dataname=bars().reset_index(drop=True)))
    with pytest.raises(DataError, match="no bars"):
        run(ArrayData(dataname=bars().iloc[:0]))


def test_array_data_rejects_a_non_numeric_extra_line():
    class Extra(ArrayData):
        lines = ("signal",)

    df = bars().assign(signal=["up"] * 6)
    with pytest.raises(DataError, match="column 'signal' is not numeric"):
        run(Extra(dataname=df))


def test_a_live_array_feed_may_start_without_history():
    class Live(ArrayData):
        def islive(self):
            return True

    data = Live(dataname=bars().iloc[:0])
    data.start()  # no DataError: a live feed streams its bars later
    assert data._n == 0


def test_array_data_still_takes_naive_and_local_frames_and_date_bounds():
    df = bars()
    naive = df.tz_localize(None)
    local = df.tz_convert("Asia/Tokyo")
    ref = run(ArrayData(dataname=df)).rows
    assert run(ArrayData(dataname=naive)).rows == ref == run(ArrayData(dataname=local)).rows
    cut = run(ArrayData(dataname=df, fromdate=df.index[1].tz_localize(None),
                        todate=df.index[3].tz_localize(None))).rows
    assert cut == ref[1:4]
    assert bars().equals(df)  # the user's frame is left alone


# ------------------------------------------------------------------ TickData
def test_tick_data_without_a_name_runs_next_to_another_feed():
    a, b = TickData(dataname=events()), TickData(dataname=events())
    assert a._name == "ticks"
    strat = run(a, b, stdstats=True)  # DataTrades observer names a line per feed
    assert len(strat.rows) == 6
    named = bt.Cerebro()
    named.adddata(TickData(dataname=events()), name="BTC")
    assert named.datas[0]._name == "BTC"
    assert TickData(name="binance:BTCUSDT")._name == "binance:BTCUSDT"


@pytest.mark.parametrize("col, value, match", [
    ("bid", NAN, r"1 events with bid non-positive, NaN or inf at 2024-01-01 00:00:02"),
    ("mid", 0.0, r"events with mid non-positive.*00:00:02"),
    ("ask_size", -1.0, r"events with ask_size negative.*00:00:02"),
    ("trade_price", np.inf, r"events with trade_price non-positive or inf.*00:00:02"),
    ("trade_size", 1.0, r"events with trade_size given without trade_price.*00:00:02"),
    ("trade_side", 0.5, r"events with trade_side not \+1, -1 or NaN at 2024-01-01 00:00:03"),
])
def test_tick_data_rejects_bad_events_naming_the_row(col, value, match):
    row = 3 if col == "trade_side" else 2
    with pytest.raises(DataError, match=match):
        run(TickData(dataname=set_cell(events(), row, col, value)))


def test_tick_data_rejects_nat_and_missing_book_columns():
    df = events()
    df.index = pd.DatetimeIndex([*df.index[:4], pd.NaT, df.index[5]])
    with pytest.raises(DataError, match=r"no timestamp \(NaT\) at rows 4"):
        run(TickData(dataname=df))
    with pytest.raises(DataError, match=r"missing columns \['mid'\]"):
        run(TickData(dataname=events().drop(columns="mid")))


def test_tick_data_keeps_events_sharing_a_stamp_and_sorts_stably():
    df = events()
    df.index = pd.DatetimeIndex([df.index[0], df.index[1], df.index[1], df.index[3],
                                 df.index[4], df.index[5]])
    shuffled = df.iloc[[3, 4, 5, 0, 1, 2]]
    rows = run(TickData(dataname=shuffled)).rows
    assert len(rows) == 6  # two events at one stamp are two events
    assert [r[1] for r in rows] == df["close"].tolist()  # order within a stamp kept
    no_trades = events().drop(columns=["trade_price", "trade_size", "trade_side"])
    assert len(run(TickData(dataname=no_trades)).rows) == 6


def test_the_embedded_tick_sample_passes_the_checks():
    rows = run(TickData(dataname=load_ticks("binance-usdm:BTCUSDT", max_events=2000))).rows
    assert len(rows) == 2000
    assert feeds.load_embedded("binance:BTCUSDT:bbo").shape[0] == 73_174
