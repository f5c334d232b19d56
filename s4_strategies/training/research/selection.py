"""What the research pipeline chose among, on the stitched test history: the deflated Sharpe
ratio and the probability of backtest overfitting with inputs that match the selection made.

Candidate paths. A model with a search space has ``K = trials_per_fold`` settings proposed
in every fold (Optuna, first seed). Its ``k``-th candidate path lays each fold's ``k``-th
proposal's test block end to end (positions carried across fold boundaries as on the
selected path, ``stitch.stitch_path``): ``K`` strategies over the same stitched test
history as the selected one, which takes in each fold the proposal with the best validation
objective. A model without a search has one path, its only setting.

Deflated Sharpe ratio (``overfit.deflated_sharpe``; Bailey & López de Prado, 2014)::

    SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))
    DSR = Φ( (SR − SR₀) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 · SR²) )

with, per model, ``SR`` the per-bar Sharpe ratio of the selected settings' stitched path
with the search seed (the seed the candidates ran with), ``T`` its bars, γ₃/γ₄ its
skewness and kurtosis, ``N = K`` its candidate paths and ``V`` the variance (ddof 1) of
their per-bar Sharpe ratios. A model without a search: ``N = 1``, ``SR₀ = 0``, so DSR is
the PSR against zero. The cross-model *selected configuration* (best mean validation
objective) counts every model's candidates: ``N = Σ K``, ``V`` over all those paths. The
``N`` paths are correlated (they share the test bars and most of their settings), so ``N``
overstates the independent trials and the deflation errs strict. The PSR against zero is
reported beside it.

PBO (``overfit.pbo_cscv``; Bailey, Borwein, López de Prado & Zhu, 2015): CSCV over the
candidate paths of each model with a search (``K`` columns), and over all models' paths
together; ``S`` blocks of the stitched test bars (16, or fewer so that a block holds at
least 20 bars) give ``C(S, S/2)`` partitions.
"""

from __future__ import annotations

import numpy as np

from ..decision import net_returns
from .overfit import deflated_sharpe, pbo_cscv, sharpe
from .scheduler import search_index
from .stitch import stitch_path


def cscv_blocks(n_bars: int) -> int:
    """CSCV blocks: 16, or fewer (even) so that each block holds at least 20 bars."""
    s = min(16, n_bars // 20)
    return s - s % 2


def candidate_rows(rows: list[dict], spec, model, folds) -> list[list[dict]]:
    """The model's candidate paths as rows: ``K`` lists of one search row per fold (the
    fold's ``k``-th proposal, first seed)."""
    budget = spec.trials_per_fold if model.space else 1
    per_fold = []
    for fold in folds:
        search = sorted((r for r in rows if r["model"] == model.name and r["phase"] == "search"
                         and int(r["fold"]) == fold.number
                         and int(r["seed"]) == spec.seeds[0]), key=search_index)
        per_fold.append(search[:budget])
    k = min(len(s) for s in per_fold)
    return [[s[i] for s in per_fold] for i in range(k)]


def candidate_returns(store, paths: list[list[dict]], folds, close, fee, funding) -> np.ndarray:
    """(K, T) net returns of the candidate paths over the stitched test bars (``close`` and
    ``funding`` of those bars)."""
    first, last = folds[0].test[0], folds[-1].test[1]
    out = [net_returns(close, stitch_path(store, p, first, last)["position"].to_numpy(), fee,
                       funding)[0] for p in paths]
    return np.stack(out)


def _flat(r: np.ndarray, d: dict) -> dict:
    """A path without variance (a rule that never traded) has no Sharpe ratio to deflate:
    DSR and PSR undefined (NaN), not the 0.5 of a zero Sharpe ratio."""
    if np.nanstd(r) > 0:
        return d
    return {**d, "dsr": float("nan"), "psr_vs_zero": float("nan"), "note": "never trades"}


def deflation(selected: dict[str, np.ndarray], candidates: dict[str, np.ndarray],
              searched: dict[str, bool], chosen: str | None) -> dict:
    """Per model the DSR of its ``selected`` path (T,) against its ``candidates`` (K, T)
    (module docstring), and the cross-model selected configuration's (``chosen``) against
    every model's candidates. Returns ``{"models": {name: dsr dict + "n_paths"},
    "selected": dsr dict or None}``."""
    out = {"models": {}, "selected": None}
    for name, r in selected.items():
        paths = candidates[name]
        k = len(paths)
        if searched[name] and k >= 2:
            srs = np.array([sharpe(p) for p in paths])
            d = deflated_sharpe(r, k, float(np.var(srs, ddof=1)))
        else:
            d = deflated_sharpe(r, 1, 0.0)
        out["models"][name] = {**_flat(r, d), "n_paths": k, "searched": bool(searched[name])}
    if chosen is not None and chosen in selected:
        every = np.concatenate([candidates[n] for n in selected])  # (Σ K, T)
        srs = np.array([sharpe(p) for p in every])
        n = len(every)
        v = float(np.var(srs, ddof=1)) if n >= 2 else 0.0
        out["selected"] = {**_flat(selected[chosen], deflated_sharpe(selected[chosen], n, v)),
                           "model": chosen, "n_paths": n}
    return out


def pbo(candidates: dict[str, np.ndarray], searched: dict[str, bool]) -> dict:
    """CSCV PBO per searched model over its candidate paths, and over all models' paths."""
    def one(m: np.ndarray, names: list[str]) -> dict | None:
        blocks = cscv_blocks(m.shape[1])
        if m.shape[0] < 2 or blocks < 2:
            return None
        if np.all(m == m[0]):  # e.g. every setting's rule never traded: nothing was chosen
            return {"pbo": None, "n_configurations": int(m.shape[0]), "n_blocks": blocks,
                    "configurations": names, "note": "the candidate paths are identical"}
        res = pbo_cscv(m.T, n_blocks=blocks)
        return {**{k: v for k, v in res.items() if k not in ("logits", "is_oos_sharpe")},
                "configurations": names}

    out = {"models": {}, "all": None}
    for name, m in candidates.items():
        if searched[name]:
            out["models"][name] = one(m, [f"{name} #{k}" for k in range(len(m))])
    if len(candidates) >= 1:
        every = np.concatenate(list(candidates.values()))
        names = [f"{n} #{k}" for n, m in candidates.items() for k in range(len(m))]
        out["all"] = one(every, names)
    return out
