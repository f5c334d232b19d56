"""Volatility baselines (training.vol_baselines): range proxies by hand, the simplex least
squares against a grid search, HAR's causality and robustness on the kind of data that broke
the old daily HAR, and EWMA against its recursion."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pandas as pd
import pytest

from s4_strategies.training import skill
from s4_strategies.training.baselines import realised_log_vol
from s4_strategies.training.vol_baselines import (
    EWMA,
    HAR,
    ewma_log_vol,
    har_windows,
    log_returns,
    parkinson_variance,
    range_variance,
    simplex_lstsq,
)


def test_range_variance_by_hand():
    bars = {"open": [100.0, 102.0], "high": [101.0, 106.0], "low": [99.0, 101.0],
            "close": [100.0, 104.0]}
    v = range_variance(bars)
    gk = 0.5 * math.log(106 / 101) ** 2 - (2 * math.log(2) - 1) * math.log(104 / 102) ** 2
    assert np.isnan(v[0]) and v[1] == pytest.approx(math.log(102 / 100) ** 2 + gk)
    assert parkinson_variance(bars)[1] == pytest.approx(math.log(106 / 101) ** 2 /
                                                        (4 * math.log(2)))
    # a bar that closes where it opened, with no gap, still has its range's variance
    flat = {"open": [10.0, 10.0], "high": [10.0, 10.5], "low": [10.0, 9.5], "close": [10.0, 10.0]}
    assert range_variance(flat)[1] == pytest.approx(0.5 * math.log(10.5 / 9.5) ** 2)
    assert har_windows(86400) == (1, 5, 22) and har_windows(3600) == (1, 24, 168)


def test_simplex_lstsq_is_the_constrained_optimum():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) + rng.normal(size=(200, 1))  # correlated columns
    for beta_true in ([0.2, 0.3, 0.5], [1.2, -0.4, 0.2], [0.0, 0.0, 0.3]):
        y = 0.7 + X @ np.array(beta_true) + 0.3 * rng.normal(size=200)
        beta, a = simplex_lstsq(X, y)
        assert beta.min() >= 0 and beta.sum() == pytest.approx(1.0)
        assert a == pytest.approx(np.mean(y - X @ beta))

        def sse(b, y=y):
            e = y - np.mean(y - X @ b) - X @ b
            return float(e @ e)

        grid = [np.array([p, q, 1 - p - q]) for p, q in product(np.linspace(0, 1, 201),
                                                               repeat=2) if p + q <= 1 + 1e-12]
        slow = min(grid, key=sse)  # the slow reference: a 0.005 grid on the simplex
        assert sse(beta) <= sse(slow) + 1e-9
        assert beta == pytest.approx(slow, abs=0.006)
    planted = np.array([0.2, 0.3, 0.5])
    beta, a = simplex_lstsq(X, -1.0 + X @ planted + 0.01 * rng.normal(size=200))
    assert beta == pytest.approx(planted, abs=0.01) and a == pytest.approx(-1.0, abs=0.01)


def _simulated_daily(seed: int, n: int = 420, calm: int = 160) -> pd.DataFrame:
    """Stochastic-volatility days of eight intraday steps and an overnight gap, prices in
    cents (so some closes repeat), and a volatility shock after a calm start."""
    rng = np.random.default_rng(seed)
    lv, rows, p = math.log(0.01), [], 50.0
    for t in range(n):
        lv = -4.6 + 0.97 * (lv + 4.6) + 0.12 * rng.normal() + (1.2 if t == calm + 20 else 0)
        sig = math.exp(lv)
        o = p * math.exp(0.3 * sig * rng.normal())
        path = np.round(np.concatenate([[o], o * np.exp(np.cumsum(
            sig * math.sqrt(0.91 / 8) * rng.normal(size=8)))]), 2)
        rows.append((path[0], path.max(), path.min(), path[-1]))
        p = path[-1]
    return pd.DataFrame(rows, columns=["open", "high", "low", "close"])


def _label(close, horizon=20):
    r = log_returns(close)
    fut = pd.Series(r * r).rolling(horizon, min_periods=horizon).mean().shift(-horizon)
    return np.log(np.sqrt(fut.to_numpy()) + 1e-8)


def test_har_on_a_short_calm_training_period_tracks_volatility_like_trailing_vol_or_better():
    har_c, trail_c = [], []
    for seed in range(8):
        df = _simulated_daily(seed)
        y = _label(df["close"])
        train, test = slice(25, 140), slice(160, 400)  # 115 calm days, then a shock
        pred = HAR((1, 5, 22)).fit(df, y, rows=train).predict(df)
        trail = realised_log_vol(np.nan_to_num(log_returns(df["close"])), 20)
        har_c.append(skill.corr(pred[test], y[test]))
        trail_c.append(skill.corr(trail[test], y[test]))
    assert np.mean(har_c) >= np.mean(trail_c)
    assert min(np.subtract(har_c, trail_c)) > -0.05


def test_a_zero_return_day_reads_as_a_floored_variance_not_minus_eighteen():
    # the old HAR's one-day term was log(|r| + 1e-8): -18.4 for a day that closed where it
    # opened, a leverage point that short folds could not survive
    df = _simulated_daily(1)
    r = log_returns(df["close"])
    y = _label(df["close"])
    r[[60, 90, 200, 300]] = 0.0
    x1 = HAR((1, 5, 22)).features(np.nan_to_num(r))[[90, 200, 300], 0]
    month = realised_log_vol(np.nan_to_num(r), 22)[[90, 200, 300]]
    assert np.all(x1 >= month + 0.5 * math.log(0.01) - 1e-4)  # a tenth of the month's vol
    for bars in (np.nan_to_num(r), df):  # the return-only and the OHLC form
        m = HAR((1, 5, 22))
        pred = m.fit(bars, y, rows=slice(25, 140)).predict(bars)[200:310]
        assert np.all(np.abs(pred - np.nanmean(y)) < 3.0)
        assert m.coef_.min() >= 0 and m.coef_.sum() == pytest.approx(1.0)


def test_har_is_causal():
    df = _simulated_daily(2)
    y = _label(df["close"])
    m = HAR((1, 5, 22)).fit(df, y, rows=slice(25, 140))
    base = m.predict(df)
    moved = df.copy()
    moved.iloc[300:, :] *= 1.5
    moved.loc[300:, "high"] *= 1.2
    assert np.array_equal(m.predict(moved)[:300], base[:300], equal_nan=True)
    assert np.isnan(base[:21]).all() and np.isfinite(base[22:]).all()
    with pytest.raises(ValueError, match="differ in length"):
        HAR((1, 5, 22)).fit(df, y[:-1])


def test_ewma_is_the_recursion_and_its_lambda_is_chosen_on_training_and_validation():
    rng = np.random.default_rng(3)
    r = rng.normal(0, 0.01, 300) * np.exp(np.sin(np.arange(300) / 20))
    r[0], r[50] = np.nan, np.nan
    lam, s, want = 0.94, None, []
    for x in r:  # the slow reference
        if np.isfinite(x):
            s = x * x if s is None else lam * s + (1 - lam) * x * x
        want.append(np.nan if s is None else 0.5 * math.log(s))
    assert ewma_log_vol(r, lam) == pytest.approx(np.array(want), nan_ok=True)
    y = _label(100 * np.exp(np.nancumsum(r)))
    m = EWMA().fit(r, y, train=slice(1, 200), tune=slice(1, 250))

    def tune_mse(lam):
        v = ewma_log_vol(r, lam)
        b = np.nanmean((y - v)[1:200])
        return np.nanmean(((v + b - y) ** 2)[1:250])

    assert m.lam_ == min(m.grid, key=tune_mse)
    assert m.intercept_ == pytest.approx(np.nanmean((y - ewma_log_vol(r, m.lam_))[1:200]))
