"""Forecast-skill statistics and baseline forecasters against closed forms and known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from s4_strategies.training.baselines import (
    OLS,
    ClassPrior,
    MajorityClass,
    MultinomialLogistic,
    TrailingVol,
    realised_log_vol,
)
from s4_strategies.training.skill import (
    accuracy,
    block_bootstrap_ci,
    corr,
    diebold_mariano,
    ic_with_ci,
    log_loss,
    mse,
    paired_difference,
    seed_summary,
    spearman_ic,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# --- correlation and IC -------------------------------------------------------------------

def test_spearman_ic_equals_scipy_and_ignores_monotone_transforms(rng):
    x = rng.normal(size=300)
    y = 0.3 * x + rng.normal(size=300)
    y[::7] = np.round(y[::7], 1)  # some ties
    assert spearman_ic(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman_ic(x, np.exp(3 * x) + 5) == pytest.approx(1.0)
    assert spearman_ic(x, -x**3) == pytest.approx(-1.0)
    assert corr(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


def test_ic_drops_nan_pairs_and_is_nan_when_undefined(rng):
    x, y = rng.normal(size=50), rng.normal(size=50)
    xn, yn = x.copy(), y.copy()
    xn[3], yn[10], yn[11] = np.nan, np.nan, np.inf
    keep = np.ones(50, bool)
    keep[[3, 10, 11]] = False
    assert spearman_ic(xn, yn) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert math.isnan(spearman_ic([1.0, 2.0, np.nan], [1.0, 2.0, 3.0]))  # 2 pairs
    assert math.isnan(spearman_ic(np.ones(10), y[:10]))  # constant
    assert math.isnan(corr(np.ones(10), y[:10]))
    with pytest.raises(ValueError, match="differ in length"):
        spearman_ic(x, y[:-1])


def test_mse_pairwise():
    assert mse([1.0, 2.0, np.nan], [0.0, 4.0, 1.0]) == pytest.approx((1 + 4) / 2)
    assert math.isnan(mse([np.nan], [1.0]))


# --- bootstrap ----------------------------------------------------------------------------

def test_bootstrap_ci_covers_the_mean_and_is_deterministic(rng):
    x = rng.normal(loc=2.0, size=400)
    lo, hi = block_bootstrap_ci(np.mean, x, n=500, seed=3)
    se = x.std() / math.sqrt(len(x))  # i.i.d. data: width ~ 2 * 1.96 se around the mean
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.25)
    assert lo < x.mean() < hi
    assert block_bootstrap_ci(np.mean, x, n=500, seed=3) == (lo, hi)
    assert block_bootstrap_ci(np.mean, x, n=500, seed=4) != (lo, hi)
    # over many samples the 90 % interval holds the true mean about 90 % of the time
    hits = [lo < 2.0 < hi for lo, hi in
            (block_bootstrap_ci(np.mean, rng.normal(2.0, size=100), n=200, level=0.9, seed=s)
             for s in range(200))]
    assert 0.82 <= np.mean(hits) <= 0.97


def test_bootstrap_keeps_pairs_paired(rng):
    x = rng.normal(size=200)
    assert block_bootstrap_ci(spearman_ic, x, x.copy(), n=200) == (1.0, 1.0)
    out = ic_with_ci(x, 2 * x + 1, n=200)
    assert out == {"ic": 1.0, "ci": [1.0, 1.0], "n": 200}


def test_ic_with_ci_counts_finite_pairs_and_brackets_the_ic(rng):
    x = rng.normal(size=500)
    y = 0.5 * x + rng.normal(size=500)
    y[:20] = np.nan
    out = ic_with_ci(x, y, n=300, seed=1)
    assert out["n"] == 480
    assert out["ci"][0] < out["ic"] < out["ci"][1]
    assert ic_with_ci([1.0, 2.0], [2.0, 1.0])["n"] == 2


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="share their first axis"):
        block_bootstrap_ci(spearman_ic, np.arange(5.0), np.arange(6.0))
    with pytest.raises(ValueError, match="block"):
        block_bootstrap_ci(np.mean, np.arange(5.0), block=9)
    with pytest.raises(ValueError, match="level"):
        block_bootstrap_ci(np.mean, np.arange(5.0), level=1.5)


# --- classification -----------------------------------------------------------------------

def test_accuracy_trivial_cases():
    assert accuracy([0, 1, 2], [0, 1, 2]) == 1.0
    assert accuracy([0, 0, 0, 0], [1, 1, 0, 0]) == 0.5
    assert accuracy([0.0, 1.0, np.nan], [0.0, 0.0, 1.0]) == 0.5


def test_log_loss_of_the_prior_is_the_entropy(rng):
    y = rng.choice(3, size=1000, p=[0.2, 0.5, 0.3]).astype(float)
    y[:5] = np.nan
    prior = ClassPrior().fit(y)
    freq = np.bincount(y[5:].astype(int), minlength=3) / 995
    assert prior.probs_ == pytest.approx(freq)
    entropy = -np.sum(freq * np.log(freq))
    assert log_loss(prior.predict_proba(y), y) == pytest.approx(entropy, abs=1e-12)
    assert log_loss(np.eye(3)[[0, 1]], [0, 2]) == pytest.approx(-math.log(1e-12) / 2)
    with pytest.raises(ValueError, match="integers in 0..2"):
        log_loss(np.full((2, 3), 1 / 3), [0, 3])


def test_majority_class():
    m = MajorityClass().fit([2, 2, 1, np.nan, 0, 2], n_classes=4)
    assert m.probs_.tolist() == [0, 0, 1, 0]
    assert m.predict(3).tolist() == [2.0, 2.0, 2.0]
    assert ClassPrior().fit([0, 1, 1]).predict_class(np.zeros(2)).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="out of range"):
        MajorityClass().fit([0, 3], n_classes=3)


# --- Diebold–Mariano ----------------------------------------------------------------------

def test_dm_identical_losses_and_zero_variance(rng):
    a = rng.random(100)
    assert diebold_mariano(a, a) == {"stat": 0.0, "p_value": 1.0, "mean_diff": 0.0, "n": 100}
    out = diebold_mariano(a + 1.0, a)  # a constant non-zero difference: undefined
    assert math.isnan(out["stat"]) and math.isnan(out["p_value"])
    assert out["mean_diff"] == pytest.approx(1.0)


def test_dm_h1_closed_form_and_a_clearly_better_model(rng):
    la = rng.normal(1.0, 1.0, size=400) ** 2
    lb = la + rng.normal(0.3, 1.0, size=400)
    d = la - lb
    n = len(d)
    hln = math.sqrt((n + 1 - 2) / n)
    closed = d.mean() / math.sqrt(d.var() / n) * hln
    out = diebold_mariano(la, lb)
    assert out["stat"] == pytest.approx(closed, rel=1e-12)
    assert out["stat"] == pytest.approx(d.mean() / math.sqrt(d.var(ddof=1) / n), rel=1e-12)
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(abs(closed), n - 1), rel=1e-12)
    assert out["stat"] < 0 and out["p_value"] < 0.01
    assert diebold_mariano(lb, la)["stat"] == pytest.approx(-out["stat"])


def test_dm_h2_uses_lag_one_autocovariance(rng):
    d = rng.normal(0.1, 1.0, size=200)
    n, h = len(d), 2
    dc = d - d.mean()
    v = dc @ dc / n + 2 * (dc[1:] @ dc[:-1]) / n
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    out = diebold_mariano(d, np.zeros(n), h=2)
    assert out["stat"] == pytest.approx(d.mean() / math.sqrt(v / n) * hln, rel=1e-12)
    with pytest.raises(ValueError, match="finite pairs"):
        diebold_mariano([1.0, np.nan, 2.0], [0.0, 0.0, 0.0])


# --- seeds --------------------------------------------------------------------------------

def test_seed_summary_closed_form():
    out = seed_summary([1.0, 2.0, np.nan, 6.0])
    assert out == {"mean": 3.0, "sd": pytest.approx(math.sqrt(7.0)), "n": 3}
    one = seed_summary([4.0])
    assert one["mean"] == 4.0 and math.isnan(one["sd"]) and one["n"] == 1


def test_paired_difference_closed_form():
    a = np.array([0.10, 0.14, 0.08, np.nan, 0.12])
    b = np.array([0.05, 0.09, 0.07, 0.01, 0.04])
    d = (a - b)[[0, 1, 2, 4]]
    out = paired_difference(a, b)
    t = d.mean() / (d.std(ddof=1) / 2.0)
    assert out["n"] == 4 and out["mean"] == pytest.approx(d.mean())
    assert out["sd"] == pytest.approx(d.std(ddof=1))
    assert out["t"] == pytest.approx(t)
    ref = stats.ttest_rel(a[[0, 1, 2, 4]], b[[0, 1, 2, 4]])
    assert out["t"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
    scalar = paired_difference(a, 0.05)
    ref = stats.ttest_1samp(a[np.isfinite(a)], 0.05)
    assert scalar["t"] == pytest.approx(ref.statistic) and scalar["p_value"] == pytest.approx(
        ref.pvalue)
    same = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert same["t"] == 0.0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0, 2.0], [1.0])


# --- baselines ----------------------------------------------------------------------------

def test_multinomial_logistic_recovers_a_planted_model(rng):
    n = 20000
    X = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.5, -1.0]
    W = np.array([[0.0, 1.0, -1.5], [0.0, -0.4, 0.3]])  # (d, C), class 0 the reference
    b = np.array([0.0, 0.2, -0.3])
    logits = X @ W + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1).astype(float)
    m = MultinomialLogistic().fit(X, y)
    coef = m.coef_ - m.coef_[:, :1]  # identified up to a shift per feature
    icpt = m.intercept_ - m.intercept_[0]
    assert m.converged_
    assert coef == pytest.approx(W, abs=0.12)  # sampling error and the l2 shrinkage
    assert icpt == pytest.approx(b, abs=0.1)
    assert log_loss(m.predict_proba(X), y) <= log_loss(ClassPrior().fit(y).predict_proba(n), y)
    Xn = X[:4].copy()
    Xn[1, 0] = np.nan
    proba = m.predict_proba(Xn)
    assert np.isnan(proba[1]).all() and proba[[0, 2, 3]].sum(axis=1) == pytest.approx(1.0)
    assert np.isnan(m.predict(Xn)[1]) and np.isfinite(m.predict(Xn)[[0, 2, 3]]).all()


def test_multinomial_logistic_drops_nan_rows(rng):
    X = rng.normal(size=(300, 2))
    y = np.digitize(X[:, 0] + rng.normal(size=300), [-0.5, 0.5]).astype(float)
    Xn, yn = X.copy(), y.copy()
    Xn[0, 1], yn[1] = np.nan, np.nan
    a = MultinomialLogistic().fit(Xn, yn, n_classes=4)
    b = MultinomialLogistic().fit(X[2:], y[2:], n_classes=4)
    assert a.coef_.shape == (2, 4) and a.predict_proba(X).shape == (300, 4)
    assert a.coef_ == pytest.approx(b.coef_)


def test_ols_equals_lstsq(rng):
    X = rng.normal(size=(200, 3))
    Y = X @ rng.normal(size=(3, 2)) + rng.normal(size=(200, 2))
    A = np.column_stack([np.ones(200), X])
    ref = np.linalg.lstsq(A, Y, rcond=None)[0]
    m = OLS(ridge=0.0).fit(X, Y)
    assert m.intercept_ == pytest.approx(ref[0], abs=1e-10)
    assert m.coef_ == pytest.approx(ref[1:], abs=1e-10)
    m1 = OLS().fit(X, Y[:, 0])
    assert m1.coef_ == pytest.approx(ref[1:, 0], abs=1e-5)
    assert m1.predict(X) == pytest.approx(A @ ref[:, 0], abs=1e-5)
    Xn = X.copy()
    Xn[5, 1] = np.nan
    assert OLS(0.0).fit(Xn, Y).coef_ == pytest.approx(OLS(0.0).fit(X[np.arange(200) != 5],
                                                                Y[np.arange(200) != 5]).coef_)


def test_realised_log_vol_closed_form_and_trailing_vol_is_causal(rng):
    r = rng.normal(scale=0.01, size=60)
    v = realised_log_vol(r, 5)
    assert np.isnan(v[:4]).all()
    assert v[10] == pytest.approx(math.log(math.sqrt(np.mean(r[6:11] ** 2)) + 1e-8))
    tv = TrailingVol(5).fit()
    base = tv.predict(r)
    r2 = r.copy()
    r2[30] = 0.5
    moved = tv.predict(r2)
    assert np.array_equal(base[:30], moved[:30], equal_nan=True)
    assert not np.allclose(base[30:35], moved[30:35]) and base[35:] == pytest.approx(moved[35:])
