"""The ``s4trade`` command: the demo, data, train, compare, research, backtest and live.

``--data`` takes an embedded name, a CSV/parquet file, ``bybit:SYMBOL:INTERVAL[:category]``
or ``yahoo:TICKER:INTERVAL[:adjusted]`` (see ``s4_strategies.apps.sources``). Errors are one
line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from .cli_args import (
    DEFAULT_DATA,
    PROGRAM_HELP,
    _date_arg,
    _formatter,
    _json_object,
    _latency_ms,
    _positive,
)
from .cli_compare import add_compare
from .cli_data import add_data
from .cli_live import add_live, add_shadow_report
from .sources import DEFAULT_CACHE, FORMS

EXIT_USAGE = 2
DATA_HELP = f"the bars: {FORMS}"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong, and where to look for what is accepted."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _rounded(obj, digits: int = 4):
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def _cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, retrain=args.retrain)


def _cmd_train(args) -> int:
    from ..features import FeatureSpec, LabelSpec
    from ..training import TrainConfig, date_split, save_result, train_model
    from .sources import load_source

    if "," in args.data and not args.multi:
        raise ValueError(f"--data {args.data!r} lists several assets: add --multi to train one "
                         "shared-encoder model on them (or train one model per asset)")
    lspec = LabelSpec(n_classes=args.classes,
                      thresholds=(0.5,) if args.classes == 3 else (0.5, 1.5))
    default = TrainConfig()
    burn_in = args.burn_in if args.burn_in is not None else min(default.burn_in,
                                                                 args.seq_len // 4)
    cfg = TrainConfig(layer=args.layer, epochs=args.epochs, d_model=args.d_model,
                      steps_per_epoch=args.steps_per_epoch, burn_in=burn_in,
                      d_state=args.d_state, n_layers=args.n_layers, seq_len=args.seq_len,
                      batch_size=args.batch_size, lr=args.lr, ssm_lr=args.ssm_lr,
                      seed=args.seed, device=args.device, mix=args.mix, trunk=args.trunk,
                      input_noise=args.input_noise, progress=not args.quiet,
                      # A Transformer attends to half its training window (see inference.py).
                      layer_options={"window": args.seq_len // 2} if args.layer == "transformer"
                      else {})
    if args.multi:
        from .train_multi import train_multi_command

        print(json.dumps(_rounded(train_multi_command(args, cfg, lspec)), indent=2))
        return 0
    df = load_source(args.data, args.from_, args.to, cache_dir=args.cache_dir)
    split = date_split(df.index, args.from_, args.to, purge=lspec.max_horizon,
                       val_fraction=args.val_fraction)
    res = train_model(df, split, cfg, FeatureSpec(), lspec, data_name=args.data)
    save_result(res, args.out)
    if not args.quiet:  # the curve on stderr (the progress bar's stream); stdout stays JSON
        from ..training.recipe import history_table

        print(f"training curve ({cfg.criterion} chooses; * = epoch kept, stored in the "
              f"checkpoint's meta['history']):\n{history_table(res.history, res.best_epoch)}",
              file=sys.stderr)
    summary = {"checkpoint": str(args.out), "data": args.data, "periods": res.meta["periods"],
               "best_epoch": res.best_epoch, "best_val_loss": res.meta["best_val_loss"],
               "train_seconds": res.train_seconds}
    print(json.dumps(_rounded(summary), indent=2))
    return 0


def _cmd_research(args) -> int:
    from .research import run_research

    res = run_research(args.spec, args.out, address=args.address, workers=args.workers,
                       serial=args.serial, max_trials=args.max_trials,
                       cache_dir=args.cache_dir, command=args.command_line,
                       storage=args.storage, placebo=args.placebo,
                       placebo_kind=args.placebo_kind)
    print()
    print(res["markdown"])
    c = res["counts"]
    print(f"\n{c['ran']} trials run in {c['wall_seconds']:.0f} s ({c['failed']} failed), "
          f"{c['already_done']} resumed; report: {args.out}/report.md"
          + ("" if c["complete"] else "; INCOMPLETE: run the same command again to resume"))
    return 0


def _cmd_backtest(args) -> int:
    import warnings

    from .backtest import InSampleWarning, print_metrics, run_backtest

    given = args.data or ([] if args.strategy == "multi-asset" else [DEFAULT_DATA])
    data = [d.strip() for spec in given for d in spec.split(",") if d.strip()]
    if args.strategy == "market-making":
        from .market_making import backtest_market_making

        res = backtest_market_making(data, args.out, fromdate=args.from_, todate=args.to,
                                     fill_model=args.fill_model, params=args.params,
                                     cash=args.cash, latency=args.latency_ms,
                                     queue=args.queue_model, queue_power=args.queue_power)
        print_metrics(res)
        return 0
    if len(given) > 1:
        raise ValueError(f"--data is given once for --strategy {args.strategy} (several "
                         "datas: one comma list); it is repeated only for market-making")
    mm_only = ("latency_ms", "queue_model", "queue_power")
    if any(getattr(args, k) is not None for k in mm_only):
        raise ValueError("--latency-ms, --queue-model and --queue-power are for "
                         "--strategy market-making")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InSampleWarning)  # print_metrics repeats them loudly
        res = run_backtest(strategy=args.strategy, data=data, model=args.model,
                           fromdate=args.from_, todate=args.to, out=args.out, cash=args.cash,
                           runonce=not args.no_runonce, fill_model=args.fill_model,
                           params=args.params or {}, cache_dir=args.cache_dir)
    print_metrics(res)
    return 0


def _add_train(sub) -> None:
    tr = sub.add_parser("train", help="train a model on your bars", formatter_class=_formatter,
                        description="Train on [--from, --to]: the last --val-fraction is "
                                    "validation, the rest training, a purge gap between.")
    tr.add_argument("--data", default="bybit:BTCUSDT:60",
                    help=f"{DATA_HELP}; with --multi a comma list, one per asset")
    tr.add_argument("--multi", action="store_true",
                    help="one model over the assets of --data: a shared SSM encoder, a head "
                         "per asset and a long-only portfolio head (an s4-multi checkpoint "
                         "for --strategy multi-asset)")
    tr.add_argument("--from", dest="from_", default="2021-01-01", type=_date_arg,
                    metavar="DATE",
                    help="first bar of the training period (UTC)")
    tr.add_argument("--to", default="2022-12-31", type=_date_arg,
                    metavar="DATE",
                    help="last bar of the validation period (UTC; a date includes its day)")
    tr.add_argument("--layer", default="s4d", help="sequence layer",
                    choices=["s4", "s4d", "mamba", "s5", "dss", "lstm", "gru", "transformer"])
    from ..training.fit import TrainConfig

    d = TrainConfig()
    tr.add_argument("--epochs", type=_positive(int), default=d.epochs,
                    help="validation checks (max; early stopping)")
    tr.add_argument("--steps-per-epoch", type=_positive(int), default=d.steps_per_epoch,
                    help="optimiser steps between validation checks")
    tr.add_argument("--d-model", type=_positive(int), default=d.d_model, help="model width")
    tr.add_argument("--d-state", type=_positive(int), default=d.d_state,
                    help="state size per channel of the SSM kinds (default: the layer's own, "
                         "64; 16 for mamba)")
    tr.add_argument("--n-layers", type=_positive(int), default=d.n_layers,
                    help="number of layers")
    tr.add_argument("--seq-len", type=_positive(int), default=d.seq_len,
                    help="bars per training window")
    tr.add_argument("--burn-in", type=int, default=None,
                    help=f"unscored leading bars of a window (default: {d.burn_in}, at "
                         "most a quarter of --seq-len)")
    tr.add_argument("--batch-size", type=_positive(int), default=d.batch_size,
                    help="windows per step")
    tr.add_argument("--lr", type=_positive(float), default=d.lr, help="peak learning rate")
    tr.add_argument("--ssm-lr", type=_positive(float), default=d.ssm_lr,
                    help="peak learning rate of A, B, dt (no weight decay)")
    tr.add_argument("--mix", type=float, default=d.mix,
                    help="share of training windows mixed with another window (0: none)")
    tr.add_argument("--input-noise", type=float, default=d.input_noise,
                    help="std of the Gaussian noise on each normalised training feature "
                         "(a ridge penalty on the model's filters; 0: none)")
    tr.add_argument("--trunk", default=d.trunk, choices=["next_bar", "all"],
                    help="which heads' gradients shape the shared layers")
    tr.add_argument("--classes", type=int, default=3, choices=[3, 5],
                    help="return classes the model predicts")
    tr.add_argument("--val-fraction", type=_positive(float), default=0.15,
                    help="share of the period kept for validation (early stopping)")
    tr.add_argument("--seed", type=int, default=0, help="random seed")
    tr.add_argument("--device", default="auto", help="auto, cpu or cuda")
    tr.add_argument("--cache-dir", default=DEFAULT_CACHE,
                    help="parquet cache for bybit:/yahoo: data")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--out", required=True, metavar="PATH",
                    help="checkpoint file to write (required)")
    tr.set_defaults(func=_cmd_train)


def _add_research(sub) -> None:
    rs = sub.add_parser("research", help="walk-forward × models × seeds × assets on Ray",
                        formatter_class=_formatter,
                        description="Runs a research spec (YAML/JSON, see scripts/research/) "
                                    "as Ray tasks; rerun with the same --out to resume.")
    rs.add_argument("--spec", required=True, metavar="FILE", help="the research spec (required)")
    rs.add_argument("--out", required=True, metavar="DIR",
                    help="folder for trials, report, tear sheets, checkpoints (required)")
    rs.add_argument("--address", default=None,
                    help="join a Ray cluster: 'auto' or host:port (default: start a local "
                         "Ray for the run)")
    rs.add_argument("--workers", type=_positive(int), default=None,
                    help="CPUs of the local Ray (default: this machine's cores)")
    rs.add_argument("--serial", action="store_true", help="no Ray: one trial after another")
    rs.add_argument("--max-trials", type=_positive(int), default=None,
                    help="stop after this many trials (rerun to resume)")
    rs.add_argument("--cache-dir", default=DEFAULT_CACHE,
                    help="parquet cache for bybit:/yahoo: data")
    rs.add_argument("--storage", default=None, metavar="URL",
                    help="where the Optuna studies live: a database URL (postgresql://..., "
                         "sqlite:///...) or a journal file (default: DIR/optuna.journal)")
    rs.add_argument("--placebo", type=_positive(int), default=0, metavar="N",
                    help="after the run, rerun the spec N times on bars whose returns carry "
                         "no direction, and place the real IC, net Sharpe, DSR and PBO in "
                         "that null distribution (default: none)")
    rs.add_argument("--placebo-kind", choices=("flip", "blocks"), default="flip",
                    help="flip: each bar's return reflected at random (volatility kept); "
                         "blocks: bars shuffled in blocks of twice the longest label horizon")
    rs.set_defaults(func=_cmd_research)


def _add_backtest(sub) -> None:
    bk = sub.add_parser("backtest", help="backtest a strategy on your bars",
                        formatter_class=_formatter,
                        description="Without --from the period starts after the checkpoint's "
                                    "training and validation data; an overlapping period "
                                    "runs with a loud IN-SAMPLE warning.")
    bk.add_argument("--strategy", required=True, help="what to run (required)",
                    choices=["directional", "portfolio", "multi-asset", "market-making"])
    bk.add_argument("--data", action="append", default=None,
                    help=f"comma list; each is {FORMS} (default: {DEFAULT_DATA}; "
                         "multi-asset: the checkpoint's assets, as it was trained). Market "
                         "making: embedded only, all ticks or all bars, run together; may be "
                         "repeated")
    bk.add_argument("--model", default=None, metavar="PATH",
                    help="checkpoint (default: the shipped one; multi-asset: the shipped "
                         "multi-asset one, or what s4trade train --multi wrote)")
    bk.add_argument("--from", dest="from_", default=None, type=_date_arg,
                    metavar="DATE",
                    help="first bar (default: the first bar the checkpoint has not seen)")
    bk.add_argument("--to", default=None, type=_date_arg,
                    metavar="DATE",
                    help="last bar, a date includes its day (default: the end of the data)")
    bk.add_argument("--cash", type=_positive(float), default=None,
                    help="starting cash (default: 100,000; market making: its own 1,000,000)")
    bk.add_argument("--no-runonce", action="store_true",
                    help="run backtrader bar by bar (runonce=False)")
    bk.add_argument("--fill-model", default=None,
                    help="market making: trade_through, intensity or touch (default: auto)")
    bk.add_argument("--params", default=None, type=_json_object,
                    metavar="JSON",
                    help="strategy params as a JSON object (default: none); market making: "
                         "also per symbol, '{\"BTCUSDT\": {\"gamma\": 1e-3}, \"*\": {...}}', "
                         "and run options such as max_events")
    from ..market_making.broker import QUEUE_RULES

    bk.add_argument("--latency-ms", default=None, type=_latency_ms, metavar="MS",
                    help="market making: milliseconds, 'MS' (entry = response = cancel) or "
                         "'FEED,ENTRY,RESPONSE[,CANCEL]', or a preset: none, colocated, cloud, "
                         "retail (default: cloud)")
    bk.add_argument("--queue-model", default=None, choices=QUEUE_RULES,
                    help="market making: queue position of resting quotes (default: prob)")
    bk.add_argument("--queue-power", default=None, type=_positive(float),
                    help="market making: the prob queue model's power (default: 3)")
    bk.add_argument("--cache-dir", default=DEFAULT_CACHE,
                    help="parquet cache for bybit:/yahoo: data")
    bk.add_argument("--out", default="runs/backtest", help="folder for metrics and tear sheet")
    bk.set_defaults(func=_cmd_backtest)


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="run the end-to-end demo on the embedded data",
                          formatter_class=_formatter,
                          description="Backtests the shipped S4D checkpoint out of sample "
                                      "(2023-2024): the directional strategy on BTCUSDT, the "
                                      "portfolio strategy on BTCUSDT, ETHUSDT and SOLUSDT, the "
                                      "shipped multi-asset checkpoint's strategy on the same "
                                      "three, the market maker on the tick sample and on "
                                      "hourly bars; "
                                      "prints a table and writes reports into --out.")
    demo.add_argument("--out", default="runs/demo", help="folder for everything it writes")
    demo.add_argument("--retrain", action="store_true",
                      help="train the demo models instead of using the shipped checkpoints")
    demo.set_defaults(func=_cmd_demo)


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib import metadata

    try:
        return metadata.version("s4-trading")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="s4trade", description=PROGRAM_HELP,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    add_data(sub)
    _add_train(sub)
    add_compare(sub)
    _add_research(sub)
    _add_backtest(sub)
    add_live(sub)
    add_shadow_report(sub)
    return parser


def _user_errors() -> tuple:
    import feeds

    from ..model.errors import CheckpointError

    return (feeds.FeedError, feeds.DataError, feeds.ExchangeError, CheckpointError, ValueError,
            OSError, _ray_errors())


def _ray_errors() -> type:
    """Ray's connection failure (joining a cluster that is not there), when Ray is loaded."""
    ray_exc = sys.modules.get("ray.exceptions")
    return getattr(ray_exc, "RaySystemError", OSError) if ray_exc else OSError


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "s4trade " + " ".join(shlex.quote(a) for a in argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if len(message) > 600:
            message = message[:597] + "..."
        print(f"s4trade {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
