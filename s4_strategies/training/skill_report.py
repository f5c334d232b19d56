"""The skill table: does a forecast know anything, before any trading rule touches it?

Every row is scored on the same test bars against the same targets (``features.labels``):

    accuracy      share of bars whose most likely signal class is the true one
                  (vs the majority class of the training period)
    log-loss      mean −log p(true class) (vs the training class prior)
    IC 1 / IC 5   Spearman correlation of the predicted 1-bar / 5-bar log return with the
                  realised one (mean over seeds), and its 95 % interval by the two-level
                  bootstrap (seeds × stationary blocks of test bars, blocks at least twice
                  the label's overlap: ``inference.paired_bootstrap`` with no second model)
    vol corr/MSE  Pearson correlation and mean squared error of the predicted log realised
                  volatility of the next ``vol_horizon`` bars

Cells are means over seeds (± their sd). Which rows are statistically indistinguishable from
the best, and how the networks compare with the linear baseline, is ``verdicts``' part: per
bar losses (:func:`bar_losses`) into the Model Confidence Set, SPA/StepM and paired
bootstraps. Baselines (``tuned_baselines``): majority class, class prior, ridge / logistic
regression and LightGBM tuned on validation, trailing volatility, EWMA and HAR.
"""

from __future__ import annotations

import numpy as np

from . import inference, skill
from .tuned_baselines import baseline_forecasts  # noqa: F401 (the table's baselines)

IC_HORIZONS = (1, 5)
N_BOOT = 500


def targets(lab, lspec) -> dict[str, np.ndarray]:
    """What is scored: the signal class, forward log returns at 1 and 5 bars and at the
    signal horizon, log vol."""
    out = {"signal": lab["signal"].to_numpy(), "log_vol": lab["log_vol"].to_numpy()}
    for h in sorted({*IC_HORIZONS, lspec.signal_horizon}):
        out[f"fwd_{h}"] = lab[f"fwd_{h}"].to_numpy()
    return out


def model_forecast(f: dict, horizons) -> dict[str, np.ndarray]:
    """``Predictor.forecasts`` output to the scored quantities."""
    out = {"probs": f["probs"], "log_vol": f["log_vol"]}
    for h in IC_HORIZONS:
        out[f"ret_{h}"] = f["returns"][:, list(horizons).index(h)]
    return out


def bar_log_loss(probs: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Per-bar ``−log p(true class)`` (clipped as ``skill.log_loss``); NaN where missing."""
    p = np.asarray(probs, dtype=np.float64)  # (n, C)
    c = np.asarray(cls, dtype=np.float64)  # (n,)
    ok = np.isfinite(c) & np.isfinite(p).all(axis=1)
    out = np.full(len(c), np.nan)
    picked = p[np.flatnonzero(ok), c[ok].astype(np.int64)]
    out[ok] = -np.log(np.clip(picked, skill.CLIP_EPS, 1.0))
    return out


def bar_losses(forecasts: list[dict], y: dict, test: slice) -> dict[str, np.ndarray]:
    """Per-bar losses over the ``test`` bars, seed by seed: ``{"ic_<h>": (S, T) −z z IC
    terms, "log_loss": (S, T), "vol": (S, T) squared log-vol errors}`` for what the
    forecasts hold. Their means over bars are −IC, the log-loss and the vol MSE."""
    out: dict[str, list] = {}
    truth = {k: v[test] for k, v in y.items()}
    for f in forecasts:
        for h in IC_HORIZONS:
            if f"ret_{h}" in f:
                out.setdefault(f"ic_{h}", []).append(
                    inference.ic_losses(f[f"ret_{h}"][test], truth[f"fwd_{h}"]))
        if "probs" in f:
            out.setdefault("log_loss", []).append(bar_log_loss(f["probs"][test],
                                                               truth["signal"]))
        if "log_vol" in f:
            out.setdefault("vol", []).append((f["log_vol"][test] - truth["log_vol"]) ** 2)
    return {k: np.stack(v) for k, v in out.items()}


def score(name: str, forecasts: list[dict], y: dict, test: slice, seed: int = 0,
          reps: int | None = None) -> dict:
    """One row: every metric per seed (``forecasts`` one dict per seed), with mean and sd,
    and the two-level bootstrap interval (``reps`` replicates, default ``N_BOOT``) of each
    seed-mean IC."""
    per_seed: dict[str, list] = {}

    def add(key, value):
        per_seed.setdefault(key, []).append(value)

    truth = {k: v[test] for k, v in y.items()}
    for f in forecasts:
        if "probs" in f:
            p = f["probs"][test]
            add("accuracy", skill.accuracy(np.argmax(p, axis=1).astype(float), truth["signal"]))
            add("log_loss", skill.log_loss(p, truth["signal"]))
        elif "class" in f:  # a point forecast of the class: accuracy only
            add("accuracy", skill.accuracy(f["class"][test], truth["signal"]))
        for h in IC_HORIZONS:
            if f"ret_{h}" in f:
                add(f"ic_{h}", skill.spearman_ic(f[f"ret_{h}"][test], truth[f"fwd_{h}"]))
        if "log_vol" in f:
            v = f["log_vol"][test]
            add("vol_corr", skill.corr(v, truth["log_vol"]))
            add("vol_mse", skill.mse(v, truth["log_vol"]))
    row = {"model": name, "seeds": len(forecasts), "per_seed": per_seed}
    for key, values in per_seed.items():
        s = skill.seed_summary(values)
        row[key], row[f"{key}_sd"] = s["mean"], s["sd"]
    for h in IC_HORIZONS:
        if f"ic_{h}" in per_seed:
            preds = np.stack([f[f"ret_{h}"][test] for f in forecasts])  # (S, T)
            try:
                ci = inference.paired_bootstrap("ic", preds, None, truth[f"fwd_{h}"],
                                                overlap=h, reps=reps or N_BOOT, seed=seed)
                row[f"ic_{h}_ci"] = ci["ci"]
            except ValueError:  # fewer than 20 complete bars: no interval
                row[f"ic_{h}_ci"] = [float("nan"), float("nan")]
    return row
