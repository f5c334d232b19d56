"""Running the trials: in this process (serial) or as Ray tasks (a local Ray started for the
run, or a cluster joined by address), with the results stored as each one finishes.

The loop keeps every worker busy: it hands out trials while fewer than ``capacity`` are in
flight, waits for the first to finish, stores it, tells its study, and goes on. Data travel
once per dataset through Ray's object store (``ray.put``), so workers on other nodes need the
package installed but no shared disk; checkpoints come back as bytes and the driver writes
them under ``--out``.

A local Ray started for the run dies with the driver, however the driver ends: a small
reaper process (``reaper.py``) waits on a pipe from the driver and, when it closes, ends
every process ``ray.init`` started (they carry a token in their environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from .scheduler import studies
from .store import ResultStore
from .trial import run_trial


def _in_worker(fn, threads, *args):
    """The Ray task body: ``fn(*args)`` with torch limited to the CPUs Ray gave the task."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    return fn(*args)


class SerialExecutor:
    """Runs each job (``fn``, a trial by default) in this process when it is waited for:
    the baseline of the benchmark and the path without Ray."""

    capacity = 1
    name = "serial"

    def __init__(self, fn=run_trial):
        self.fn = fn
        self._jobs: dict[int, tuple] = {}

    def put(self, obj):
        return obj

    def submit(self, *args) -> int:
        handle = len(self._jobs) + 1 + max(self._jobs, default=0)
        self._jobs[handle] = args
        return handle

    def wait(self, handles: list):
        h = handles[0]
        return h, self.fn(*self._jobs.pop(h))

    def close(self):
        pass


_reaper: subprocess.Popen | None = None  # ties the local Ray this process started to it


def _start_reaper() -> str:
    """Start the reaper (see ``reaper.py``) and return the token ``ray.init`` must pass on."""
    global _reaper
    import ray

    from .reaper import ENV_KEY

    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != ENV_KEY}
    vendored = Path(ray.__file__).parent / "thirdparty_files"  # psutil, where no /proc
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(vendored), env.get("PYTHONPATH")) if p)
    _reaper = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reaper.py")), token, str(os.getpid()),
         str(Path(ray.__file__).parent)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, start_new_session=True, text=True)
    return token


def _tell_reaper_the_session() -> None:
    """The session folder of the Ray just started (its agents hold files open in it)."""
    import ray

    try:
        session = ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:  # another Ray version: the token alone
        return
    try:
        _reaper.stdin.write(os.path.realpath(session) + "\n")
        _reaper.stdin.flush()
    except OSError:  # the reaper is gone: Ray's own fate sharing is what is left
        pass


def ray_shutdown() -> None:
    """``ray.shutdown()``, then let the reaper end whatever of a local Ray is left."""
    global _reaper
    import ray

    ray.shutdown()
    if _reaper is not None:
        try:
            _reaper.stdin.close()  # end of file: the reaper cleans up and exits
        except OSError:
            pass
        try:
            _reaper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        _reaper = None


def ray_init(address: str | None = None, num_cpus: int | None = None, **kwargs):
    """Join ``address`` ("auto" or "host:port"), or start a new local Ray on 127.0.0.1 with
    ``num_cpus`` (default: this machine's cores) even where a ``ray start`` head is running;
    a local Ray dies with this process (however it ends). Usage statistics are never sent.
    Returns whether this call connected (and so whose shutdown is due: :func:`ray_shutdown`
    stops a local Ray, and only disconnects from a cluster)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from .reaper import ENV_KEY

    if ray.is_initialized():
        return False
    if address:
        _token_auth_if_available()
        host = address.rsplit(":", 1)[0].strip("[]")
        with _loopback_only() if host in ("127.0.0.1", "localhost", "::1") else nullcontext():
            ray.init(address=address, log_to_driver=False, **kwargs)
        return True
    token = _start_reaper()  # first: a driver killed while Ray starts leaves nothing either
    os.environ[ENV_KEY] = token  # every process Ray starts inherits it
    try:
        with _loopback_only():
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                     include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, **kwargs)
        _tell_reaper_the_session()
    except BaseException:
        ray_shutdown()
        raise
    finally:
        os.environ.pop(ENV_KEY, None)
    return True


def _token_auth_if_available() -> None:
    """``ray start --head`` turns on token authentication (and writes ``~/.ray/auth_token``)
    unless ``RAY_AUTH_MODE`` says otherwise; a driver joining it must turn it on as well when
    it has the token, or the head refuses it. Ray's own switch also refreshes the settings a
    process read when it imported Ray."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


@contextmanager
def _loopback_only():
    """A Ray for this run alone listens on 127.0.0.1 only (and a head started on 127.0.0.1 is
    joined there). Ray swaps a loopback address for the machine's reachable one unless its
    multi-node switch is off: turn it off while Ray starts or connects (the processes it
    starts inherit the setting), then put it back."""
    import ray._private.ray_constants as rc

    key, saved = rc.ENABLE_RAY_CLUSTERS_ENV_VAR, os.environ.get(rc.ENABLE_RAY_CLUSTERS_ENV_VAR)
    flag = rc.ENABLE_RAY_CLUSTER
    os.environ[key], rc.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        rc.ENABLE_RAY_CLUSTER = flag
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


class RayExecutor:
    """Jobs (``fn``, a trial by default) as Ray tasks of ``cpus_per_trial`` CPUs each;
    ``address`` None starts (and at ``close`` stops) a local Ray, otherwise joins that
    cluster (and leaves it running)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_trial: float = 1.0, fn=run_trial):
        import ray

        self._ray = ray
        self._owned = ray_init(address, num_cpus)
        self.cpus_per_trial = cpus_per_trial
        total = ray.cluster_resources().get("CPU", 1.0)
        self.workers = max(1, int(total // cpus_per_trial))
        self.capacity = self.workers + 1  # one queued, so a worker never waits on the driver
        self.fn = fn
        self._remote = ray.remote(_in_worker).options(num_cpus=cpus_per_trial, max_retries=0)

    def put(self, obj):
        return self._ray.put(obj)

    def submit(self, *args):
        return self._remote.remote(self.fn, self.cpus_per_trial, *args)

    def wait(self, handles: list):
        ready, _ = self._ray.wait(handles, num_returns=1)
        return ready[0], self._ray.get(ready[0])

    def close(self):
        if self._owned:
            ray_shutdown()


@dataclass
class Progress:
    """Trials done / running / failed and an ETA, one line per finished trial."""

    total: int
    workers: int = 1
    log: object = print
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def __post_init__(self):
        self.start = time.perf_counter()

    def line(self, running: int, row: dict | None = None) -> str:
        run_n = self.done + self.failed
        left = self.total - self.skipped - run_n
        elapsed = time.perf_counter() - self.start
        eta = elapsed / run_n * left if run_n else float("nan")
        what = ""
        if row is not None:
            what = (f" | {row['model']} {row['dataset']} fold {row['fold']} seed {row['seed']}"
                    f" {row['status']} in {row['seconds']:.0f}s")
        eta_s = "?" if eta != eta else f"{eta / 60:.1f} min"
        return (f"[{self.skipped + run_n}/{self.total}] done {self.done + self.skipped} "
                f"running {running} failed {self.failed}{what} | ETA {eta_s}")

    def finished(self, row: dict, running: int) -> None:
        if row["status"] == "ok":
            self.done += 1
        else:
            self.failed += 1
        self.log(self.line(running, row))


def run_trials(spec, frames: dict, folds: dict, store: ResultStore, executor,
               log=print, max_trials: int | None = None, storage=None) -> dict:
    """Run every trial of ``spec`` not already in ``store``. ``frames``: bars by dataset;
    ``folds``: walk-forward folds by dataset; ``storage``: the Optuna storage the studies
    live in (``store.optuna_storage()``; None keeps them in memory). ``max_trials`` stops
    after that many trials have run (a partial run that a rerun resumes). Returns counts
    and the wall time; ``complete`` and ``finished`` count what the spec asks for."""
    t0 = time.perf_counter()
    recorded = store.recorded()
    plan = studies(spec, folds, recorded, storage)
    total = sum(s.total for s in plan)
    already = sum(s.done for s in plan)
    progress = Progress(total, getattr(executor, "workers", 1), log, skipped=already)
    refs = {ds: executor.put(df) for ds, df in frames.items()}
    if any(m.multi_asset for m in spec.models):  # its trials read every dataset
        from .multi_trial import group_name

        refs[group_name(spec.datasets)] = executor.put(dict(frames))
    spec_ref = executor.put(spec)
    log(f"{spec.name}: {total} trials, {already} already done, on {executor.name} "
        f"({getattr(executor, 'workers', 1)} worker(s))")
    pending: dict = {}  # handle -> (study, task)
    started = 0
    while True:
        while len(pending) < executor.capacity and (max_trials is None or started < max_trials):
            pick = next(((s, t) for s in plan for t in [s.next_task()] if t is not None), None)
            if pick is None:
                break
            study, task = pick
            pending[executor.submit(task, spec_ref, refs[task.dataset])] = (study, task)
            started += 1
        if not pending:
            break
        handle, result = executor.wait(list(pending))
        study, task = pending.pop(handle)
        store.save(result)
        study.tell(task, result["row"])
        progress.finished(result["row"], len(pending))
    store.consolidate()
    return {"total": total, "already_done": already, "ran": progress.done + progress.failed,
            "failed": progress.failed, "wall_seconds": time.perf_counter() - t0,
            "finished": sum(s.done for s in plan),
            "complete": all(s.complete for s in plan)}
