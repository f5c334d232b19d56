import datetime as dt
import math

import backtrader as bt
import numpy as np
import pytest

import feeds
import s4_strategies
from s4_strategies import S4Indicator

LINES = ("signal", "confidence", "expected_signal", "pred_return", "pred_vol")
FROM, TO = dt.datetime(2021, 7, 1), dt.datetime(2021, 7, 31, 23)


class Record(bt.Strategy):
    params = dict(model=None, ind=None)

    def __init__(self):
        self.s4 = S4Indicator(self.data, model=self.p.model, **(self.p.ind or {}))
        self.rows = []
        self.lens = []

    def prenext(self):
        self.next()

    def next(self):
        self.rows.append([self.data.datetime[0], *(getattr(self.s4, k)[0] for k in LINES)])
        self.lens.append(len(self.data))


def run(model, runonce, ind=None, data=None, replay=None):
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    if data is None:
        data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    if replay:
        cerebro.replaydata(data, **replay)
    else:
        cerebro.adddata(data)
    cerebro.addstrategy(Record, model=model, ind=ind)
    strat = cerebro.run()[0]
    return np.array(strat.rows), strat


def assert_same(a, b, tol=1e-6):
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return s4_strategies.load_model(tiny_checkpoint)


def test_next_once_and_batch_forward_agree(model):
    nxt, _ = run(model, runonce=False)
    once, _ = run(model, runonce=True)
    assert_same(nxt, once)
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    batch = model.predict(df)
    warm = model.feature_spec.warmup
    assert np.isnan(nxt[: warm - 1, 1:]).all() and np.isfinite(nxt[warm - 1 :, 1:]).all()
    ref = batch[list(LINES)].to_numpy()
    assert_same(nxt[warm - 1 :, 1:], ref[warm - 1 :])
    assert set(np.unique(nxt[warm:, 1])) <= {-1.0, 0.0, 1.0}


def test_checkpoint_path_is_accepted(tiny_checkpoint, model):
    a, _ = run(str(tiny_checkpoint), runonce=True)
    b, _ = run(model, runonce=True)
    assert_same(a, b, tol=0)


@pytest.mark.parametrize("ind", [dict(reset_time="00:00"), dict(reset_gap=1, warmup=5)])
def test_session_resets_agree_between_views(model, ind):
    # Drop a few bars to create a gap for reset_gap.
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    df = df.drop(df.index[300:303])
    nxt, _ = run(model, False, ind, data=feeds.ArrayData(dataname=df))
    once, _ = run(model, True, ind, data=feeds.ArrayData(dataname=df))
    assert_same(nxt, once)
    plain, _ = run(model, True, {"warmup": ind.get("warmup")}, data=feeds.ArrayData(dataname=df))
    # A reset changes predictions after it, not before.
    first = 24 if "reset_time" in ind else 300
    assert_same(nxt[:first], plain[:first])
    assert not np.allclose(
        np.nan_to_num(nxt[first + 10 :, 4]), np.nan_to_num(plain[first + 10 :, 4])
    )


def test_state_save_and_restore(model):
    full, _ = run(model, runonce=False)
    half = dt.datetime(2021, 7, 16, 23)
    first, strat = run(model, False, data=feeds.EmbeddedData(
        name="bybit:BTCUSDT:60", fromdate=FROM, todate=half))
    state = strat.s4.get_state()
    rest, _ = run(model, False, ind={"state": state, "warmup": 1}, data=feeds.EmbeddedData(
        name="bybit:BTCUSDT:60", fromdate=half + dt.timedelta(hours=1), todate=TO))
    assert_same(np.vstack([first, rest])[len(first):], full[len(first):])


def test_replay_matches_resample(model):
    """Replayed bars update in place; at each bar's close the lines equal the resampled run."""
    kw = dict(timeframe=bt.TimeFrame.Minutes, compression=240)
    ind = {"strict": False}

    def build(kind):
        c = bt.Cerebro(runonce=False, stdstats=False)
        data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
        getattr(c, kind)(data, **kw)
        c.addstrategy(Record, model=model, ind=ind)
        return c.run()[0]

    res = np.array(build("resampledata").rows)
    replayed = build("replaydata")
    rep, lens = np.array(replayed.rows), np.array(replayed.lens)
    assert len(rep) > 3 * len(res)  # each 4h bar arrives as several updates
    # Keep the last update of each replayed bar.
    last = np.r_[lens[1:] != lens[:-1], True]
    assert len(rep[last]) == len(res)
    # backtrader closes the final, partial bar differently in the two modes: leave it out.
    assert_same(rep[last][:-1], res[:-1], tol=1e-9)


class FakeLive(feeds.ArrayData):
    """A live-looking feed: says it is live and sometimes has no bar yet."""

    def islive(self):
        return True

    def haslivedata(self):
        return self._i < self._n

    def _load(self):
        self._tick = getattr(self, "_tick", 0) + 1
        if self._tick % 3 == 0 and self._i < self._n:
            return None
        return super()._load()


def test_live_feed_runs_in_next_mode(model):
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    live, _ = run(model, runonce=True, data=FakeLive(dataname=df))
    ref, _ = run(model, runonce=True, data=feeds.ArrayData(dataname=df))
    assert_same(live, ref)


def test_plot_has_an_s4_subplot(model, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO))
    cerebro.addstrategy(Record, model=model)
    cerebro.run()
    fig = cerebro.plot(iplot=False)[0][0]
    assert len(fig.axes) >= 2
    fig.savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 10_000


class FirstNext(bt.Strategy):
    """Records the strategy's first next(): no prenext, so it waits for the indicator."""

    params = dict(model=None)

    def __init__(self):
        self.s4 = S4Indicator(self.data, model=self.p.model)
        self.first = None

    def next(self):
        if self.first is None:
            self.first = (len(self.data), [getattr(self.s4, k)[0] for k in LINES])


@pytest.mark.parametrize("runonce", [True, False])
def test_minperiod_is_the_warmup_so_next_sees_defined_lines(model, runonce):
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO))
    cerebro.addstrategy(FirstNext, model=model)
    strat = cerebro.run()[0]
    warmup = model.feature_spec.warmup
    assert strat.s4._minperiod == warmup
    n, values = strat.first
    assert n == warmup
    assert all(np.isfinite(values))


def test_plot_label_names_the_model_not_an_object(model):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO))
    cerebro.addstrategy(Record, model=model, ind=dict(reset_time="00:00"))
    strat = cerebro.run()[0]
    label = strat.s4.plotlabel()
    assert label == "S4 s4d bybit:BTCUSDT:60 (reset_time=00:00)"
    assert "object at" not in label and "Predictor" not in label


def test_one_decoder_gives_the_same_numbers_per_bar_and_in_batch(model):
    rng = np.random.default_rng(0)
    logits, rets, vols = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)), rng.normal(size=50)
    batch = model.decoder.decode(logits, rets, vols)
    for i in range(50):
        one = model.decoder.decode_bar(logits[i].tolist(), float(rets[i, 0]),
                                       float(rets[i, model.decoder.move_index]), float(vols[i]))
        for key, value in one.items():
            assert value == pytest.approx(batch[key][i], rel=1e-12, abs=1e-15), key
    # the class values and the softmax: a hand-computed case
    assert model.decoder.move_index == 1  # horizons (1, 5, 20), signal horizon 5
    assert set(one) == set(batch) - {"probs"}
    out = model.decoder.decode_bar([0.0, 0.0, math.log(2.0)], 0.0, 0.0, 0.0)
    assert out["signal"] == 1.0 and out["confidence"] == pytest.approx(0.5)
    assert out["expected_signal"] == pytest.approx(0.25)
