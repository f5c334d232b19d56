"""One research trial: a model with one set of hyperparameters and one seed, trained on one
fold's training bars, selected on its validation bars, and run over its test bars.

The trial sees only the bars up to the end of its test block (``df.iloc[:test_end]``): the
model is trained on them and run over them causally from the first bar, as the indicator
would run it live. The true labels of the test bars (which read prices after the block) are
used only to score. The cost-aware band is chosen on validation and trades the test block,
starting flat.

A trial returns its result row, its test-bar predictions (a DataFrame) and, for networks,
the checkpoint's bytes (the driver writes them, so a cluster needs no shared disk).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import traceback

from ...features import bar_spacing, make_labels
from .. import skill_report
from ..tuned_baselines import LINEAR, lightgbm_forecasts
from ..vol_baselines import har_windows
from .scoring import evaluate
from .spec import ResearchSpec
from .task import Task

__all__ = ["Task", "evaluate", "run_trial"]


def _forecast_network(task: Task, spec: ResearchSpec, data, fspec, lspec):
    from ..fit import save_result, train_model

    cfg = spec.train_config(task.model, task.params, task.seed)
    res = train_model(data, task.fold, cfg, fspec, lspec, data_name=task.dataset, decide=False)
    raw = res.predictor.forecasts(data)
    f = skill_report.model_forecast(raw, lspec.horizons)
    f["move"] = raw["returns"][:, res.predictor.decoder.move_index]  # signal-horizon return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        save_result(res, path)
        with open(path, "rb") as fh:
            ckpt = fh.read()
    info = {"train_seconds": res.train_seconds, "best_epoch": res.best_epoch,
            "steps": res.meta["recipe"]["steps_taken"]}
    return f, info, ckpt


def _baseline_inputs(task: Task, data, fspec, lspec):
    """Features, targets and the fold's training / validation rows of a baseline trial."""
    from ..fit import prepare_arrays

    x = prepare_arrays(data, fspec, lspec, task.fold)[0]
    y = skill_report.targets(make_labels(data, lspec), lspec)
    train = slice(max(task.fold.train[0], fspec.warmup), task.fold.train[1])
    horizons = sorted({*skill_report.IC_HORIZONS, lspec.signal_horizon})
    return x, y, train, slice(*task.fold.val), horizons


def _forecast_linear(task: Task, data, fspec, lspec):
    """The tuned ridge / logistic baseline, and the baselines without features (class
    prior, majority, trailing vol, EWMA, HAR) carried in its predictions."""
    t0 = time.perf_counter()
    x, y, train, val, horizons = _baseline_inputs(task, data, fspec, lspec)
    spacing = bar_spacing(data.index).total_seconds()
    fc = skill_report.baseline_forecasts(x, y, data, train, val, lspec.n_classes,
                                         lspec.vol_window, har_windows(spacing), horizons)
    f = {k: v for k, v in fc[LINEAR].items() if k != "chosen"}
    f["move"] = f[f"ret_{lspec.signal_horizon}"]
    f["har_log_vol"] = fc["HAR"]["log_vol"]
    f["ewma_log_vol"] = fc["EWMA"]["log_vol"]
    f["trailing_log_vol"] = fc[f"Trailing vol ({lspec.vol_window} bars)"]["log_vol"]
    f["prior_probs"] = fc["Class prior"]["probs"]
    f["majority"] = fc["Majority class"]["class"]
    chosen = {"penalty": fc[LINEAR]["chosen"], "ewma": fc["EWMA"]["chosen"],
              "har": fc["HAR"]["chosen"]}
    return f, {"train_seconds": time.perf_counter() - t0, "best_epoch": None, "steps": None,
               "baseline_settings": json.dumps(chosen, default=str)}, None


def _forecast_lightgbm(task: Task, data, fspec, lspec):
    """LightGBM with the trial's settings, its trees early-stopped on validation."""
    t0 = time.perf_counter()
    x, y, train, val, horizons = _baseline_inputs(task, data, fspec, lspec)
    f, info = lightgbm_forecasts(x, y, train, val, lspec.n_classes, horizons,
                                 {**task.model.params, **task.params}, seed=task.seed)
    f["move"] = f[f"ret_{lspec.signal_horizon}"]
    return f, {"train_seconds": time.perf_counter() - t0, "best_epoch": None, "steps": None,
               "baseline_settings": json.dumps({k: v[0] for k, v in info.items()})}, None


def run_trial(task: Task, spec: ResearchSpec, df) -> dict:
    """Train, select and test one trial. Returns ``{"row", "predictions", "checkpoint"}``;
    an exception inside becomes a row with ``status="failed"`` and its error. A multi-asset
    trial (``df``: every dataset's bars by name) goes to ``multi_trial.run_multi_trial``."""
    if task.model.multi_asset:
        from .multi_trial import run_multi_trial

        return run_multi_trial(task, spec, df)
    t0 = time.perf_counter()
    row = {**task.describe(), "host": socket.gethostname(), "pid": os.getpid()}
    try:
        fold = task.fold
        fspec, lspec = spec.feature_spec, spec.label_spec
        data = df.iloc[: fold.test[1]]  # nothing after the test block reaches the model
        if task.model.network:
            f, info, ckpt = _forecast_network(task, spec, data, fspec, lspec)
        elif task.model.layer == "lightgbm":
            f, info, ckpt = _forecast_lightgbm(task, data, fspec, lspec)
        else:
            f, info, ckpt = _forecast_linear(task, data, fspec, lspec)
        preds = evaluate(row, spec, df, fold, f)
        row.update(info)
        row["status"], row["error"] = "ok", ""
        out = {"predictions": preds, "checkpoint": ckpt}
    except Exception as exc:  # recorded, and the run goes on
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        out = {"predictions": None, "checkpoint": None}
    row["seconds"] = time.perf_counter() - t0
    out["row"] = row
    return out
