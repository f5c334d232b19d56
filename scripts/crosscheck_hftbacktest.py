#!/usr/bin/env python
"""Cross-check MarketMakingBroker against hftbacktest: the same events, quoting rule, latency
and fees in both engines, side by side.

    python scripts/crosscheck_hftbacktest.py                      # 0/1/10/50 ms, both queues
    python scripts/crosscheck_hftbacktest.py --latency-ms 10 --queue prob --seconds 120

Ours: backtrader with ``feeds.ticks.TickData``, ``MarketMakingBroker(latency=, queue=)``,
``MakerTakerCommInfo`` and ``ConstantSpreadStrategy``, PnL split by
``MarketMakingAnalyzer``. Reference: ``s4_strategies.market_making.hftbacktest_ref`` (the
same rule in hftbacktest on the same merged events; read its module doc for what had to be
adapted, and its "Agreement" section for the measured band and why it is not zero). Latency
X ms is entry = cancel = X, feed 0 (``--feed-ms``); ours runs with ``cancel_in_flight=False``
(hftbacktest cannot cancel an order before it is acknowledged). Prints a markdown table per
run with the ratio ours/hftbacktest.

All logic lives in ``s4_strategies.apps.crosscheck``.
"""

from __future__ import annotations

import argparse

from s4_strategies.apps.crosscheck import DATASET, RULE, compare, format_table
from s4_strategies.fees import BYBIT_MAKER, BYBIT_TAKER


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=DATASET)
    p.add_argument("--seconds", type=float, default=None,
                   help="only the first SECONDS of the data (default: all)")
    p.add_argument("--latency-ms", default="0,1,10,50",
                   help="comma-separated entry = cancel latencies in ms")
    p.add_argument("--feed-ms", type=float, default=0.0, help="feed latency in ms")
    p.add_argument("--queue", choices=["prob", "risk_averse", "both"], default="both")
    p.add_argument("--queue-power", type=float, default=3.0)
    p.add_argument("--no-partial", action="store_true", help="whole fills only")
    p.add_argument("--maker", type=float, default=BYBIT_MAKER)
    p.add_argument("--taker", type=float, default=BYBIT_TAKER)
    for key, val in RULE.items():
        p.add_argument(f"--{key.replace('_', '-')}", type=float, default=val)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    from feeds.ticks import load_ticks
    from s4_strategies.market_making.latency import Latency

    frame = load_ticks(args.dataset)
    if args.seconds is not None:
        frame = frame[frame.index < frame.index[0] + pd.Timedelta(seconds=args.seconds)]
    queues = ["prob", "risk_averse"] if args.queue == "both" else [args.queue]
    rule = {k: getattr(args, k) for k in RULE}
    print(f"{args.dataset}: {len(frame):,} events, {frame.index[0]} to {frame.index[-1]}; "
          f"rule {rule}; fees maker {args.maker}, taker {args.taker}\n")
    for ms in (float(x) for x in args.latency_ms.split(",")):
        for queue in queues:
            lat = Latency(args.feed_ms / 1e3, ms / 1e3, ms / 1e3)
            ours, ref = compare(frame, latency=lat, queue=queue, queue_power=args.queue_power,
                                partial=not args.no_partial, maker=args.maker,
                                taker=args.taker, **rule)
            print(format_table(ours, ref, f"{lat.ms()}, queue {queue}"), "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
