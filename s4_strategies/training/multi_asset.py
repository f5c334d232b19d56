"""Training of the multi-asset model (``MultiAssetS4``, kind "multi") on several assets.

The assets are laid on the union of their bar times (:func:`panel`). Each asset's features
come from its own bars with the shared ``FeatureSpec`` and are standardised with a
``Normalizer`` fitted on that asset's own training rows; its labels (``make_labels``) and
target scales are its own too. Where an asset has no bar (not listed yet, a gap) or has not
seen ``fspec.warmup`` bars, its input row is zero and it is masked out of every loss: an
asset joins the loss once warmed up (:mod:`s4_strategies.model.multi`).

The recipe is ``train_model``'s: AdamW with the parameter groups of :mod:`.recipe`, random
window starts (``sample_starts`` on the union index), one-cycle learning rate, gradient
clipping, selection on the validation loss (``cfg.criterion``; "signal": the signal
cross-entropy averaged over assets), early stopping after ``cfg.patience`` checks.

Losses: per asset, the heads of ``fit._losses`` on that asset's scored bars, averaged over
the assets that have any; plus the portfolio term of the "weights" head::

    weights = −(1 / n_bars) Σ_bars Σ_a m_a · w_a · fwd_1_a

with ``fwd_1_a`` the asset's next-bar log return over its training-period std (so the
term is of the order of the other losses, and no asset dominates), ``m_a`` its mask and
``n_bars`` the scored bars (bars with at least one scored asset); its weight in the total is
``cfg.loss_weights.get("weights", 0.1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..features import FeatureSpec, LabelSpec, Normalizer, bar_spacing, make_features, make_labels
from ..model.multi import MultiPredictor, asset_features, load_multi, panel, save_multi_predictor
from ..model.predictor import Targets
from .fit import DIAGNOSTIC, TrainConfig, _device, _losses, next_bar_ic, seed_everything
from .recipe import criterion_label, criterion_score, fit_loop, window_draw
from .splits import Split, date_split

__all__ = ["MultiTrainResult", "load_multi", "panel", "prepare_panel", "save_multi",
           "train_multi"]

WEIGHTS_LOSS = 0.1  # default weight of the portfolio term


@dataclass
class MultiTrainResult:
    predictor: MultiPredictor
    history: list[dict]
    best_epoch: int
    train_seconds: float
    split: Split
    meta: dict


def _asset_arrays(df, index, fspec: FeatureSpec, lspec: LabelSpec, rows: np.ndarray):
    """One asset on ``index``: x (L, F), targets, mask (L,), normalizer, target scales;
    ``rows`` (L,) bool: its training rows on ``index`` (its statistics come from them)."""
    pos = index.get_indexer(df.index)
    own_train = rows[pos] & (np.arange(len(df)) >= fspec.warmup)
    if not own_train.any():
        raise ValueError(f"an asset has no warmed-up bars in the training period "
                         f"(first bar {df.index[0]})")
    norm = Normalizer.fit(make_features(df, fspec).iloc[own_train])
    x, warm = asset_features(df, index, fspec, norm)
    lab = make_labels(df, lspec).reindex(index)
    fwd = lab[[f"fwd_{h}" for h in lspec.horizons]].to_numpy()  # (L, R)
    train_rows = np.zeros(len(index), dtype=bool)
    train_rows[pos[own_train]] = True
    scale = np.nanstd(fwd[train_rows], axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    lv = lab["log_vol"].to_numpy()
    vmean, vstd = float(np.nanmean(lv[train_rows])), float(np.nanstd(lv[train_rows]) or 1.0)
    fwd1 = make_labels(df, LabelSpec(horizons=(1,)))["fwd_1"].reindex(index).to_numpy()
    s1 = float(np.nanstd(fwd1[train_rows])) or 1.0
    y = {"signal": lab["signal"].to_numpy(), "returns": fwd / scale,
         "vol": (lv - vmean) / vstd, "fwd1": fwd1 / s1}  # (L,) next-bar return / its train std
    return x, y, warm, norm, Targets(scale.tolist(), vmean, vstd)


def period_rows(index, period: tuple[int, int], n_assets: int) -> np.ndarray:
    """(L, A) bool: the union-index positions [lo, hi) for every asset."""
    rows = np.zeros((len(index), n_assets), dtype=bool)
    rows[period[0]: period[1]] = True
    return rows


def prepare_panel(frames: dict, train_rows, index, fspec: FeatureSpec, lspec: LabelSpec):
    """Stacked arrays on the union index: x (L, A, F), y {signal (L, A), returns (L, A, R),
    vol (L, A), fwd1 (L, A)}, valid (L, A), normalizers, targets. ``train_rows``: a
    ``Split`` (its training range, for every asset) or an (L, A) bool array of each asset's
    own training rows."""
    if isinstance(train_rows, Split):
        train_rows = period_rows(index, train_rows.train, len(frames))
    parts = [_asset_arrays(df, index, fspec, lspec, train_rows[:, a])
             for a, df in enumerate(frames.values())]
    x = np.stack([p[0] for p in parts], axis=1)
    y = {k: np.stack([p[1][k] for p in parts], axis=1) for k in parts[0][1]}
    valid = np.stack([p[2] for p in parts], axis=1)
    return x, y, valid, [p[3] for p in parts], [p[4] for p in parts]


def _multi_losses(out, y, mask) -> dict:
    """Per-head losses averaged over the assets that have scored bars, and the portfolio
    term "weights" (module doc). out/y (B, L, A, ...), mask (B, L, A)."""
    import torch

    sums: dict = {}
    counts: dict = {}
    for a in range(mask.shape[-1]):
        parts = _losses({k: v[:, :, a] for k, v in out.items()},
                        {k: v[:, :, a] for k, v in y.items()}, mask[..., a])
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
    parts = {k: sums[k] / counts[k] for k in sums}
    fwd = y["fwd1"]
    m = mask & ~torch.isnan(fwd)  # (B, L, A)
    bars = m.any(-1)  # (B, L)
    if bars.any():
        pnl = (out["weights"] * torch.where(m, fwd, torch.zeros_like(fwd))).sum(-1)  # (B, L)
        parts["weights"] = -pnl[bars].mean()
    return parts


def _total(parts: dict, weights: dict):
    return sum(weights.get(k, WEIGHTS_LOSS if k == "weights" else 1.0) * v
               for k, v in parts.items() if k not in DIAGNOSTIC)


def _batch(x, y, starts, seq_len, burn_in, valid, device, dtype):
    import torch

    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    xb = t(np.stack([x[s: s + seq_len] for s in starts]))  # (B, L, A, F)
    yb = {k: t(np.stack([v[s: s + seq_len] for s in starts])) for k, v in y.items()}
    mask = np.stack([valid[s: s + seq_len] for s in starts])  # (B, L, A)
    for i, s in enumerate(starts):  # burn-in, except from the very first bar (as in fit)
        if s > 0:
            mask[i, :burn_in] = False
    return xb, yb, torch.as_tensor(mask, device=device)


def _validate(model, x, y, valid, val_rows, cfg: TrainConfig, device, dtype) -> dict:
    """Losses on the rows ``val_rows`` (L, A) marks, the model run from ``seq_len`` bars
    before the first of them to the last (the state built on the bars before), and the
    next-bar IC averaged over the assets that have one."""
    import torch

    marked = np.flatnonzero(val_rows.any(axis=1))
    lo, hi = int(marked[0]), int(marked[-1]) + 1
    ctx = max(0, lo - cfg.seq_len)
    scored = valid & val_rows
    model.eval()
    with torch.no_grad():
        xb, yb, mb = _batch(x, y, [ctx], hi - ctx, 0, scored, device, dtype)
        pred = model(xb)
        parts = _multi_losses(pred, yb, mb)
    out = {k: float(v) for k, v in parts.items()}
    out["total"] = float(_total(parts, cfg.loss_weights))
    ics = [next_bar_ic(pred["returns"][0, :, a, 0], yb["returns"][0, :, a, 0], mb[0, :, a])
           for a in range(mb.shape[-1])]  # the shortest horizon of each asset
    ics = [ic for ic in ics if math.isfinite(ic)]
    out["next_bar_ic"] = float(np.mean(ics)) if ics else math.nan
    return out


def _build(cfg: TrainConfig, n_in: int, n_assets: int, lspec: LabelSpec):
    from ..ssm import build_model

    return build_model("multi", input_dim=n_in, n_assets=n_assets, layer=cfg.layer,
                       d_model=cfg.d_model, d_state=cfg.state_size, n_layers=cfg.n_layers,
                       dropout=cfg.dropout, n_classes=lspec.n_classes,
                       horizons=tuple(lspec.horizons), **cfg.layer_options)


def train_multi(frames: dict, split_dates, cfg: TrainConfig | None = None,
                fspec: FeatureSpec | None = None, lspec: LabelSpec | None = None,
                decide: bool = True, data_names: dict | None = None) -> MultiTrainResult:
    """Fit a ``MultiAssetS4`` on ``frames`` ``{asset: DataFrame}``; ``split_dates`` =
    (train_from, train_to): the last ``cfg.val_fraction`` of it (after a purge of the longest
    label horizon) is validation. Returns the best model by ``cfg.criterion``. ``decide``:
    also choose the rebalancing the strategy trades on the validation bars
    (``meta["decision"]``, :func:`.allocation.allocation_on_validation`); ``data_names``:
    ``{asset: where its bars came from}`` for ``meta["data"]``."""
    cfg, fspec, lspec = cfg or TrainConfig(), fspec or FeatureSpec(), lspec or LabelSpec()
    index, _ = panel(frames)
    split = date_split(index, *split_dates, purge=lspec.max_horizon, val_fraction=cfg.val_fraction)
    res = fit_multi(frames, index, period_rows(index, split.train, len(frames)),
                    period_rows(index, split.val, len(frames)), cfg, fspec, lspec,
                    data_names)
    res.split = split
    res.meta["periods"] = res.predictor.meta["periods"] = split.dates(index)  # as before
    if decide:
        from .allocation import allocation_on_validation

        res.meta["decision"] = res.predictor.meta["decision"] = allocation_on_validation(
            res.predictor, frames, split)
    return res


def fit_multi(frames: dict, index, train_rows: np.ndarray, val_rows: np.ndarray,
              cfg: TrainConfig, fspec: FeatureSpec, lspec: LabelSpec,
              data_names: dict | None = None) -> MultiTrainResult:
    """The training of :func:`train_multi` on the union ``index`` with each asset's own
    training and validation rows, (L, A) bool arrays (research folds: one asset's rows need
    not be another's). Windows are drawn from the first to the last training row of any
    asset; a bar scores an asset's loss only where ``train_rows`` marks it, and the
    validation losses only where ``val_rows`` does. ``meta["periods"]``: per asset, the
    first and last bar of the rows it trained and was validated on."""
    import torch

    seed_everything(cfg.seed)
    device, dtype = _device(cfg.device), torch.float32
    x, y, valid, norms, targets = prepare_panel(frames, train_rows, index, fspec, lspec)
    used = np.flatnonzero(train_rows.any(axis=1))
    span = (int(used[0]), int(used[-1]) + 1)
    fit_rows = valid & train_rows  # (L, A) the loss mask of the training windows
    model = _build(cfg, x.shape[-1], x.shape[1], lspec).to(device)
    draw = window_draw(cfg, span, fspec.warmup, lambda starts, n: _batch(
        x, y, starts, n, cfg.burn_in, fit_rows, device, dtype))
    loop = fit_loop(model, cfg, draw, _multi_losses, lambda p: _total(p, cfg.loss_weights),
                    lambda: _validate(model, x, y, valid, val_rows, cfg, device, dtype),
                    "multi")
    model = model.cpu().eval()
    assets = [str(a) for a in frames]

    def dates(rows):
        at = np.flatnonzero(rows)
        return [str(index[at[0]]), str(index[at[-1]])] if len(at) else None

    meta = {
        "assets": assets,
        "data": {a: str((data_names or {}).get(a, a)) for a in assets},
        "bar_spacing_s": float(np.median([bar_spacing(df.index).total_seconds()
                                          for df in frames.values()])),
        "periods": {a: {"train": dates(fit_rows[:, i]), "val": dates(valid[:, i]
                                                                     & val_rows[:, i])}
                    for i, a in enumerate(assets)},
        "first_bars": {a: str(df.index[0]) for a, df in frames.items()},
        "train_config": cfg.to_dict(),
        "best_epoch": loop.best_epoch,
        "best_val_loss": loop.best,  # the criterion's score (recipe.criterion_score)
        "initial_val_loss": criterion_score(loop.initial, cfg.criterion),
        "train_seconds": loop.seconds,
        "recipe": {**loop.recipe(criterion_label(cfg.criterion, " (mean over assets)")),
                   "weights_loss": cfg.loss_weights.get("weights", WEIGHTS_LOSS)},
        "history": loop.history,
    }
    predictor = MultiPredictor(model, fspec, norms, lspec, targets, assets, meta)
    at = np.flatnonzero(val_rows.any(axis=1))
    split = Split(train=span, val=(int(at[0]), int(at[-1]) + 1))
    return MultiTrainResult(predictor, loop.history, loop.best_epoch, loop.seconds, split,
                            meta)


def save_multi(result: MultiTrainResult, path):
    """Write the result's model as an "s4-multi/1" checkpoint (``load_multi`` reads it)."""
    return save_multi_predictor(path, result.predictor, result.meta)


def frames_from(names, fromdate=None, todate=None) -> dict[str, pd.DataFrame]:
    """``{name: DataFrame}`` of embedded datasets (``feeds.load_embedded``)."""
    from feeds import load_embedded

    return {n: load_embedded(n, fromdate, todate) for n in names}
