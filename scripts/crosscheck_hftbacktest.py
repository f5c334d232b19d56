#!/usr/bin/env python
"""Cross-check the market maker against hftbacktest and write docs/results/market_making.md.

    python scripts/crosscheck_hftbacktest.py                  # the page: ~25 min on 2 cores
    python scripts/crosscheck_hftbacktest.py --print-only --datasets usdm --latency-ms 10 \\
        --seconds 120                                         # a quick look, page untouched

One rule, a constant half-spread skewed by inventory, written separately for each engine:
ours is the user-facing ``AvellanedaStoikovStrategy(model="linear")`` through
``MarketMakingBroker``, hftbacktest runs from the recorded files with its own converter, each
at its own defaults (``s4_strategies.apps.crosscheck`` says what runs). The page holds the
band over the USD-M and spot samples, a tight and a wide spread, 1/10/50 ms and both queue
models, and the measurements that say where the rest of the difference comes from.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "results" / "market_making.md"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="usdm,spot",
                   help="comma list: usdm, spot or embedded tick dataset names")
    p.add_argument("--spreads", default="tight,wide")
    p.add_argument("--latency-ms", default="1,10,50", help="comma list: entry = response = "
                                                            "cancel latencies")
    p.add_argument("--queues", default="risk_averse,prob")
    p.add_argument("--seconds", type=float, default=None,
                   help="only the first SECONDS of each sample (default: all)")
    p.add_argument("--no-explain", action="store_true",
                   help="skip the measurements of where the difference comes from")
    p.add_argument("--print-only", action="store_true", help="print, do not write the page")
    p.add_argument("--out", type=Path, default=PAGE)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.simplefilter("ignore")  # hftbacktest's and numba's chatter
    from s4_strategies.apps.crosscheck import band_table
    from s4_strategies.apps.crosscheck_page import explain_rows, page

    t0 = time.perf_counter()
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    table, grid = band_table(datasets=split(args.datasets), spreads=split(args.spreads),
                             latencies_ms=[float(x) for x in split(args.latency_ms)],
                             queues=split(args.queues), seconds=args.seconds)
    print(table, flush=True)
    explain = [] if args.no_explain else explain_rows(seconds=args.seconds)
    if args.print_only:
        return 0
    feeds = {r["dataset"]: r["feed_ms"] for r in grid}
    feed_note = ("Median feed latency in the recordings (hftbacktest's `correct_local_timestamp`"
                 " moves the recorder's clock so the smallest is 0): " + "; ".join(
                     f"{d} {ms:.2f} ms" for d, ms in feeds.items()) + ". Spot bookTicker "
                 "carries no exchange time: the spot sample runs on the receive clock in both "
                 "engines, with no feed latency.")
    command = "python " + " ".join(["scripts/crosscheck_hftbacktest.py", *(argv or sys.argv[1:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page(grid, explain, command, time.perf_counter() - t0, feed_note))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
