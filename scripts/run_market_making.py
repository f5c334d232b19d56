#!/usr/bin/env python
"""Run the Avellaneda–Stoikov market maker on the embedded BTCUSDT ticks or hourly bars.

    python scripts/run_market_making.py --source ticks --out runs/mm_ticks
    python scripts/run_market_making.py --source bars --fill-model intensity --out runs/mm_bars
    python scripts/run_market_making.py --source bars --set model=glft --set gamma=1e-3
    python scripts/run_market_making.py --dataset binance:BTCUSDT --dataset binance-usdm:BTCUSDT \
        --params '{"binance-usdm:BTCUSDT": {"gamma": 1e-3}}' --latency-ms 0.5,1,1 --queue-model prob

Several ``--dataset`` (repeated or a comma list; all ticks or all bars) run together, each
with its instrument's tick and lot; ``--params`` takes strategy params as JSON, flat or per
symbol (``{"BTCUSDT": {...}, "*": {...}}``), ``--set`` one at a time (for every feed).

Prints the metrics table; with ``--out`` writes the report every strategy gets
(``tearsheet.html``, ``metrics.json``, ``equity_drawdown.png``) plus ``mm_metrics.json`` and
``mm_inventory.png``.
All logic lives in ``s4_strategies.apps.market_making.run_market_making``.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys

from s4_strategies.fees import BYBIT_MAKER, BYBIT_TAKER


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _json_object(text: str) -> dict:
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return obj


def build_parser() -> argparse.ArgumentParser:
    from s4_strategies.market_making.broker import QUEUE_RULES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=["ticks", "bars"], default=None,
                   help="default: that of --dataset, else ticks")
    p.add_argument("--fill-model", choices=["trade_through", "intensity", "touch"], default=None,
                   help="default: trade_through")
    p.add_argument("--queue-model", "--queue", dest="queue", choices=QUEUE_RULES, default="prob")
    p.add_argument("--queue-power", type=float, default=3.0, help="the prob queue model's power")
    p.add_argument("--latency-ms", default=None, metavar="MS",
                   help="'MS' (entry = response = cancel) or 'FEED,ENTRY,RESPONSE[,CANCEL]' "
                        "milliseconds, or a preset (none, colocated, cloud, retail); default: "
                        "cloud")
    p.add_argument("--dataset", action="append", default=None,
                   help="e.g. binance-usdm:BTCUSDT or bybit:ETHUSDT:60; repeat (or a comma "
                        "list) for several")
    p.add_argument("--params", type=_json_object, default=None, metavar="JSON",
                   help='strategy params, flat or per symbol: \'{"BTCUSDT": {"gamma": 1e-3}}\'')
    p.add_argument("--fromdate", default=None)
    p.add_argument("--todate", default=None)
    p.add_argument("--max-events", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maker", type=float, default=BYBIT_MAKER,
                   help="maker fee, fraction of notional (negative = rebate)")
    p.add_argument("--taker", type=float, default=BYBIT_TAKER, help="taker fee")
    p.add_argument("--per-contract", type=float, default=None,
                   help="fixed fee per contract per side (futures), e.g. 7 for a $14 round turn")
    p.add_argument("--cash", type=float, default=1_000_000.0, help="starting cash")
    p.add_argument("--out", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy parameter, e.g. --set gamma=1e-3 --set model=glft")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from s4_strategies.apps.market_making import dataset_source, run_market_making

    params = {}
    for item in args.set:
        key, _, val = item.partition("=")
        params[key.strip()] = _value(val.strip())
    datasets = [d.strip() for spec in args.dataset or [] for d in spec.split(",") if d.strip()]
    source = args.source or (dataset_source(datasets[0]) if datasets else None) or "ticks"
    res = run_market_making(source, args.fill_model, out=args.out, dataset=datasets or None,
                            fromdate=args.fromdate, todate=args.todate,
                            max_events=args.max_events, seed=args.seed, queue=args.queue,
                            queue_power=args.queue_power, latency=args.latency_ms,
                            params=args.params, maker=args.maker, taker=args.taker,
                            cash=args.cash, per_contract=args.per_contract, **params)
    print(f"{res['dataset']} ({res['source']}), fill model: {res['fill_model']}, "
          f"latency: {res['broker']['latency']}, queue: {res['broker']['queue']}")
    print(res["table"])
    for path in res["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
