#!/usr/bin/env python
"""Benchmarks of the state space core; prints markdown tables to stdout.

    python scripts/bench_ssm.py            # full run, a few minutes on 2 CPU cores
    python scripts/bench_ssm.py --quick    # smaller sizes, for a smoke test

1. Cost of the next prediction with L bars of history (L = 256 .. 16384): the numpy
   stepper, the eager torch ``step``, and re-running the model over the last L bars, with
   the Transformer and LSTM baselines re-run over the same window. One torch thread.
2. Stepper backends side by side (numba / numpy / torch step) for the five SSM layers.
3. The stepper's memory as consumed history grows.
4. Training view: forward + backward at batch 32 and peak memory (RSS high-water mark,
   reset per case through /proc/self/clear_refs) for L = 256, 1024, 4096; the selective SSM
   with the compiled scan (what scan="auto" runs on the CPU) and with the recompute scan.
5. One training step (forward + backward) of the default model, TrainConfig() sizes
   (d_model 64, 4 layers, dropout 0.1, batch 8, windows of 1,024 bars), at 1 and 2 torch
   threads: S4D beside the selective SSM with each CPU scan.
6. The selective scans alone (forward + backward), E 128, N 16, one thread.

Every ratio is against a baseline measured in the same run. A cell whose time or memory,
estimated from the previous length, would exceed the per-cell budget (60 s, 8 GB) or the
run's deadline (360 s) is skipped and marked "skip" with the estimate.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import re
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s4_strategies.ssm import (  # noqa: E402
    build_model,
    selective_scan_chunked,
    selective_scan_compiled,
    selective_scan_recompute,
)
from s4_strategies.training.fit import DEFAULT_D_STATE, TrainConfig  # noqa: E402

INPUT_DIM = 16
DEFAULT = dict(d_model=64, d_state=64, n_layers=4)


def timed(fn, min_time: float = 0.2, max_reps: int = 1000, long: float = 8.0) -> float:
    """Seconds per call: best of the calls after a warm-up call. A call slower than ``long``
    seconds is timed once, warm-up included (allocation costs are then a small share)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > long:
        return first
    best, spent, reps = float("inf"), 0.0, 0
    while reps == 0 or (spent < min_time and reps < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return best


def per_bar(step, xs, n: int) -> float:
    """Seconds per bar of ``step`` over n bars (best of 3 blocks)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            step(xs[i % len(xs)])
        best = min(best, (time.perf_counter() - t0) / n)
    return best


class PeakRSS:
    """Peak resident memory above the starting point, in MB (Linux; None elsewhere)."""

    def __enter__(self):
        gc.collect()
        try:  # hand freed heap memory back, so the baseline is what is really in use
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = self._read("VmRSS")
        except OSError:
            self.base = None
        return self

    def __exit__(self, *exc):
        self.mb = None if self.base is None else (self._read("VmHWM") - self.base) / 1024

    @staticmethod
    def _read(key: str) -> int:
        return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def fmt_t(s: float | None) -> str:
    if s is None:
        return "skip"
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_r(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f" ({a / b:,.0f}×)"


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def make(kind, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    return build_model(kind, INPUT_DIM, **{**DEFAULT, **kw}).to(dtype).eval()


def estimate(prev, L_prev, L, power=1.0):
    return None if prev is None else prev * (L / L_prev) ** power


def bench_next_prediction(lengths, budget):
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(max(lengths), INPUT_DIM)).astype(np.float32)
    s4, tf, lstm = make("s4"), make("transformer"), make("lstm")
    sp = s4.stepper()
    rows, prev = [], {}
    for L in lengths:
        x = torch.from_numpy(xs[None, :L])  # (1, L, I)
        sp.reset()
        for i in range(L):  # consume the history bar by bar
            sp.step(xs[i])
        t_sp = per_bar(sp.step, xs, 2000)
        with torch.no_grad():
            _, state = s4(x, return_state=True)  # the history in one parallel call
            st = [state]
            xt = torch.from_numpy(xs[:1])

            def torch_step(_, st=st, xt=xt):
                _, st[0] = s4.step(xt, st[0])

            t_torch = per_bar(torch_step, xs, 30)
            cells = {}
            for name, model, power in (("s4", s4, 1.0), ("tf", tf, 2.0), ("lstm", lstm, 1.0)):
                est = estimate(*prev.get(name, (None, L)), L, power)
                if est is not None and est > budget:
                    cells[name] = None
                    continue
                cells[name] = timed(lambda m=model, x=x: m(x), min_time=0.1, max_reps=5)
                prev[name] = (cells[name], L)
        rows.append([f"{L:,}", fmt_t(t_sp), fmt_t(t_torch) + fmt_r(t_torch, t_sp),
                     fmt_t(cells["s4"]) + fmt_r(cells["s4"], t_sp),
                     fmt_t(cells["tf"]) + fmt_r(cells["tf"], t_sp),
                     fmt_t(cells["lstm"]) + fmt_r(cells["lstm"], t_sp)])
    header = ["history L", "S4 stepper (numba, f32)", "S4 torch `step`", "S4 re-run last L",
              "Transformer re-run", "LSTM re-run"]
    return table(header, rows)


def bench_backends(n_numba=3000, n_slow=100):
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(256, INPUT_DIM)).astype(np.float32)
    rows, f32 = [], {}
    for name, kind, kw in (("s4", "s4", {}), ("s4d", "s4d", {}), ("s5", "s5", {}),
                           ("dss", "dss", {}),
                           ("mamba, d_state 16 (its default)", "mamba", dict(d_state=16)),
                           ("mamba, d_state 64", "mamba", {})):
        m = make(kind, **kw)
        t = {}
        for label, kw, n in (("numba f32", dict(backend="numba"), n_numba),
                             ("numba f64", dict(backend="numba", dtype=np.float64), n_numba),
                             ("numpy f32", dict(backend="numpy"), n_slow)):
            sp = m.stepper(**kw)
            t[label] = per_bar(sp.step, xs, n)
        st = [m.default_state(1)]
        xt = torch.from_numpy(xs[:1])

        def torch_step(_, m=m, st=st, xt=xt):
            with torch.no_grad():
                _, st[0] = m.step(xt, st[0])

        t_torch = per_bar(torch_step, xs, 30)
        f32[name] = t["numba f32"]
        rows.append([name] + [fmt_t(v) + fmt_r(t_torch, v) for v in t.values()] + [fmt_t(t_torch)])
    for row in rows:  # the numba f32 stepper as a multiple of S4D's, same run
        row.insert(2, f"{f32[row[0]] / f32['s4d']:.1f}×")
    header = ["layer", "stepper numba f32 (default)", "numba f32 ÷ S4D's", "stepper numba f64",
              "stepper numpy f32", "torch `step` (eager)"]
    return table(header, rows)


def bench_training(lengths, batch, budget, deadline, mem_cap_mb=8000):
    kinds = [("LSTM (baseline)", "lstm", {}), ("S4", "s4", {}), ("S4D", "s4d", {}),
             ("S5 (parallel scan)", "s5", {}), ("DSS (exp)", "dss", {}),
             ("selective SSM (d_state 16), compiled scan (auto)", "mamba",
              dict(d_state=16, scan="compiled")),
             ("selective SSM (d_state 16), recompute scan", "mamba",
              dict(d_state=16, scan="recompute")),
             ("Transformer", "transformer", {})]
    results = {}
    for label, kind, kw in kinds:
        torch.manual_seed(0)
        model = build_model(kind, INPUT_DIM, **{**DEFAULT, **kw}).train()
        prev = None
        for L in lengths:
            power = 2.0 if kind == "transformer" else 1.0
            est = None if prev is None else estimate(prev[0], prev[1], L, power)
            est_mb = None if prev is None or prev[2] is None else prev[2] * L / prev[1]
            late = est is not None and time.perf_counter() + 2 * est > deadline
            if (est is not None and est > budget) or late or (est_mb or 0) > mem_cap_mb:
                results[label, L] = (None, est, est_mb)
                continue
            x = torch.randn(batch, L, INPUT_DIM)

            def fwd_bwd(model=model, x=x):
                out = model(x)
                loss = sum(v.float().square().mean() for v in out.values())
                loss.backward()
                model.zero_grad(set_to_none=True)

            with PeakRSS() as mem:
                t = timed(fwd_bwd, min_time=0.5, max_reps=3)
            prev = (t, L, mem.mb)
            results[label, L] = (t, None, mem.mb)
    rows = []
    for label, *_ in kinds:
        cells = []
        for L in lengths:
            t, est, mb = results[label, L]
            if t is None:
                cells.append(f"skip (est. {est:.0f} s" + (f", {est_mb_fmt(mb)})" if mb else ")"))
                continue
            base = results[kinds[0][0], L][0]
            ratio = "" if label == kinds[0][0] or base is None else f" ({t / base:.1f}×)"
            cells.append(f"{fmt_t(t)}{ratio}, " + (f"{mb:,.0f} MB" if mb is not None else "n/a"))
            s4d_t, _, s4d_mb = results["S4D", L]
            if label.startswith("selective") and s4d_t is not None:  # issue 28: vs S4D
                cells[-1] += f"; ÷ S4D: {t / s4d_t:.2f}× time" + (
                    f", {mb / s4d_mb:.2f}× memory" if mb and s4d_mb else "")
        rows.append([label] + cells)
    return table(["model"] + [f"L = {L:,}" for L in lengths], rows)


def bench_default_step(threads=(1, 2), rounds=3):
    """Forward + backward of the model train_model builds from TrainConfig(), per layer. The
    layers take turns, one step each per round (best of ``rounds`` after a warm-up step), so
    a burst of load on the shared cores hits them alike; memory is the largest peak of a step
    above the RSS before it."""
    cfg = TrainConfig()
    rows = [("S4D", "s4d", {}), ("selective SSM, compiled scan (auto)", "mamba",
                                 dict(scan="compiled")),
            ("selective SSM, recompute scan", "mamba", dict(scan="recompute"))]
    x = torch.randn(cfg.batch_size, cfg.seq_len, INPUT_DIM)
    res = {}
    for n in threads:
        torch.set_num_threads(n)
        models = {}
        for label, layer, kw in rows:
            torch.manual_seed(0)
            models[label] = build_model(
                layer, INPUT_DIM, d_model=cfg.d_model, n_layers=cfg.n_layers,
                dropout=cfg.dropout, d_state=DEFAULT_D_STATE[layer], **kw).train()
        for r in range(rounds + 1):
            for label, model in models.items():
                with PeakRSS() as mem:
                    t0 = time.perf_counter()
                    out = model(x)
                    sum(v.float().square().mean() for v in out.values()).backward()
                    model.zero_grad(set_to_none=True)
                    t = time.perf_counter() - t0
                    del out
                best_t, best_mb = res.get((label, n), (float("inf"), None))
                mb = mem.mb if best_mb is None or mem.mb is None else max(mem.mb, best_mb)
                res[label, n] = (min(best_t, t) if r else best_t, mb)
    torch.set_num_threads(1)
    out = []
    for label, *_ in rows:
        cells = [label]
        for n in threads:
            t, mb = res[label, n]
            t0, mb0 = res[rows[0][0], n]
            r = "" if label == rows[0][0] else f" ({t / t0:.2f}× S4D)"
            m = "n/a" if mb is None else f"{mb:,.0f} MB" + (
                "" if label == rows[0][0] or not mb0 else f" ({mb / mb0:.2f}× S4D)")
            cells += [fmt_t(t) + r, m]
        out.append(cells)
    header = ["layer"] + [c for n in threads for c in (f"{n} thread{'s' * (n > 1)}",
                                                        f"peak memory, {n} thr.")]
    return table(header, out)


def bench_scans(shapes, E=128, N=16):
    """The selective scans alone, forward + backward, one thread (scan="auto" evidence)."""
    scans = [("compiled", selective_scan_compiled), ("chunked", selective_scan_chunked),
             ("recompute", selective_scan_recompute)]
    rows = []
    for B, L in shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(B, L, E, generator=g).requires_grad_()
        dt = (torch.rand(B, L, E, generator=g) * 0.1).requires_grad_()
        A = (-torch.arange(1, N + 1.0).repeat(E, 1)).requires_grad_()  # (E, N), S4D-Real
        Bm = torch.randn(B, L, N, generator=g).requires_grad_()
        Cm = torch.randn(B, L, N, generator=g).requires_grad_()
        D = torch.ones(E, requires_grad=True)
        t = {}
        for name, fn in scans:
            def fwd_bwd(fn=fn, args=(x, dt, A, Bm, Cm, D)):
                y, h = fn(*args)
                (y.sum() + h.square().sum()).backward()

            t[name] = timed(fwd_bwd, min_time=0.3, max_reps=3)
        rows.append([f"{B}", f"{L:,}"] + [fmt_t(t["compiled"])] + [
            fmt_t(t[k]) + f" ({t[k] / t['compiled']:.0f}×)" for k in ("chunked", "recompute")])
    return table(["B", "L", "compiled", "chunked", "recompute"], rows)


def est_mb_fmt(mb: float) -> str:
    return f"{mb / 1024:.0f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def bench_stepper_memory(checkpoints):
    m = make("s4")
    sp = m.stepper()
    xs = np.random.default_rng(2).normal(size=(1024, INPUT_DIM)).astype(np.float32)
    rows, done = [], 0
    sp.step(xs[0])
    for L in checkpoints:
        while done < L - 1000:
            sp.step(xs[done % 1024])
            done += 1
        tracemalloc.start()
        while done < L:  # the last 1000 bars before the checkpoint under tracemalloc
            sp.step(xs[done % 1024])
            done += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = PeakRSS._read("VmRSS") / 1024
        rows.append([f"{L:,}", f"{sp.state_nbytes:,} B", f"{peak:,} B", f"{rss:,.0f} MB"])
    return table(["bars consumed", "stepper state", "peak traced allocation (last 1000 bars)",
                  "process RSS"], rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds allowed per cell")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    hist = [256, 1024] if args.quick else [256, 1024, 4096, 16384]
    train = [64, 256] if args.quick else [256, 1024, 4096]
    batch = 4 if args.quick else 32
    print("# s4-trading SSM benchmark\n")
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"load average at start {os.getloadavg()[0]:.2f} (the cores are shared)")
    print(f"- torch {torch.__version__}, torch.set_num_threads(1) for every measurement but "
          "section 5's 2-thread columns; "
          f"numpy {np.__version__}")
    print(f"- model: input_dim {INPUT_DIM}, d_model 64, d_state 64, 4 layers, float32 weights; "
          "the stepper runs in the model's dtype (float32) unless marked f64\n")
    print("## 1. Next prediction with L bars of history (per bar; × = multiple of the stepper)\n")
    print(bench_next_prediction(hist, args.budget))
    print("\n## 2. Per-bar stepper backends (× = speed-up over the eager torch `step`)\n")
    print(bench_backends(n_numba=500 if args.quick else 3000, n_slow=30 if args.quick else 100))
    print("\n## 3. Stepper memory as consumed history grows (S4 default model)\n")
    print(bench_stepper_memory([1024, 4096] if args.quick else [1024, 4096, 16384, 65536]))
    print(f"\n## 4. Training view: forward + backward at batch {batch}, time (× = multiple of "
          "the LSTM baseline) and peak memory above the process baseline\n")
    print(bench_training(train, batch, args.budget, deadline=t_start + 360))
    cfg = TrainConfig()
    print(f"\n## 5. One training step of the default model (TrainConfig: d_model {cfg.d_model}, "
          f"{cfg.n_layers} layers, batch {cfg.batch_size}, L {cfg.seq_len:,}), forward + "
          "backward, and peak memory above the process baseline\n")
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    print(bench_default_step(rounds=1 if args.quick else 3))
    print("\n## 6. The selective scans alone, forward + backward, E 128, N 16, one thread "
          "(× = multiple of the compiled scan)\n")
    print(bench_scans([(1, 1024), (4, 256)] if args.quick
                      else [(1, 16384), (8, 1024), (32, 1024)]))
    print(f"\ntotal benchmark time: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
