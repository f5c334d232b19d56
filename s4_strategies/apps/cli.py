"""The ``s4trade`` command: train, compare, backtest and the demo."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, retrain=args.retrain)


def _cmd_train(args) -> int:
    import feeds

    from ..features import FeatureSpec, LabelSpec
    from ..training import TrainConfig, date_split, save_result, train_model

    df = feeds.load_embedded(args.data)
    lspec = LabelSpec(n_classes=args.classes,
                      thresholds=(0.5,) if args.classes == 3 else (0.5, 1.5))
    cfg = TrainConfig(layer=args.layer, epochs=args.epochs, d_model=args.d_model,
                      d_state=args.d_state, n_layers=args.n_layers, seq_len=args.seq_len,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                      progress=not args.quiet,
                      # A Transformer attends to half its training window (see inference.py).
                      layer_options={"window": args.seq_len // 2} if args.layer == "transformer"
                      else {})
    split = date_split(df.index, args.from_, args.to, purge=lspec.max_horizon,
                       val_fraction=args.val_fraction)
    res = train_model(df, split, cfg, FeatureSpec(), lspec, data_name=args.data)
    save_result(res, args.out)
    summary = {"checkpoint": str(args.out), "periods": res.meta["periods"],
               "best_epoch": res.best_epoch, "best_val_loss": res.meta["best_val_loss"],
               "train_seconds": round(res.train_seconds, 1)}
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_compare(args) -> int:
    from ..training.compare import run_comparison

    models = args.models.split(",") if args.models else None
    res = run_comparison(data=args.data, train=(args.train_from, args.train_to),
                         test=(args.test_from, args.test_to), quick=args.quick,
                         ablations=not args.no_ablations, models=models, out=args.out,
                         seed=args.seed)
    print(f"\n{args.data}: train {res['periods']['train']}, validation {res['periods']['val']}, "
          f"test {res['periods']['test']}; taker fee {res['fee_per_side']:.3%} per side")
    print(res["table"])
    if res["ablation_table"]:
        print("\nAblations (same split, fees and rule):")
        print(res["ablation_table"])
    print(f"\nwall time {res['wall_seconds']:.0f} s")
    return 0


def _cmd_backtest(args) -> int:
    from .backtest import print_metrics, run_backtest

    params = json.loads(args.params) if args.params else {}
    res = run_backtest(strategy=args.strategy, data=args.data.split(","), model=args.model,
                       fromdate=args.from_, todate=args.to, out=args.out, cash=args.cash,
                       runonce=not args.no_runonce, fill_model=args.fill_model, params=params)
    print_metrics(res)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4trade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the end-to-end demo on the embedded data")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--retrain", action="store_true",
                      help="train the demo model instead of using the shipped checkpoint")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser("train", help="train a model on an embedded dataset")
    tr.add_argument("--data", default="bybit:BTCUSDT:60")
    tr.add_argument("--from", dest="from_", default="2021-01-01")
    tr.add_argument("--to", default="2022-12-31")
    tr.add_argument("--layer", default="s4d",
                    choices=["s4", "s4d", "mamba", "lstm", "gru", "transformer"])
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--d-model", type=int, default=64)
    tr.add_argument("--d-state", type=int, default=64)
    tr.add_argument("--n-layers", type=int, default=4)
    tr.add_argument("--seq-len", type=int, default=1024)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--classes", type=int, default=3, choices=[3, 5])
    tr.add_argument("--val-fraction", type=float, default=0.15)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--quiet", action="store_true")
    tr.add_argument("--out", required=True)
    tr.set_defaults(func=_cmd_train)

    cp = sub.add_parser("compare", help="S4 vs S4D vs selective SSM vs LSTM/GRU/Transformer")
    cp.add_argument("--data", default="bybit:BTCUSDT:60")
    cp.add_argument("--train-from", default="2021-01-01")
    cp.add_argument("--train-to", default="2022-12-31")
    cp.add_argument("--test-from", default="2023-01-01")
    cp.add_argument("--test-to", default="2024-12-31")
    cp.add_argument("--models", default=None, help="comma list of layers (default: all)")
    cp.add_argument("--quick", action="store_true", help="tiny models, one short epoch")
    cp.add_argument("--no-ablations", action="store_true")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--out", default="runs/compare")
    cp.set_defaults(func=_cmd_compare)

    bk = sub.add_parser("backtest", help="backtest a strategy on embedded data")
    bk.add_argument("--strategy", required=True,
                    choices=["directional", "portfolio", "market-making"])
    bk.add_argument("--data", default="bybit:BTCUSDT:60", help="NAME[,NAME...]")
    bk.add_argument("--model", default=None, help="checkpoint (default: the shipped one)")
    bk.add_argument("--from", dest="from_", default=None)
    bk.add_argument("--to", default=None)
    bk.add_argument("--cash", type=float, default=100_000.0)
    bk.add_argument("--no-runonce", action="store_true")
    bk.add_argument("--fill-model", default=None,
                    help="market making: trade_through, intensity or touch")
    bk.add_argument("--params", default=None, help="strategy params as JSON")
    bk.add_argument("--out", default="runs/backtest")
    bk.set_defaults(func=_cmd_backtest)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
