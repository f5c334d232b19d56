"""The tick lean: an S4D trained on microstructure features of a tick sample, judged by an
expanding walk-forward inside the sample, and the gate that decides whether the market
maker leans on it.

    result = train_tick_lean(load_ticks("binance-usdm:BTCUSDT"), TickLeanConfig())
    print(skill_table(result.folds, result.pooled)); result.has_skill
    save_tick_lean("runs/tick_lean.pt", result.predictor)

Data: the grid features and labels of ``features.tick`` (one row per ``grid_ms``; the label
is the mid log return over the next ``horizon_s`` seconds). Rows before ``spec.warmup``
are neither trained nor scored.

Walk-forward (``splits.walk_forward_splits``): the last ``1 - first_test`` of the rows are
cut into ``n_folds`` consecutive test blocks; fold k trains on everything before its block:
train ``[0, v0 - purge)``, validation ``[v0, t0 - purge)``, test ``[t0, t1)``, with
``purge = horizon steps`` so no training or validation label reads a mid the test block is
scored on. Test blocks do not overlap. Validation picks the epoch (early stopping on the
validation loss) and the output slope (least squares through 0 of ``y`` on the model's
prediction, floored at 0); the test blocks are never used to choose anything.

Model: ``S4TradingModel`` with S4D layers (``TrainConfig``), trained by the project's recipe
(``recipe.fit_loop``: AdamW, one-cycle, random windows with a burn-in) on two heads: the
3-class sign of the move (down / unchanged / up, cross-entropy) and the move standardised
by its training standard deviation (smooth L1), the losses of ``fit``. Its prediction over
the test block is the recurrent (causal) view run from the first row, so the state at a test
row has seen everything before it and nothing after.

Baseline: ridge (``baselines.OLS``, ``ridge`` on unit-scale features) of the standardised
move on the same features at the same row, fitted on train + validation.

The checkpoint is a refit of the same recipe on the whole sample (validation: its last
``val_fraction`` of labelled rows); its skill is the walk-forward's, and ``gate`` carries the
verdict (``tick_skill.RULE``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..features.tick import (
    TickFeatureSpec,
    grid_aggregates,
    grid_features,
    grid_steps,
    step_last_event,
    tick_labels,
)
from ..model.tick_lean import TickLeanPredictor
from . import tick_skill
from .baselines import OLS
from .fit import TrainConfig, _batch, _losses, _total, seed_everything, validation_losses
from .recipe import fit_loop, window_draw
from .splits import Split, walk_forward_splits


def _model_config() -> TrainConfig:
    """One S4D layer, strong dropout and weight decay, validation every 10 steps: chosen
    over a 2-layer, lightly regularised model (whose validation loss rose after 50 steps)
    by the mean best validation loss over the four USD-M folds' validation blocks. That
    selection was made after the 2-layer recipe's test scores had been seen (also reported:
    no skill either way); the test blocks were not part of the criterion. No input noise:
    the published tick table was measured without it."""
    return TrainConfig(layer="s4d", d_model=16, d_state=16, n_layers=1, dropout=0.3,
                       epochs=20, steps_per_epoch=10, batch_size=8, seq_len=300, burn_in=100,
                       lr=1e-3, ssm_lr=1e-3, weight_decay=0.2, patience=5, criterion="total",
                       loss_weights={"signal": 1.0, "returns": 1.0, "vol": 0.0},
                       input_noise=0.0, device="cpu", progress=False)


@dataclass
class TickLeanConfig:
    """The walk-forward, the baseline and the model recipe (fixed before any test block is
    seen)."""

    n_folds: int = 4
    first_test: float = 0.4  # share of rows before the first test block
    val_fraction: float = 0.2  # of the rows before each test block
    ridge: float = 1e-2
    boot_block_s: float = 5.0  # moving-block length of the bootstrap, seconds
    n_boot: int = 500
    train: TrainConfig = field(default_factory=_model_config)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TickLeanResult:
    """Per-fold and pooled test scores, the verdict, and the refitted predictor."""

    folds: list[dict]
    pooled: dict
    has_skill: bool
    rule: str
    predictor: TickLeanPredictor
    splits: list[Split]
    meta: dict

    def table(self) -> str:
        return tick_skill.skill_table(self.folds, self.pooled)


@dataclass
class TickData:
    """Grid arrays of one sample: features x (L, F), label y (L,), class (L,), the EMA lean
    (L,), trainable rows ``valid`` (L,) and the grid index."""

    x: np.ndarray
    y: np.ndarray
    cls: np.ndarray
    ema: np.ndarray
    valid: np.ndarray
    index: pd.DatetimeIndex


def prepare(events: pd.DataFrame, spec: TickFeatureSpec) -> TickData:
    """Features, labels and the EMA lean on the grid of ``events``."""
    agg = grid_aggregates(events, spec)
    x = grid_features(agg, spec).to_numpy()
    lab = tick_labels(agg, spec)
    t_ns = events.index.as_unit("ns").asi8
    mid = events["mid"].to_numpy(float)
    drift = tick_skill.ema_slope_lean((t_ns - t_ns[0]) / 1e9, mid)  # price per second
    _, k = grid_steps(t_ns, spec.grid_ns)
    last = step_last_event(k, len(agg))
    ema = drift[last] * spec.horizon_s / mid[last]  # log return over the horizon, ~mu·H/mid
    valid = np.arange(len(x)) >= spec.warmup
    return TickData(x, lab["y"].to_numpy(), lab["cls"].to_numpy(), ema, valid, agg.index)


def fit_model(d: TickData, split: Split, spec: TickFeatureSpec, cfg: TrainConfig,
              meta: dict | None = None) -> TickLeanPredictor:
    """Train on ``split.train``, select the epoch and the output slope on ``split.val``."""
    import torch

    from ..ssm import build_model

    seed_everything(cfg.seed)
    tr = slice(*split.train)
    scale = float(np.nanstd(d.y[tr][d.valid[tr]]))
    scale = scale if scale > 0 else 1.0
    y = {"signal": d.cls, "returns": (d.y / scale)[:, None],  # (L, 1)
         "vol": np.full(len(d.y), np.nan)}
    dtype, device = torch.float32, torch.device("cpu")
    model = build_model("s4d", input_dim=d.x.shape[1], d_model=cfg.d_model,
                        d_state=cfg.state_size, n_layers=cfg.n_layers, dropout=cfg.dropout,
                        n_classes=3, horizons=(spec.horizon_steps,), **cfg.layer_options)
    draw = window_draw(cfg, split.train, spec.warmup, lambda starts, n: _batch(
        d.x, y, starts, n, cfg.burn_in, d.valid, device, dtype))
    loop = fit_loop(model, cfg, draw, _losses, lambda p: _total(p, cfg.loss_weights),
                    lambda: validation_losses(model, d.x, y, d.valid, split.val, cfg, device,
                                              dtype), "tick s4d")
    info = {**(meta or {}), "train_config": cfg.to_dict(), "best_epoch": loop.best_epoch,
            "recipe": loop.recipe(f"validation {cfg.criterion} loss"),
            "periods": split.dates(d.index), "train_seconds": loop.seconds}
    pred = TickLeanPredictor(model.eval(), spec, scale, 1.0, meta=info)
    head = pred.predict_features(d.x)  # (L,) at slope 1
    va = slice(*split.val)
    p, t = head[va][d.valid[va]], d.y[va][d.valid[va]]
    ok = np.isfinite(p) & np.isfinite(t)
    den = float(p[ok] @ p[ok])
    pred.slope = max(0.0, float(p[ok] @ t[ok]) / den) if den > 0 else 0.0
    pred.meta["val_slope"] = pred.slope
    return pred


def ridge_forecast(d: TickData, fit_rows: tuple[int, int], ridge: float) -> np.ndarray:
    """Ridge of y on the features at the same row, fitted on ``fit_rows`` (valid rows)."""
    lo, hi = fit_rows
    rows = np.arange(lo, hi)[d.valid[lo:hi]]
    scale = float(np.nanstd(d.y[rows])) or 1.0
    return OLS(ridge).fit(d.x[rows], d.y[rows] / scale).predict(d.x) * scale  # (L,)


def folds_for(d: TickData, spec: TickFeatureSpec, cfg: TickLeanConfig) -> list[Split]:
    """The expanding walk-forward splits (purge = the label horizon in steps)."""
    n = len(d.y)
    test_bars = (n - int(round(cfg.first_test * n))) // cfg.n_folds
    return list(walk_forward_splits(d.index, n_folds=cfg.n_folds, test_bars=test_bars,
                                    purge=spec.horizon_steps, val_fraction=cfg.val_fraction,
                                    min_train=spec.warmup + 2 * cfg.train.seq_len))


def final_split(n: int, spec: TickFeatureSpec, val_fraction: float) -> Split:
    """The refit: train then validation over every labelled row, purged."""
    h = spec.horizon_steps
    n_lab = n - h
    n_val = max(int(n_lab * val_fraction), h)
    return Split(train=(0, n_lab - n_val - h), val=(n_lab - n_val, n_lab))


def train_tick_lean(events: pd.DataFrame, cfg: TickLeanConfig | None = None,
                    spec: TickFeatureSpec | None = None, data_name: str = "ticks",
                    log=None) -> TickLeanResult:
    """Walk-forward skill of the tick S4D and a refit on the whole sample (module doc)."""
    cfg = cfg or TickLeanConfig()
    spec = spec or TickFeatureSpec()
    log = log or (lambda msg: None)
    d = prepare(events, spec)
    splits = folds_for(d, spec, cfg)
    folds, s4d, ridge = [], np.full(len(d.y), np.nan), np.full(len(d.y), np.nan)
    for i, sp in enumerate(splits):
        pred = fit_model(d, sp, spec, cfg.train, {"data_name": data_name, "fold": i})
        te = slice(*sp.test)
        s4d[te] = pred.predict_features(d.x)[te]
        ridge[te] = ridge_forecast(d, (0, sp.val[1]), cfg.ridge)[te]
        folds.append(tick_skill.fold_row(f"{i + 1}", sp.test, d.y, {
            "s4d": s4d, "ridge": ridge, "ema_lean": d.ema}))
        log(f"fold {i + 1}/{len(splits)}: test rows {sp.test}, best epoch "
            f"{pred.meta['best_epoch']}, val slope {pred.slope:.3f}, "
            f"corr {folds[-1]['s4d']['corr']:+.3f}")
    rows = np.arange(splits[0].test[0], splits[-1].test[1])
    pooled = tick_skill.pooled_row(rows, d.y, {"s4d": s4d, "ridge": ridge, "ema_lean": d.ema},
                                   spec.horizon_steps, spec.steps(cfg.boot_block_s),
                                   cfg.n_boot)
    has_skill = tick_skill.decide(folds, pooled)
    gate = {"has_skill": has_skill, "rule": tick_skill.RULE, "pooled": pooled,
            "folds": folds}
    final = fit_model(d, final_split(len(d.y), spec, cfg.val_fraction), spec, cfg.train,
                      {"data_name": data_name, "fold": "all"})
    final.gate = gate
    final.meta["walk_forward"] = cfg.to_dict()
    log(f"refit on all rows: best epoch {final.meta['best_epoch']}, val slope "
        f"{final.slope:.3f}; has_skill={has_skill}")
    return TickLeanResult(folds, pooled, has_skill, tick_skill.RULE, final, splits,
                          {"data_name": data_name, "rows": len(d.y),
                           "grid_ms": spec.grid_ms, "horizon_s": spec.horizon_s,
                           "pooled_rows": [int(rows[0]), int(rows[-1]) + 1]})
