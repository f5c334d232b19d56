"""Nothing silently wrong at the doors of the streams and the data checks: a NaN bar is
refused by every public entry point of the feature and model streams (before any state
moves), and implausible prices or stamps off the bar grid are caught by the data checks,
``ArrayData`` included."""

from __future__ import annotations

import math
import warnings

import backtrader as bt
import numpy as np
import pytest

import feeds
from feeds.errors import DataError
from s4_strategies.features import FeatureSpec, FeatureStream

BARS = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-03-31 23:00")


def _rows(df):
    for ts, r in zip(df.index, df[["open", "high", "low", "close", "volume"]].to_numpy()):
        yield (*r, ts.hour + ts.minute / 60.0, float(ts.day_of_week))


@pytest.mark.parametrize("field", range(7))
def test_feature_stream_refuses_a_nan_and_moves_nothing(field):
    fs = FeatureStream(FeatureSpec())
    rows = list(_rows(BARS.iloc[:400]))
    for r in rows[:200]:
        fs.update(*r)
    before = fs.get_state()
    bad = list(rows[200])
    bad[field] = math.nan
    with pytest.raises(DataError, match="refused: prices must be finite"):
        fs.update(*bad)
    assert fs.get_state() == before
    for r in rows[200:]:  # the stream goes on as if the bad bar had never come
        out = fs.update(*r)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("bad", [(0.0, "open"), (-1.0, "low"), (math.inf, "high")])
def test_feature_stream_refuses_impossible_prices(bad):
    value, name = bad
    bar = dict(zip(("open", "high", "low", "close", "volume"), (10.0, 11.0, 9.0, 10.5, 1.0)))
    bar[name] = value
    with pytest.raises(DataError, match="refused"):
        FeatureStream().update(*bar.values())


def test_predictor_stream_refuses_a_nan_bar_and_its_outputs_stay_finite():
    from s4_strategies import default_checkpoint, load_model

    stream = load_model(default_checkpoint()).stream()
    rows = list(_rows(BARS.iloc[:300]))
    for r in rows[:150]:
        stream.step(*r)
    before = stream.get_state()
    with pytest.raises(DataError, match="refused"):
        stream.step(math.nan, *rows[150][1:])
    np.testing.assert_equal(stream.get_state()["model"], before["model"])
    for r in rows[150:]:
        out = stream.step(*r)
    assert all(math.isfinite(v) for v in out.values() if isinstance(v, float))
    assert np.isfinite(stream.raw).all()
    with pytest.raises(DataError, match="features must be finite"):
        stream.run(np.full((3, len(stream.raw)), np.nan))


def test_tick_feature_stream_refuses_a_nan_event():
    from s4_strategies.features.tick_stream import TickFeatureStream

    ts = TickFeatureStream()
    ts.update(10**18, 100.0, 100.1, 1.0, 1.0, 100.05)
    state = ts.get_state()
    with pytest.raises(DataError, match="refused"):
        ts.update(10**18 + 10**8, math.nan, 100.1, 1.0, 1.0, 100.05)
    assert ts.get_state().keys() == state.keys() and ts.book == (100.0, 100.1, 1.0, 1.0, 100.05)


def _spiked(field: str, value: float):
    df = BARS.iloc[:200].copy()
    df.loc[df.index[100], field] = value
    if field == "close":
        df.loc[df.index[100], "high"] = max(value, df["high"].iloc[100])
        df.loc[df.index[100], "low"] = min(value, df["low"].iloc[100])
    return df


@pytest.mark.parametrize("field, value, match", [
    ("high", 1e300, "outside 1e-12 .. 1e\\+12"),
    ("high", 1e9, "jump more than 100 times"),  # a 1e9 spike on a 30,000 price
    ("close", 30.0, "jump more than 100 times"),  # a scale mix-up (1,000 times too low)
])
def test_implausible_prices_are_caught_by_the_checks_and_arraydata(field, value, match):
    df = _spiked(field, value)
    with pytest.raises(DataError, match=match):
        feeds.clean_ohlcv(df)
    cerebro = bt.Cerebro()
    cerebro.adddata(feeds.ArrayData(dataname=df))
    cerebro.addstrategy(bt.Strategy)
    with pytest.raises(DataError, match=match):
        cerebro.run()
    # data that really does this can say so
    ok = feeds.clean_ohlcv(df, price_range=None, max_jump=None)
    assert ok[field].iloc[100] == value
    cerebro = bt.Cerebro()
    cerebro.adddata(feeds.ArrayData(dataname=df, price_range=None, max_jump=None))
    cerebro.addstrategy(bt.Strategy)
    cerebro.run()


def test_bars_off_the_grid_warn_through_arraydata_too():
    df = BARS.iloc[:50].rename(index={BARS.index[20]: BARS.index[20] + np.timedelta64(37, "m")})
    with pytest.warns(UserWarning, match="1 bars off the every-1:00:00 grid"):
        feeds.clean_ohlcv(df)
    cerebro = bt.Cerebro()
    cerebro.adddata(feeds.ArrayData(dataname=df))
    cerebro.addstrategy(bt.Strategy)
    with pytest.warns(UserWarning, match="off the every-1:00:00 grid of the first bar, first "
                                         "at 2021-01-01 20:37"):
        cerebro.run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feeds.clean_ohlcv(df, off_grid="allow")
        feeds.clean_ohlcv(BARS)  # on the grid: quiet
    with pytest.raises(DataError, match="off the every"):
        feeds.clean_ohlcv(df, off_grid="raise")
