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

import hashlib
import json
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...features import bar_spacing, make_labels
from .. import skill, skill_report
from ..decision import count_trades, net_returns, select_rule
from ..funding import funding_per_bar
from ..tuned_baselines import LINEAR, lightgbm_forecasts
from ..vol_baselines import har_windows
from .overfit import sharpe
from .spec import ModelSpec, ResearchSpec
from .walkforward import Fold


@dataclass(frozen=True)
class Task:
    """What identifies a trial (``trial_id`` hashes it with the spec's fingerprint)."""

    dataset: str
    fold: Fold
    model: ModelSpec
    params: dict = field(default_factory=dict)
    seed: int = 0
    phase: str = "search"  # "search": Optuna's proposals; "seed": the chosen params, more seeds
    fingerprint: str = ""
    index: int | None = None  # a proposal's place in its Optuna study (None: no search)
    #: a multi-asset trial's ``(dataset, fold)`` pairs, fold ``fold.number`` of every dataset
    #: (``dataset`` is then the group's name, ``multi_trial.group_name``); not in the id
    folds: tuple = ()

    @property
    def trial_id(self) -> str:
        parts = [self.dataset, self.fold.number, self.model.name, self.params, self.seed,
                 self.fingerprint]
        if self.index is not None:
            parts.append(self.index)
        key = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"trial_id": self.trial_id, "dataset": self.dataset, "fold": self.fold.number,
                "model": self.model.name, "layer": self.model.layer, "seed": self.seed,
                "phase": self.phase, "params": json.dumps(self.params, sort_keys=True),
                "index": -1 if self.index is None else int(self.index)}


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


def _predictions(f: dict, index, rows: slice, n_classes: int) -> pd.DataFrame:
    cols = {"bar": np.arange(rows.start, rows.stop)}
    for c in range(n_classes):
        cols[f"p{c}"] = f["probs"][rows, c]
    for key in ("ret_1", "ret_5", "move", "log_vol", "har_log_vol", "ewma_log_vol",
                "trailing_log_vol", "majority"):
        if key in f:
            cols[key] = np.asarray(f[key], dtype=np.float64)[rows]
    if "prior_probs" in f:
        for c in range(n_classes):
            cols[f"prior_p{c}"] = f["prior_probs"][rows, c]
    return pd.DataFrame(cols, index=index[rows])


def _score(f: dict, truth: dict, rows: slice) -> dict:
    p = f["probs"][rows]
    out = {"accuracy": skill.accuracy(np.argmax(p, axis=1).astype(float), truth["signal"][rows]),
           "log_loss": skill.log_loss(p, truth["signal"][rows]),
           "vol_corr": skill.corr(f["log_vol"][rows], truth["log_vol"][rows])}
    for h in skill_report.IC_HORIZONS:
        out[f"ic_{h}"] = skill.spearman_ic(f[f"ret_{h}"][rows], truth[f"fwd_{h}"][rows])
    return out


def evaluate(row: dict, spec: ResearchSpec, df: pd.DataFrame, fold: Fold, f: dict
             ) -> pd.DataFrame:
    """Score forecasts ``f`` (every bar of ``df.iloc[:fold.test[1]]``) on the fold: the band
    chosen on validation, traded over the test block from flat; the validation and test
    scores go into ``row``. Returns the test-bar predictions."""
    from analyzers.metrics import infer_periods_per_year

    lspec = spec.label_spec
    data = df.iloc[: fold.test[1]]
    truth = skill_report.targets(make_labels(df, lspec), lspec)  # scoring only
    truth = {k: v[: fold.test[1]] for k, v in truth.items()}
    val, test = slice(*fold.val), slice(*fold.test)
    close = data["close"].to_numpy()
    ppy = infer_periods_per_year(df.index)
    funding = funding_per_bar(data.index, spec.funding_rate)
    rule, table = select_rule(f["move"][val], close[val], spec.fee, funding=funding[val],
                              periods_per_year=ppy, min_trades=spec.min_trades)
    pos = rule.positions(f["move"][test])  # (n_test,)
    net = net_returns(close[test], pos, spec.fee, funding[test])[0]
    preds = _predictions(f, data.index, test, lspec.n_classes)
    preds["position"] = pos
    preds["net_return"] = net
    v = _score(f, truth, val)
    row.update({f"val_{k}": x for k, x in v.items()})
    chosen = table.get("chosen")
    row["val_net_sharpe"] = chosen["sharpe"] if chosen else float("nan")
    row.update({f"test_{k}": x for k, x in _score(f, truth, test).items()})
    row.update({"test_sharpe_bar": sharpe(net),
                "test_net_sharpe": sharpe(net) * np.sqrt(ppy),
                "band_enter": rule.enter, "band_exit": rule.exit,
                "test_trades": count_trades(pos)})
    return preds


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
