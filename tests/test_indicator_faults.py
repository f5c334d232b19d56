"""The indicator refuses what would make its lines silently wrong, in every mode.

- Data of another bar spacing than the checkpoint's (``meta["bar_spacing_s"]``) raises
  ``CheckpointError`` in ``once()``, ``next()`` (``runonce=False``), ``resampledata``,
  ``replaydata`` and live feeds alike; ``strict=False`` lets it through.
- A bar with a non-finite or non-positive price (or a negative volume) raises
  ``feeds.DataError`` naming the bar, in ``next()`` and ``once()`` alike, before any running
  state has seen it.
"""

import datetime as dt

import backtrader as bt
import numpy as np
import pytest
from test_indicator import FakeLive  # a live-looking feed, shared with the indicator tests

import feeds
import s4_strategies
from s4_strategies import S4Indicator
from s4_strategies.model import CheckpointError

LINES = ("signal", "confidence", "expected_signal", "pred_return", "pred_vol")
FROM, TO = dt.datetime(2021, 7, 1), dt.datetime(2021, 7, 31, 23)
H4 = dict(timeframe=bt.TimeFrame.Minutes, compression=240)


class Keep(bt.Strategy):
    """Records the lines and keeps itself in ``made`` (to look at after a failed run)."""

    params = dict(model=None, ind=None)
    made: list = []

    def __init__(self):
        Keep.made.append(self)
        self.s4 = S4Indicator(self.data, model=self.p.model, **(self.p.ind or {}))
        self.rows = []

    def prenext(self):
        self.next()

    def next(self):
        self.rows.append([self.data.datetime[0], *(getattr(self.s4, k)[0] for k in LINES)])




def run(model, data, runonce=True, how="adddata", ind=None, **kw):
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    getattr(cerebro, how)(data, **kw)
    cerebro.addstrategy(Keep, model=model, ind=ind)
    return cerebro.run()[0]


def hourly(**kw):
    return feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO, **kw)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return s4_strategies.load_model(tiny_checkpoint)


# -- bar spacing -------------------------------------------------------------------------
@pytest.mark.parametrize("runonce", [True, False])
def test_daily_data_is_refused_in_both_modes(model, runonce):
    daily = feeds.EmbeddedData(name="yahoo:SPY:1d")
    with pytest.raises(CheckpointError, match=r"3600 s apart .*86400 s apart.*strict=False"):
        run(model, daily, runonce=runonce)


@pytest.mark.parametrize("how", ["resampledata", "replaydata"])
@pytest.mark.parametrize("runonce", [True, False])
def test_resampled_and_replayed_data_is_refused(model, how, runonce):
    data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    with pytest.raises(CheckpointError, match=r"3600 s apart .*14400 s apart"):
        run(model, data, runonce=runonce, how=how, **H4)


def test_live_feed_of_another_spacing_is_refused(model):
    four_hourly = hourly().resample("4h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    with pytest.raises(CheckpointError, match="14400 s apart"):
        run(model, FakeLive(dataname=four_hourly))


@pytest.mark.parametrize("how", ["resampledata", "replaydata"])
def test_strict_false_lets_another_spacing_through(model, how):
    data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    strat = run(model, data, runonce=False, how=how, ind={"strict": False}, **H4)
    assert np.isfinite(np.array(strat.rows)[-1, 1:]).all()


def test_session_and_weekend_gaps_are_not_another_spacing(model):
    """Hourly bars of a weekday session (09:00-16:00, no weekends): hourly for the model."""
    df = hourly()
    df = df[(df.index.day_of_week < 5) & (df.index.hour >= 9) & (df.index.hour <= 16)]
    df = df.iloc[6:]  # start on the session's last bars: a gap among the first spacings
    ind = {"warmup": 5}
    nxt = np.array(run(model, feeds.ArrayData(dataname=df), runonce=False, ind=ind).rows)
    once = np.array(run(model, feeds.ArrayData(dataname=df), runonce=True, ind=ind).rows)
    np.testing.assert_allclose(nxt, once, rtol=1e-6, atol=1e-6)
    assert np.isfinite(nxt[10:, 1:]).all()


# -- bad bars ----------------------------------------------------------------------------
BAD = 200  # the bad bar's position (after the warm-up)


def bad_frame(column, value):
    df = hourly()
    df.iloc[BAD, df.columns.get_loc(column)] = value
    return df


CASES = [("close", np.nan), ("high", np.inf), ("low", 0.0), ("open", -1.0), ("volume", -5.0),
         ("volume", np.nan)]


@pytest.mark.parametrize("column,value", CASES)
def test_a_bad_bar_is_named_in_both_modes(model, column, value):
    df = bad_frame(column, value)
    when = str(df.index[BAD].tz_localize(None))
    errors = []
    for runonce in (False, True):
        with pytest.raises(feeds.DataError) as info:
            run(model, bt.feeds.PandasData(dataname=df.tz_localize(None)), runonce=runonce)
        errors.append(str(info.value))
    assert when in errors[0] and f"{column}={value:g}" in errors[0]
    assert errors[0] == errors[1]


def test_a_bad_bar_changes_no_running_state(model):
    """After the error the indicator is exactly where it was before the bad bar."""
    df = bad_frame("close", np.nan).tz_localize(None)
    Keep.made.clear()
    with pytest.raises(feeds.DataError):
        run(model, bt.feeds.PandasData(dataname=df), runonce=False)
    failed = Keep.made[-1].s4.get_state()
    clean = run(model, bt.feeds.PandasData(dataname=df.iloc[:BAD]), runonce=False)
    good = clean.s4.get_state()
    assert failed["last_num"] == good["last_num"]
    assert failed["since_reset"] == good["since_reset"]
    assert failed["stream"]["features"] == good["stream"]["features"]
    for key, value in good["stream"]["model"].items():
        np.testing.assert_array_equal(np.asarray(failed["stream"]["model"][key]),
                                      np.asarray(value))


def test_predict_refuses_a_bad_bar(model):
    df = bad_frame("low", 0.0)
    with pytest.raises(feeds.DataError, match=str(df.index[BAD].tz_convert(None))):
        model.predict(df)
