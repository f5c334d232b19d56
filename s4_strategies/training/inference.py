"""Inference for model comparisons with the field's maintained resampling library, ``arch``.

A forecast's score on a test period is noisy twice over: the test bars are one draw of a
dependent process, and a network's seeds are draws of its training. A difference between two
models is only evidence when it survives both. Everything here resamples both together.

Block length. The stationary bootstrap (Politis & Romano, 1994) draws blocks of geometric
length with mean ``b``. ``b`` is Politis & White's (2004, corrected 2009) automatic choice
for the series whose mean is being studied (``arch.bootstrap.optimal_block_length``), never
shorter than ``2 h`` when the targets overlap over ``h`` bars (a block must hold the label's
own dependence), and never longer than a tenth of the sample.

Two-level bootstrap of a paired difference (:func:`paired_bootstrap`). For models ``a`` and
``b`` with per-seed forecasts ``A[s, t]`` and ``B[s', t]`` of the same targets ``y[t]`` and a
score ``f`` (e.g. the Spearman IC)::

    θ̂  = mean_s f(A[s], y) − mean_s' f(B[s'], y)
    θ*  = mean_{s ∈ S*} f(A[s, I*], y[I*]) − mean_{s' ∈ S'*} f(B[s', I*], y[I*])

with ``S*``, ``S'*`` seeds drawn with replacement (independently: seed 3 of one model has
nothing to do with seed 3 of another) and ``I*`` one stationary-bootstrap draw of the bars,
shared by both models and the targets. The interval is the percentile interval of ``θ*``; the
p-value inverts it (``2 min(P(θ* ≤ 0), P(θ* ≥ 0))``), so p < 0.05 exactly when the 95 %
interval excludes zero. A single-seed (deterministic) baseline simply has one seed. With no
``b`` the same bootstrap gives the interval of one model's seed-mean score (the skill
table's IC intervals). ``score="mean"`` takes per-bar losses (log-loss, squared error), whose
mean is the score.

Per-bar losses for the confidence set. The Spearman IC is the mean of a per-bar product:
with ``z(·)`` the ranks standardised to mean 0 and population sd 1 over the sample,
``IC = mean_t z(x)_t z(y)_t``, so ``ℓ_t = −z(x)_t z(y)_t`` is a per-bar loss whose mean is
−IC (:func:`ic_losses`). Any per-bar loss matrix (log-loss, squared log-vol error, negative
net return) goes to :func:`confidence_set` (Hansen, Lunde & Nason's Model Confidence Set,
``arch.bootstrap.MCS``) or :func:`superior_to` (Hansen's SPA test and Romano & Wolf's StepM
against a benchmark, ``arch.bootstrap.SPA`` / ``StepM``), which control the error rate over
the whole table instead of testing each pair alone.

Multiplicity for a family of pairwise p-values without a joint bootstrap: Holm's step-down
adjustment (:func:`holm`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["block_length", "confidence_set", "holm", "ic_losses", "paired_bootstrap",
           "superior_to"]


def block_length(x, overlap: int = 1) -> float:
    """Mean block length of the stationary bootstrap for the mean of ``x`` (finite values,
    in time order): Politis–White, at least ``2 * overlap`` and 1, at most ``len(x) / 10``."""
    from arch.bootstrap import optimal_block_length

    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 10:
        raise ValueError(f"block_length needs at least 10 finite values, got {len(v)}")
    floor = max(1.0, 2.0 * overlap)
    pw = float(optimal_block_length(v)["stationary"].iloc[0]) if v.std() > 0 else 1.0
    if not math.isfinite(pw):
        pw = floor
    return float(min(max(pw, floor), max(floor, len(v) / 10.0)))


def _rank_z(x: np.ndarray) -> np.ndarray:
    r = stats.rankdata(x)  # (n,)
    sd = r.std()
    return (r - r.mean()) / sd if sd > 0 else np.zeros_like(r)


def ic_losses(pred, target) -> np.ndarray:
    """Per-bar loss ``−z(rank pred) z(rank target)`` whose mean is minus the Spearman IC
    (NaN where either side is missing; ranks over the finite pairs)."""
    x, y = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"pred and target must be 1-D of one length, got {x.shape}, {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)  # (n,)
    out = np.full(len(x), np.nan)
    if keep.sum() >= 3:
        out[keep] = -_rank_z(x[keep]) * _rank_z(y[keep])
    return out


def _seeds(a) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]  # one seed
    if m.ndim != 2:
        raise ValueError(f"forecasts must be (seeds, bars) or (bars,), got shape {m.shape}")
    return m


def _ic_rows(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` (S, n) with ``y`` (n,)."""
    ac = a - a.mean(axis=1, keepdims=True)  # (S, n)
    yc = y - y.mean()  # (n,)
    den = np.sqrt((ac * ac).sum(axis=1) * (yc @ yc))  # (S,)
    return np.divide(ac @ yc, den, out=np.full(len(a), np.nan), where=den > 0)  # (S,)


def _bar_terms(score, A: np.ndarray, B: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The per-bar series whose mean the statistic follows (its block length is chosen on
    it): the difference of the seed means' losses, or IC terms for ``"ic"``."""
    if score == "mean":
        return A.mean(axis=0) - (B.mean(axis=0) if len(B) else 0.0)  # (T,)
    d = ic_losses(A.mean(axis=0), y)  # (T,)
    return d - ic_losses(B.mean(axis=0), y) if len(B) else d


def _scorer(score):
    """``f(m (S, T), y (T,)) -> (S,)``: every seed's score on (resampled) bars."""
    if score == "ic":
        return _ic_rows  # Pearson of the ranks, one matrix product
    if score == "mean":
        return lambda m, yy: m.mean(axis=1)
    return lambda m, yy: np.array([score(row, yy) for row in m])


def paired_bootstrap(score, a, b, target, *, overlap: int = 1, reps: int = 1000,
                     level: float = 0.95, seed: int = 0, block: float | None = None) -> dict:
    """The two-level (seeds × time) bootstrap of ``mean_s score(a_s, y) − mean_s
    score(b_s, y)`` (module doc). ``a``, ``b``: (seeds, bars) or (bars,); ``b`` None: the
    one-sample version, ``mean_s score(a_s, y)`` itself (its interval, and the p-value of
    "it is zero"). ``target``: (bars,). ``score``: ``"ic"`` (the Spearman IC; replicates
    correlate the sample's ranks, so each is one matrix product), ``"mean"`` (``a``/``b``
    are per-bar losses, the score their mean; ``target`` is only its length) or any
    ``f(pred, target) -> float``. Bars where the target or any forecast is missing are
    dropped first (time order kept). ``block``: the mean block length (default:
    :func:`block_length` of the per-bar difference of the seed means, IC terms for
    ``"ic"``, at least ``2 * overlap``).

    Returns ``{"diff", "ci": [lo, hi], "p_value", "block", "reps", "n_bars", "seeds":
    [n_a, n_b], "a", "b"}`` (``a``/``b``: each side's mean score; ``b`` 0 and ``n_b`` 0
    for the one-sample version)."""
    from arch.bootstrap import StationaryBootstrap

    A = _seeds(a)  # (Sa, T)
    B = _seeds(b) if b is not None else np.zeros((0, A.shape[1]))  # (Sb, T)
    y = np.asarray(target, dtype=np.float64)  # (T,)
    if A.shape[1] != len(y) or B.shape[1] != len(y):
        raise ValueError(f"forecasts and target differ in length: {A.shape[1]}, {B.shape[1]}, "
                         f"{len(y)}")
    keep = np.isfinite(y) & np.isfinite(A).all(axis=0) & np.isfinite(B).all(axis=0)  # (T,)
    A, B, y = A[:, keep], B[:, keep], y[keep]
    n = len(y)
    if n < 20:
        raise ValueError(f"paired_bootstrap needs at least 20 complete bars, got {n}")
    if block is None:
        block = block_length(_bar_terms(score, A, B, y), overlap)
    if score == "ic":  # ranks once; every replicate is a Pearson correlation of them
        A = np.apply_along_axis(stats.rankdata, 1, A)  # (Sa, T)
        B = np.apply_along_axis(stats.rankdata, 1, B) if len(B) else B  # (Sb, T)
        y = stats.rankdata(y)  # (T,)
    scores = _scorer(score)

    def side(m, yy, draw):
        return float(np.mean(scores(m, yy)[draw])) if len(m) else 0.0

    sa, sb = side(A, y, slice(None)), side(B, y, slice(None))
    rng = np.random.default_rng(seed)
    bs = StationaryBootstrap(block, np.arange(n), seed=rng)
    reps_out = np.empty(reps)
    for i, (pos, _) in enumerate(bs.bootstrap(reps)):
        idx = pos[0]  # (T,) resampled bar indices
        ia = rng.integers(0, len(A), len(A))  # seeds redrawn, each model on its own
        ib = rng.integers(0, max(len(B), 1), len(B))
        yi = y[idx]
        reps_out[i] = side(A[:, idx], yi, ia) - side(B[:, idx], yi, ib)
    reps_out = reps_out[np.isfinite(reps_out)]
    tail = (1.0 - level) / 2.0
    lo, hi = (np.quantile(reps_out, [tail, 1.0 - tail]) if len(reps_out)
              else (math.nan, math.nan))
    p = (min(1.0, 2.0 * min(np.mean(reps_out <= 0.0), np.mean(reps_out >= 0.0)))
         if len(reps_out) else math.nan)
    return {"diff": sa - sb, "ci": [float(lo), float(hi)], "p_value": float(p),
            "block": float(block), "reps": int(len(reps_out)), "n_bars": int(n),
            "seeds": [len(A), len(B)], "a": sa, "b": sb}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN kept as NaN, not counted)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for k, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def _losses(losses) -> pd.DataFrame:
    df = losses if isinstance(losses, pd.DataFrame) else pd.DataFrame(losses)
    df = df.astype(np.float64).dropna()
    if df.shape[1] < 2 or len(df) < 20:
        raise ValueError(f"need at least 2 models and 20 complete bars, got {df.shape}")
    return df


def _groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Columns with identical losses bar by bar (a model that never trades and another that
    never trades): one representative each, since the bootstrap cannot rank a difference
    that is zero at every bar."""
    groups: dict[str, list[str]] = {}
    for c in df.columns:
        rep = next((r for r in groups if np.array_equal(df[r].to_numpy(), df[c].to_numpy())),
                   None)
        groups.setdefault(rep if rep is not None else c, []).append(c)
    return groups


def confidence_set(losses, *, size: float = 0.10, reps: int = 1000, overlap: int = 1,
                   seed: int = 0, block: float | None = None) -> dict:
    """Hansen–Lunde–Nason Model Confidence Set at level ``1 − size`` over per-bar
    ``losses`` (bars × models DataFrame, lower is better; bars with any NaN dropped), by
    ``arch.bootstrap.MCS`` (range statistic, stationary bootstrap). Returns ``{"included",
    "excluded", "pvalues" {model: MCS p-value}, "size", "block", "n_bars"}``: the models
    in the set are statistically indistinguishable from the best at that level. Models
    with identical losses at every bar enter as one and share its verdict."""
    from arch.bootstrap import MCS

    df = _losses(losses)
    if block is None:
        block = block_length(df.mean(axis=1) - df.iloc[:, 0], overlap)
    groups = _groups(df)
    pv = {r: 1.0 for r in groups}
    if len(groups) >= 2:
        uniq = df[list(groups)]
        mcs = MCS(uniq, size=size, reps=reps, block_size=max(1, round(block)), method="R",
                  bootstrap="stationary", seed=np.random.default_rng(seed))
        mcs.compute()
        pv = {str(k): float(v) for k, v in mcs.pvalues.iloc[:, 0].items()}
    pvalues = {str(c): pv[str(r)] for r, cs in groups.items() for c in cs}
    return {"included": [str(c) for c in df.columns if pvalues[str(c)] > size],
            "excluded": [str(c) for c in df.columns if pvalues[str(c)] <= size],
            "pvalues": pvalues, "size": size, "block": float(block), "n_bars": int(len(df))}


def superior_to(benchmark, losses, *, size: float = 0.05, reps: int = 1000, overlap: int = 1,
                seed: int = 0, block: float | None = None) -> dict:
    """Does any model beat ``benchmark`` (per-bar losses, lower is better)? Hansen's SPA
    p-value (``consistent``) for "no model is better than the benchmark", and Romano–Wolf's
    StepM: the models that beat it with the family-wise error held at ``size``. A model
    whose losses equal the benchmark's at every bar cannot beat it and is left out of the
    bootstrap."""
    from arch.bootstrap import SPA, StepM

    df = _losses(pd.concat([pd.Series(np.asarray(benchmark, dtype=np.float64),
                                      index=getattr(losses, "index", None), name="__bench__"),
                            pd.DataFrame(losses)], axis=1))
    bench, models = df.pop("__bench__"), df
    if block is None:
        block = block_length(models.mean(axis=1) - bench, overlap)
    b = max(1, round(block))
    differ = [c for c in models.columns if not np.array_equal(models[c].to_numpy(),
                                                              bench.to_numpy())]
    out = {"spa_p": 1.0, "superior": [], "size": size, "block": float(block),
           "n_bars": int(len(models))}
    if not differ:
        return out
    spa = SPA(bench, models[differ], reps=reps, block_size=b, bootstrap="stationary",
              seed=np.random.default_rng(seed))
    spa.compute()
    stepm = StepM(bench, models[differ], size=size, reps=reps, block_size=b,
                  bootstrap="stationary", seed=np.random.default_rng(seed + 1))
    stepm.compute()
    return {**out, "spa_p": float(spa.pvalues["consistent"]),
            "superior": [str(c) for c in differ if c in set(stepm.superior_models)]}
