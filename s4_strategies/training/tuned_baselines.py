"""Baselines with a tuning budget, on the networks' own normalised features: a network is
searched and early-stopped on the validation bars, so its rivals are tuned there too.

- **Linear** (scikit-learn): ridge regression of each forward return and of the log
  volatility, and multinomial logistic regression of the signal class, on features
  standardised by training statistics. The penalty of each target is chosen on the
  validation rows from ``PENALTY_GRID`` (ridge ``α = n λ`` for the mean squared error,
  logistic ``C = 1 / (n λ)`` for the log-loss, ``n`` training rows), then the model is
  fitted on the training rows with it.
- **LightGBM**: gradient-boosted trees for the same targets (multiclass log-loss, L2
  regressions), the number of trees early-stopped on the validation rows (at most
  ``n_estimators``, patience ``EARLY_STOP``). Its other settings come from a research
  spec's search space (the same Optuna budget as the networks) or, in ``s4trade compare``,
  the best of ``LGBM_GRID`` on validation.
- Volatility: trailing realised volatility, EWMA and HAR (``vol_baselines``).

Rows where a feature is missing (the warm-up) get no forecast (NaN).
"""

from __future__ import annotations

import copy

import numpy as np

from .baselines import ClassPrior, MajorityClass, TrailingVol
from .vol_baselines import EWMA, HAR, log_returns

PENALTY_GRID = tuple(10.0 ** k for k in range(-5, 2))  # λ per training row: 1e-5 .. 10
LGBM_FIXED = {"n_estimators": 400, "subsample": 0.8, "subsample_freq": 1,
              "colsample_bytree": 0.8, "verbose": -1, "n_jobs": 1}
#: what a research spec may set or search for the lightgbm layer
LGBM_PARAMS = frozenset({"num_leaves", "learning_rate", "min_child_samples", "reg_lambda",
                         "max_depth", "n_estimators", "subsample", "colsample_bytree"})
LGBM_GRID = ({"num_leaves": 7, "learning_rate": 0.05, "min_child_samples": 50},
             {"num_leaves": 15, "learning_rate": 0.05, "min_child_samples": 50},
             {"num_leaves": 31, "learning_rate": 0.05, "min_child_samples": 100},
             {"num_leaves": 7, "learning_rate": 0.02, "min_child_samples": 100})
EARLY_STOP = 40
LINEAR = "Linear (ridge / logistic, tuned)"
LIGHTGBM = "LightGBM (tuned)"


def _rows(x: np.ndarray, target: np.ndarray, part: slice) -> np.ndarray:
    """Positions of ``part`` where the features and the target are finite."""
    idx = np.arange(part.start, part.stop)
    ok = np.isfinite(x[idx]).all(axis=1) & np.isfinite(target[idx])
    return idx[ok]


def _log_loss(p: np.ndarray, c: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(c)), c.astype(int)], 1e-12, 1.0))))


def _full(x: np.ndarray, predict, width: int | None = None) -> np.ndarray:
    ok = np.isfinite(x).all(axis=1)  # (n,)
    out = np.full((len(x), width) if width else len(x), np.nan)
    if ok.any():
        out[ok] = predict(x[ok])
    return out


def _classes(probs: np.ndarray, seen, n_classes: int) -> np.ndarray:
    """Probabilities of the classes a model saw, placed in the ``n_classes`` columns."""
    out = np.zeros((len(probs), n_classes))
    out[:, np.asarray(seen, dtype=int)] = probs
    return out


def tuned_linear(x, y: dict, train: slice, val: slice, n_classes: int,
                 horizons) -> tuple[dict, dict]:
    """Ridge / logistic forecasts with each penalty chosen on ``val`` (module docstring).
    ``y``: ``skill_report.targets`` (``signal``, ``fwd_<h>``, ``log_vol``). Returns the
    forecast dict (``probs``, ``ret_<h>`` for ``horizons``, ``log_vol``) and the chosen λ's."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)  # (n, F)
    fc, chosen = {}, {}
    targets = [("probs", y["signal"])] + [(f"ret_{h}", y[f"fwd_{h}"]) for h in horizons] + \
        [("log_vol", y["log_vol"])]
    for key, target in targets:
        tr, va = _rows(x, target, train), _rows(x, target, val)
        if len(tr) < 10 or len(va) < 5:
            raise ValueError(f"{key}: {len(tr)} training / {len(va)} validation rows with "
                             "features and a target: too few to tune a penalty")
        scale = StandardScaler().fit(x[tr])
        xt, xv = scale.transform(x[tr]), scale.transform(x[va])
        best = None
        logit = LogisticRegression(max_iter=300, warm_start=True)  # strong to weak penalty
        for lam in sorted(PENALTY_GRID, reverse=True):
            if key == "probs":
                m = logit.set_params(C=1.0 / (lam * len(tr))).fit(xt, target[tr].astype(int))
                loss = _log_loss(_classes(m.predict_proba(xv), m.classes_, n_classes),
                                 target[va])
                m = copy.deepcopy(m)
            else:
                m = Ridge(alpha=lam * len(tr)).fit(xt, target[tr])
                loss = float(np.mean((m.predict(xv) - target[va]) ** 2))
            if best is None or loss < best[0]:
                best = (loss, lam, m)
        _, lam, m = best
        chosen[key] = lam
        if key == "probs":
            fc[key] = _full(x, lambda z, m=m, s=scale: _classes(
                m.predict_proba(s.transform(z)), m.classes_, n_classes), n_classes)
        else:
            fc[key] = _full(x, lambda z, m=m, s=scale: m.predict(s.transform(z)))
    return fc, chosen


def lightgbm_forecasts(x, y: dict, train: slice, val: slice, n_classes: int, horizons,
                       params: dict | None = None, seed: int = 0) -> tuple[dict, dict]:
    """LightGBM forecasts with ``params`` (``LGBM_PARAMS``) over ``LGBM_FIXED``, trees
    early-stopped on ``val``. Returns the forecast dict and ``{target: (trees, val loss)}``."""
    import lightgbm as lgb

    unknown = set(params or {}) - LGBM_PARAMS
    if unknown:
        raise ValueError(f"lightgbm: unknown parameter(s) {sorted(unknown)}; allowed: "
                         f"{sorted(LGBM_PARAMS)}")
    x = np.asarray(x, dtype=np.float64)
    cfg = {**LGBM_FIXED, **(params or {}), "random_state": seed}
    fc, info = {}, {}
    targets = [("probs", y["signal"])] + [(f"ret_{h}", y[f"fwd_{h}"]) for h in horizons] + \
        [("log_vol", y["log_vol"])]
    stop = [lgb.early_stopping(EARLY_STOP, verbose=False)]
    for key, target in targets:
        tr, va = _rows(x, target, train), _rows(x, target, val)
        if len(tr) < 10 or len(va) < 5:
            raise ValueError(f"{key}: {len(tr)} training / {len(va)} validation rows: too few")
        if key == "probs":
            m = lgb.LGBMClassifier(objective="multiclass", **cfg)
            m.fit(x[tr], target[tr].astype(int), eval_X=(x[va],),
                  eval_y=(target[va].astype(int),), callbacks=stop)
            fc[key] = _full(x, lambda z, m=m: _classes(m.predict_proba(z), m.classes_,
                                                        n_classes), n_classes)
            loss = _log_loss(fc[key][va], target[va])
        else:
            m = lgb.LGBMRegressor(objective="regression", **cfg)
            m.fit(x[tr], target[tr], eval_X=(x[va],), eval_y=(target[va],), callbacks=stop)
            fc[key] = _full(x, m.predict)
            loss = float(np.mean((fc[key][va] - target[va]) ** 2))
        info[key] = (int(m.best_iteration_ or cfg["n_estimators"]), loss)
    return fc, info


def lightgbm_grid(x, y: dict, train: slice, val: slice, n_classes: int, horizons,
                  grid=LGBM_GRID, seed: int = 0) -> tuple[dict, dict]:
    """Per target, the ``grid`` setting with the least validation loss (``s4trade
    compare``'s LightGBM: the networks there are not searched, so a small grid)."""
    best: dict = {}
    for params in grid:
        fc, info = lightgbm_forecasts(x, y, train, val, n_classes, horizons, params, seed)
        for key, (trees, loss) in info.items():
            if key not in best or loss < best[key][0]:
                best[key] = (loss, fc[key], {**params, "trees": trees})
    return ({k: v[1] for k, v in best.items()}, {k: v[2] for k, v in best.items()})


def baseline_forecasts(x, y: dict, bars, train: slice, val: slice, n_classes: int,
                       vol_window: int, windows: tuple[int, ...], horizons,
                       lightgbm: bool = False, lgbm_grid=LGBM_GRID) -> dict[str, dict]:
    """Forecasts of every baseline for every bar. ``x`` (n, F) normalised features,
    ``bars`` the OHLC frame (volatility baselines), ``train``/``val`` row slices (fits on
    ``train``, tuning on ``val``; never the test rows), ``windows`` HAR's lags, ``horizons``
    the forward returns forecast. ``lightgbm``: add the LightGBM row, tuned over
    ``lgbm_grid``."""
    n = len(x)
    cls = y["signal"][train]
    prior = ClassPrior().fit(cls, n_classes)
    out = {"Majority class": {"class": MajorityClass().fit(cls, n_classes).predict_class(n)},
           "Class prior": {"probs": prior.predict_proba(n)}}
    out[LINEAR], chosen = tuned_linear(x, y, train, val, n_classes, horizons)
    out[LINEAR]["chosen"] = chosen
    if lightgbm:
        out[LIGHTGBM], settings = lightgbm_grid(x, y, train, val, n_classes, horizons,
                                                lgbm_grid)
        out[LIGHTGBM]["chosen"] = settings
    r = log_returns(bars["close"])
    out[f"Trailing vol ({vol_window} bars)"] = {
        "log_vol": TrailingVol(vol_window).predict(r)}
    tune = slice(train.start, val.stop)
    ewma = EWMA().fit(r, y["log_vol"], train, tune)
    out["EWMA"] = {"log_vol": ewma.predict(r), "chosen": {"lambda": ewma.lam_}}
    har = HAR(windows).fit(bars, y["log_vol"], rows=train)
    out["HAR"] = {"log_vol": har.predict(bars),
                  "chosen": {"weights": dict(zip(windows, har.coef_.round(3).tolist()))}}
    return out


__all__ = ["LGBM_GRID", "LGBM_PARAMS", "LIGHTGBM", "LINEAR", "PENALTY_GRID",
           "baseline_forecasts", "lightgbm_forecasts", "lightgbm_grid", "tuned_linear"]
