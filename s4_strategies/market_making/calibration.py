"""Estimating the quoting model's inputs from data: ``sigma``, the fill intensity ``A, kappa``
and a trend (two time-aware EMAs). Plain functions, units as in ``market_making.quotes``
(time in seconds, ``sigma`` in price per √second, ``kappa`` in 1/price, ``A`` per second).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


# --------------------------------------------------------------------------- estimation
def realized_sigma(times: Sequence[float], prices: Sequence[float]) -> float:
    """Volatility per √second from irregular samples: ``sqrt(Σ(Δp)² / Σ Δt)``."""
    t = np.asarray(times, dtype=float)
    p = np.asarray(prices, dtype=float)
    if len(t) < 2:
        return float("nan")
    span = t[-1] - t[0]
    if not span > 0:
        return float("nan")
    return float(np.sqrt(np.sum(np.diff(p) ** 2) / span))


def fit_intensity(deltas, rates) -> tuple[float, float]:
    """Least-squares fit of ``log rate = log A − kappa·delta``; returns ``(A, kappa)``.

    Points with a non-positive rate are dropped; at least two must remain.
    """
    d = np.asarray(deltas, dtype=float)
    r = np.asarray(rates, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r) & (r > 0)
    d, r = d[ok], r[ok]
    if len(d) < 2 or np.ptp(d) <= 0:
        raise ValueError("need at least two distinct depths with a positive rate")
    slope, intercept = np.polyfit(d, np.log(r), 1)
    return float(math.exp(intercept)), float(-slope)


def _grid(values: np.ndarray, n: int, lo_q: float = 0.05, hi_q: float = 0.9) -> np.ndarray:
    lo, hi = np.quantile(values, [lo_q, hi_q])
    return np.linspace(lo, hi, n) if hi > lo else np.array([lo])


def intensity_from_trades(distances, duration: float, deltas) -> np.ndarray:
    """Empirical ``lambda(delta)``: trades per second that printed at least ``delta`` from the mid.

    ``distances`` are aggressor-side distances ``side·(price − mid)`` (a buy at ``mid + d``
    would have lifted an ask quoted ``d`` above the mid); negative ones count as 0.
    """
    d = np.sort(np.maximum(np.asarray(distances, dtype=float), 0.0))
    counts = len(d) - np.searchsorted(d, np.asarray(deltas, dtype=float), side="left")
    return counts / float(duration)


def intensity_from_touches(excursions, bar_seconds: float, deltas) -> np.ndarray:
    """``lambda(delta)`` from bars: ``−ln(1 − P(excursion ≥ delta)) / bar_seconds``.

    ``excursions`` are ``high − open`` and ``open − low`` of each bar (how far the market went
    from the price a quote was set at). A bar that reaches ``delta`` is one Poisson arrival
    at least; the touch frequency is inverted through ``P = 1 − exp(−lambda·dt)``.
    """
    e = np.sort(np.asarray(excursions, dtype=float))
    n = len(e)
    p = (n - np.searchsorted(e, np.asarray(deltas, dtype=float), side="left")) / n
    p = np.minimum(p, 1.0 - 0.5 / n)  # a level touched by every bar has a finite rate
    return -np.log1p(-p) / float(bar_seconds)


def calibrate_from_trades(distances, duration: float, n_grid: int = 20,
                          min_delta: float | None = None, q_hi: float = 0.99
                          ) -> tuple[float, float]:
    """``(A, kappa)`` from aggressor-side trade distances to the mid over ``duration`` seconds.

    The fit runs over depths from ``min_delta`` to the ``q_hi`` quantile of the distances.
    ``min_delta`` defaults to twice the median distance: in a liquid book most trades print
    at the touch (half the spread from the mid) and the exponential tail that matters for
    quotes away from the touch starts one level beyond it.
    """
    d = np.maximum(np.asarray(distances, dtype=float), 0.0)
    d = d[np.isfinite(d)]
    if len(d) < 10:
        raise ValueError("too few trades to calibrate")
    lo = 2.0 * float(np.median(d)) if min_delta is None else float(min_delta)
    hi = float(np.quantile(d, q_hi))
    if not hi > lo:
        lo, hi = 0.0, float(np.max(d))
    grid = np.linspace(lo, hi, n_grid)
    return fit_intensity(grid, intensity_from_trades(d, duration, grid))


def calibrate_from_excursions(excursions, bar_seconds: float, n_grid: int = 20
                              ) -> tuple[float, float]:
    """``(A, kappa)`` from bar excursions (``high − mid`` and ``mid − low``, ``mid`` the
    price quotes were set at, e.g. the previous close), via :func:`intensity_from_touches`."""
    e = np.asarray(excursions, dtype=float)
    e = e[np.isfinite(e)]
    if len(e) < 10:
        raise ValueError("too few bars to calibrate")
    grid = _grid(e, n_grid, 0.05, 0.9)
    return fit_intensity(grid, intensity_from_touches(e, bar_seconds, grid))


def calibrate_from_bars(open_, high, low, bar_seconds: float, n_grid: int = 20
                        ) -> tuple[float, float]:
    """``(A, kappa)`` from bars: excursions ``high − open`` and ``open − low``, both sides
    pooled."""
    o, h, lo = (np.asarray(x, dtype=float) for x in (open_, high, low))
    return calibrate_from_excursions(np.concatenate([h - o, o - lo]), bar_seconds, n_grid)


# --------------------------------------------------------------------------- trend
def ema_update(prev: float | None, x: float, dt: float, tc: float) -> float:
    """One step of a time-aware EMA with time constant ``tc`` seconds:
    ``alpha = 1 − e^(−dt/tc)``."""
    if prev is None or not math.isfinite(prev):
        return x
    alpha = -math.expm1(-dt / tc)
    return prev + alpha * (x - prev)


def ema_lag(tc: float, dt: float) -> float:
    """Steady-state lag (seconds) of :func:`ema_update` on a ramp sampled every ``dt`` seconds.

    ``dt·(1 − alpha)/alpha``; tends to ``tc`` as ``dt → 0``.
    """
    alpha = -math.expm1(-dt / tc)
    return dt * (1.0 - alpha) / alpha


def ema_trend(fast: float, slow: float, lag_fast: float, lag_slow: float) -> float:
    """Drift (price per second) from two EMAs: on a ramp ``ema = p − mu·lag``, so
    ``mu = (fast − slow)/(lag_slow − lag_fast)``."""
    return (fast - slow) / (lag_slow - lag_fast)
