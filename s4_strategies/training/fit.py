"""Training: date-based splits with a purge gap, long-sequence training, checkpoints.

The model is trained on long windows of consecutive bars with a loss at every step after a
burn-in, so the recurrent state it learns to use is the state it will carry bar by bar in
the indicator. Features come from ``s4_strategies.features.make_features`` (the same code the
indicator runs) and are standardised with statistics of the training period only.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..features import FeatureSpec, LabelSpec, Normalizer, bar_spacing, make_features, make_labels
from ..model import Predictor, Targets, save_model
from .splits import Split


# -- config ------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    layer: str = "s4d"
    d_model: int = 64
    d_state: int = 64
    n_layers: int = 4
    dropout: float = 0.1
    layer_options: dict = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 16
    seq_len: int = 1024
    burn_in: int = 128
    overlap: int = 4  # training windows per scored stretch: stride = (seq_len - burn_in) / overlap
    lr: float = 2e-3
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    patience: int = 5
    val_fraction: float = 0.15
    loss_weights: dict = field(default_factory=lambda: {"signal": 1.0, "returns": 0.5, "vol": 0.5})
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    max_steps_per_epoch: int | None = None

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


def prepare_arrays(df: pd.DataFrame, fspec: FeatureSpec, lspec: LabelSpec, split: Split):
    """Features (normalised with train statistics) and standardised targets for all bars."""
    raw = make_features(df, fspec)
    tr = slice(*split.train)
    first_valid = fspec.warmup
    train_rows = raw.iloc[max(split.train[0], first_valid) : split.train[1]]
    norm = Normalizer.fit(train_rows)
    x = np.nan_to_num(norm.transform(raw.to_numpy()), nan=0.0)
    lab = make_labels(df, lspec)
    fwd = lab[[f"fwd_{h}" for h in lspec.horizons]].to_numpy()
    scale = np.nanstd(fwd[tr], axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    lv = lab["log_vol"].to_numpy()
    vmean, vstd = float(np.nanmean(lv[tr])), float(np.nanstd(lv[tr]) or 1.0)
    targets = Targets(return_scale=scale.tolist(), vol_mean=vmean, vol_std=vstd)
    y = {
        "signal": lab["signal"].to_numpy(),
        "returns": fwd / scale,
        "vol": (lv - vmean) / vstd,
    }
    valid = np.zeros(len(df), dtype=bool)
    valid[first_valid:] = True
    return x, y, valid, norm, targets


def _windows(lo: int, hi: int, seq_len: int, burn_in: int, rng=None, overlap: int = 1) -> list[int]:
    """Window starts covering [lo, hi) with scored parts overlapping ``overlap`` times;
    a random offset when ``rng`` is given (training), none for evaluation."""
    seq_len = min(seq_len, hi - lo)
    stride = max((seq_len - burn_in) // max(overlap, 1), 1)
    offset = int(rng.integers(0, stride)) if rng is not None else 0
    starts = list(range(lo - offset if offset else lo, hi - seq_len + 1, stride))
    starts = [max(lo, s) for s in starts]
    if not starts or starts[-1] + seq_len < hi:
        starts.append(hi - seq_len)
    return sorted(set(starts))


def _loss(out, y, mask, weights):
    import torch
    import torch.nn.functional as F

    sig = y["signal"]
    m_sig = mask & ~torch.isnan(sig)
    loss = torch.zeros((), device=sig.device, dtype=out["logits"].dtype)
    parts = {}
    if m_sig.any():
        ce = F.cross_entropy(out["logits"][m_sig], sig[m_sig].long())
        parts["signal"] = ce
    ret = y["returns"]
    m_ret = mask[..., None] & ~torch.isnan(ret)
    if m_ret.any():
        parts["returns"] = F.smooth_l1_loss(out["returns"][m_ret], ret[m_ret])
    vol = y["vol"]
    m_vol = mask & ~torch.isnan(vol)
    if m_vol.any():
        parts["vol"] = F.mse_loss(out["log_vol"][m_vol], vol[m_vol])
    for k, v in parts.items():
        loss = loss + weights.get(k, 1.0) * v
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def _batch(x, y, starts, seq_len, burn_in, valid, lo, device, dtype):
    import torch

    xb = np.stack([x[s : s + seq_len] for s in starts])
    yb = {k: np.stack([v[s : s + seq_len] for s in starts]) for k, v in y.items()}
    mask = np.stack([valid[s : s + seq_len] for s in starts])
    # Score only after the burn-in, except where a window starts at the very first bar.
    for i, s in enumerate(starts):
        if s > lo:
            mask[i, :burn_in] = False
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return t(xb), {k: t(v) for k, v in yb.items()}, torch.as_tensor(mask, device=device)


def evaluate_loss(model, x, y, valid, rng_range, cfg: TrainConfig, device, dtype) -> float:
    import torch

    lo, hi = rng_range
    ctx_lo = max(0, lo - cfg.burn_in)
    starts = _windows(ctx_lo, hi, cfg.seq_len, cfg.burn_in)
    mask_valid = valid.copy()
    mask_valid[:lo] = False
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(starts), cfg.batch_size):
            xb, yb, mb = _batch(x, y, starts[i : i + cfg.batch_size], min(cfg.seq_len, hi - ctx_lo),
                                cfg.burn_in, mask_valid, ctx_lo, device, dtype)
            loss, _ = _loss(model(xb), yb, mb, cfg.loss_weights)
            total += float(loss) * len(xb)
            count += len(xb)
    return total / max(count, 1)


def train_model(df: pd.DataFrame, split: Split, cfg: TrainConfig | None = None,
                fspec: FeatureSpec | None = None, lspec: LabelSpec | None = None,
                data_name: str = "data") -> TrainResult:
    """Fit a model on ``split.train``, early-stop on ``split.val``; returns the best one."""
    import torch

    from ..ssm import build_model

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
        **({"d_state": cfg.d_state} if cfg.layer in ("s4", "s4d", "mamba") else {}),
        **cfg.layer_options,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    lo, hi = split.train
    # Windows start where the features are defined (less a burn-in of warm-up context).
    lo = max(lo, min(fspec.warmup - cfg.burn_in, hi - cfg.seq_len))
    seq_len = min(cfg.seq_len, hi - lo)
    steps_per_epoch = math.ceil(
        len(_windows(lo, hi, seq_len, cfg.burn_in, overlap=cfg.overlap)) / cfg.batch_size)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps_per_epoch, 1), pct_start=0.1
    )
    initial = evaluate_loss(model, x, y, valid, split.val, cfg, device, dtype)  # untrained
    best, best_state, best_epoch, bad = math.inf, None, -1, 0
    history = []
    t0 = time.perf_counter()
    bar = _progress(cfg.epochs * steps_per_epoch, cfg.progress, f"train {cfg.layer}")
    for epoch in range(cfg.epochs):
        model.train()
        starts = _windows(lo, hi, seq_len, cfg.burn_in, rng, overlap=cfg.overlap)
        rng.shuffle(starts)
        parts_sum: dict[str, float] = {}
        for step in range(steps_per_epoch):
            chunk = starts[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            if not chunk:
                break
            xb, yb, mb = _batch(x, y, chunk, seq_len, cfg.burn_in, valid, lo, device, dtype)
            loss, parts = _loss(model(xb), yb, mb, cfg.loss_weights)
            if not loss.requires_grad:  # nothing scored in this batch
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            bar.update(1)
        val = evaluate_loss(model, x, y, valid, split.val, cfg, device, dtype)
        record = {"epoch": epoch, "val_loss": val, **{f"train_{k}": v / steps_per_epoch
                                                        for k, v in parts_sum.items()}}
        history.append(record)
        bar.set_postfix(val=f"{val:.4f}")
        if val < best - 1e-5:
            best, best_epoch, bad = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    bar.close()
    train_seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    meta = {
        "data_name": data_name,
        "bar_spacing_s": bar_spacing(df.index).total_seconds(),
        "periods": split.dates(df.index),
        "train_config": cfg.to_dict(),
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "initial_val_loss": initial,
        "train_seconds": train_seconds,
    }
    predictor = Predictor(model, fspec, norm, lspec, targets, meta)
    return TrainResult(predictor, history, best_epoch, train_seconds, split, meta)


def save_result(result: TrainResult, path) -> None:
    p = result.predictor
    save_model(path, p.model, p.feature_spec, p.normalizer, p.label_spec, p.targets, result.meta)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
