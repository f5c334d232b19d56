"""``s4trade train --multi``: one shared-encoder model over several assets.

    s4trade train --multi --data bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SOLUSDT:60 \\
        --from 2021-01-01 --to 2022-12-31 --out runs/multi.pt

The same recipe, options and outputs as the single-asset ``s4trade train``
(``training.multi_asset.train_multi``: the shared optimisation loop of
``training.recipe``): the assets are laid on the union of their bar times, an asset that
starts later joins once it has seen its feature warm-up, the last ``--val-fraction`` of the
period (after a purge) is validation, the best epoch by the validation loss is kept, and the
rebalancing the strategy trades is chosen there (``training.allocation``). The checkpoint is
an "s4-multi/1" file sealed with its sha256, its assets named by their symbols (what
``s4trade backtest`` and ``s4trade live`` name the datas).
"""

from __future__ import annotations

from dataclasses import replace

from ..ssm.config import SSM_KINDS
from .sources import load_source, parse_source


def data_list(value) -> list[str]:
    """``--data`` as a list: a comma list, spaces and empty items dropped."""
    return [d.strip() for d in str(value).split(",") if d.strip()]


def load_frames(specs: list[str], fromdate, todate, cache_dir) -> tuple[dict, dict]:
    """``({symbol: bars}, {symbol: spec})`` for ``--data`` values; two values of one
    symbol are refused (the model names its assets by symbol)."""
    sources = [parse_source(s) for s in specs]  # every name checked before any fetch
    seen: dict = {}
    for src in sources:
        if src.symbol in seen:
            raise ValueError(f"--data names {src.symbol} twice ({seen[src.symbol]} and "
                             f"{src.spec}): a multi-asset model has one series per symbol")
        seen[src.symbol] = src.spec
    frames = {src.symbol: load_source(src, fromdate, todate, cache_dir=cache_dir)
              for src in sources}
    return frames, seen


def train_multi_command(args, cfg, lspec) -> dict:
    """Train and save as ``s4trade train --multi`` does; returns the printed summary."""
    from ..features import FeatureSpec
    from ..training.multi_asset import save_multi, train_multi

    specs = data_list(args.data)
    if len(specs) < 2:
        raise ValueError(f"--multi trains one model on several assets: give --data a comma "
                         f"list of two or more, got {args.data!r}")
    if cfg.layer not in SSM_KINDS:
        raise ValueError(f"--multi shares one SSM encoder: --layer {', '.join(SSM_KINDS)}, "
                         f"not {cfg.layer}")
    frames, names = load_frames(specs, args.from_, args.to, args.cache_dir)
    cfg = replace(cfg, val_fraction=args.val_fraction)
    res = train_multi(frames, (args.from_, args.to), cfg, FeatureSpec(), lspec,
                      data_names=names)
    save_multi(res, args.out)
    if not getattr(args, "quiet", False):
        import sys

        from ..training.recipe import history_table

        print(f"training curve ({cfg.criterion} chooses, mean over assets; * = epoch kept, "
              f"stored in the checkpoint's meta['history']):\n"
              f"{history_table(res.history, res.best_epoch)}", file=sys.stderr)
    dec = res.meta.get("decision") or {}
    return {"checkpoint": str(args.out), "data": specs, "assets": res.predictor.assets,
            "first_bars": res.meta["first_bars"], "periods": res.meta["periods"],
            "best_epoch": res.best_epoch, "best_val_loss": res.meta["best_val_loss"],
            "decision": {k: dec.get(k) for k in ("rebalance", "min_trade", "note")},
            "train_seconds": res.train_seconds}
