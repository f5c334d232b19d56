"""``s4trade live``: its arguments and the command (see :mod:`s4_strategies.apps.live`)."""

from __future__ import annotations

from .cli_args import DEFAULT_DATA, _formatter, _json_object, _positive


def _cmd_live(args) -> int:
    from .live import run_live

    mode = next((m for m in ("testnet", "demo", "mainnet") if getattr(args, m)), "shadow")
    limits = {k: getattr(args, k) for k in ("max_position", "max_notional", "max_orders",
                                            "per_seconds", "max_daily_loss",
                                            "max_daily_loss_pct") if getattr(args, k) is not None}
    limits["stale_intervals"] = args.stale_bars
    limits["flatten"] = args.flatten_on_trip
    data = args.data or (None if args.strategy == "multi-asset" else DEFAULT_DATA)
    summary = run_live(data, mode, strategy=args.strategy, model=args.model,
                       out=args.out, cash=args.cash, params=args.params or {}, limits=limits,
                       on_exit=args.on_exit, backfill=args.backfill,
                       resume=False if args.fresh else "auto")
    return 1 if summary["killswitch"] or summary["data_error"] else 0


def add_live(sub) -> None:
    lv = sub.add_parser("live", help="run a strategy on Bybit's live candles (shadow or trading)",
                        formatter_class=_formatter,
                        description="Shadow mode (the default) fills orders on the live bars "
                                    "as the backtest would and sends nothing. --testnet, "
                                    "--demo and --mainnet trade, with keys from "
                                    "BYBIT_API_KEY and BYBIT_API_SECRET. Ctrl-C stops cleanly.")
    lv.add_argument("--strategy", required=True, choices=["directional", "multi-asset"],
                    help="what to run (required); multi-asset: shadow mode only")
    lv.add_argument("--data", default=None, metavar="bybit:SYMBOL:INTERVAL",
                    help="the live candles: bybit:SYMBOL:INTERVAL[:linear|spot|inverse]; "
                         f"multi-asset: a comma list, one per asset (default: {DEFAULT_DATA}; "
                         "multi-asset: the checkpoint's symbols)")
    mode = lv.add_mutually_exclusive_group()
    mode.add_argument("--shadow", action="store_true",
                      help="send nothing; journal what would have happened (the default)")
    mode.add_argument("--testnet", action="store_true", help="trade on Bybit's testnet")
    mode.add_argument("--demo", action="store_true", help="trade on Bybit's demo account")
    mode.add_argument("--mainnet", action="store_true", help="trade with real money")
    lv.add_argument("--model", default=None, metavar="PATH",
                    help="checkpoint (default: the shipped one; multi-asset: the shipped "
                         "multi-asset one)")
    lv.add_argument("--cash", type=_positive(float), default=10_000.0,
                    help="shadow mode's starting cash")
    lv.add_argument("--params", default=None, type=_json_object, metavar="JSON",
                    help="strategy params as a JSON object (default: none)")
    lv.add_argument("--backfill", type=_positive(int), default=None,
                    help="bars of history before the stream (default: 4 x the model's "
                         "warm-up, at least 500)")
    lv.add_argument("--max-position", type=_positive(float), default=None,
                    help="kill switch: largest absolute position, in units")
    lv.add_argument("--max-notional", type=_positive(float), default=None,
                    help="kill switch: largest absolute position value")
    lv.add_argument("--max-orders", type=_positive(int), default=None,
                    help="kill switch: most orders per --per-seconds")
    lv.add_argument("--per-seconds", type=_positive(float), default=None,
                    help="kill switch: the window of --max-orders (default: 60)")
    lv.add_argument("--max-daily-loss", type=_positive(float), default=None,
                    help="kill switch: largest loss since the UTC day began, in cash")
    lv.add_argument("--max-daily-loss-pct", type=_positive(float), default=None,
                    help="kill switch: the same as a fraction of the day's starting value")
    lv.add_argument("--stale-bars", type=_positive(float), default=3.0,
                    help="kill switch: stop when no candle came for this many intervals")
    lv.add_argument("--flatten-on-trip", action="store_true",
                    help="kill switch: also close positions when it trips")
    lv.add_argument("--on-exit", choices=["cancel", "keep", "flatten"], default="cancel",
                    help="open orders and positions when the run stops")
    lv.add_argument("--fresh", action="store_true",
                    help="ignore a saved state and start from the history")
    lv.add_argument("--out", default="runs/live", help="folder for state and journal")
    lv.set_defaults(func=_cmd_live)


def _cmd_shadow_report(args) -> int:
    from .shadow_report import shadow_report

    report = shadow_report(args.journal, args.data, model=args.model, out=args.out,
                           cash=args.cash, params=args.params or {}, history=args.history,
                           tearsheet=not args.no_tearsheet)
    return 0 if report["agree"] else 1


def add_shadow_report(sub) -> None:
    sr = sub.add_parser("shadow-report", formatter_class=_formatter,
                        help="compare a shadow run's journal with the backtest of its bars",
                        description="Replays the journal through the analyzers (metrics, "
                                    "tear sheet) and backtests the same strategy on the same "
                                    "bars; exit code 1 when their fills differ.")
    sr.add_argument("--journal", required=True, metavar="PATH",
                    help="the shadow run's journal.jsonl (required)")
    sr.add_argument("--data", default=DEFAULT_DATA, help="the same bars: an embedded name, a "
                    "file or bybit:SYMBOL:INTERVAL")
    sr.add_argument("--model", default=None, metavar="PATH",
                    help="the shadow run's checkpoint (default: the shipped one)")
    sr.add_argument("--cash", type=_positive(float), default=10_000.0,
                    help="the shadow run's starting cash")
    sr.add_argument("--params", default=None, type=_json_object, metavar="JSON",
                    help="the shadow run's strategy params (default: none)")
    sr.add_argument("--history", type=_positive(int), default=None,
                    help="bars before the first order (default: where the shadow run's feed "
                         "began)")
    sr.add_argument("--no-tearsheet", action="store_true", help="skip the HTML tear sheet")
    sr.add_argument("--out", default="runs/shadow-report", help="folder for the report")
    sr.set_defaults(func=_cmd_shadow_report)
