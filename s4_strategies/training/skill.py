"""Forecast skill: rank and linear correlation, block-bootstrap intervals, classification loss,
the Diebold–Mariano test and summaries over training seeds.

Missing values. Every function that takes a prediction and a target drops the *pairs* where
either side is NaN (or infinite) and scores the rest; lengths must still agree.

Definitions (``x`` predictions, ``y`` targets, ``n`` finite pairs)::

    corr(x, y)        = sum((x - mean(x)) (y - mean(y))) / sqrt(sum((x - mean x)^2) sum(...))
    spearman_ic(x, y) = corr(rank(x), rank(y))          ties get their average rank
    mse(x, y)         = mean((x - y)^2)
    accuracy(k, c)    = mean(k == c)
    log_loss(P, c)    = -mean(log(clip(P[i, c_i], 1e-12, 1)))

Block bootstrap (``block_bootstrap_ci``): the stationary bootstrap of Politis & Romano
(1994) by ``arch`` (blocks of geometric length with mean ``b``, wrapping past the end). The
*same* row indices are used for every array, so pairs stay paired. The interval is the
percentile interval of the replicate statistics. ``b`` is Politis & White's automatic
length (``inference.block_length``: of the first array, or of the per-bar IC terms for
``ic_with_ci``), at least ``2 * overlap`` when the targets overlap over ``overlap`` bars,
unless given (``b = 1`` is the i.i.d. bootstrap).

Diebold–Mariano (1995) with the Harvey–Leybourne–Newbold (1997) correction. With loss
differences ``d_t = La_t - Lb_t`` for an ``h``-step forecast::

    gamma_k = (1/n) sum_{t=k}^{n-1} (d_t - dbar)(d_{t-k} - dbar)
    V       = gamma_0 + 2 sum_{k=1}^{h-1} gamma_k             (rectangular window)
    DM      = dbar / sqrt(V / n)
    DM_HLN  = DM * sqrt((n + 1 - 2h + h (h - 1) / n) / n)
    p       = 2 P(T_{n-1} > |DM_HLN|),  T_{n-1} Student's t with n - 1 degrees of freedom

A negative statistic means model a has the lower loss. When all ``d_t`` are zero the two
forecasts score the same: stat 0, p 1. When ``V <= 0`` otherwise (a constant non-zero
difference, or a negative rectangular sum) the test is undefined: stat NaN, p NaN; "zero"
means below ``1e-20 * mean(d^2)``, i.e. a standard deviation lost in rounding.
For ``h = 1``, ``DM_HLN = dbar / sqrt(s^2 / n)`` with ``s^2`` the ddof-1 sample variance.

Seeds. ``seed_summary`` gives mean and ddof-1 standard deviation over seeds;
``paired_difference`` a one-sample t test of the per-seed differences ``a_s - b_s``
(``b`` may be one baseline number), with the same zero-variance convention as above. It
counts seed noise only: model comparisons on one test period use
``inference.paired_bootstrap``, which redraws the test bars as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats

CLIP_EPS = 1e-12
MIN_POINTS = 3
REL_VAR = 1e-20  # a variance below this times mean(d^2) is rounding noise


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _paired(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """The finite pairs of two aligned 1-D arrays."""
    x, y = _vector(pred, "pred"), _vector(target, "target")
    if len(x) != len(y):
        raise ValueError(f"pred and target differ in length: {len(x)} vs {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)  # (n,)
    return x[keep], y[keep]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < MIN_POINTS:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()  # (n,), (n,)
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0.0:
        return math.nan
    return float(np.clip((xc @ yc) / den, -1.0, 1.0))


def corr(pred, target) -> float:
    """Pearson correlation over finite pairs; NaN for fewer than 3 pairs or a constant side."""
    return _pearson(*_paired(pred, target))


def spearman_ic(pred, target) -> float:
    """Spearman rank correlation (the information coefficient) over finite pairs.

    NaN for fewer than 3 pairs or a constant side.
    """
    x, y = _paired(pred, target)
    if len(x) < MIN_POINTS:
        return math.nan
    return _pearson(stats.rankdata(x), stats.rankdata(y))


def mse(pred, target) -> float:
    """Mean squared error over finite pairs (any equal shapes); NaN when none is finite."""
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"pred and target differ in shape: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return float(np.mean((x[keep] - y[keep]) ** 2)) if keep.any() else math.nan


def block_bootstrap_ci(stat_fn: Callable[..., float], *arrays, block: float | None = None,
                       n: int = 1000, level: float = 0.95, seed: int = 0,
                       overlap: int = 1) -> tuple[float, float]:
    """Percentile interval of ``stat_fn(*arrays)`` by the stationary block bootstrap.

    ``arrays`` are aligned along their first axis and resampled with the same row indices.
    NaN in the data is passed to ``stat_fn`` (which may drop it); replicates whose statistic
    is NaN are left out, and ``(nan, nan)`` comes back if all are. ``block``: the mean
    block length (default: Politis–White of the first array, at least ``2 * overlap``).
    Deterministic given seed.
    """
    from arch.bootstrap import StationaryBootstrap

    from .inference import block_length

    if not arrays:
        raise ValueError("block_bootstrap_ci needs at least one array")
    data = [np.asarray(a) for a in arrays]
    if any(a.ndim == 0 for a in data):
        raise ValueError("block_bootstrap_ci needs arrays, not scalars")
    n_obs = len(data[0])
    if any(len(a) != n_obs for a in data):
        raise ValueError(f"arrays must share their first axis; lengths {[len(a) for a in data]}")
    if n_obs < 2:
        raise ValueError(f"block_bootstrap_ci needs at least 2 observations, got {n_obs}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n < 1:
        raise ValueError(f"n (replicates) must be at least 1, got {n}")
    if block is None:
        first = data[0].astype(np.float64) if data[0].ndim == 1 else None
        enough = first is not None and np.isfinite(first).sum() >= 10
        b = block_length(first, overlap) if enough else float(max(1, 2 * overlap))
        b = min(b, float(n_obs))
    else:
        b = float(block)
    if not 1 <= b <= n_obs:
        raise ValueError(f"block must lie in 1..{n_obs}, got {block}")
    bs = StationaryBootstrap(b, np.arange(n_obs), seed=np.random.default_rng(seed))
    reps = np.array([stat_fn(*(a[pos[0]] for a in data)) for pos, _ in bs.bootstrap(n)])
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [tail, 1.0 - tail])
    return float(lo), float(hi)


def ic_with_ci(pred, target, block: float | None = None, n: int = 1000, seed: int = 0,
               overlap: int = 1) -> dict:
    """Spearman IC with a 95 % block-bootstrap interval, over the finite pairs.

    Non-finite pairs are dropped first, then the remaining rows (kept in time order) are
    resampled; the block length defaults to Politis–White of the per-bar IC terms
    (``inference.ic_losses``), at least ``2 * overlap``. Returns ``{"ic", "ci": [lo, hi],
    "n"}``; all NaN for fewer than 3 pairs.
    """
    from .inference import block_length, ic_losses

    x, y = _paired(pred, target)
    if len(x) < MIN_POINTS:
        return {"ic": math.nan, "ci": [math.nan, math.nan], "n": len(x)}
    if block is None:
        block = (min(block_length(ic_losses(x, y), overlap), float(len(x))) if len(x) >= 10
                 else 1.0)
    lo, hi = block_bootstrap_ci(spearman_ic, x, y, block=block, n=n, seed=seed)
    return {"ic": spearman_ic(x, y), "ci": [lo, hi], "n": len(x)}


def accuracy(pred_class, true_class) -> float:
    """Share of finite pairs where the predicted class equals the true one (NaN if none)."""
    k, c = _paired(pred_class, true_class)
    return float(np.mean(k == c)) if len(k) else math.nan


def log_loss(probs, true_class, eps: float = CLIP_EPS) -> float:
    """Mean negative log probability of the true class, probabilities clipped to [eps, 1].

    ``probs`` is (n, C), ``true_class`` (n,) integers in 0..C-1. Rows with a NaN label or a
    non-finite probability are left out; NaN when no row is left.
    """
    p = np.asarray(probs, dtype=np.float64)  # (n, C)
    c = _vector(true_class, "true_class")  # (n,)
    if p.ndim != 2:
        raise ValueError(f"probs must be (n, C), got shape {p.shape}")
    if len(p) != len(c):
        raise ValueError(f"probs and true_class differ in length: {len(p)} vs {len(c)}")
    keep = np.isfinite(c) & np.isfinite(p).all(axis=1)  # (n,)
    p, c = p[keep], c[keep]
    if len(c) == 0:
        return math.nan
    if np.any(c != np.round(c)) or c.min() < 0 or c.max() >= p.shape[1]:
        raise ValueError(f"true_class must hold integers in 0..{p.shape[1] - 1}")
    picked = p[np.arange(len(c)), c.astype(np.int64)]  # (n,)
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0))))


def _t_test(mean: float, var_of_mean: float, df: int, d: np.ndarray) -> tuple[float, float]:
    """Two-sided t test of ``mean / sqrt(var_of_mean)`` with the zero-variance convention:
    all ``d`` zero -> (0, 1); a variance lost in rounding (below ``REL_VAR`` times the mean
    square of ``d`` per observation) or negative -> (nan, nan)."""
    if np.all(d == 0.0):
        return 0.0, 1.0
    if not var_of_mean > REL_VAR * float(np.mean(d * d)) / len(d):
        return math.nan, math.nan
    t = mean / math.sqrt(var_of_mean)
    return float(t), float(2.0 * stats.t.sf(abs(t), df))


def diebold_mariano(loss_a, loss_b, h: int = 1) -> dict:
    """Diebold–Mariano test of equal expected loss, HLN-corrected (see the module docstring).

    ``loss_a`` and ``loss_b`` are per-period losses of two forecasts of the same targets,
    NaN pairs dropped. Returns ``{"stat", "p_value", "mean_diff", "n"}``; a negative stat
    means model a has the lower loss.
    """
    a, b = _paired(loss_a, loss_b)
    if h < 1 or int(h) != h:
        raise ValueError(f"h must be a positive integer, got {h}")
    h = int(h)
    n = len(a)
    if n < max(MIN_POINTS, 2 * h):
        raise ValueError(f"diebold_mariano needs at least {max(MIN_POINTS, 2 * h)} finite "
                         f"pairs for h={h}, got {n}")
    d = a - b  # (n,)
    dbar = float(d.mean())
    dc = d - dbar  # (n,)
    gammas = [float(dc[k:] @ dc[: n - k]) / n for k in range(h)]
    v = gammas[0] + 2.0 * sum(gammas[1:])
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    # DM_HLN = dbar / sqrt(V / n) * hln = dbar / sqrt(V / (n hln^2))
    stat, p = _t_test(dbar, v / (n * hln * hln), n - 1, d)
    return {"stat": stat, "p_value": p, "mean_diff": dbar, "n": n}


def seed_summary(values) -> dict:
    """Mean and ddof-1 standard deviation over seeds, NaN values dropped (sd NaN if n < 2)."""
    v = _vector(values, "values")
    v = v[np.isfinite(v)]
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    sd = float(v.std(ddof=1)) if n >= 2 else math.nan
    return {"mean": mean, "sd": sd, "n": n}


def paired_difference(a_by_seed, b_by_seed) -> dict:
    """One-sample t test of ``a_s - b_s`` over the seeds where both are finite.

    ``b_by_seed`` may be a single number (a deterministic baseline), broadcast to every seed.
    Returns ``{"mean", "sd", "n", "t", "p_value"}``; t and p are NaN for fewer than 2 seeds.
    """
    a = _vector(a_by_seed, "a_by_seed")
    b = np.asarray(b_by_seed, dtype=np.float64)
    if b.ndim == 0:
        b = np.full_like(a, float(b))
    b = _vector(b, "b_by_seed")
    if len(a) != len(b):
        raise ValueError(f"a_by_seed and b_by_seed differ in length: {len(a)} vs {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)  # (n,)
    d = a[keep] - b[keep]  # (n,)
    out = seed_summary(d)
    if out["n"] < 2:
        return {**out, "t": math.nan, "p_value": math.nan}
    t, p = _t_test(out["mean"], out["sd"] ** 2 / out["n"], out["n"] - 1, d)
    return {**out, "t": t, "p_value": p}
