"""A research driver that dies at a chosen point: as a script it kills itself with SIGKILL
(what ``kill -9`` does), in ``test_research_resume.py`` the same points raise
:class:`Crash` in the test's own process.

    python tests/research_kill.py OUT POINT K [serial|ray]

POINT: ``trial`` (the K-th trial of the run is handed out and dies unfinished), ``saved``
(the K-th result is on disk, its study not yet told), ``asking`` (Optuna has recorded the
K-th proposal of the run as running, its parameters not yet written), ``report`` (every
trial has run; the report is being written).
"""

from __future__ import annotations

import json
import os
import signal
import sys


class Crash(BaseException):
    """The driver dies here (in-process stand-in for SIGKILL: nothing catches it)."""


def sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(setattr_, point: str, k: int, die) -> dict:
    """Patch the research code so that ``die()`` runs at ``point`` the ``k``-th time;
    returns ``{"trial": fn}`` with the executor's job for the ``trial`` point."""
    from s4_strategies.training.research.trial import run_trial

    seen = {"n": 0}

    def now() -> bool:
        seen["n"] += 1
        return seen["n"] == k

    if point not in _POINTS:
        raise ValueError(f"unknown point {point!r}")
    return {"trial": _POINTS[point](setattr_, now, die) or run_trial}


def _trial(setattr_, now, die):
    from s4_strategies.training.research.trial import run_trial

    def trial(*args):
        if now():
            die()
        return run_trial(*args)
    return trial


def _saved(setattr_, now, die):
    from s4_strategies.training.research import store

    save = store.ResultStore.save

    def saved(self, result):
        save(self, result)
        if now():
            die()
    setattr_(store.ResultStore, "save", saved)


def _asking(setattr_, now, die):
    from s4_strategies.training.research import scheduler

    ask = scheduler.Study._ask

    def asking(self):
        if now():
            self._study.ask()  # a proposal recorded as running, no parameters yet
            die()
        return ask(self)
    setattr_(scheduler.Study, "_ask", asking)


def _report(setattr_, now, die):
    from s4_strategies.training.research import run

    def report(*args, **kwargs):
        die()
    setattr_(run, "dataset_report", report)


_POINTS = {"trial": _trial, "saved": _saved, "asking": _asking, "report": _report}


def main(out: str, point: str, k: int, engine: str = "serial") -> None:
    import torch

    import feeds
    from s4_strategies.training.research import parse_spec, run
    from s4_strategies.training.research.engine import RayExecutor, SerialExecutor

    torch.set_num_threads(1)
    spec = parse_spec(json.loads(os.environ["S4_TEST_SPEC"]))
    frames = {ds: feeds.load_embedded(ds) for ds in spec.datasets}
    job = arm(setattr, point, k, sigkill)["trial"]
    executor = SerialExecutor(job) if engine == "serial" else RayExecutor(num_cpus=2, fn=job)
    run.research(spec, frames, out, executor, log=lambda s: None)
    executor.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
