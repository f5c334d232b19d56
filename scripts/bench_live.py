"""What the live stack costs per bar: the S4 directional strategy alone, then with each
piece a live run adds, same bars, same run.

    python scripts/bench_live.py [--bars N] [--repeat R] [--write]

Bar by bar (``runonce=False``, as live) over the embedded Bybit BTCUSDT hourly bars, with
the shipped checkpoint. Rows: the strategy on backtrader's broker (the baseline), then with
the kill switch, the drift monitor, the state saved after every bar (with and without
fsync), the shadow broker writing its journal, and everything together as ``s4trade live``
runs it. Each time is the best of ``--repeat`` runs; × is the ratio to the baseline of the
same run. ``--write`` puts the table into the ``live:bench`` block of docs/benchmarks.md
(``--readme``, its old name, still works).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--write", "--readme", dest="write", action="store_true",
                    help="put the table into docs/benchmarks.md's live:bench block")
    args = ap.parse_args(argv)

    import backtrader as bt
    import torch

    import feeds
    from analyzers.drift import DriftMonitor, reference_from_predictor
    from s4_strategies.live import KillSwitch, ShadowBroker, StateSaver
    from s4_strategies.model import default_checkpoint, load_model
    from s4_strategies.strategies import S4DirectionalStrategy

    torch.set_num_threads(1)
    df = feeds.load_embedded("bybit:BTCUSDT:60").iloc[-args.bars:]
    pred = load_model(default_checkpoint())
    ref = reference_from_predictor(pred)
    tmp = Path(tempfile.mkdtemp(prefix="bench_live_"))

    def run(name, kill=False, drift=False, state=None, shadow=False):
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
        cerebro.adddata(feeds.ArrayData(dataname=df), name="BTCUSDT")
        if shadow:
            cerebro.setbroker(ShadowBroker(journal=tmp / f"{name}.jsonl"))
        cerebro.broker.setcash(10_000.0)
        cerebro.addstrategy(S4DirectionalStrategy, model=pred)
        if kill:
            cerebro.addanalyzer(KillSwitch, max_position=1e9, max_orders=10_000,
                                max_daily_loss_pct=0.99)
        if drift:
            cerebro.addanalyzer(DriftMonitor, indicator="s4", reference=ref, window=2000,
                                min_bars=168)
        if state is not None:
            path = tmp / f"{name}.json"
            path.unlink(missing_ok=True)
            cerebro.addanalyzer(StateSaver, path=path, resume=False, fsync=state)
        t0 = time.perf_counter()
        cerebro.run(runonce=False)
        return time.perf_counter() - t0

    rows = [("strategy alone (backtrader's broker)", {}),
            ("+ kill switch", {"kill": True}),
            ("+ drift monitor", {"drift": True}),
            ("+ state saved every bar, no fsync", {"state": False}),
            ("+ state saved every bar, fsync", {"state": True}),
            ("shadow broker with its journal", {"shadow": True}),
            ("everything (`s4trade live --shadow`)",
             {"kill": True, "drift": True, "state": True, "shadow": True})]
    times = []
    for i, (label, kw) in enumerate(rows):
        best = min(run(f"r{i}", **kw) for _ in range(args.repeat))
        times.append(best)
        print(f"{label}: {best:.2f} s", file=sys.stderr)
    base = times[0]
    lines = [f"{len(df):,} hourly bars, bar by bar, best of {args.repeat}; "
             f"`python scripts/bench_live.py --bars {args.bars} --repeat {args.repeat}`", "",
             "| run | seconds | ms per bar | × alone |", "|---|---:|---:|---:|"]
    for (label, _), t in zip(rows, times):
        lines.append(f"| {label} | {t:.2f} | {1000 * t / len(df):.3f} | {t / base:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        from page_block import replace_block

        replace_block("live:bench", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
