"""The skill table: does a forecast know anything, before any trading rule touches it?

Every row is scored on the same test bars against the same targets (``features.labels``):

    accuracy      share of bars whose most likely signal class is the true one
                  (vs the majority class of the training period)
    log-loss      mean −log p(true class) (vs the training class prior)
    IC 1 / IC 5   Spearman correlation of the predicted 1-bar / 5-bar log return with the
                  realised one; 95 % moving-block bootstrap interval of the mean over seeds
    vol corr/MSE  Pearson correlation and mean squared error of the predicted log realised
                  volatility of the next ``vol_horizon`` bars
    DM vs HAR     Diebold–Mariano statistic of the squared log-vol errors against HAR
                  (negative: the row forecasts volatility better; h = vol_horizon, since
                  the targets of neighbouring bars overlap), and its p-value

Baselines fitted on the training period only: majority class, class prior, multinomial
logistic regression of the class and OLS of the returns and log volatility on the model's
own normalised features, trailing realised volatility, and HAR.
"""

from __future__ import annotations

import numpy as np

from . import skill
from .baselines import HAR, OLS, ClassPrior, MajorityClass, MultinomialLogistic, TrailingVol

IC_HORIZONS = (1, 5)
N_BOOT = 300


def targets(lab, lspec) -> dict[str, np.ndarray]:
    """What is scored: the signal class, forward log returns at 1 and 5 bars, log vol."""
    out = {"signal": lab["signal"].to_numpy(), "log_vol": lab["log_vol"].to_numpy()}
    for h in IC_HORIZONS:
        out[f"fwd_{h}"] = lab[f"fwd_{h}"].to_numpy()
    return out


def model_forecast(f: dict, horizons) -> dict[str, np.ndarray]:
    """``Predictor.forecasts`` output to the scored quantities."""
    out = {"probs": f["probs"], "log_vol": f["log_vol"]}
    for h in IC_HORIZONS:
        out[f"ret_{h}"] = f["returns"][:, list(horizons).index(h)]
    return out


def baseline_forecasts(x: np.ndarray, y: dict, r1: np.ndarray, train: slice, n_classes: int,
                       vol_window: int, har_windows: tuple[int, ...] = (1, 24, 168)
                       ) -> dict[str, dict]:
    """Forecasts of every baseline for every bar, fitted on rows ``train`` only.
    x (n, F) normalised features, r1 (n,) one-bar log returns up to each bar."""
    n = len(x)
    cls = y["signal"][train]
    prior = ClassPrior().fit(cls, n_classes)
    out = {
        "Majority class": {"class": MajorityClass().fit(cls, n_classes).predict_class(n)},
        "Class prior": {"probs": prior.predict_proba(n)},
    }
    logit = MultinomialLogistic().fit(x[train], cls, n_classes)
    rets = np.stack([y[f"fwd_{h}"] for h in IC_HORIZONS], axis=1)  # (n, 2)
    ols = OLS().fit(x[train], rets[train])
    vol_ols = OLS().fit(x[train], y["log_vol"][train])
    linear = {"probs": logit.predict_proba(x), "log_vol": vol_ols.predict(x)}
    pred = ols.predict(x)  # (n, 2)
    for i, h in enumerate(IC_HORIZONS):
        linear[f"ret_{h}"] = pred[:, i]
    out["Linear (logistic / OLS)"] = linear
    out[f"Trailing vol ({vol_window} bars)"] = {"log_vol": TrailingVol(vol_window).predict(r1)}
    har = HAR(har_windows).fit(r1, y["log_vol"], rows=(train.start, train.stop))
    out["HAR"] = {"log_vol": har.predict(r1)}
    return out


def _mean_ic(*arrays) -> float:
    *preds, target = arrays
    return float(np.nanmean([skill.spearman_ic(p, target) for p in preds]))


def score(name: str, forecasts: list[dict], y: dict, test: slice, har_log_vol: np.ndarray,
          vol_horizon: int, seed: int = 0) -> dict:
    """One row: every metric per seed (``forecasts`` one dict per seed), with mean and sd."""
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
            if har_log_vol is not None:
                dm = skill.diebold_mariano((v - truth["log_vol"]) ** 2,
                                           (har_log_vol[test] - truth["log_vol"]) ** 2,
                                           h=vol_horizon)
                add("dm_vs_har", dm["stat"])
                add("dm_p", dm["p_value"])
    row = {"model": name, "seeds": len(forecasts), "per_seed": per_seed}
    for key, values in per_seed.items():
        s = skill.seed_summary(values)
        row[key], row[f"{key}_sd"] = s["mean"], s["sd"]
    for h in IC_HORIZONS:
        if f"ic_{h}" in per_seed:
            preds = [f[f"ret_{h}"][test] for f in forecasts]
            ok = np.isfinite(truth[f"fwd_{h}"]) & np.all([np.isfinite(q) for q in preds], axis=0)
            arrays = [q[ok] for q in preds] + [truth[f"fwd_{h}"][ok]]
            row[f"ic_{h}_ci"] = list(skill.block_bootstrap_ci(_mean_ic, *arrays, n=N_BOOT,
                                                              seed=seed))
    return row


def paired(rows: dict[str, dict], against: str, names, keys=("log_loss", "ic_5")) -> dict:
    """Paired differences (row − ``against``) over seeds for the rows ``names``: seed by
    seed where both have seeds, against the one value of a fitted baseline."""
    ref = rows.get(against)
    out = {}
    if ref is None:
        return out
    for name in names:
        row = rows[name]
        if name == against:
            continue
        d = {}
        for k in keys:
            a, b = row["per_seed"].get(k), ref["per_seed"].get(k)
            if not a or not b:
                continue
            b = b[0] if len(b) == 1 else b[: len(a)]
            d[k] = skill.paired_difference(a[: len(b)] if np.ndim(b) else a, b)
        if d:
            out[name] = d
    return out
