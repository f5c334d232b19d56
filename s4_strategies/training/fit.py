"""Training: date-based splits with a purge gap, long-sequence training, checkpoints.

The model is trained on long windows of consecutive bars with a loss at every step after a
burn-in, so the recurrent state it learns to use is the state it will carry bar by bar in
the indicator. Features come from ``s4_strategies.features.make_features`` (the same code the
indicator runs) and are standardised with statistics of the training period only.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..features import FeatureSpec, LabelSpec, Normalizer, bar_spacing, make_features, make_labels
from ..model import Predictor, Targets, save_model
from .recipe import (
    CRITERIA,
    TRUNKS,
    criterion_label,
    criterion_score,
    fit_loop,
    route_heads,
    window_draw,
)
from .skill import spearman_ic
from .splits import Split

# -- config ------------------------------------------------------------------------------
#: State size per channel when ``TrainConfig.d_state`` is None: S4 and S4D as in their papers'
#: defaults; the selective SSM as Mamba's (16: its state is per inner channel, E = 2H; at 64
#: a training step of 8 windows of 1,024 bars took 17 s of CPU instead of 3).
DEFAULT_D_STATE = {"s4": 64, "s4d": 64, "s5": 64, "dss": 64, "mamba": 16}


@dataclass
class TrainConfig:
    """Model size and the training recipe (see :mod:`.recipe` and docs/results/memory.md).

    A run is ``epochs`` × ``steps_per_epoch`` AdamW steps on randomly placed windows of
    ``seq_len`` bars, with a one-cycle learning rate; after every epoch the validation losses
    are measured and the best weights by ``criterion`` are kept (early stop after
    ``patience`` epochs without improvement). ``trunk``: which heads' gradients shape the
    shared layers (``recipe.TRUNKS``); ``mix``: the share of training windows replaced by a
    mixture with another window (``augment``); ``input_noise``: the std of Gaussian noise
    added to every normalised feature of every training bar (``recipe.add_input_noise``: a
    ridge penalty on the model's filters). ``train_multi`` ignores ``trunk`` and ``mix``.
    """

    layer: str = "s4d"
    d_model: int = 64
    d_state: int | None = None  # None: the layer's own (DEFAULT_D_STATE)
    n_layers: int = 4
    dropout: float = 0.1
    layer_options: dict = field(default_factory=dict)
    epochs: int = 12  # validation checks
    steps_per_epoch: int = 50  # optimiser steps between validation checks
    batch_size: int = 8
    seq_len: int = 1024  # long enough for a dependence several hundred bars back
    burn_in: int = 256  # leading bars of a window that build state and are not scored
    lr: float = 2e-3
    ssm_lr: float = 1e-3  # A, B, Δ: lower learning rate, no weight decay
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    patience: int = 4
    criterion: str = "next_bar_ic"  # see recipe.CRITERIA
    trunk: str = "next_bar"  # see recipe.TRUNKS; "all": the recipe before issue 30
    mix: float = 0.5  # share of training windows mixed with another (augment.py); 0: none
    input_noise: float = 1.0  # std of the noise on each training feature (recipe.add_input_noise)
    val_fraction: float = 0.15
    loss_weights: dict = field(default_factory=lambda: {"signal": 1.0, "returns": 0.5, "vol": 0.5})
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self):
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {self.trunk!r}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be a share in [0, 1], got {self.mix}")
        if not (np.isfinite(self.input_noise) and self.input_noise >= 0):
            raise ValueError(f"input_noise must be a finite std >= 0, got {self.input_noise}")
        for name in ("epochs", "steps_per_epoch", "batch_size", "seq_len", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.burn_in < self.seq_len:
            raise ValueError(f"need 0 <= burn_in < seq_len, got {self.burn_in}, {self.seq_len}")

    @property
    def state_size(self) -> int | None:
        """``d_state``, or the layer's own default when it is None."""
        return self.d_state if self.d_state is not None else DEFAULT_D_STATE.get(self.layer)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    predictor: Predictor
    history: list[dict]
    best_epoch: int
    train_seconds: float
    split: Split
    meta: dict


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit_targets(lab: pd.DataFrame, lspec: LabelSpec, train: slice) -> Targets:
    """The label scales of the training rows: per-horizon std of the forward returns, mean
    and std of the log volatility."""
    fwd = lab[[f"fwd_{h}" for h in lspec.horizons]].to_numpy()
    scale = np.nanstd(fwd[train], axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    lv = lab["log_vol"].to_numpy()
    vmean, vstd = float(np.nanmean(lv[train])), float(np.nanstd(lv[train]) or 1.0)
    return Targets(return_scale=scale.tolist(), vol_mean=vmean, vol_std=vstd)


def scale_labels(lab: pd.DataFrame, lspec: LabelSpec, targets: Targets) -> dict:
    """Labels as the heads are trained on them: the signal class, forward returns in units
    of their training std, standardised log volatility."""
    fwd = lab[[f"fwd_{h}" for h in lspec.horizons]].to_numpy()
    return {
        "signal": lab["signal"].to_numpy(),
        "returns": fwd / np.asarray(targets.return_scale),
        "vol": (lab["log_vol"].to_numpy() - targets.vol_mean) / targets.vol_std,
    }


def prepare_arrays(df: pd.DataFrame, fspec: FeatureSpec, lspec: LabelSpec, split: Split):
    """Features (normalised with train statistics) and standardised targets for all bars."""
    raw = make_features(df, fspec)
    first_valid = fspec.warmup
    train_rows = raw.iloc[max(split.train[0], first_valid) : split.train[1]]
    norm = Normalizer.fit(train_rows)
    x = np.nan_to_num(norm.transform(raw.to_numpy()), nan=0.0)
    lab = make_labels(df, lspec)
    targets = fit_targets(lab, lspec, slice(*split.train))
    y = scale_labels(lab, lspec, targets)
    valid = np.zeros(len(df), dtype=bool)
    valid[first_valid:] = True
    return x, y, valid, norm, targets


#: Reported, not optimised: "next_bar" is one column of "returns" (the trunk's own target).
DIAGNOSTIC = ("next_bar",)


def _losses(out, y, mask, col: int = 0) -> dict:
    """Per-head losses over the scored bars: signal cross-entropy, returns smooth-L1 (in
    units of the training std), volatility MSE (standardised log vol); and, for the record,
    ``next_bar``: the returns loss of column ``col`` alone (the shortest horizon)."""
    import torch
    import torch.nn.functional as F

    parts = {}
    sig = y["signal"]
    m_sig = mask & ~torch.isnan(sig)
    if m_sig.any():
        parts["signal"] = F.cross_entropy(out["logits"][m_sig], sig[m_sig].long())
    ret = y["returns"]
    m_ret = mask[..., None] & ~torch.isnan(ret)
    if m_ret.any():
        parts["returns"] = F.smooth_l1_loss(out["returns"][m_ret], ret[m_ret])
        m_one = m_ret[..., col]
        if m_one.any():
            parts["next_bar"] = F.smooth_l1_loss(out["returns"][..., col][m_one],
                                                 ret[..., col][m_one])
    vol = y["vol"]
    m_vol = mask & ~torch.isnan(vol)
    if m_vol.any():
        parts["vol"] = F.mse_loss(out["log_vol"][m_vol], vol[m_vol])
    return parts


def _total(parts: dict, weights: dict):
    return sum(weights.get(k, 1.0) * v for k, v in parts.items() if k not in DIAGNOSTIC)


def _batch(x, y, starts, seq_len, burn_in, valid, device, dtype):
    import torch

    xb = np.stack([x[s : s + seq_len] for s in starts])  # (B, L, F)
    yb = {k: np.stack([v[s : s + seq_len] for s in starts]) for k, v in y.items()}
    mask = np.stack([valid[s : s + seq_len] for s in starts])  # (B, L)
    # Score only after the burn-in, except where a window starts at the very first bar
    # (there the empty state is the true state, as in a live run from the first bar).
    for i, s in enumerate(starts):
        if s > 0:
            mask[i, :burn_in] = False
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return t(xb), {k: t(v) for k, v in yb.items()}, torch.as_tensor(mask, device=device)


def validation_losses(model, x, y, valid, period, cfg: TrainConfig, device, dtype,
                      col: int = 0) -> dict:
    """Per-head losses on ``period`` = [lo, hi), the model run from ``seq_len`` bars before
    it (its state built on the bars before the period, as the indicator's would be), their
    weighted ``total`` and ``next_bar_ic``: the Spearman IC of the next-bar return forecast
    (returns column ``col``) with its target over the scored bars."""
    import torch

    lo, hi = period
    ctx = max(0, lo - cfg.seq_len)
    scored = valid.copy()
    scored[:lo] = False
    model.eval()
    with torch.no_grad():
        xb, yb, mb = _batch(x, y, [ctx], hi - ctx, 0, scored, device, dtype)
        pred = model(xb)
        parts = _losses(pred, yb, mb, col)
    out = {k: float(v) for k, v in parts.items()}
    out["total"] = float(_total(parts, cfg.loss_weights))
    out["next_bar_ic"] = next_bar_ic(pred["returns"][0, :, col], yb["returns"][0, :, col], mb[0])
    return out


def next_bar_ic(forecast, target, mask) -> float:
    """Spearman IC of ``forecast`` (L,) with ``target`` (L,) over the bars of ``mask`` (L,)
    where both are finite (tensors); NaN when fewer than 3 bars or a constant side."""
    m = mask.cpu().numpy()  # (L,)
    f = forecast.detach().cpu().double().numpy()[m]
    return float(spearman_ic(f, target.cpu().double().numpy()[m]))


def train_model(df: pd.DataFrame, split: Split, cfg: TrainConfig | None = None,
                fspec: FeatureSpec | None = None, lspec: LabelSpec | None = None,
                data_name: str = "data", decide: bool = True) -> TrainResult:
    """Fit a model on ``split.train``, select on ``split.val``; returns the best one.
    ``decide``: also choose the cost-aware trading band on ``split.val`` (``meta["decision"]``,
    see ``trading_report.band_on_validation``)."""
    import torch

    from ..ssm import build_model
    from ..ssm.config import SSM_KINDS

    cfg = cfg or TrainConfig()
    fspec = fspec or FeatureSpec()
    lspec = lspec or LabelSpec()
    seed_everything(cfg.seed)
    device = _device(cfg.device)
    dtype = torch.float32
    x, y, valid, norm, targets = prepare_arrays(df, fspec, lspec, split)
    model = build_model(
        cfg.layer, input_dim=x.shape[1], d_model=cfg.d_model, n_layers=cfg.n_layers,
        dropout=cfg.dropout, n_classes=lspec.n_classes, horizons=tuple(lspec.horizons),
        **({"d_state": cfg.state_size} if cfg.layer in SSM_KINDS else {}),
        **cfg.layer_options,
    ).to(device)
    col = int(np.argmin(lspec.horizons))  # the trunk's target: the shortest horizon

    def plain(starts, n):
        return _batch(x, y, starts, n, cfg.burn_in, valid, device, dtype)

    batch = plain
    if cfg.mix > 0:
        from .augment import MixedWindows

        batch = MixedWindows(df, fspec, lspec, norm, lambda lab: scale_labels(lab, lspec, targets),
                             split.train[0], split.train[1], cfg.mix,
                             np.random.default_rng([cfg.seed, 30]), plain)
    forward = model if cfg.trunk == "all" else lambda xb: route_heads(model, xb, col)
    loop = fit_loop(model, cfg, window_draw(cfg, split.train, fspec.warmup, batch),
                    lambda out, yb, mb: _losses(out, yb, mb, col),
                    lambda p: _total(p, cfg.loss_weights),
                    lambda: validation_losses(model, x, y, valid, split.val, cfg, device, dtype,
                                              col),
                    cfg.layer, forward=forward)
    model = model.cpu().eval()
    meta = {
        "data_name": data_name,
        "bar_spacing_s": bar_spacing(df.index).total_seconds(),
        "periods": split.dates(df.index),
        "train_config": cfg.to_dict(),
        "best_epoch": loop.best_epoch,
        "best_val_loss": loop.best,  # the criterion's score (recipe.criterion_score)
        "initial_val_loss": criterion_score(loop.initial, cfg.criterion),
        "train_seconds": loop.seconds,
        "recipe": loop.recipe(criterion_label(cfg.criterion)),
        "history": loop.history,
    }
    predictor = Predictor(model, fspec, norm, lspec, targets, meta)
    if decide:
        from .trading_report import band_on_validation

        meta["decision"] = predictor.meta["decision"] = band_on_validation(predictor, df, split)
    return TrainResult(predictor, loop.history, loop.best_epoch, loop.seconds, split, meta)


def save_result(result: TrainResult, path) -> None:
    p = result.predictor
    save_model(path, p.model, p.feature_spec, p.normalizer, p.label_spec, p.targets, result.meta)
