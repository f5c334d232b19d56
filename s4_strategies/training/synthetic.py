"""Bars with planted structure: a dependence only the state can carry, and switching regimes.

One-bar log returns follow

    r_t = ρ r_{t-k} + sqrt(1 - ρ²) σ ε_t,   ε_t ~ N(0, 1) iid,   var r_t = σ²

so the best forecast of the next return from everything known at the close of bar t is
``E[r_{t+1} | F_t] = ρ r_{t+1-k}``. Its correlation with r_{t+1} is ρ (the attainable
Pearson IC) and, the pair being jointly Gaussian, its Spearman IC is (6/π) arcsin(ρ/2).
With ``k`` beyond every feature window only a recurrent state can carry ``r_{t+1-k}``; with
``k = 1`` the one-bar return feature shows it directly.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def planted_returns(n: int, lag: int, rho: float, sigma: float = 0.01,
                    seed: int = 0) -> np.ndarray:
    """``n`` log returns with ``r_t = rho r_{t-lag} + sqrt(1 - rho^2) sigma eps_t``."""
    if lag < 1 or not -1 < rho < 1:
        raise ValueError(f"need lag >= 1 and |rho| < 1, got {lag}, {rho}")
    eps = np.random.default_rng(seed).standard_normal(n + lag)  # (n + lag,)
    r = sigma * eps  # (n + lag,)  the first `lag` values: stationary start
    noise = math.sqrt(1.0 - rho * rho) * sigma
    for t in range(lag, n + lag):
        r[t] = rho * r[t - lag] + noise * eps[t]
    return r[lag:]  # (n,)


def planted_bars(n: int = 12_000, lag: int = 48, rho: float = 0.3, sigma: float = 0.01,
                 seed: int = 0, start: str = "2020-01-01") -> pd.DataFrame:
    """Hourly OHLCV bars whose closes follow :func:`planted_returns` (open = previous close;
    high/low a little outside the body; volume independent noise)."""
    r = planted_returns(n, lag, rho, sigma, seed)
    rng = np.random.default_rng(seed + 1)
    close = 100.0 * np.exp(np.cumsum(r))  # (n,)
    open_ = np.concatenate([[100.0], close[:-1]])  # (n,)
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.3  # (2, n)
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(3.0, 0.3, n)
    index = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)


def spearman_ceiling(rho: float) -> float:
    """Spearman IC of the best forecast: (6/π) arcsin(ρ/2) for a Gaussian pair with corr ρ."""
    return 6.0 / math.pi * math.asin(rho / 2.0)


#: (drift, volatility) of the one-bar log return in each planted regime: calm, a rising
#: trend, a turbulent fall.
REGIMES = ((0.0, 0.004), (0.0008, 0.008), (-0.0015, 0.018))


def regime_bars(n: int = 20_000, stay: float = 0.995, regimes=REGIMES, seed: int = 0,
                start: str = "2020-01-01") -> tuple[pd.DataFrame, np.ndarray]:
    """Hourly bars whose log returns switch between planted regimes, and the truth (n,).

    A Markov chain s_t keeps its regime with probability ``stay`` (mean stay 1 / (1 − stay)
    bars) and otherwise jumps to one of the others at random; r_t = μ_{s_t} + σ_{s_t} ε_t.
    Bars are built from the returns as in :func:`planted_bars`."""
    rng = np.random.default_rng(seed)
    K = len(regimes)
    s = np.empty(n, dtype=int)
    s[0] = rng.integers(K)
    jumps = rng.random(n) > stay
    step = rng.integers(1, K, n)  # to one of the other regimes
    for t in range(1, n):
        s[t] = (s[t - 1] + step[t]) % K if jumps[t] else s[t - 1]
    mu, sigma = (np.array([r[i] for r in regimes])[s] for i in (0, 1))
    r = mu + sigma * rng.standard_normal(n)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.3
    index = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * np.exp(wick[0]),
                         "low": np.minimum(open_, close) * np.exp(-wick[1]), "close": close,
                         "volume": rng.lognormal(3.0, 0.3, n)}, index=index), s
