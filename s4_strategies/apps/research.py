"""``s4trade research``: load the spec's bars, run its trials on a local Ray (started for
the run and stopped after it), on a cluster (``--address``) or serially, and write the
report, a quantstats tear sheet of each dataset's selected configuration, and the selected
models' checkpoints under ``--out``."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..training.research import load_spec
from ..training.research.engine import RayExecutor, SerialExecutor
from ..training.research.run import plan_folds, research, slug
from .sources import DEFAULT_CACHE, load_source


def load_frames(spec, cache_dir=DEFAULT_CACHE, session=None, downloader=None) -> dict:
    """Every dataset of the spec, trimmed to its ``from``/``to``."""
    return {ds: load_source(ds, spec.date_from, spec.date_to, cache_dir=cache_dir,
                            session=session, downloader=downloader) for ds in spec.datasets}


def _tearsheets(out: Path, frames: dict, reports: dict, spec, log) -> list[str]:
    from analyzers.tearsheet import write_tearsheet

    paths = []
    for ds, rep in reports.items():
        r = rep["_selected_returns"]
        if r is None:
            continue
        close = frames[ds]["close"]
        bench = close.pct_change().reindex(r.index).fillna(0.0).rename("Buy & hold")
        path = out / f"tearsheet_{slug(ds)}.html"
        write_tearsheet(r, path, benchmark=bench, periods_per_year=int(rep["periods_per_year"]),
                        title=f"{spec.name}: {rep['selected']} on {ds}, stitched out-of-sample",
                        strategy_name=rep["selected"], benchmark_name="Buy & hold",
                        notes=[f"{len(rep['folds'])} walk-forward folds; each fold's "
                               "hyperparameters and cost band chosen on its validation bars; "
                               f"mean of {len(rep['_stitched'][rep['selected']])} seed(s)."])
        paths.append(str(path))
        log(f"tear sheet: {path}")
    return paths


def _copy_selected(out: Path, reports: dict) -> list[str]:
    copied = []
    for ds, rep in reports.items():
        for model, folds in rep["chosen"].items():
            for f in folds:
                for i, ck in enumerate(f["checkpoints"]):
                    if not ck or not isinstance(ck, str):
                        continue
                    dest = out / "selected" / slug(ds) / slug(model) / f"fold{f['fold']}_{i}.pt"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(out / ck, dest)
                    copied.append(str(dest))
    return copied


def run_research(spec_path, out, address: str | None = None, workers: int | None = None,
                 serial: bool = False, max_trials: int | None = None,
                 cache_dir=DEFAULT_CACHE, log=print, command: str | None = None,
                 storage: str | None = None, placebo: int = 0,
                 placebo_kind: str = "flip") -> dict:
    """The whole command; returns ``training.research.run.research``'s result plus the tear
    sheets and the copied checkpoints."""
    spec = load_spec(spec_path)
    frames = load_frames(spec, cache_dir)
    for ds, df in frames.items():
        log(f"{ds}: {len(df):,} bars {df.index[0]} .. {df.index[-1]}")
    plan_folds(spec, frames)  # a layout that does not fit the data fails before Ray starts
    executor = SerialExecutor() if serial else RayExecutor(address, workers)
    try:
        result = research(spec, frames, out, executor, log=log, max_trials=max_trials,
                          command=command, storage=storage, placebo=placebo,
                          placebo_kind=placebo_kind)
    finally:
        executor.close()
    out = Path(out)
    result["tearsheets"] = _tearsheets(out, frames, result["reports"], spec, log)
    result["selected_checkpoints"] = _copy_selected(out, result["reports"])
    return result


__all__ = ["load_frames", "run_research"]
