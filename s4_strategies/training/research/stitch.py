"""From trials to one out-of-sample history per model: in every fold the hyperparameters
chosen on validation (``scheduler.best_row``), and their test blocks laid end to end.

The stitched history covers the test period bar by bar: :func:`stitch` raises when a bar
appears twice or one is missing, and says which fold is incomplete when a trial has not
finished. Each fold's band is chosen on its own validation bars; on the stitched path it
takes over from the position the previous fold's band held at its last bar (as one account
switching models at the boundary would), and the stitched returns are computed once over
the whole period, so a position carried across a fold boundary pays no fee it did not incur
and a position closed there pays the fee it did.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .scheduler import best_row, search_index
from .spec import GROUP_OBJECTIVE, ModelSpec, ResearchSpec
from .trial import Task
from .walkforward import Fold


class IncompleteError(ValueError):
    """A model whose folds have not all finished: nothing is stitched for it."""


def current_rows(rows: dict[str, dict], spec: ResearchSpec, dataset: str,
                 folds: list[Fold]) -> list[dict]:
    """The ``ok`` rows of ``dataset`` that belong to this spec (same fingerprint)."""
    out = []
    by_number = {f.number: f for f in folds}
    models = {m.name: m for m in spec.models}
    for r in rows.values():
        if r["status"] != "ok" or r["dataset"] != dataset or r["model"] not in models:
            continue
        fold = by_number.get(int(r["fold"]))
        m = models[r["model"]]
        if fold is None:
            continue
        index = search_index(r)
        task = Task(dataset, fold, m, json.loads(r["params"]), int(r["seed"]), "",
                    spec.fingerprint(m), None if index < 0 else index)
        if task.trial_id == r["trial_id"]:
            out.append(r)
    return out


def chosen(rows: list[dict], spec: ResearchSpec, model: ModelSpec, folds: list[Fold]) -> dict:
    """Per fold number: the chosen rows (one per seed) of ``model``; raises
    :class:`IncompleteError` when a fold's search or a seed has not finished."""
    seeds = spec.seeds if model.network else spec.seeds[:1]
    budget = spec.trials_per_fold if model.space else 1
    out = {}
    for fold in folds:
        mine = [r for r in rows if r["model"] == model.name and int(r["fold"]) == fold.number]
        search = sorted((r for r in mine if r["phase"] == "search"
                         and int(r["seed"]) == seeds[0]), key=search_index)
        if len(search) < budget:
            raise IncompleteError(f"{model.name}: fold {fold.number} has {len(search)} of "
                                  f"{budget} search trials")
        best = best_row(search[:budget], spec.objective,  # the spec's budget, in order
                        GROUP_OBJECTIVE if model.multi_asset else None)  # mean over assets
        picked = {int(r["seed"]): r for r in mine
                  if r["phase"] == "seed" and r["params"] == best["params"]}
        picked[seeds[0]] = best
        missing = [s for s in seeds if s not in picked]
        if missing:
            raise IncompleteError(f"{model.name}: fold {fold.number} lacks seeds {missing}")
        out[fold.number] = [picked[s] for s in seeds]
    return out


def stitch(frames: list[pd.DataFrame], first_bar: int, last_bar: int) -> pd.DataFrame:
    """Concatenate test-block predictions; every bar of [first_bar, last_bar) exactly once."""
    out = pd.concat(frames)
    bars = out["bar"].to_numpy()
    if len(bars) != last_bar - first_bar or (len(bars) and (
            bars[0] != first_bar or np.any(np.diff(bars) != 1))):
        dup = int(np.sum(np.diff(bars) <= 0)) if len(bars) > 1 else 0
        raise ValueError(f"stitched test bars are not [{first_bar}, {last_bar}) once each: "
                         f"{len(bars)} bars, {dup} repeated or out of order")
    return out


def stitch_path(store, rows: list[dict], first_bar: int, last_bar: int) -> pd.DataFrame:
    """The test blocks of ``rows`` (one trial per fold, in fold order) laid end to end, the
    positions re-run with each fold's band carried over from the position the previous
    fold's band held at its last bar (:func:`decision.carry_positions`): what one account
    trading the folds in turn would hold. That state is decided at the close of the last
    bar before the block, so it reads nothing the block's own trial could not."""
    from ...rules import BandRule
    from ..decision import carry_positions

    frames, pos = [], 0.0
    for row in rows:
        frame = store.predictions(row["trial_id"]).copy()
        rule = BandRule(float(row["band_enter"]), float(row["band_exit"]))
        held = carry_positions(rule, frame["move"].to_numpy(), pos)  # (bars of the block,)
        frame["position"] = held
        pos = float(held[-1]) if len(held) else pos
        frames.append(frame)
    return stitch(frames, first_bar, last_bar)


def stitched_runs(store, picked: dict, folds: list[Fold]) -> list[pd.DataFrame]:
    """One stitched prediction frame per seed (seed order of ``picked``'s lists)."""
    n_seeds = len(next(iter(picked.values())))
    first, last = folds[0].test[0], folds[-1].test[1]
    return [stitch_path(store, [picked[f.number][i] for f in folds], first, last)
            for i in range(n_seeds)]


def full_length(frame: pd.DataFrame, n: int, n_classes: int) -> dict[str, np.ndarray]:
    """A stitched frame as arrays over all ``n`` bars of the dataset (NaN outside the test
    period), in ``skill_report``'s forecast format."""
    bars = frame["bar"].to_numpy()

    def col(name):
        a = np.full(n, np.nan)
        a[bars] = frame[name].to_numpy()
        return a

    probs = np.full((n, n_classes), np.nan)
    probs[bars] = frame[[f"p{c}" for c in range(n_classes)]].to_numpy()
    out = {"probs": probs, "ret_1": col("ret_1"), "ret_5": col("ret_5"),
           "log_vol": col("log_vol")}
    if "har_log_vol" in frame:
        prior = np.full((n, n_classes), np.nan)
        prior[bars] = frame[[f"prior_p{c}" for c in range(n_classes)]].to_numpy()
        out.update(har_log_vol=col("har_log_vol"), trailing_log_vol=col("trailing_log_vol"),
                   prior_probs=prior, majority=col("majority"))
        if "ewma_log_vol" in frame:
            out["ewma_log_vol"] = col("ewma_log_vol")
    return out
