"""Research throughput: trials per minute run serially, on a local Ray with 1 and 2 workers,
and on a head started separately on 127.0.0.1 (``ray start --head``) joined with
``--address``; ratios against the serial loop measured in the same run.

    python scripts/bench_research.py [--trials-per-fold 4] [--seeds 2]

The grid: the linear baseline and S4D (Optuna over the learning rate) on AAPL, MSFT and SPY
daily bars, two half-year folds, the quick spec's small model and a few more optimiser steps;
each configuration writes to a fresh folder (nothing resumed). Throughput counts the trials'
wall time from the first submission to the last result; Ray's start-up (and the head's) is
shown apart. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_spec(trials_per_fold: int, seeds: int):
    import yaml

    from s4_strategies.training.research import parse_spec

    raw = yaml.safe_load((ROOT / "scripts/research/equities_daily_quick.yaml").read_text())
    raw["models"] = [{"name": "S4D", "layer": "s4d",
                      "space": {"lr": {"log_uniform": [1e-3, 1e-2]}}},
                     {"name": "Linear", "layer": "linear"}]
    raw["search"] = {"trials_per_fold": trials_per_fold, "concurrency": 2}
    raw["seeds"] = seeds
    raw["train"] = {**raw["train"], "epochs": 3, "steps_per_epoch": 40, "d_model": 16,
                    "batch_size": 16}
    return parse_spec(raw)


def run(spec, frames, make_executor, label: str) -> dict:
    from s4_strategies.training.research.run import research

    out = Path(tempfile.mkdtemp(prefix="bench-research-"))
    t0 = time.perf_counter()
    executor = make_executor()
    started = time.perf_counter() - t0
    try:
        res = research(spec, frames, out, executor, log=lambda s: None)
    finally:
        executor.close()
    shutil.rmtree(out, ignore_errors=True)
    c = res["counts"]
    assert c["complete"] and c["failed"] == 0, c
    return {"label": label, "trials": c["ran"], "seconds": c["wall_seconds"], "start": started,
            "per_minute": 60.0 * c["ran"] / c["wall_seconds"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials-per-fold", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)

    import feeds
    from s4_strategies.training.research.engine import RayExecutor, SerialExecutor
    from s4_strategies.training.research.head import loopback_head

    spec = bench_spec(args.trials_per_fold, args.seeds)
    frames = {ds: feeds.load_embedded(ds, todate=spec.date_to) for ds in spec.datasets}
    t_all = time.perf_counter()

    def serial():
        import torch

        torch.set_num_threads(1)  # as each Ray worker
        return SerialExecutor()

    rows = [run(spec, frames, serial, "serial loop (this process)"),
            run(spec, frames, lambda: RayExecutor(num_cpus=1), "local Ray, 1 worker"),
            run(spec, frames, lambda: RayExecutor(num_cpus=2), "local Ray, 2 workers")]
    t0 = time.perf_counter()
    with loopback_head(num_cpus=2) as (address, _):
        head_start = time.perf_counter() - t0
        row = run(spec, frames, lambda: RayExecutor(address=address),
                  "head on 127.0.0.1 (`ray start --head`, 2 CPUs), `--address`")
        row["start"] += head_start
        rows.append(row)
    base = rows[0]["per_minute"]
    print(f"{rows[0]['trials']} trials each (2 folds × 3 assets × (S4D: "
          f"{args.trials_per_fold} settings + {args.seeds - 1} more seed(s); linear)); "
          f"{os.cpu_count()} CPU cores\n")
    print("| executor | trials/min | ratio to serial | trials' wall s | start-up s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['per_minute']:.1f} | {r['per_minute'] / base:.2f}× | "
              f"{r['seconds']:.1f} | {r['start']:.1f} |")
    print(f"\ntotal benchmark time: {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
