"""The memory probe: does a trained model forecast with a return from k bars back?

Three years of hourly bars from :func:`synthetic.planted_bars` (``r_t = ρ r_{t-k} + noise``,
ρ = 0.3); ``train_model`` fits on the first two (the last 15 % of them validation, purged)
and the third is the test year. The score is the Spearman IC of the model's next-bar return
forecast (the returns head's shortest horizon) with the realised next-bar log return on the
test year, and its fraction of the oracle's IC on the same bars (the oracle forecasts
``ρ r_{t+1-k}``, the best possible; its population IC is (6/π) arcsin(ρ/2) = 0.288).

    from s4_strategies.training.memory import probe
    probe("s4d", lag=256)                # {"ic": ..., "oracle_ic": ..., "fraction": ...}
    probe("linear", lag=256)             # OLS of the next return on the same features
"""

from __future__ import annotations

import time

import numpy as np

from ..features import FeatureSpec, LabelSpec, make_labels
from .skill import spearman_ic
from .splits import Split, date_split
from .synthetic import planted_bars

RHO = 0.3
BARS_PER_YEAR = 8760
LINEAR = "linear"


def planted_task(lag: int, seed: int = 0, years: int = 3, train_years: int = 2,
                 rho: float = RHO):
    """Hourly bars with the dependence at ``lag`` and the split: train and validation in
    the first ``train_years`` years, test the rest."""
    df = planted_bars(n=years * BARS_PER_YEAR, lag=lag, rho=rho, seed=seed)
    cut = train_years * BARS_PER_YEAR
    split = date_split(df.index, str(df.index[0]), str(df.index[cut - 1]),
                       purge=LabelSpec().max_horizon, test_from=str(df.index[cut]))
    return df, split


def next_returns(df) -> np.ndarray:
    """log(c_{t+1} / c_t) for every bar t (NaN at the last)."""
    logc = np.log(df["close"].to_numpy())
    return np.append(np.diff(logc), np.nan)  # (n,)


def oracle(df, lag: int, rho: float = RHO) -> np.ndarray:
    """The best forecast of the next return made at bar t: ρ r_{t+1-k}."""
    logc = np.log(df["close"].to_numpy())
    r = np.concatenate([[np.nan], np.diff(logc)])  # (n,) r_t
    f = np.full(len(r), np.nan)
    f[lag - 1:] = rho * r[: len(r) - lag + 1]  # f_t = ρ r_{t+1-lag}
    return f


def score(forecast: np.ndarray, df, split: Split, lag: int,
          period: tuple[int, int] | None = None) -> dict:
    """Test-year IC of a next-bar forecast (or over the bars ``period`` [t0, t1)), the
    oracle's IC and the fraction."""
    t0, t1 = period or split.test
    target = next_returns(df)[t0:t1]
    ic = spearman_ic(forecast[t0:t1], target)
    best = spearman_ic(oracle(df, lag)[t0:t1], target)
    return {"ic": float(ic), "oracle_ic": float(best), "fraction": float(ic / best)}


def linear_forecast(df, split: Split, fspec: FeatureSpec | None = None) -> np.ndarray:
    """OLS of the next-bar return on the normalised features, fitted on the training rows."""
    from .baselines import OLS
    from .fit import prepare_arrays

    fspec, lspec = fspec or FeatureSpec(), LabelSpec()
    x = prepare_arrays(df, fspec, lspec, split)[0]
    y = make_labels(df, lspec)["fwd_1"].to_numpy()
    rows = np.arange(max(split.train[0], fspec.warmup), split.train[1])
    rows = rows[np.isfinite(y[rows])]
    return OLS().fit(x[rows], y[rows]).predict(x)


def network_forecast(result, df) -> np.ndarray:
    """The trained model's next-bar return forecast (shortest horizon) for every bar."""
    f = result.predictor.forecasts(df)
    horizons = list(result.predictor.label_spec.horizons)
    return f["returns"][:, int(np.argmin(horizons))]


def probe(kind: str, lag: int, seed: int = 0, cfg=None, fspec: FeatureSpec | None = None,
          years: int = 3) -> dict:
    """Train ``kind`` (a ``TrainConfig.layer``, or "linear") with the default recipe (or
    ``cfg``, whose layer and seed are set here) on the planted-lag bars; its test scores,
    the seconds it took and, for networks, the epoch chosen and the steps run."""
    from dataclasses import replace

    from .fit import TrainConfig, train_model

    df, split = planted_task(lag, seed, years)
    t = time.perf_counter()
    info: dict = {"kind": kind, "lag": lag, "seed": seed}
    if kind == LINEAR:
        forecast = linear_forecast(df, split, fspec)
    else:
        cfg = replace(cfg or TrainConfig(progress=False), layer=kind, seed=seed)
        if kind == "transformer" and "window" not in cfg.layer_options:
            # as `s4trade train`: attend to half the training window
            cfg = replace(cfg, layer_options={**cfg.layer_options, "window": cfg.seq_len // 2})
        res = train_model(df, split, cfg, fspec or FeatureSpec(), LabelSpec(), decide=False)
        forecast = network_forecast(res, df)
        info.update(best_epoch=res.best_epoch, steps=res.meta["recipe"]["steps_taken"],
                    context=cfg.layer_options.get("window"))
    info["seconds"] = time.perf_counter() - t
    return {**info, **score(forecast, df, split, lag)}


__all__ = ["RHO", "planted_task", "next_returns", "oracle", "score", "linear_forecast",
           "network_forecast", "probe"]
