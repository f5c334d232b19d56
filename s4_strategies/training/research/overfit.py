"""How much of a backtest's Sharpe ratio is selection: the deflated Sharpe ratio and the
probability of backtest overfitting. Pure numpy and the standard library.

Deflated Sharpe ratio (Bailey & López de Prado, 2014, "The Deflated Sharpe Ratio"). With
``N`` trials whose per-bar Sharpe ratios have variance ``V``, the Sharpe ratio the best of
``N`` skill-less trials is expected to reach is

    SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))          γ: Euler–Mascheroni

and the probability that the selected strategy's true Sharpe ratio exceeds it is the
probabilistic Sharpe ratio of its ``T`` returns against ``SR₀``:

    DSR = Φ( (SR − SR₀) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 · SR²) )

(γ₃ skewness, γ₄ kurtosis, 3 for a normal; every Sharpe ratio per bar, not annualised).

Probability of backtest overfitting (Bailey, Borwein, López de Prado & Zhu, 2015,
combinatorially symmetric cross-validation). The ``T × N`` matrix of per-bar returns of
``N`` configurations is cut into ``S`` blocks of equal length; for every choice ``c`` of
``S/2`` blocks as in-sample (the rest out-of-sample) the in-sample best configuration ``n*``
is found, ``ω̄_c`` is the relative rank of its out-of-sample Sharpe ratio among all ``N``
(rank / (N + 1)), and ``λ_c = ln(ω̄_c / (1 − ω̄_c))``. PBO = share of ``c`` with ``λ_c ≤ 0``:
how often the in-sample winner is no better than the out-of-sample median.
"""

from __future__ import annotations

import math
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns) -> float:
    """Per-bar Sharpe ratio mean / sd (ddof 1) of the finite values; 0 when sd is 0."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else 0.0


def _sharpe_columns(m: np.ndarray) -> np.ndarray:
    sd = m.std(axis=0, ddof=1)  # (N,)
    mean = m.mean(axis=0)  # (N,)
    return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0)


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR₀: the expected maximum per-bar Sharpe ratio of ``n_trials`` skill-less trials
    whose Sharpe ratios have variance ``var_sharpe``. One trial: 0."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or var_sharpe <= 0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def probabilistic_sharpe(sr: float, sr0: float, n_obs: int, skew: float = 0.0,
                         kurtosis: float = 3.0) -> float:
    """PSR: P(true Sharpe > ``sr0``) for an estimate ``sr`` from ``n_obs`` returns with the
    given skewness and (non-excess) kurtosis; all Sharpe ratios per bar."""
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if n_obs < 2 or denom <= 0:
        return float("nan")
    return _N.cdf((sr - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denom))


def moments(returns) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of the finite values (population moments)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 == 0:
        return 0.0, 3.0
    return float(np.mean(d**3) / m2**1.5), float(np.mean(d**4) / m2**2)


def deflated_sharpe(returns, n_trials: int, var_sharpe: float) -> dict:
    """The deflated Sharpe ratio of the selected strategy's per-bar ``returns`` after
    ``n_trials`` trials whose per-bar Sharpe ratios have variance ``var_sharpe``."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    sr = sharpe(r)
    skew, kurt = moments(r)
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    return {"sharpe": sr, "sr0": sr0, "n_trials": int(n_trials), "var_sharpe": float(var_sharpe),
            "n_obs": int(len(r)), "skew": skew, "kurtosis": kurt,
            "dsr": probabilistic_sharpe(sr, sr0, len(r), skew, kurt),
            "psr_vs_zero": probabilistic_sharpe(sr, 0.0, len(r), skew, kurt)}


def _relative_rank(values: np.ndarray, i: int) -> float:
    """Rank of ``values[i]`` among ``values`` (1 = lowest, ties averaged) / (N + 1)."""
    x = values[i]
    rank = float(np.sum(values < x)) + (float(np.sum(values == x)) + 1.0) / 2.0
    return rank / (len(values) + 1.0)


def _sharpe_from_blocks(blocks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratios (ddof 1) of every column over the blocks each row of ``mask``
    selects: (C, N), from the blocks' sums and sums of squares (the fast path of
    ``_sharpe_columns`` on the concatenated blocks; a test holds them equal)."""
    per = blocks.shape[1]
    s1, s2 = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # (S, N), (S, N)
    n = mask.sum(axis=1, keepdims=True) * per  # (C, 1)
    mean, sq = (mask @ s1) / n, (mask @ s2) / n  # (C, N), (C, N)
    sd = np.sqrt(np.maximum(sq - mean * mean, 0.0) * n / (n - 1.0))  # (C, N)
    # a constant column (a rule that never trades) has sd 0: what is left is rounding
    return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 1e-7 * np.sqrt(sq))


def pbo_cscv(returns, n_blocks: int = 16) -> dict:
    """Probability of backtest overfitting of choosing the best of ``N`` configurations by
    Sharpe ratio. ``returns`` (T, N): per-bar returns, one column per configuration, on the
    same bars. The first ``T mod n_blocks`` rows are dropped so the blocks are equal."""
    m = np.asarray(returns, dtype=np.float64)  # (T, N)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"need a (T, N) matrix with N >= 2 configurations, got {m.shape}")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and >= 2, got {n_blocks}")
    if not np.all(np.isfinite(m)):
        raise ValueError("returns hold NaN or inf: align the configurations on common bars")
    t = (len(m) // n_blocks) * n_blocks
    if t < 2 * n_blocks:
        raise ValueError(f"{len(m)} bars are too few for {n_blocks} blocks")
    blocks = m[len(m) - t:].reshape(n_blocks, t // n_blocks, m.shape[1])  # (S, T/S, N)
    combos = np.array(list(combinations(range(n_blocks), n_blocks // 2)))  # (C, S/2)
    mask = np.zeros((len(combos), n_blocks))  # (C, S): 1 where a block is in-sample
    np.put_along_axis(mask, combos, 1.0, axis=1)
    ins = _sharpe_from_blocks(blocks, mask)  # (C, N)
    oos = _sharpe_from_blocks(blocks, 1.0 - mask)  # (C, N)
    best = np.argmax(ins, axis=1)  # (C,)
    rows = np.arange(len(combos))
    best_oos = oos[rows, best][:, None]  # (C, 1)
    rank = np.sum(oos < best_oos, axis=1) + (np.sum(oos == best_oos, axis=1) + 1.0) / 2.0
    w = rank / (m.shape[1] + 1.0)  # (C,) relative rank of the in-sample best, out of sample
    logits = np.log(w / (1.0 - w))  # (C,)
    pairs = list(zip(ins[rows, best].tolist(), best_oos[:, 0].tolist()))
    oos_best = best_oos[:, 0]
    return {"pbo": float(np.mean(logits <= 0)), "n_combinations": len(logits),
            "n_configurations": int(m.shape[1]), "n_blocks": n_blocks, "logits": logits,
            "is_oos_sharpe": pairs, "p_oos_loss": float(np.mean(oos_best < 0))}


def pbo_cscv_reference(returns, n_blocks: int = 16) -> dict:
    """:func:`pbo_cscv` one partition at a time, each Sharpe ratio from its bars (slow and
    obvious; a test holds the two equal)."""
    m = np.asarray(returns, dtype=np.float64)  # (T, N)
    t = (len(m) // n_blocks) * n_blocks
    blocks = m[len(m) - t:].reshape(n_blocks, t // n_blocks, m.shape[1])  # (S, T/S, N)
    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        mask = np.zeros(n_blocks, dtype=bool)
        mask[list(chosen)] = True
        ins = _sharpe_columns(blocks[mask].reshape(-1, m.shape[1]))  # (N,)
        oos = _sharpe_columns(blocks[~mask].reshape(-1, m.shape[1]))  # (N,)
        w = _relative_rank(oos, int(np.argmax(ins)))
        logits.append(math.log(w / (1.0 - w)))
    logits = np.asarray(logits)
    return {"pbo": float(np.mean(logits <= 0)), "logits": logits}
