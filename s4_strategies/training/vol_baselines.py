"""Volatility baselines: what a forecast of the ``log_vol`` label (the log realised volatility
of the next ``vol_horizon`` bars, close to close) must beat. Each reads bars up to ``t`` only
and is fitted on training rows (EWMA's decay on training and validation rows).

Daily variance proxies from one bar's OHLC (``c_{-1}`` the previous close)::

    overnight_t  = ln(o / c_{-1})^2                              the gap the range misses
    parkinson_t  = ln(h / l)^2 / (4 ln 2)                         Parkinson (1980)
    gk_t         = ½ ln(h / l)^2 − (2 ln 2 − 1) ln(c / o)^2       Garman & Klass (1980), ≥ 0
    range_var_t  = overnight_t + gk_t

``range_var`` uses the whole bar (its range) where ``r_t^2`` uses two prices, so a quiet close
never reads as zero volatility (``log |r|`` of a zero return is −18, which is what broke the
old daily HAR's regression in short folds).

HAR (Corsi, 2009), in log volatility, with the weights on the simplex::

    x_t(1)  = ½ ln max(range_var_t, 0.01 · mean(r², W))       the last bar (floored at a
                                                               tenth of the long window's vol)
    x_t(w)  = realised_log_vol(r, w)_t  for w in the other windows   (ln √mean r², as the label)
    ŷ_t     = a + Σ_w β_w x_t(w),   β_w ≥ 0,   Σ_w β_w = 1

fitted by least squares over the training rows. Windows: a bar, a day and a week of
intraday bars (hourly: 1, 24, 168), or for daily bars Corsi's day, week and month (1, 5,
22). The constraint is the design: volatility is persistent (a log-vol forecast moves one for
one with the level of recent volatility) and a few hundred overlapping daily targets cannot
estimate that; unconstrained, a calm training year gives slopes near zero (or negative) and a
constant forecast into a crisis. Only how recent volatility is weighed, and the level ``a``,
are learnt. :meth:`HAR.fit` solves the constrained problem exactly (every face of the
simplex; :func:`simplex_lstsq`), tested against a grid search.

EWMA (RiskMetrics)::

    σ²_t = λ σ²_{t−1} + (1 − λ) r_t²,   ŷ_t = ½ ln σ²_t + b

``λ`` from ``EWMA_GRID`` by the squared error on the training and validation rows, ``b`` the
mean training residual (the label is a log of a volatility, not of a variance mean).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from .baselines import _row_mask, _vector, realised_log_vol

EWMA_GRID = (0.90, 0.94, 0.97, 0.98, 0.99)
FLOOR = 0.01  # the one-bar variance floor, as a share of the long window's mean r²


def log_returns(close) -> np.ndarray:
    """``r_t = ln(c_t / c_{t-1})``; NaN at the first bar."""
    c = np.log(_vector(close, "close"))  # (n,)
    return np.concatenate([[np.nan], np.diff(c)])


def range_variance(bars) -> np.ndarray:
    """``overnight + Garman–Klass`` variance of each bar (module docstring); bars a frame or
    mapping with open/high/low/close. NaN at the first bar (no previous close)."""
    o, h, lo, c = (np.log(np.asarray(bars[k], dtype=np.float64))
                   for k in ("open", "high", "low", "close"))
    prev = np.concatenate([[np.nan], c[:-1]])  # (n,)
    gk = 0.5 * (h - lo) ** 2 - (2.0 * math.log(2.0) - 1.0) * (c - o) ** 2  # (n,)
    return (o - prev) ** 2 + np.maximum(gk, 0.0)


def parkinson_variance(bars) -> np.ndarray:
    """Parkinson's range variance ``ln(h / l)^2 / (4 ln 2)`` of each bar."""
    h, lo = (np.log(np.asarray(bars[k], dtype=np.float64)) for k in ("high", "low"))
    return (h - lo) ** 2 / (4.0 * math.log(2.0))


def har_windows(bar_seconds: float) -> tuple[int, int, int]:
    """HAR's lags for a bar size: a bar, a day and a week of intraday bars (hourly: 1, 24,
    168); for daily bars Corsi's day, week and month of trading days (1, 5, 22)."""
    per_day = int(round(86400.0 / float(bar_seconds)))
    return (1, per_day, 7 * per_day) if per_day >= 2 else (1, 5, 22)


def _rolling_mean(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1:] = np.lib.stride_tricks.sliding_window_view(x, w).mean(axis=1)
    return out


def simplex_lstsq(X, y) -> tuple[np.ndarray, float]:
    """``min_{a, β} Σ (y − a − X β)²`` subject to ``β ≥ 0``, ``Σ β = 1``, exactly: the
    optimum lies inside one face of the simplex, where it is the least-squares solution with
    ``Σ β = 1`` on that face's columns; every face is tried (2^k − 1 of them) and the best
    feasible one kept. Returns ``(β, a)``."""
    X, y = np.asarray(X, dtype=np.float64), _vector(y, "y")  # (n, k), (n,)
    n, k = X.shape
    if n < 2:
        raise ValueError(f"simplex_lstsq needs at least 2 rows, got {n}")
    Xc, yc = X - X.mean(axis=0), y - y.mean()  # the intercept profiles out
    best, best_sse = None, math.inf
    for size in range(1, k + 1):
        for face in combinations(range(k), size):
            cols = list(face)
            if size == 1:
                beta_f = np.ones(1)
            else:  # β = e_last + D γ, D the differences to the last column: Σ β = 1
                last = Xc[:, cols[-1]]
                D = Xc[:, cols[:-1]] - last[:, None]  # (n, size - 1)
                g = np.linalg.lstsq(D, yc - last, rcond=None)[0]  # (size - 1,)
                beta_f = np.append(g, 1.0 - g.sum())
            if np.any(beta_f < -1e-12):
                continue
            beta = np.zeros(k)
            beta[cols] = np.maximum(beta_f, 0.0)
            beta /= beta.sum()
            e = yc - Xc @ beta  # (n,)
            sse = float(e @ e)
            if sse < best_sse - 1e-15:
                best, best_sse = beta, sse
    a = float(y.mean() - X.mean(axis=0) @ best)
    return best, a


class HAR:
    """Corsi's HAR in log volatility with simplex weights (module docstring)."""

    def __init__(self, windows: tuple[int, ...] = (1, 24, 168)):
        if not windows or any(int(w) != w or w < 1 for w in windows):
            raise ValueError(f"windows must be positive integers, got {windows}")
        self.windows = tuple(int(w) for w in windows)

    def features(self, bars) -> np.ndarray:
        """(n, len(windows)) regressors. ``bars``: an OHLC frame (the one-bar term from its
        range) or a 1-D array of log returns (the one-bar term from ``r²``)."""
        if hasattr(bars, "columns") or isinstance(bars, dict):
            r = log_returns(bars["close"])
            one = range_variance(bars)
        else:
            r = _vector(bars, "r")
            one = r * r
        long = _rolling_mean(r * r, max(self.windows))  # (n,)
        cols = []
        for w in self.windows:
            if w == 1:
                with np.errstate(invalid="ignore"):
                    v = np.where(np.isnan(long), np.nan, np.maximum(one, FLOOR * long))
                    cols.append(0.5 * np.log(v))
            else:
                cols.append(realised_log_vol(r, w))
        return np.column_stack(cols)  # (n, k)

    def fit(self, bars, target, rows=None) -> HAR:
        """Simplex least squares of ``target`` on the features over ``rows`` (None, a slice,
        a (start, stop) pair, a boolean mask or positions); rows with a NaN left out."""
        X = self.features(bars)  # (n, k)
        y = _vector(target, "target")  # (n,)
        if len(y) != len(X):
            raise ValueError(f"bars and target differ in length: {len(X)} vs {len(y)}")
        mask = _row_mask(rows, len(y)) & np.isfinite(X).all(axis=1) & np.isfinite(y)
        if mask.sum() < 2 * len(self.windows):
            raise ValueError(f"HAR needs at least {2 * len(self.windows)} complete training "
                             f"rows, got {int(mask.sum())}")
        self.coef_, self.intercept_ = simplex_lstsq(X[mask], y[mask])
        return self

    def predict(self, bars) -> np.ndarray:
        return self.features(bars) @ self.coef_ + self.intercept_  # (n,)


def ewma_log_vol(r, lam: float) -> np.ndarray:
    """``½ ln σ²_t`` of the RiskMetrics recursion, started at the first finite return's
    square; NaN before it (a NaN return keeps the last σ²)."""
    from scipy.signal import lfilter

    if not 0.0 < lam < 1.0:
        raise ValueError(f"lambda must lie in (0, 1), got {lam}")
    r = _vector(r, "r")
    out = np.full(len(r), np.nan)
    ok = np.flatnonzero(np.isfinite(r))
    if len(ok) == 0:
        return out
    x = r[ok] ** 2  # (m,)
    s = lfilter([1.0 - lam], [1.0, -lam], x, zi=[lam * x[0]])[0]  # σ²_0 = x_0
    filled = np.full(len(r), np.nan)
    filled[ok] = s
    first = ok[0]
    idx = np.maximum.accumulate(np.where(np.isfinite(filled), np.arange(len(r)), -1))
    out[first:] = 0.5 * np.log(np.maximum(filled[idx[first:]], 1e-300))
    return out


class EWMA:
    """RiskMetrics' EWMA volatility with a level ``b``; ``λ`` tuned (module docstring)."""

    def __init__(self, grid=EWMA_GRID):
        self.grid = tuple(float(g) for g in grid)

    def fit(self, r, target, train, tune) -> EWMA:
        """``b`` on the ``train`` rows; ``λ`` the grid value with the least squared error on
        the ``tune`` rows (training and validation; never test)."""
        r, y = _vector(r, "r"), _vector(target, "target")
        tr, tu = _row_mask(train, len(y)), _row_mask(tune, len(y))
        best = None
        for lam in self.grid:
            v = ewma_log_vol(r, lam)  # (n,)
            ok = tr & np.isfinite(v) & np.isfinite(y)
            if ok.sum() < 2:
                continue
            b = float(np.mean(y[ok] - v[ok]))
            e = (v + b - y)[tu & np.isfinite(v) & np.isfinite(y)]
            mse = float(np.mean(e * e)) if len(e) else math.inf
            if best is None or mse < best[0]:
                best = (mse, lam, b)
        if best is None:
            raise ValueError("EWMA needs at least 2 complete training rows")
        _, self.lam_, self.intercept_ = best
        return self

    def predict(self, r) -> np.ndarray:
        return ewma_log_vol(r, self.lam_) + self.intercept_  # (n,)
