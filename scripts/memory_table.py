"""The memory table: test IC by planted lag, per model, as a fraction of the oracle's.

    python scripts/memory_table.py run [--kinds s4,s4d,...] [--lags 1,8,...] [--seeds 0,1,2]
                                       [--variants default] [--jobs N] [--threads T] [--dir D]
    python scripts/memory_table.py write [--dir D]      # docs/results/memory.md (+ .png)
    python scripts/memory_table.py rename-loss [--dir D]

``run`` trains every (variant, kind, lag, seed) cell not yet in ``--dir`` (default
runs/memory) with :func:`s4_strategies.training.memory.probe` and writes one JSON per cell,
so runs resume, subsets add up, and several ``run`` processes may share a directory (a cell
is claimed by an exclusive claim file; claims of dead processes are taken over). ``write``
tabulates whatever cells exist, says which, and records the commands that made them.

Variants: ``default`` (``TrainConfig()`` as users get it), and for the S4D ablations of
docs/results/memory.md: ``old`` (the recipe before issue 30: every head through the trunk,
no mixing, selection on the signal cross-entropy, 16 windows of 512 bars, burn-in 128),
``nomix`` (default but ``mix=0``), ``alltrunk`` (default but ``trunk="all"``) and ``loss``
(default but the epoch kept by the validation next-bar loss, ``criterion="next_bar"``: the
default until the rank IC replaced it; cells run as "default" before that change are
renamed ``loss_*`` by ``memory_table.py rename-loss``, since their configuration is exactly
that variant's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from s4_strategies.training.research.reaper import alive  # noqa: E402

KINDS = ("s4", "s4d", "mamba", "s5", "dss", "lstm", "gru", "transformer", "linear")
LAGS = (1, 8, 24, 64, 128, 256, 512)
NAMES = {"s4": "S4", "s4d": "S4D", "mamba": "Selective SSM", "s5": "S5", "dss": "DSS",
         "lstm": "LSTM", "gru": "GRU",
         "transformer": "Transformer", "linear": "Linear (OLS on the features)"}
#: Each variant undoes parts of the default recipe. The ablations below were run before the
#: input noise became the default, and are defined without it (``input_noise`` 0).
VARIANTS = {
    "default": {},
    "nonoise": {"input_noise": 0.0},
    "old": {"trunk": "all", "mix": 0.0, "criterion": "signal", "seq_len": 512, "burn_in": 128,
            "batch_size": 16, "input_noise": 0.0},
    "nomix": {"mix": 0.0, "input_noise": 0.0},
    "alltrunk": {"trunk": "all", "input_noise": 0.0},
    "loss": {"criterion": "next_bar", "input_noise": 0.0},
}
VARIANT_NAMES = {"nonoise": "no input noise", "old": "recipe before issue 30",
                 "nomix": "no mixed windows, no input noise",
                 "alltrunk": "every head through the trunk, no input noise",
                 "loss": "epoch by validation loss"}
DOCS = ROOT / "docs" / "results"


def cell_name(variant: str, kind: str, lag: int, seed: int) -> str:
    return f"{variant}_{kind}_lag{lag}_seed{seed}"


def claim(path: Path) -> bool:
    """Take the cell at ``path`` (its .claim file) unless a live process holds it."""
    lock = path.with_suffix(".claim")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and alive(pid):
                return False
            lock.unlink(missing_ok=True)  # a dead run's claim
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def run_cell(variant: str, kind: str, lag: int, seed: int, out: Path, threads: int) -> dict:
    import torch

    from s4_strategies.training import TrainConfig
    from s4_strategies.training.memory import probe

    torch.set_num_threads(threads)
    cfg = replace(TrainConfig(progress=False, device="cpu"), **VARIANTS[variant])
    cpu = time.process_time()
    res = probe(kind, lag, seed, cfg)
    res["cpu_seconds"] = time.process_time() - cpu  # wall time grows on a busy machine
    res.update(variant=variant, threads=threads, torch_threads=torch.get_num_threads(),
               config=VARIANTS[variant], train_config=cfg.to_dict(),
               finished=dt.datetime.now(dt.UTC).isoformat())
    if kind != "linear":
        res["criterion"] = cfg.criterion
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.rename(out)
    return res


def _worker(args):
    variant, kind, lag, seed, directory, threads = args
    out = Path(directory) / (cell_name(variant, kind, lag, seed) + ".json")
    if out.exists() or not claim(out):
        return None
    try:
        res = run_cell(variant, kind, lag, seed, out, threads)
        print(f"{out.stem}: IC {res['ic']:+.3f} ({res['fraction']:.0%} of the oracle's "
              f"{res['oracle_ic']:.3f}), {res['seconds']:.0f} s", flush=True)
        return res
    finally:
        out.with_suffix(".claim").unlink(missing_ok=True)


def cmd_run(a) -> int:
    directory = Path(a.dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "commands.txt", "a") as f:
        f.write(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  python scripts/memory_table.py "
                + " ".join(shlex.quote(x) for x in sys.argv[1:]) + "\n")
    cells = [(v, k, lag, s, str(directory), a.threads) for v in a.variants for lag in a.lags
             for k in a.kinds for s in a.seeds]
    if a.jobs > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(a.jobs) as pool:
            list(pool.imap_unordered(_worker, cells))
    else:
        for c in cells:
            _worker(c)
    return 0


def load(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _stats(xs):
    import numpy as np

    if not xs:
        return None
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None), len(xs)


def table(cells: list[dict], variant: str, kinds, lags) -> str:
    head = "| model | " + " | ".join(f"lag {lag}" for lag in lags) + " | s / training (CPU s) |"
    lines = [head, "|---|" + "---|" * (len(lags) + 1)]
    for kind in kinds:
        row = [c for c in cells if c["variant"] == variant and c["kind"] == kind]
        if not row:
            continue
        name = NAMES[kind] if variant == "default" else f"{NAMES[kind]}, {VARIANT_NAMES[variant]}"
        if kind == "transformer":
            ctx = sorted({c.get("context") for c in row})
            name += f" (context {', '.join(map(str, ctx))} bars)"
        out = []
        for lag in lags:
            st = _stats([c["fraction"] for c in row if c["lag"] == lag])
            if st is None:
                out.append("–")
            else:
                m, sd, n = st
                out.append(f"{m:.0%}" + (f" ± {sd:.0%}" if sd is not None else "")
                           + ("" if n == 3 else f" ({n} seed{'s' if n > 1 else ''})"))
        secs = _stats([c["seconds"] for c in row])
        cpu = [c["cpu_seconds"] for c in row if c.get("cpu_seconds")]
        cpu = f" ({sum(cpu) / len(cpu):.0f} CPU)" if cpu else ""
        lines.append(f"| {name} | " + " | ".join(out) + f" | {secs[0]:.0f}{cpu} |")
    return "\n".join(lines)


def plot(cells: list[dict], kinds, lags, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in kinds:
        pts = [(lag, [c["fraction"] for c in cells if c["variant"] == "default"
                      and c["kind"] == kind and c["lag"] == lag]) for lag in lags]
        pts = [(lag, np.mean(v)) for lag, v in pts if v]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=NAMES[kind].split(" (")[0])
    ax.set_xscale("log", base=2)
    ax.set_xticks(lags, [str(x) for x in lags])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("planted lag k (bars)")
    ax.set_ylabel("test IC / oracle IC (mean over seeds)")
    ax.set_title("Next-bar forecast of r_t = 0.3 r_{t-k} + noise, test year")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PAGE = """# Memory: which models use a return from k bars back?

Written by `scripts/memory_table.py` on {date}; do not edit by hand. Commands that produced
the cells (from `{dir}/commands.txt`):

```
{commands}
```

**Task.** Three years of synthetic hourly bars (`training/synthetic.py`) whose log returns
follow r_t = 0.3 r_(t−k) + noise; train and validation in the first two years (validation
the last 15 %, purged), test the third. Each cell is the Spearman IC of the model's
next-bar return forecast with the realised next return over the test year, as a fraction of
the IC of the oracle forecast 0.3 r_(t+1−k) on the same bars (population value 0.288).
Mean ± sd over seeds (data and weights both change with the seed; 3 seeds unless the cell
says otherwise); "–" was not run. Networks: `TrainConfig()` and `FeatureSpec()` defaults
({size}); the longest feature window is 168 bars and the longest return feature 24, so
beyond lag 24 only a recurrent state (or attention) can carry r_(t+1−k). The linear model
is OLS of the next return on the same normalised features.

## Default recipe

{main}

![test IC by lag](memory.png)

{reading}

{ablations}

## What the recipe does, and why

The recipe before issue 30 let every head shape the shared layers. Heads whose targets span
h bars (the signal class over 5 bars, returns over 5 and 20, volatility over the next 24)
have about n/h independent targets on n training bars and, for the same dependence, an
h-times noisier gradient: through the trunk they taught the model to recall the training
series (training losses fell, validation losses rose from the first check) before it found
the dependence. Now only the next-bar return's gradient reaches the trunk; the other heads
are read out of it with their gradient stopped there (`TrainConfig.trunk`). Half of the
training windows are replaced by a mixture of two windows' bars at the same hour of the week
(`TrainConfig.mix`, `training/augment.py`), which keeps every linear dependence at its
strength while no window repeats; windows are 1,024 bars (burn-in 256) so that a lag of
several hundred bars fits inside one, and the epoch kept is the one whose next-bar forecast
has the highest validation rank IC (`TrainConfig.criterion="next_bar_ic"`). The validation
next-bar *loss* (the criterion before, the "epoch by validation loss" rows) is lowest after
50 or 100 steps in almost every cell and then rises, while the rank IC of the same forecasts
keeps improving: the model also fits some training noise, which widens its forecasts' spread
(the loss counts that) without spoiling their order (what the IC and a trading rule read;
the trading band is chosen on validation in the forecast's own units).

Why the model fits training noise at all, and what stops it: an SSM layer is a bank of
causal filters as long as the window. With F input features (17 by default) each filter
from a feature to the forecast can have up to seq_len coefficients, about F × 1,024 free
coefficients against ~15,000 training bars, so the model can fit the training series'
noise by a *linear* recall of its past. Mixing windows cannot stop that (the recall of a
mixture of two windows is the mixture of their recalls); Gaussian noise of one training
std on every feature of every training bar (`TrainConfig.input_noise`,
`recipe.add_input_noise`) can: for a model linear in its inputs it is exactly a ridge
penalty σ² Σ‖w‖² on the filters (Bishop 1995), and a fit of the noise needs large filters
where a sparse real dependence needs one small coefficient. Learning curves of S4D at lag
256, seed 0 (the next-bar IC on training, validation and test bars after every 50 steps, as
a fraction of the oracle's; measured with a first version of `scripts/memory_curve.py`
that drew the noise from another generator, so rerunning `python scripts/memory_curve.py
s4d 256 --set patience=12 --set input_noise=...` gives the same kind of curve, not these
digits): without noise the training IC passes the oracle's
after 150 steps and reaches 2.8 × it while the validation next-bar loss rises from step 50
and the test IC stays between 0.22 and 0.28; with σ = 1 the validation loss stays flat, the training
IC grows half as fast and the test IC is still rising at step 500 (0.44); σ = 0.5 sits
between (0.31 at step 300). Tried on the same cell and not adopted (no better, one seed):
every window mixed (`mix=1` with σ = 1: 0.42 at step 450); weight decay 1.0 instead of 0.05
(training IC 1.9 × the oracle's by step 200, as without it); width 32 × 2 layers (the
training IC still passes the oracle's; test 0.18 at step 400). S5 behaves differently: with
σ = 1 or 2 its test IC stops at 0.20–0.25 while its training IC reaches 1.5 or 0.9 × the
oracle's
(`scripts/memory_curve.py s5 256 --set patience=12 [--set input_noise=2]`), so what limits
S5 at lag 256 is not only this recall.

The selective SSM carries nothing beyond the feature windows under either recipe. Its
state is Mamba's: 16 real, non-oscillating modes per channel (A_n = −(n+1), S4D-Real),
whose kernels are sums of decaying exponentials with no way to peak k bars back. S4D
given the same kind of state (`--set d_state=32 --set 'layer_options={{"init": "real"}}'`:
16 real modes, imaginary parts free to learn) does not learn lag 64 either (test IC between
−0.06 and 0.04 of the oracle's over its first 350 steps, seed 0), where S4D with its HiPPO-LegS
modes does. Since the compiled scan (issue 28) a default training of the selective SSM
took 413 s on one thread of a busy machine (3,048 s before), so the time budget is no
longer what stops it. Seconds per
training: wall time of one process with the threads given in each cell's JSON, on a shared
2-core machine.
"""


def reading(cells: list[dict], kinds, lags) -> str:
    """What the default rows say, from their numbers alone: per model the lags at which the
    mean reaches half the oracle's IC, and those where it falls under a quarter."""
    import numpy as np

    out = ["**What the default rows say** (generated from the cells above):", ""]
    for kind in kinds:
        means = {lag: float(np.mean(v)) for lag in lags
                 if (v := [c["fraction"] for c in cells if c["variant"] == "default"
                           and c["kind"] == kind and c["lag"] == lag])}
        if not means:
            continue
        half = [lag for lag, m in means.items() if m >= 0.5]
        low = [lag for lag, m in means.items() if m < 0.25]
        seeds = min(len([c for c in cells if c["variant"] == "default" and c["kind"] == kind
                         and c["lag"] == lag]) for lag in means)
        out.append(f"- {NAMES[kind]} (lags run: {', '.join(map(str, means))}): half the "
                   f"oracle's IC or more at {', '.join(map(str, half)) or 'none'}; under a "
                   f"quarter at {', '.join(map(str, low)) or 'none'}"
                   + (" (a lag with one seed: a measurement, not an interval)"
                      if seeds == 1 else "") + ".")
    kept = [c["best_epoch"] for c in cells if c["variant"] == "default"
            and c.get("best_epoch") is not None]
    if kept:
        counts = ", ".join(f"epoch {e}: {kept.count(e)}" for e in sorted(set(kept)))
        out += ["", f"The epoch kept (the best validation next-bar rank IC; an epoch is 50 "
                f"steps, at most 12) over the {len(kept)} network cells: {counts}."]
    old = [c["best_epoch"] for c in cells if c["variant"] == "loss"
           and c.get("best_epoch") is not None]
    if old:
        counts = ", ".join(f"epoch {e}: {old.count(e)}" for e in sorted(set(old)))
        out += ["", f"Kept by the validation next-bar loss instead (the \"epoch by validation "
                f"loss\" cells, {len(old)}): {counts}. Where it is 0 or 1 the validation loss "
                "turned up around the one-cycle learning rate's peak (step 60 of 600) and "
                "every later step was thrown away."]
    slow = [(NAMES[k], np.mean(s)) for k in kinds
            if (s := [c["seconds"] for c in cells if c["kind"] == k and c["variant"] == "default"])]
    slow = [f"{n} ({s:,.0f} s)" for n, s in slow if s > 600]
    if slow:
        out += ["", "Over the budget of 10 minutes per training in wall time (mean over its "
                "cells, one thread on a shared machine; a cell run beside other jobs takes "
                "longer than its compute, the CPU seconds in the table's last column): "
                + ", ".join(slow) + "."]
    missing = [(k, lag) for k in KINDS for lag in LAGS
               if not any(c["variant"] == "default" and c["kind"] == k and c["lag"] == lag
                          for c in cells)]
    if missing:
        out += ["", f"{len(missing)} of {len(KINDS) * len(LAGS)} (model, lag) cells of the "
                "default recipe have not been run yet (\"–\"): the table says nothing there."]
    return "\n".join(out)


def cmd_write(a) -> int:
    from s4_strategies.training import TrainConfig

    directory = Path(a.dir)
    cells = load(directory)
    if not cells:
        raise SystemExit(f"no cells in {directory}: run `memory_table.py run` first")
    kinds = [k for k in KINDS if any(c["kind"] == k for c in cells)]
    lags = [lag for lag in LAGS if any(c["lag"] == lag for c in cells)]
    d = TrainConfig()
    size = (f"width {d.d_model}, {d.n_layers} layers, state 64 (16 for the selective SSM), "
            f"{d.epochs} × {d.steps_per_epoch} steps at most of {d.batch_size} windows of "
            f"{d.seq_len} bars")
    ablations = [v for v in VARIANTS if v not in ("default", "nonoise", "loss")
                 and any(c["variant"] == v for c in cells)]
    abl = ""
    if ablations:
        rows = [table(cells, v, kinds, lags).splitlines()[2:] for v in ablations]
        main_rows = table(cells, "default", kinds, lags).splitlines()
        abl = ("## The recipe's parts (S4D)\n\nThe default row again, and the recipe with one "
               "part undone or the whole recipe before issue 30:\n\n"
               + "\n".join(main_rows[:2] + [r for r in main_rows[2:] if "| S4D |" in r]
                           + [r for rs in rows for r in rs]))
    if any(c["variant"] == "nonoise" for c in cells):
        abl += ("\n\n## Without input noise (the default before)\n\nThe same recipe with "
                "`input_noise=0`: the training windows' features as they are.\n\n"
                + table(cells, "nonoise", kinds, lags))
    if any(c["variant"] == "loss" for c in cells):
        abl += ("\n\n## The epoch kept by the validation loss (the criterion before that)\n\n"
                "No input noise, and `criterion=\"next_bar\"`: the epoch with the lowest "
                "validation next-bar loss is kept.\n\n" + table(cells, "loss", kinds, lags))
    DOCS.mkdir(parents=True, exist_ok=True)
    plot(cells, kinds, lags, DOCS / "memory.png")
    commands = (directory / "commands.txt").read_text().strip() if \
        (directory / "commands.txt").exists() else "(not recorded)"
    page = PAGE.format(date=dt.date.today().isoformat(), dir=a.dir, commands=commands,
                       size=size, main=table(cells, "default", kinds, lags), ablations=abl,
                       reading=reading(cells, kinds, lags))
    (DOCS / "memory.md").write_text(page)
    print(page)
    return 0


def _rename(directory: Path, old_default, variant: str, **fields) -> int:
    """Move the network cells run as "default" under an earlier default recipe (those for
    which ``old_default(cell)`` holds) to ``variant``, whose configuration is that recipe."""
    n = 0
    for p in sorted(directory.glob("default_*.json")):
        c = json.loads(p.read_text())
        if c["kind"] == "linear" or not old_default(c):
            continue
        c.update(variant=variant, config=VARIANTS[variant], renamed_from=p.name, **fields)
        new = directory / (cell_name(variant, c["kind"], c["lag"], c["seed"]) + ".json")
        new.write_text(json.dumps(c, indent=1))
        p.unlink()
        n += 1
    print(f"{n} cells renamed to variant {variant}")
    return n


def cmd_rename_loss(a) -> int:
    """Cells run as "default" while the default criterion was the validation next-bar loss
    (they record no criterion) are, by their configuration, "loss" cells: rename them."""
    _rename(Path(a.dir), lambda c: "criterion" not in c, "loss", criterion="next_bar")
    return 0


def cmd_rename_noise(a) -> int:
    """Cells run as "default" before the input noise (they record no ``train_config``; the
    loss cells are renamed first) are, by their configuration, "nonoise" cells."""
    _rename(Path(a.dir), lambda c: "criterion" not in c, "loss", criterion="next_bar")
    _rename(Path(a.dir), lambda c: "train_config" not in c, "nonoise")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the missing cells")
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    words = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    r.add_argument("--kinds", type=words, default=list(KINDS))
    r.add_argument("--lags", type=ints, default=list(LAGS))
    r.add_argument("--seeds", type=ints, default=[0, 1, 2])
    r.add_argument("--variants", type=words, default=["default"])
    r.add_argument("--jobs", type=int, default=1, help="cells trained at once")
    r.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    r.add_argument("--dir", default="runs/memory")
    w = sub.add_parser("write", help="docs/results/memory.md and memory.png from the cells")
    w.add_argument("--dir", default="runs/memory")
    n = sub.add_parser("rename-loss", help="default cells run before the IC criterion -> loss")
    n.add_argument("--dir", default="runs/memory")
    n = sub.add_parser("rename-noise", help="default cells run before the input noise -> "
                       "nonoise (and any before the IC criterion -> loss)")
    n.add_argument("--dir", default="runs/memory")
    a = ap.parse_args(argv)
    if a.cmd == "rename-loss":
        return cmd_rename_loss(a)
    if a.cmd == "rename-noise":
        return cmd_rename_noise(a)
    if a.cmd == "run":
        bad = [k for k in a.kinds if k not in KINDS] + [v for v in a.variants if v not in VARIANTS]
        if bad:
            raise SystemExit(f"unknown kind/variant {bad}; kinds {KINDS}, variants "
                             f"{tuple(VARIANTS)}")
        t = time.time()
        rc = cmd_run(a)
        print(f"done in {time.time() - t:.0f} s")
        return rc
    return cmd_write(a)


if __name__ == "__main__":
    sys.exit(main())
