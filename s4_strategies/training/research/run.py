"""One research run end to end: folds, trials (resumed), the report's JSON and markdown, the
stitched histories. The caller chooses the executor (serial, local Ray, a cluster) and loads
the bars; ``s4_strategies.apps.research`` does both for ``s4trade research``."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd

from .engine import run_trials
from .report import dataset_report, markdown
from .store import ResultStore
from .walkforward import walk_forward


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _write_stitched(root: Path, dataset: str, report: dict) -> None:
    from feeds.atomic import write_atomically

    folder = root / "stitched" / slug(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    for name, runs in report["_stitched"].items():
        cols = {}
        for i, r in enumerate(runs):
            cols[f"position_{i}"] = r["position"]
            cols[f"move_{i}"] = r["move"]
            cols[f"net_return_{i}"] = report["_returns"][(name, i)]
        frame = pd.DataFrame(cols, index=runs[0].index)
        frame["net_return_mean"] = frame[[c for c in cols if c.startswith("net_")]].mean(axis=1)
        frame["equity"] = (1.0 + frame["net_return_mean"]).cumprod()
        write_atomically(folder / f"{slug(name)}.parquet", frame.to_parquet, lock=False)


def plan_folds(spec, frames: dict[str, pd.DataFrame]) -> dict:
    """Every dataset's walk-forward folds (``ValueError`` before any trial runs)."""
    warmup = spec.feature_spec.warmup
    folds = {ds: walk_forward(frames[ds].index, spec.layout, warmup) for ds in spec.datasets}
    if any(m.multi_asset for m in spec.models):
        from .multi_trial import align_folds

        align_folds(spec, frames, folds)
    return folds


def research(spec, frames: dict[str, pd.DataFrame], out, executor, log=print,
             max_trials: int | None = None, command: str | None = None,
             storage: str | None = None, placebo: int = 0,
             placebo_kind: str = "flip") -> dict:
    """Run (or resume) ``spec`` on ``frames`` with ``executor``; write the report under
    ``out``. ``storage``: where the Optuna studies live (default ``out/optuna.journal``; a
    database URL for Optuna's RDB storage). ``placebo``: once the real run is complete,
    rerun the spec that many times on placebo bars (``placebo.placebo_frames``; each run
    under ``out/placebo/<kind>-<i>``, resumed like the real one) and place the real results
    in their null distribution. Returns the counts, the per-dataset reports and the
    markdown. The counts' ``complete`` says whether every trial the spec asks for has
    finished, whatever else ``out`` holds."""
    with ResultStore(out) as store:
        return _research(spec, frames, store, executor, log, max_trials, command,
                         store.optuna_storage(storage), placebo, placebo_kind)


def _placebos(spec, frames, root: Path, executor, log, runs: int, kind: str):
    """Null statistics of ``runs`` placebo reruns, per dataset, and the wall seconds their
    trials took over every invocation (each run's ``runs.jsonl``)."""
    from .placebo import placebo_frames, statistics

    null: dict[str, list] = {ds: [] for ds in spec.datasets}
    seconds = 0.0
    block = 2 * spec.label_spec.max_horizon
    for i in range(1, runs + 1):
        log(f"placebo {i}/{runs} ({kind})")
        with ResultStore(root / "placebo" / f"{kind}-{i:03d}") as ps:
            res = _research(spec, placebo_frames(frames, i, kind, block), ps, executor,
                            lambda s: None, None, None, ps.optuna_storage(None), 0, kind)
        if not res["counts"]["complete"]:
            raise RuntimeError(f"placebo run {i} did not complete: see {ps.root}")
        for ds, rep in res["reports"].items():
            null[ds].append(statistics(rep))
        seconds += res["trial_seconds"]
    return null, seconds


def _research(spec, frames, store, executor, log, max_trials, command, storage,
              placebo=0, placebo_kind="flip") -> dict:
    from analyzers.metrics import json_safe

    t0 = time.perf_counter()
    store.write_spec(spec.to_dict())
    folds = plan_folds(spec, frames)
    counts = run_trials(spec, frames, folds, store, executor, log=log, max_trials=max_trials,
                        storage=storage)
    rows = store.recorded()
    reports = {ds: dataset_report(spec, ds, frames[ds], folds[ds], store, rows)
               for ds in spec.datasets}
    for ds, rep in reports.items():
        _write_stitched(store.root, ds, rep)
    if placebo and counts["complete"]:
        from .placebo import place, statistics

        t1 = time.perf_counter()
        null, trial_seconds = _placebos(spec, frames, store.root, executor, log, placebo,
                                        placebo_kind)
        counts["placebo_seconds"] = time.perf_counter() - t1
        counts["placebo_trial_seconds"] = trial_seconds
        for ds, rep in reports.items():
            rep["placebo"] = {**place(statistics(rep), null[ds]),
                              "_meta": {"runs": placebo, "kind": placebo_kind}}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    workers = getattr(executor, "workers", 1)
    runs = store.log_invocation({"command": command, "executor": executor.name,
                                 "workers": workers, "ran": counts["ran"],
                                 "failed": counts["failed"],
                                 "wall_seconds": round(counts["wall_seconds"], 1)})
    ran = [r for r in runs if r["ran"]]
    how = "; ".join(f"{r['ran']} in {r['wall_seconds']:.0f} s on {r['executor']} with "
                    f"{r['workers']} worker(s)" + (f" (`{r['command']}`)" if r["command"] else "")
                    for r in ran) or "none run"
    state = "complete" if counts["complete"] else "**incomplete**: rerun the same command " \
        "to resume"
    md = [f"### Research: {spec.name}", "",
          f"{counts['finished']} of {counts['total']} trials finished ({state}); "
          f"{len(failed)} failed attempt(s) recorded. Objective {spec.objective}; fee "
          f"{spec.fee:.3%} per side, funding {spec.funding_rate:.3%} per 8 h.", "",
          f"Run: {how}." + (f" Placebo: {placebo} {placebo_kind} run(s) of the spec, their "
                            f"trials {counts['placebo_trial_seconds']:.0f} s in all."
                            if "placebo_seconds" in counts else ""), ""]
    md += [markdown(rep, spec.objective) + "\n" for rep in reports.values()]
    text = "\n".join(md)
    counts["report_seconds"] = (time.perf_counter() - t0 - counts["wall_seconds"]
                                - counts.get("placebo_seconds", 0.0))
    public = {ds: {k: v for k, v in rep.items() if not k.startswith("_")}
              for ds, rep in reports.items()}
    for rep in public.values():
        if rep.get("placebo"):
            rep["placebo"] = {k: v for k, v in rep["placebo"].items() if k != "_meta"} | {
                "meta": rep["placebo"]["_meta"]}
    payload = {"spec": spec.to_dict(), "counts": counts, "executor": executor.name,
               "workers": workers, "command": command, "invocations": runs,
               "reports": public,
               "failed": [{k: r[k] for k in ("trial_id", "dataset", "fold", "model", "seed",
                                              "error")} for r in failed]}
    store.write_text("report.json", json.dumps(json_safe(payload), indent=2))
    store.write_text("report.md", text + "\n")
    return {"counts": counts, "reports": reports, "markdown": text, "store": store,
            "trial_seconds": sum(r["wall_seconds"] for r in ran)}
