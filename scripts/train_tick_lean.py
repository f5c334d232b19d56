#!/usr/bin/env python
"""Train the tick lean (an S4D on microstructure features) on an embedded tick sample,
report its walk-forward skill on the next mid move and say whether the lean is used.

    python scripts/train_tick_lean.py                                  # USD-M, runs/tick_lean.pt
    python scripts/train_tick_lean.py --dataset binance:BTCUSDT --out runs/tick_lean_spot.pt
    python scripts/train_tick_lean.py --dataset binance:BTCUSDT --until "2024-08-09 00:01"

Prints the markdown skill table (per fold and pooled: the S4D, ridge on the same features,
the market maker's EMA-slope lean), the gate rule and its verdict, and writes the checkpoint
(``s4_strategies.model.tick_lean.load_tick_lean``). A few minutes on two CPU cores.
All logic lives in ``s4_strategies.training.tick_lean``.
"""

from __future__ import annotations

import argparse
import json
import time

# price increments of the embedded tick samples (exchange instrument filters)
TICKS = {"binance-usdm:BTCUSDT": 0.1, "binance:BTCUSDT": 0.01}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="binance-usdm:BTCUSDT", help="embedded tick dataset")
    p.add_argument("--out", default="runs/tick_lean.pt", help="checkpoint path")
    p.add_argument("--tick", type=float, default=None, help="price increment (default: known)")
    p.add_argument("--grid-ms", type=int, default=100)
    p.add_argument("--horizon", type=float, default=1.0, help="label horizon, seconds")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", default=None, help="also write the scores as JSON here")
    p.add_argument("--until", default=None,
                   help="train and judge only on events up to this UTC time (e.g. "
                        "'2024-08-09 00:01'), leaving the rest for an out-of-sample backtest")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from feeds.ticks import load_ticks
    from s4_strategies.features.tick import TickFeatureSpec
    from s4_strategies.model.tick_lean import save_tick_lean
    from s4_strategies.training.tick_lean import TickLeanConfig, train_tick_lean

    torch.set_num_threads(args.threads)
    tick = args.tick if args.tick is not None else TICKS.get(args.dataset)
    if tick is None:
        raise SystemExit(f"no known tick for {args.dataset}; pass --tick")
    spec = TickFeatureSpec(tick=tick, grid_ms=args.grid_ms, horizon_s=args.horizon)
    cfg = TickLeanConfig(n_folds=args.folds)
    cfg.train.seed = args.seed
    t0 = time.perf_counter()
    events = load_ticks(args.dataset, todate=args.until)
    print(f"{args.dataset}: {len(events)} events, {events.index[0]} – {events.index[-1]}; "
          f"grid {spec.grid_ms} ms, label: mid log return over the next {spec.horizon_s:g} s")
    result = train_tick_lean(events, cfg, spec, data_name=args.dataset, log=print)
    print()
    print(result.table())
    print()
    print(f"Rule: {result.rule}.")
    print(f"has_skill = {result.has_skill}: the lean is "
          f"{'USED' if result.has_skill else 'NOT used (TickLeanIndicator emits 0)'}.")
    path = save_tick_lean(args.out, result.predictor)
    print(f"checkpoint: {path} ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"folds": result.folds, "pooled": result.pooled,
                       "has_skill": result.has_skill, "rule": result.rule,
                       "meta": result.meta}, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
