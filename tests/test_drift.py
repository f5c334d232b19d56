"""The drift monitor: its maths (analyzers.drift_stats) against closed forms and hand-computed
cases, and DriftMonitor in a real Cerebro on synthetic bars with a fake predicting indicator
(whose predictions may peek at the frame: the monitor must not)."""

import logging
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from analyzers import drift_stats as ds
from analyzers.drift import DriftMonitor, make_reference, reference_from_predictor

scipy_stats = pytest.importorskip("scipy.stats")


# ----------------------------------------------------------------- the maths by hand
def test_mean_shift_outside_share_and_std_ratio_by_hand():
    x = [1.0, 2.0, 3.0, 4.0]                       # mean 2.5, std (ddof 0) sqrt(1.25)
    assert ds.mean_shift(x, 2.0, 2.0) == pytest.approx(0.25)
    assert ds.std_ratio(x, 0.5) == pytest.approx(math.sqrt(1.25) / 0.5)
    # |z| = 0, 5, 5, 1, 4 against mean 0, std 1: beyond 4 are the two fives (4 is not beyond)
    assert ds.outside_share([0.0, 5.0, -5.0, 1.0, 4.0], 0.0, 1.0, bound=4) == pytest.approx(0.4)
    assert ds.outside_share([0.0, 5.0, -5.0, 1.0, 4.0], 0.0, 2.0, bound=4) == 0.0
    # NaN is left out: mean of (1, 3) is 2
    assert ds.mean_shift([1.0, np.nan, 3.0], 0.0, 1.0) == pytest.approx(2.0)
    assert ds.outside_share([1.0, np.nan, 9.0], 0.0, 1.0) == pytest.approx(0.5)


def test_columns_are_features_and_a_bad_std_compares_nothing():
    x = np.array([[1.0, 10.0, 0.0], [3.0, 14.0, 0.0], [np.nan, 12.0, 0.0]])
    np.testing.assert_allclose(ds.mean_shift(x, [0.0, 12.0, 0.0], [1.0, 4.0, 1.0]),
                               [2.0, 0.0, 0.0])
    np.testing.assert_allclose(ds.std_ratio(x, [2.0, 1.0, 1.0]),
                               [0.5, math.sqrt(8 / 3), 0.0])
    st = ds.distribution_stats(x, [0.0, 12.0, 0.0], [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(st["n"], [2, 3, 3])
    np.testing.assert_allclose(st["mean"], [2.0, 12.0, 0.0])
    assert st["shift"][0] == pytest.approx(2.0)
    assert np.isnan(st["shift"][1:]).all() and np.isnan(st["outside"][1:]).all()
    assert np.isnan(st["std_ratio"][1:]).all()
    bare = ds.distribution_stats(x)          # no reference: live stats only
    np.testing.assert_allclose(bare["std"], [1.0, math.sqrt(8 / 3), 0.0])
    assert np.isnan(bare["shift"]).all()
    assert ds.reference_stats([1.0, 3.0, np.nan]) == {"mean": 2.0, "std": 1.0}


def test_gaussian_window_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 200_000)
    # mean shift of N(3 + 1, 2) against (3, 2) is 1/2; P(|Z| > 2) = 0.0455
    assert ds.mean_shift(x + 1.0, 3.0, 2.0) == pytest.approx(0.5, abs=0.01)
    assert ds.outside_share(x, 3.0, 2.0, bound=2.0) == pytest.approx(
        math.erfc(2 / math.sqrt(2)), abs=0.002)
    assert ds.std_ratio(3.0 * x, 6.0) == pytest.approx(1.0, abs=0.01)


def test_ranks_average_ties():
    np.testing.assert_array_equal(ds.rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(ds.rankdata([7, 7, 7]), [2, 2, 2])
    x = np.random.default_rng(1).integers(0, 6, 300).astype(float)
    np.testing.assert_allclose(ds.rankdata(x), scipy_stats.rankdata(x))


def test_spearman_by_hand_and_against_scipy():
    # ranks of y = 5 6 7 8 7 are 1 2 3.5 5 3.5; centred: x -2 -1 0 1 2, y -2 -1 .5 2 .5
    # -> 8 / sqrt(10 * 9.5)
    assert ds.spearman_ic([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert ds.spearman_ic([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert ds.spearman_ic([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(ds.spearman_ic([1, 2, 3], [1, 1, 1]))
    assert math.isnan(ds.spearman_ic([1, 2, np.nan], [1, 2, 3]))    # two pairs left
    rng = np.random.default_rng(2)
    a = rng.integers(0, 20, 400).astype(float)
    b = a + rng.integers(0, 30, 400)
    assert ds.spearman_ic(a, b) == pytest.approx(scipy_stats.spearmanr(a, b)[0], abs=1e-12)
    a[[3, 50]], b[7] = np.nan, np.inf
    ok = np.isfinite(a) & np.isfinite(b)
    assert ds.spearman_ic(a, b) == pytest.approx(scipy_stats.spearmanr(a[ok], b[ok])[0])


def test_hit_rate_and_vol_calibration_by_hand():
    # called pairs: (1, .5) hit, (-1, .5) miss, (2, -1) miss; zeros call nothing
    assert ds.hit_rate([1, -1, 2, 0, 1], [0.5, 0.5, -1, 1, 0]) == pytest.approx(1 / 3)
    assert math.isnan(ds.hit_rate([0, 1], [1, 0]))
    ratio, cover = ds.vol_calibration([1.0, -1.0, 2.0, -2.0], [1.0, 1.0, 1.0, 1.0])
    assert ratio == pytest.approx(math.sqrt(2.5)) and cover == 0.5
    # each return is exactly one predicted vol: calibrated whatever the path of the vol
    assert ds.vol_calibration([1.0, -1.0, 2.0, -2.0], [1.0, 1.0, 2.0, 2.0]) == (1.0, 1.0)
    assert ds.vol_calibration([1.0, 5.0], [0.0, np.nan]) == pytest.approx((np.nan, np.nan),
                                                                         nan_ok=True)


def test_vol_calibration_of_gaussian_returns():
    rng = np.random.default_rng(3)
    vol = np.exp(rng.normal(-5, 0.5, 200_000))          # a volatility that moves
    r = vol * rng.standard_normal(len(vol))
    ratio, cover = ds.vol_calibration(r, vol)
    assert ratio == pytest.approx(1.0, abs=0.01)
    assert cover == pytest.approx(0.95, abs=0.003)      # P(|Z| <= 1.96)
    ratio, cover = ds.vol_calibration(r, vol / 3)
    assert ratio == pytest.approx(3.0, rel=0.01)
    assert cover == pytest.approx(math.erf(1.96 / 3 / math.sqrt(2)), abs=0.005)


def test_reference_builders():
    ref = make_reference(["a", "b"], [0, 1], [1, 2], predictions={"pred_vol": {"mean": 1,
                                                                               "std": 2}},
                         ic=0.03)
    assert ref == {"features": {"names": ["a", "b"], "mean": [0.0, 1.0], "std": [1.0, 2.0]},
                   "predictions": {"pred_vol": {"mean": 1.0, "std": 2.0}}, "ic": 0.03}
    with pytest.raises(ValueError, match="2 names, 1 means"):
        make_reference(["a", "b"], [0], [1, 2])
    with pytest.raises(ValueError, match="unknown"):
        make_reference(["a"], [0], [1], predictions={"signal": {"mean": 0, "std": 1}})


def test_pair_scores_average_to_hit_rate_and_calibration():
    rng = np.random.default_rng(4)
    p, v, r = rng.normal(size=500), np.abs(rng.normal(size=500)), rng.normal(size=500)
    p[:20], r[20:40], v[40:60], v[60:70] = 0.0, 0.0, np.nan, -1.0
    sc = np.array([ds.pair_scores(*t) for t in zip(p, v, r)])
    hits, z2, covered = np.nanmean(sc, axis=0)
    assert hits == pytest.approx(ds.hit_rate(p, r))
    assert (math.sqrt(z2), covered) == pytest.approx(ds.vol_calibration(r, v))
    assert ds.pair_scores(1.0, 0.5, -2.0) == (0.0, 16.0, 0.0)
    assert ds.pair_scores(-1.0, 2.0, -3.0, z=1.5) == (1.0, 2.25, 1.0)
    assert np.isnan(ds.pair_scores(0.0, np.nan, 1.0)).all()


def test_rolling_window_keeps_the_last_rows_and_replaces_a_repeated_bar():
    w = ds.RollingWindow(3, 1)
    for key in (1, 2, 3, 4):
        w.put([float(key)], key)
    assert sorted(w.values()[:, 0]) == [2.0, 3.0, 4.0] and w.total == 4
    w.put([40.0], 4)                                   # bar 4 again, updated
    assert sorted(w.values()[:, 0]) == [2.0, 3.0, 40.0] and w.total == 4
    assert w.stats()["mean"][0] == pytest.approx(15.0)
    w.put([0.0], 5, valid=False)                       # a new bar without a value: nothing
    assert w.total == 4
    w.put([0.0], 4, valid=False)                       # bar 4's update lost its value
    st = w.stats()
    assert st["n"][0] == 2 and st["mean"][0] == pytest.approx(2.5)


@pytest.mark.parametrize("size", [7, 50])
def test_rolling_window_running_sums_equal_the_batch_statistics(size):
    rng = np.random.default_rng(size)
    mean, std = np.array([1e6, -3.0, 0.0]), np.array([10.0, 2.0, 0.0])
    w = ds.RollingWindow(size, 3, mean, std, bound=1.5)
    bare = ds.RollingWindow(size, 3)                   # no reference: centred on first values
    for t in range(3 * size + 5):
        row = rng.normal(mean, [10.0, 2.0, 1.0]) + (5.0 if t > size else 0.0)
        if t % 4 == 0:
            row[rng.integers(0, 3)] = np.nan
        for _ in range(1 + (t % 3 == 0)):              # some bars arrive twice
            w.put(row, t)
            bare.put(row, t)
            row = row + rng.normal(size=3)
        st, ref = w.stats(), ds.distribution_stats(w.values(), mean, std, bound=1.5)
        np.testing.assert_array_equal(st["n"], ref["n"])
        np.testing.assert_allclose(st["mean"], ref["mean"], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(st["std"][:2], ref["std"][:2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st["z_mean"][:2], ref["shift"][:2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st["z_std"][:2], ref["std_ratio"][:2], rtol=1e-9,
                                   atol=1e-9)
        np.testing.assert_array_equal(st["outside"][:2], ref["outside"][:2])
        np.testing.assert_allclose(bare.stats()["std"], ref["std"], rtol=1e-9, atol=1e-9)
    assert w.total == 3 * size + 5


# ----------------------------------------------------------------- in a Cerebro
N, SIGMA, START = 1000, 0.01, pd.Timestamp("2024-01-01", tz="UTC")
REF = make_reference(["a", "b", "c"], [0.0, 5.0, -1.0], [1.0, 2.0, 0.5],
                     predictions={"pred_return": {"mean": 0.0, "std": SIGMA},
                                  "pred_vol": {"mean": SIGMA, "std": 0.1 * SIGMA}})


def bars(close) -> pd.DataFrame:
    op = np.r_[close[0], close[:-1]]
    return pd.DataFrame({"open": op, "high": np.maximum(op, close) * 1.001,
                         "low": np.minimum(op, close) * 0.999, "close": close, "volume": 1.0},
                        index=pd.date_range(START, periods=len(close), freq="h"))


def world(seed=0):
    """Closes whose log return from bar t to t+1 is N(0, vol[t]²), with vol[t] drawn about
    SIGMA (the reference's pred_vol); those returns; features drawn from the reference
    distribution."""
    rng = np.random.default_rng(seed)
    vol = SIGMA * np.exp(0.1 * rng.standard_normal(N))
    steps = vol[:-1] * rng.standard_normal(N - 1)
    close = 100.0 * np.exp(np.r_[0.0, np.cumsum(steps)])
    nxt = np.r_[np.diff(np.log(close)), np.nan]          # log(c[t+1] / c[t]), known at t+1
    f = REF["features"]
    feats = rng.normal(f["mean"], f["std"], (N, 3))
    return close, nxt, vol, feats, rng


class FakeS4(bt.Indicator):
    """Predictions and features read from arrays by bar number (the arrays may know the
    future); ``features`` is one buffer overwritten every bar, like S4Indicator's."""

    lines = ("pred_return", "pred_vol", "signal", "confidence")
    params = dict(pred=None, vol=None, feats=None, warmup=0)

    def __init__(self):
        self._buf = np.zeros(self.p.feats.shape[1])

    @property
    def features(self):
        return self._buf

    def next(self):
        i = len(self.data) - 1
        warm = i >= self.p.warmup
        self._buf[:] = self.p.feats[i]
        self.lines.pred_return[0] = self.p.pred[i] if warm else math.nan
        self.lines.pred_vol[0] = self.p.vol[i] if warm else math.nan
        self.lines.signal[0] = float(np.sign(self.p.pred[i]))
        self.lines.confidence[0] = 0.5


class Hold(bt.Strategy):
    params = dict(pred=None, vol=None, feats=None, warmup=0)

    def __init__(self):
        self.fake = FakeS4(self.data, pred=self.p.pred, vol=self.p.vol, feats=self.p.feats,
                           warmup=self.p.warmup)


class Recording(DriftMonitor):
    """The monitor's analysis after every bar."""

    def start(self):
        super().start()
        self.snaps = []

    def next(self):
        super().next()
        self.snaps.append(self.get_analysis())


def run(close, pred, vol, feats, monitor=DriftMonitor, warmup=0, **params):
    cerebro = bt.Cerebro(runonce=False, stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=bars(close)))
    cerebro.addstrategy(Hold, pred=pred, vol=vol, feats=feats, warmup=warmup)
    params = {"indicator": "fake", "reference": REF, "window": 300, **params}
    cerebro.addanalyzer(monitor, _name="drift", **params)
    return cerebro.run()[0].analyzers.drift


def kinds(res, kind):
    return [w for w in res["warnings"] if w["kind"] == kind]


def test_in_distribution_features_raise_nothing_and_skill_is_scored_exactly(caplog):
    close, nxt, vol, feats, rng = world()
    pred = nxt + SIGMA * rng.standard_normal(N)          # knows the next return, with noise
    pred[-1] = 0.0
    with caplog.at_level(logging.WARNING, logger="analyzers.drift"):
        res = run(close, pred, vol, feats, min_ic=0.05, warmup=20).get_analysis()
    assert res["warnings"] == [] and res["active"] == 0 and not caplog.records
    assert res["bars"] == N and res["warm_bars"] == N - 20
    f = REF["features"]
    batch = ds.distribution_stats(feats[-300:], f["mean"], f["std"])
    for j, (name, st) in enumerate(res["features"].items()):
        for key in ("mean", "std", "shift", "outside", "std_ratio"):
            assert st[key] == pytest.approx(batch[key][j], rel=1e-9, abs=1e-12), (name, key)
        assert st["n"] == 300
        assert abs(st["shift"]) < 0.25 and 0.85 < st["std_ratio"] < 1.15, name
        assert st["outside"] < 0.01
    assert abs(res["predictions"]["pred_vol"]["shift"]) < 0.3
    assert abs(res["predictions"]["pred_return"]["shift"]) < 0.3
    sk = res["skill"]
    # every bar but the last has been scored; the window holds the last 300 pairs
    assert sk["scored"] == N - 20 - 1 and sk["n"] == 300
    last = slice(N - 301, N - 1)
    assert sk["ic"] == pytest.approx(ds.spearman_ic(pred[last], nxt[last]), abs=1e-12)
    assert sk["hit_rate"] == pytest.approx(ds.hit_rate(pred[last], nxt[last]))
    assert sk["ic"] > 0.5 and sk["hit_rate"] > 0.7
    assert sk["vol_ratio"] == pytest.approx(1.0, abs=0.1)
    assert sk["coverage"] == pytest.approx(0.95, abs=0.03)
    assert math.isnan(sk["ic_reference"])


def test_a_feature_shifted_by_two_std_warns_once_after_the_shift(caplog):
    close, nxt, vol, feats, rng = world(1)
    half = N // 2
    feats[half:, 1] += 2.0 * REF["features"]["std"][1]
    seen = []
    with caplog.at_level(logging.WARNING, logger="analyzers.drift"):
        res = run(close, SIGMA * rng.standard_normal(N), vol, feats, min_ic=None,
                  on_warning=seen.append).get_analysis()
    (w,) = kinds(res, "feature")
    assert (w["name"], w["check"], w["recovered"]) == ("b", "shift", None)
    # the window's mean moves 2/300 std a bar: past 0.5 about 75 bars after the shift
    assert START + pd.Timedelta(hours=half + 30) < w["time"] < START + pd.Timedelta(
        hours=half + 150)
    assert w["value"] > 0.5 and "'b'" in w["message"]
    assert res["features"]["b"]["shift"] == pytest.approx(2.0, abs=0.3)
    assert res["active"] == 1 and seen == [w]
    assert [r.getMessage() for r in caplog.records] == [f"DriftMonitor {w['time']}: "
                                                        f"{w['message']}"]


def test_a_passing_shift_warns_once_and_recovers():
    close, nxt, vol, feats, rng = world(2)
    feats[400:600, 0] += 3.0                              # three std, for 200 bars
    res = run(close, SIGMA * rng.standard_normal(N), vol, feats, window=100,
              recover_bars=20, min_ic=None).get_analysis()
    shifts = [w for w in kinds(res, "feature") if w["check"] == "shift"]
    assert len(shifts) == 1 and shifts[0]["name"] == "a"
    w = shifts[0]
    assert START + pd.Timedelta(hours=400) < w["time"] < START + pd.Timedelta(hours=450)
    # back under 0.5 once the window has left the shift (~bar 685), plus 20 clear bars
    assert START + pd.Timedelta(hours=620) < w["recovered"] < START + pd.Timedelta(hours=750)
    assert res["active"] == 0


def test_uncorrelated_predictions_raise_an_ic_warning():
    close, nxt, vol, feats, rng = world(3)
    res = run(close, SIGMA * rng.standard_normal(N), vol, feats,
              min_ic=0.05).get_analysis()
    assert abs(res["skill"]["ic"]) < 0.15
    assert abs(res["skill"]["hit_rate"] - 0.5) < 0.1
    ic = kinds(res, "ic")
    assert ic and ic[0]["value"] < 0.05 and ic[0]["check"] == "ic"
    assert kinds(res, "feature") == [] and kinds(res, "calibration") == []
    # the first check runs at min_bars scored pairs, never before
    assert ic[0]["time"] >= START + pd.Timedelta(hours=50)


def test_a_volatility_three_times_too_small_is_a_calibration_warning():
    close, nxt, vol, feats, rng = world(4)
    res = run(close, nxt, vol / 3, feats, min_ic=None).get_analysis()
    (w,) = kinds(res, "calibration")
    assert w["name"] == "pred_vol" and w["value"] == pytest.approx(3.0, rel=0.2)
    assert res["skill"]["vol_ratio"] == pytest.approx(3.0, rel=0.1)
    assert res["skill"]["coverage"] < 0.6
    # the predicted vol also left its training distribution (mean SIGMA, std SIGMA / 10)
    assert {w["name"] for w in kinds(res, "prediction")} == {"pred_vol"}


def test_the_score_at_bar_t_uses_no_close_after_t():
    close, nxt, vol, feats, rng = world(5)
    pred = nxt + SIGMA * rng.standard_normal(N)          # computed from the original closes
    pred[-1] = 0.0
    k = 600
    later = close.copy()
    later[k + 1:] *= np.exp(np.cumsum(0.05 * rng.standard_normal(N - k - 1)))
    a = run(close, pred, vol, feats, monitor=Recording, min_ic=None).snaps
    b = run(later, pred, vol, feats, monitor=Recording, min_ic=None).snaps
    assert len(a) == len(b) == N
    for t in (0, 1, 100, k):
        assert a[t]["skill"]["scored"] == t                 # pairs up to bar t: t of them
    for t in range(k + 1):
        for key in ("ic", "hit_rate", "vol_ratio", "coverage"):
            x, y = a[t]["skill"][key], b[t]["skill"][key]
            assert x == y or (math.isnan(x) and math.isnan(y)), (t, key)
    assert a[k + 1]["skill"]["vol_ratio"] != b[k + 1]["skill"]["vol_ratio"]


def test_a_bar_delivered_several_times_counts_once():
    """Replayed 4-hour bars (each arriving as several hourly updates) leave the monitor
    where the same bars resampled leave it."""
    close, nxt, vol, feats, rng = world(7)
    noise = SIGMA * rng.standard_normal(N)

    def build(kind):
        cerebro = bt.Cerebro(runonce=False, stdstats=False)
        data = feeds.ArrayData(dataname=bars(close), timeframe=bt.TimeFrame.Minutes,
                               compression=60)
        getattr(cerebro, kind)(data, timeframe=bt.TimeFrame.Minutes, compression=240)
        cerebro.addstrategy(Hold, pred=noise, vol=vol, feats=feats)
        cerebro.addanalyzer(DriftMonitor, _name="drift", indicator="fake", reference=REF,
                            window=100, min_bars=20)
        return cerebro.run()[0].analyzers.drift.get_analysis()

    replayed, resampled = build("replaydata"), build("resampledata")
    assert replayed["bars"] == resampled["bars"] > N // 4 - 2
    assert replayed["skill"]["scored"] == resampled["skill"]["scored"] == replayed["bars"] - 1
    assert replayed["skill"] == pytest.approx(resampled["skill"], nan_ok=True)
    for name, st in resampled["features"].items():
        assert replayed["features"][name] == pytest.approx(st)
    # the same warnings (4-hour returns against a 1-hour vol), raised at the same bars
    assert {w["kind"] for w in replayed["warnings"]} >= {"calibration"}
    assert len(replayed["warnings"]) == len(resampled["warnings"])
    for a, b in zip(replayed["warnings"], resampled["warnings"]):
        assert a == {**b, "value": pytest.approx(b["value"])}


def test_indicator_lookup_and_reference_mismatch():
    close, nxt, vol, feats, rng = world(6)
    auto = run(close[:120], nxt[:120], vol, feats, indicator=None).get_analysis()
    assert auto["bars"] == 120 and set(auto["features"]) == {"a", "b", "c"}
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        run(close[:60], nxt, vol, feats, indicator="nope")
    with pytest.raises(ValueError, match="gives 3 features, the reference describes 2"):
        run(close[:60], nxt, vol, feats,
            reference=make_reference(["a", "b"], [0, 0], [1, 1]))
    bare = run(close[:120], nxt[:120], vol, feats, reference=None).get_analysis()
    assert set(bare["features"]) == {"f0", "f1", "f2"} and bare["warnings"] == []
    assert bare["features"]["f1"]["mean"] == pytest.approx(feats[:120, 1].mean())
    assert math.isnan(bare["features"]["f1"]["shift"])


# ----------------------------------------------------------------- the real indicator
def test_real_s4_indicator_on_its_training_period(tiny_checkpoint):
    """Over the training period itself the live features match the checkpoint's training
    statistics: the reference and the features are the same, in the same order. (Shorter
    windows inside it do drift: volatility features follow the regime.)"""
    import s4_strategies
    from s4_strategies.features import LabelSpec
    from s4_strategies.indicators import S4Indicator
    from s4_strategies.training import date_split

    pred = s4_strategies.load_model(tiny_checkpoint)
    df = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-06-30 23:00")
    split = date_split(df.index, "2021-01-01", "2021-05-31", purge=LabelSpec().max_horizon)
    df = df.iloc[: split.train[1]]                         # warm-up + the training rows

    class Strat(bt.Strategy):
        def __init__(self):
            self.s4 = S4Indicator(self.data, model=pred)

    cerebro = bt.Cerebro(runonce=False, stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=df))
    cerebro.addstrategy(Strat)
    warm = pred.feature_spec.warmup
    # checks only once the window holds the whole training period
    cerebro.addanalyzer(DriftMonitor, _name="drift", indicator="s4", window=len(df),
                        min_bars=len(df) - warm + 1, reference=reference_from_predictor(pred),
                        min_ic=None, vol_ratio=None)
    res = cerebro.run()[0].analyzers.drift.get_analysis()
    assert res["bars"] == len(df) and res["warm_bars"] == len(df) - warm + 1
    assert list(res["features"]) == list(pred.feature_spec.names)
    shifts = np.array([st["shift"] for st in res["features"].values()])
    ratios = np.array([st["std_ratio"] for st in res["features"].values()])
    assert np.abs(shifts).max() < 0.05 and np.abs(ratios - 1).max() < 0.05
    assert kinds(res, "feature") == []
    assert res["skill"]["scored"] == len(df) - warm
    assert np.isfinite(res["skill"]["ic"]) and 0 < res["skill"]["vol_ratio"] < 10
