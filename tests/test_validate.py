"""clean_ohlcv on dirty input: each defect gets a clear error or the documented repair."""

import warnings

import numpy as np
import pandas as pd
import pytest

import feeds
from feeds import DataError, clean_ohlcv, find_gaps
from feeds.validate import clean_ticks

BTC = feeds.load_embedded("bybit:BTCUSDT:60", "2023-01-01", "2023-01-01 23:00")  # 24 real bars


def bars(n=24):
    return BTC.iloc[:n].copy()


def test_clean_input_passes_unchanged():
    out = clean_ohlcv(bars(), freq="1h", gaps="raise")
    pd.testing.assert_frame_equal(out, bars())
    assert out is not BTC


# -- duplicates -----------------------------------------------------------------------------
def test_identical_duplicates_are_dropped():
    df = bars()
    dirty = pd.concat([df, df.iloc[[3, 7, 7]]])
    out = clean_ohlcv(dirty, freq="1h", gaps="raise")
    pd.testing.assert_frame_equal(out, df)


def test_conflicting_duplicates_raise_naming_the_timestamp():
    df = bars()
    other = df.iloc[[5]].copy()
    other["close"] += 1.0
    with pytest.raises(DataError, match=r"1 timestamps carry different bars: 2023-01-01 05:00"):
        clean_ohlcv(pd.concat([df, other]))


# -- NaN / inf ------------------------------------------------------------------------------
def test_nan_raises_by_default_and_names_the_rows():
    df = bars()
    df.iloc[4, df.columns.get_loc("close")] = np.nan
    df.iloc[9, df.columns.get_loc("volume")] = np.nan
    with pytest.raises(DataError, match=r"2 bars have NaN or inf.*2023-01-01 04:00.*nan='drop'"):
        clean_ohlcv(df, name="btc")


def test_nan_drop_drops_only_those_rows():
    df = bars()
    df.iloc[4, df.columns.get_loc("close")] = np.nan
    df.iloc[9, df.columns.get_loc("high")] = np.inf
    out = clean_ohlcv(df, nan="drop")
    assert len(out) == 22 and df.index[4] not in out.index and df.index[9] not in out.index
    all_nan = df.copy()
    all_nan["open"] = np.nan
    with pytest.raises(DataError, match="every bar has a NaN"):
        clean_ohlcv(all_nan, nan="drop")


# -- order, volume, consistency --------------------------------------------------------------
def test_out_of_order_rows_are_sorted_without_changing_values():
    df = bars()
    shuffled = df.sample(frac=1.0, random_state=1)
    assert not shuffled.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(clean_ohlcv(shuffled), df)


def test_zero_volume_is_kept():
    df = bars()
    df.iloc[2, df.columns.get_loc("volume")] = 0.0
    out = clean_ohlcv(df)
    assert out["volume"].iloc[2] == 0.0 and len(out) == 24


def test_negative_volume_and_non_positive_prices_raise():
    df = bars()
    df.iloc[2, df.columns.get_loc("volume")] = -1.0
    with pytest.raises(DataError, match="negative volume at 2023-01-01 02:00"):
        clean_ohlcv(df)
    df = bars()
    df.iloc[6, df.columns.get_loc("low")] = 0.0
    with pytest.raises(DataError, match="non-positive prices at 2023-01-01 06:00"):
        clean_ohlcv(df)


def test_high_below_low_raises():
    df = bars()
    hi = df.iloc[8]["high"]
    df.iloc[8, df.columns.get_loc("high")] = df.iloc[8]["low"] - 1.0
    with pytest.raises(DataError, match=r"1 bars with high below low.*2023-01-01 08:00"):
        clean_ohlcv(df)
    df.iloc[8, df.columns.get_loc("high")] = hi
    df.iloc[8, df.columns.get_loc("close")] = hi + 5.0  # close above the high
    with pytest.raises(DataError, match="open/close outside"):
        clean_ohlcv(df)


# -- gaps -----------------------------------------------------------------------------------
def gappy():
    return bars().drop(BTC.index[[5, 6, 7, 15]])


def test_gaps_warn_by_default():
    with pytest.warns(
        UserWarning, match=r"2 gaps, 4 bars missing at 1h; first after 2023-01-01 04:00"
    ):
        out = clean_ohlcv(gappy(), freq="1h")
    assert len(out) == 20


def test_gaps_raise_and_allow():
    with pytest.raises(DataError, match="2 gaps, 4 bars missing"):
        clean_ohlcv(gappy(), freq="1h", gaps="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(clean_ohlcv(gappy(), freq="1h", gaps="allow")) == 20
        assert len(clean_ohlcv(gappy())) == 20  # no freq: no gap check


def test_gaps_fill_inserts_flat_bars_at_the_previous_close():
    out = clean_ohlcv(gappy(), freq="1h", gaps="fill")
    assert len(out) == 24 and out.index.equals(BTC.index[:24])
    prev_close = BTC["close"].iloc[4]
    for ts in BTC.index[[5, 6, 7]]:
        row = out.loc[ts]
        assert (row[["open", "high", "low", "close"]] == prev_close).all()
        assert row["volume"] == 0.0 and row["turnover"] == 0.0
    real = BTC.index[[0, 4, 8, 23]]
    pd.testing.assert_frame_equal(out.loc[real], BTC.loc[real])


def test_gap_fill_never_drops_a_bar_off_the_grid():
    df = bars(4)
    df.index = df.index[:3].append(pd.DatetimeIndex([df.index[3] + pd.Timedelta("30min")]))
    out = clean_ohlcv(df, freq="1h", gaps="fill")
    assert df.index[-1] in out.index and out.loc[df.index[-1], "close"] == df["close"].iloc[-1]


def test_find_gaps_reports_before_after_and_missing():
    g = find_gaps(gappy().index, "1h")
    assert list(g["missing"]) == [3, 1]
    assert g["before"].iloc[0] == BTC.index[4] and g["after"].iloc[0] == BTC.index[8]


# -- timestamps -----------------------------------------------------------------------------
def test_tz_aware_non_utc_input_is_converted_to_utc():
    df = bars()
    local = df.copy()
    local.index = df.index.tz_convert("America/New_York")
    out = clean_ohlcv(local)
    assert str(out.index.tz) == "UTC"
    assert out.index.equals(df.index)  # same instants
    tokyo = df.copy()
    tokyo.index = df.index.tz_convert("Asia/Tokyo")
    assert clean_ohlcv(tokyo).index[0] == pd.Timestamp("2023-01-01 00:00", tz="UTC")


def test_naive_timestamps_are_taken_as_utc_and_strings_are_parsed():
    df = bars()
    naive = df.copy()
    naive.index = df.index.tz_localize(None)
    assert clean_ohlcv(naive).index.equals(df.index)
    text = df.copy()
    text.index = [ts.isoformat() for ts in df.index]
    assert clean_ohlcv(text).index.equals(df.index)


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_a_non_datetime_index_is_an_error_not_1970():
    df = bars().reset_index(drop=True)  # RangeIndex 0..23
    with pytest.raises(DataError, match="not timestamps"):
        clean_ohlcv(df)
    df.index = ["yesterday-ish"] * 23 + ["x"]
    with pytest.raises(DataError, match="cannot be read as timestamps"):
        clean_ohlcv(df)


# -- shape and options ----------------------------------------------------------------------
def test_missing_columns_empty_frame_and_text_values():
    with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
        clean_ohlcv(bars().drop(columns="volume"))
    with pytest.raises(DataError, match="no bars"):
        clean_ohlcv(bars().iloc[:0], name="x")
    df = bars().astype({"close": object})
    df.iloc[1, df.columns.get_loc("close")] = "n/a"
    with pytest.raises(DataError, match="column 'close' is not numeric"):
        clean_ohlcv(df)
    as_text = bars().astype(str)  # numeric strings (as exchanges send them) are converted
    pd.testing.assert_frame_equal(clean_ohlcv(as_text), bars())


def test_bad_options_are_value_errors():
    with pytest.raises(ValueError, match="gaps must be"):
        clean_ohlcv(bars(), gaps="ignore")
    with pytest.raises(ValueError, match="nan must be"):
        clean_ohlcv(bars(), nan="fill")


# -- missing timestamps -----------------------------------------------------------------------
def test_nat_timestamps_raise_naming_the_rows():
    df = bars()
    df.index = pd.DatetimeIndex([*df.index[:3], pd.NaT, *df.index[4:9], pd.NaT, *df.index[10:]])
    with pytest.raises(DataError, match=r"btc: 2 rows have no timestamp \(NaT\) at rows 3, 9"):
        clean_ohlcv(df, name="btc")
    text = bars()
    text.index = [ts.isoformat() for ts in text.index[:23]] + [None]
    with pytest.raises(DataError, match=r"NaT\) at rows 23"):
        clean_ohlcv(text)


# -- tick (event) frames ----------------------------------------------------------------------
T0 = pd.Timestamp("2024-08-08 23:55", tz="UTC")


def quotes(n=5):
    idx = T0 + pd.to_timedelta([0, 1, 1, 2, 3][:n], unit="ms")
    return pd.DataFrame({"bid": 100.0, "ask": 100.1, "bid_size": 1.0, "ask_size": 1.5},
                        index=idx)


def test_clean_ticks_keeps_shared_stamps_sorts_stably_and_converts():
    df = quotes().assign(bid=[100.0, 100.01, 100.02, 100.03, 100.04])
    out = clean_ticks(df.iloc[[3, 0, 1, 2, 4]].tz_localize(None).astype({"ask": str}),
                      required=("bid", "ask"))
    assert out.index.equals(df.index) and out["bid"].tolist() == df["bid"].tolist()
    assert out["ask"].dtype == np.float64 and str(out.index.tz) == "UTC"


@pytest.mark.parametrize("col, value, match", [
    ("bid", 0.0, r"quotes: 1 events with bid non-positive, NaN or inf at 2024-08-08 23:55:00.001"),
    ("ask", np.nan, r"1 events with ask non-positive, NaN or inf"),
    ("bid_size", np.inf, r"1 events with bid_size negative, NaN or inf"),
    ("ask_size", -0.1, r"1 events with ask_size negative"),
])
def test_clean_ticks_rejects_bad_book_values(col, value, match):
    df = quotes()
    df.iloc[1, df.columns.get_loc(col)] = value
    with pytest.raises(DataError, match=match):
        clean_ticks(df, name="quotes")


def test_clean_ticks_rejects_nat_empty_and_missing_columns():
    df = quotes()
    df.index = pd.DatetimeIndex([*df.index[:2], pd.NaT, *df.index[3:]])
    with pytest.raises(DataError, match=r"no timestamp \(NaT\) at rows 2"):
        clean_ticks(df)
    with pytest.raises(DataError, match="no events"):
        clean_ticks(quotes().iloc[:0])
    with pytest.raises(DataError, match=r"missing columns \['mid'\]"):
        clean_ticks(quotes(), required=("bid", "mid"))


def test_clean_ticks_trade_columns_may_be_nan_but_not_wrong():
    trades = quotes().assign(trade_price=[np.nan, 100.1, np.nan, 99.9, np.nan],
                             trade_size=[np.nan, 0.2, np.nan, 0.0, np.nan],
                             trade_side=[np.nan, 1.0, np.nan, -1.0, np.nan])
    assert clean_ticks(trades)["trade_price"].notna().sum() == 2
    for col, value, match in [("trade_price", -1.0, "trade_price non-positive"),
                              ("trade_size", -0.2, "trade_size negative"),
                              ("trade_size", np.nan, "trade_size given without trade_price"),
                              ("trade_side", 0.0, r"trade_side not \+1, -1 or NaN")]:
        bad = trades.copy()
        bad.iloc[1, bad.columns.get_loc(col)] = value
        with pytest.raises(DataError, match=rf"1 events with {match}.*23:55:00.001"):
            clean_ticks(bad)
