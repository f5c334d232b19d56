"""Mixed training windows (training/augment.py): what they keep and what they may read."""

import math

import numpy as np
import pytest

from s4_strategies.features import FeatureSpec, LabelSpec, make_labels
from s4_strategies.training.augment import MixedWindows, mix_bars, partner_period
from s4_strategies.training.fit import prepare_arrays, scale_labels
from s4_strategies.training.memory import planted_task
from s4_strategies.training.synthetic import planted_bars, planted_returns


def _cols(df):
    return [df[k].to_numpy() for k in ("open", "high", "low", "close", "volume")]


def test_mixed_returns_are_the_mixture_and_bars_stay_bars():
    d1, d2 = planted_bars(500, lag=3, rho=0.3, seed=1), planted_bars(500, lag=3, rho=0.3, seed=2)
    a, b = math.cos(0.5), math.sin(0.5)
    o, h, low, c, v = mix_bars(*_cols(d1), *_cols(d2), a, b)
    r1, r2 = np.diff(np.log(d1["close"])), np.diff(np.log(d2["close"]))
    np.testing.assert_allclose(np.diff(np.log(c)), a * r1 + b * r2, atol=1e-12)
    assert c[0] == pytest.approx(d1["close"].iloc[0])
    assert np.all(h >= np.maximum(o, c)) and np.all(low <= np.minimum(o, c)) and np.all(v > 0)
    # the wicks mix like the returns: a bar with no wicks in either has none in the mixture
    same = _cols(d1)
    o1, _, _, c1, v1 = same
    flat = mix_bars(o1, np.maximum(o1, c1), np.minimum(o1, c1), c1, v1,
                    o1, np.maximum(o1, c1), np.minimum(o1, c1), c1, v1, a, b)
    np.testing.assert_allclose(flat[1], np.maximum(flat[0], flat[3]), rtol=1e-12)
    # volume: the weights a², b² sum to one, so equal volumes stay what they were
    np.testing.assert_allclose(flat[4], v1, rtol=1e-9)


def test_mixing_keeps_a_planted_dependence_at_its_strength():
    """r = 0.3 r_{t-k} + e in both windows: the mixture's lag-k autocorrelation is 0.3 too,
    and two windows with no dependence mix to none."""
    n, k = 200_000, 40
    r1, r2 = planted_returns(n, k, 0.3, seed=3), planted_returns(n, k, 0.3, seed=4)
    a, b = math.cos(0.7), math.sin(0.7)
    m = a * r1 + b * r2
    acf = np.corrcoef(m[k:], m[:-k])[0, 1]
    assert acf == pytest.approx(0.3, abs=0.01)
    assert np.std(m) == pytest.approx(np.std(r1), rel=0.01)
    assert abs(np.corrcoef(m[k + 1:], m[:-k - 1])[0, 1]) < 0.01


def test_partners_start_at_the_same_hour_of_the_week_inside_the_training_period():
    df, split = planted_task(lag=5, seed=0, years=2, train_years=1)
    fspec, lspec = FeatureSpec(), LabelSpec()
    assert partner_period(df.index, 6000) == 168
    assert partner_period(df.index, 168 * 10) == 24  # too few weeks: same hour of the day
    x, y, valid, norm, targets = prepare_arrays(df, fspec, lspec, split)
    lo, hi = split.train
    calls = []

    def plain(starts, n):
        import torch

        calls.append(list(starts))
        return (torch.zeros(len(starts), n, x.shape[1]),
                {k: torch.zeros(len(starts), n, *v.shape[1:]) for k, v in y.items()},
                torch.ones(len(starts), n, dtype=torch.bool))

    mw = MixedWindows(df, fspec, lspec, norm, lambda lab: scale_labels(lab, lspec, targets),
                      lo, hi, 1.0, np.random.default_rng(0), plain)
    n = 512
    for s in np.random.default_rng(1).integers(mw.lo, hi - n + 1, 300):
        s2 = mw.partner(int(s), n)
        assert (s2 - s) % 168 == 0 and mw.lo <= s2 <= hi - n
        assert df.index[s2].day_of_week == df.index[s].day_of_week
    xb, yb, mb = mw([mw.lo + 10, mw.lo + 500], n)
    assert calls == [[mw.lo + 10, mw.lo + 500]]
    assert xb.shape == (2, n, x.shape[1]) and float(xb.abs().sum()) > 0  # overwritten
    assert np.isfinite(yb["returns"].numpy()).mean() > 0.99
    # a window mixed with itself at any angle is the window: features and labels unchanged
    s = mw.lo + 100
    xs, ys = mw.window(s, s, n, 0.3)
    w = math.cos(0.3) + math.sin(0.3)  # returns scale by a + b: not a mixture of two
    assert xs.shape == (n, x.shape[1])
    ref = scale_labels(make_labels(df, lspec), lspec, targets)
    np.testing.assert_allclose(ys["returns"][:, 0], w * ref["returns"][s:s + n, 0], rtol=1e-6,
                               atol=1e-9)
