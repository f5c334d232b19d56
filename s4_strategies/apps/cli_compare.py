"""``s4trade compare``: its arguments and the command (see
:mod:`s4_strategies.training.compare`)."""

from __future__ import annotations

from .cli_args import _date_arg, _formatter, _positive

#: ``compare``'s periods and seeds: the full study, and ``--quick``, a smoke run of every
#: model (tiny, one seed, months not years: about a minute on two cores)
COMPARE_FULL = {"train_from": "2021-01-01", "train_to": "2022-12-31",
                "test_from": "2023-01-01", "test_to": "2024-12-31", "seeds": 5}
COMPARE_QUICK = {"train_from": "2021-01-01", "train_to": "2021-05-31",
                 "test_from": "2021-07-01", "test_to": "2021-08-31", "seeds": 1}


def _cmd_compare(args) -> int:
    from ..training.compare import run_comparison

    given = {k: getattr(args, k) for k in COMPARE_FULL}
    plan = {k: v if v is not None else (COMPARE_QUICK if args.quick else COMPARE_FULL)[k]
            for k, v in given.items()}
    from .sources import check_period

    check_period(plan["train_from"], plan["train_to"])
    check_period(plan["test_from"], plan["test_to"])
    models = args.models.split(",") if args.models else None
    res = run_comparison(data=args.data, train=(plan["train_from"], plan["train_to"]),
                         test=(plan["test_from"], plan["test_to"]), quick=args.quick,
                         ablations=not args.no_ablations, models=models, out=args.out,
                         seed=args.seed, seeds=plan["seeds"])
    print(f"\n{args.data}: train {res['periods']['train']}, validation {res['periods']['val']}, "
          f"test {res['periods']['test']}; taker fee {res['fee_per_side']:.3%} per side, "
          f"funding {res['funding_rate_per_8h']:.2%} per 8 h; seeds {res['seeds']}\n")
    print(res["tables"])
    print(f"\nwall time {res['wall_seconds']:.0f} s")
    return 0


def add_compare(sub) -> None:
    cp = sub.add_parser("compare", help="S4, S4D, S5, DSS, selective SSM vs LSTM/GRU/Transformer",
                        formatter_class=_formatter,
                        description="Trains every model (and its ablations) with several seeds "
                                    "on one split of an embedded dataset, then prints the "
                                    "skill table against simple baselines and the trading "
                                    "table after fees and funding. --quick is a smoke run.")
    cp.add_argument("--data", default="bybit:BTCUSDT:60", help="an embedded dataset name")
    full, quick = COMPARE_FULL, COMPARE_QUICK
    for flag, key, what in (("--train-from", "train_from", "first training bar"),
                            ("--train-to", "train_to", "last validation bar"),
                            ("--test-from", "test_from", "first test bar (after a purge gap)"),
                            ("--test-to", "test_to", "last test bar")):
        cp.add_argument(flag, dest=key, default=None, type=_date_arg,
                        help=f"{what} (default: {full[key]}; --quick: {quick[key]})")
    cp.add_argument("--models", default=None, help="comma list of layers (default: all)")
    cp.add_argument("--quick", action="store_true",
                    help="a smoke run: every model tiny, one short epoch, one seed, a few "
                         "months, no ablations (about a minute)")
    cp.add_argument("--no-ablations", action="store_true", help="skip the ablation table")
    cp.add_argument("--seed", type=int, default=0, help="first random seed")
    cp.add_argument("--seeds", type=_positive(int), default=None,
                    help=f"seeds per network, for mean ± sd and paired differences "
                         f"(default: {full['seeds']}; --quick: {quick['seeds']})")
    cp.add_argument("--out", default="runs/compare", help="folder for the tables (and JSON)")
    cp.set_defaults(func=_cmd_compare)
