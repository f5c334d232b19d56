"""One trial of a multi-asset model (``multi_asset: true`` in the spec): ONE shared-encoder
``MultiAssetS4`` trained on every dataset of the spec for one fold, then scored on each
dataset exactly as a single-asset trial is, so that stitching, selection, DSR/PBO, the
confidence sets and the report see it as one more model in each dataset's table.

Folds. Every dataset keeps its own walk-forward folds (``walk_forward`` on its own bars,
purge and embargo counted in its own bars). The test blocks are calendar spans, so fold
``k`` covers the same dates on every dataset (:func:`align_folds` checks it on the bars).
Inside fold ``k`` the shared model

- trains on each asset's own training rows, cut at the earliest end of training over the
  assets (``cut``): no training window reaches a bar at or after ``cut``, so no asset's
  validation or test bars (which start ``purge + embargo`` of its own bars after its own
  training end, at or after ``cut``) enter a window, as input or as label; an asset that
  starts later joins once warmed up, as in ``train_multi``;
- is validated (early stopping) on each asset's own validation rows, the same bars the
  single-asset models of that dataset are validated on, and chooses each dataset's
  cost-aware band on them;
- is tested on each asset's own test block.

The assets with a longer training period than the shortest lose the bars between ``cut``
and their own training end (with equal bars everywhere there are none).

Rows. The trial stores one row per dataset, with the id a single-asset trial of that
dataset, fold, model, settings and seed would have (``Task.trial_id``), its own validation
and test scores, and the checkpoint of the shared model; and a row of the group (dataset
:func:`group_name`), written last, whose validation columns are the means over the assets:
the Optuna search and the choice of each fold's setting use that mean of the spec's
objective (``GROUP_OBJECTIVE`` in every dataset's row, so each dataset stitches the same
setting). The recipe is the spec's ``TrainConfig`` (``training.multi_asset.fit_multi``,
which, like ``train_multi``, does not use ``trunk`` and ``mix``).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback

import numpy as np

from ...features import bar_spacing
from .. import skill_report
from .scoring import evaluate
from .spec import GROUP_OBJECTIVE, OBJECTIVES, ResearchSpec
from .task import Task
from .walkforward import Fold, _test_edges

__all__ = ["GROUP_OBJECTIVE", "align_folds", "group_name", "run_multi_trial", "shared_rows"]


def group_name(datasets) -> str:
    """The name the rows of a multi-asset trial's group carry as their dataset."""
    return " + ".join(datasets)


def align_folds(spec: ResearchSpec, frames: dict, folds: dict[str, list[Fold]]) -> None:
    """``ValueError`` unless the datasets share a bar spacing and every fold ``k`` tests
    the same dates on every dataset (each dataset's bars inside the test blocks laid on the
    union of their bar times)."""
    spacing = {ds: bar_spacing(frames[ds].index) for ds in spec.datasets}
    if len(set(spacing.values())) > 1:
        raise ValueError(f"a multi-asset model needs datasets with one bar spacing, got "
                         f"{ {ds: str(s) for ds, s in spacing.items()} }")
    index = frames[spec.datasets[0]].index
    for ds in spec.datasets[1:]:
        index = index.union(frames[ds].index)
    edges = _test_edges(index.sort_values(), spec.layout)
    when = [index[e] if e < len(index) else None for e in edges]  # None: after the last bar
    for ds in spec.datasets:
        own = frames[ds].index
        want = [len(own) if t is None else int(own.searchsorted(t)) for t in when]
        got = [f.test[0] for f in folds[ds]] + [folds[ds][-1].test[1]]
        if got != want:
            k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)) - 1)
            raise ValueError(
                f"the folds of {ds} cannot be aligned with the other datasets' for a "
                f"multi-asset model: it has {len(folds[ds])} test blocks where the union of "
                f"the datasets' bars has {len(edges) - 1}, and block {max(k - 1, 0)} or {k} "
                "differs (a dataset with no bars in a test block?): start the test period "
                "where every dataset has bars")


def shared_rows(frames: dict, folds: dict[str, Fold], index) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, val_rows), (L, A) bool on the union ``index``: each asset's own training
    rows before ``cut`` (the earliest end of training over the assets, module doc) and its
    own validation rows."""
    ends = [frames[ds].index[folds[ds].train[1]] for ds in frames]  # first bar after training
    cut = min(ends)
    train = np.zeros((len(index), len(frames)), dtype=bool)
    val = np.zeros_like(train)
    for a, (ds, df) in enumerate(frames.items()):
        f = folds[ds]
        hi = min(f.train[1], int(df.index.searchsorted(cut)))
        train[index.get_indexer(df.index[f.train[0]: hi]), a] = True
        val[index.get_indexer(df.index[f.val[0]: f.val[1]]), a] = True
    return train, val


def _fit(task: Task, spec: ResearchSpec, data: dict, folds: dict[str, Fold]):
    from ...model.multi import panel, save_multi_predictor
    from ..multi_asset import fit_multi

    index, _ = panel(data)
    train, val = shared_rows(data, folds, index)
    cfg = spec.train_config(task.model, task.params, task.seed)
    res = fit_multi(data, index, train, val, cfg, spec.feature_spec, spec.label_spec,
                    data_names={ds: ds for ds in data})
    for ds in data:
        res.meta["periods"][ds]["test"] = [str(data[ds].index[folds[ds].test[0]]),
                                           str(data[ds].index[folds[ds].test[1] - 1])]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        save_multi_predictor(path, res.predictor, res.meta)
        with open(path, "rb") as fh:
            ckpt = fh.read()
    info = {"train_seconds": res.train_seconds, "best_epoch": res.best_epoch,
            "steps": res.meta["recipe"]["steps_taken"]}
    return res.predictor, info, ckpt


def run_multi_trial(task: Task, spec: ResearchSpec, frames: dict) -> dict:
    """Train the shared model on fold ``task.fold.number`` of every dataset and score it on
    each. Returns ``{"row", "checkpoint", "parts"}``: the group's row and one
    ``{"row", "predictions"}`` per dataset; an exception becomes a failed group row (no
    dataset rows: the trial runs again)."""
    t0 = time.perf_counter()
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    row = {**task.describe(), **here}
    try:
        folds = dict(task.folds)
        data = {ds: frames[ds].iloc[: folds[ds].test[1]] for ds in folds}  # to each test end
        predictor, info, ckpt = _fit(task, spec, data, folds)
        lspec = spec.label_spec
        move = lspec.horizons.index(lspec.signal_horizon)
        forecasts = predictor.forecasts(data)
        gid = task.trial_id
        parts = []
        for ds, fold in folds.items():
            mine = Task(ds, fold, task.model, task.params, task.seed, task.phase,
                        task.fingerprint, task.index)
            part = {**mine.describe(), **here, "group": gid,
                    "checkpoint": f"checkpoints/{gid}.pt"}
            raw = forecasts[ds]
            f = skill_report.model_forecast(raw, lspec.horizons)
            f["move"] = raw["returns"][:, move]  # signal-horizon return
            preds = evaluate(part, spec, frames[ds], fold, f)
            part.update(info)
            part["status"], part["error"] = "ok", ""
            parts.append({"row": part, "predictions": preds})
        for col in OBJECTIVES:  # the group's validation: the mean over the assets
            vals = np.array([p["row"][col] for p in parts], dtype=float)
            row[col] = float(vals[np.isfinite(vals)].mean()) if np.isfinite(vals).any() \
                else float("nan")
        for p in parts:
            p["row"][GROUP_OBJECTIVE] = row[spec.objective]
        row.update(info)
        row[GROUP_OBJECTIVE] = row[spec.objective]
        row["status"], row["error"] = "ok", ""
        out = {"checkpoint": ckpt, "parts": parts, "predictions": None}
    except Exception as exc:  # recorded, and the run goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        out = {"checkpoint": None, "parts": [], "predictions": None}
    row["seconds"] = time.perf_counter() - t0
    for p in out["parts"]:
        p["row"]["seconds"] = row["seconds"]
    out["row"] = row
    return out


def group_studies_folds(spec: ResearchSpec, folds: dict[str, list[Fold]]
                        ) -> list[tuple[Fold, tuple]]:
    """Per fold number: a representative fold (the first dataset's) and the
    ``(dataset, fold)`` pairs of a multi-asset task."""
    first = folds[spec.datasets[0]]
    return [(f, tuple((ds, folds[ds][k]) for ds in spec.datasets))
            for k, f in enumerate(first)]
