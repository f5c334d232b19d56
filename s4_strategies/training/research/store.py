"""Where a research run keeps what it has done, so that a rerun resumes where it stopped.

    OUT/spec.json                   the spec as parsed
    OUT/optuna.journal              the Optuna studies (one per dataset × fold × model with a
                                    search space): every proposal is recorded as running
                                    before its trial starts (or a database, ``storage=``)
    OUT/trials/<trial_id>.parquet   one row per finished trial (ok or failed)
    OUT/predictions/<trial_id>.parquet   its test-bar predictions, positions, net returns
    OUT/checkpoints/<trial_id>.pt   a network trial's checkpoint
    OUT/trials.parquet              every row together (rewritten as the run goes)
    OUT/runs.jsonl                  each invocation: command, executor, trials run, wall time
    OUT/.research.lock              held by the one driver working on OUT

Every file is written atomically (``feeds.atomic.write_atomically``: a temporary file,
fsynced, then renamed), a trial's predictions and checkpoint before its row, so a row on disk
always has what it points to. One driver at a time: opening a store takes OUT's lock (an OS
lock, released when its process dies, even by ``kill -9``) and then removes the temporary
files killed writes left behind. A trial whose row says ``ok`` is never run again with the
same ``OUT``; a failed one is tried again (its failure may have been the machine's).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from feeds.atomic import write_atomically

LOCK_NAME = ".research.lock"
JOURNAL_NAME = "optuna.journal"
_SUBDIRS = ("trials", "predictions", "checkpoints")
_TEMPORARY = re.compile(r"^\..+\.([a-z0-9_]{8}|\d+)\.tmp$")  # ours, and older stores'


class StoreBusy(RuntimeError):
    """Another driver is working on the same ``--out``."""


def _journal_storage(path: Path):
    """Optuna's journal storage in ``path``, guarded by a ``filelock`` lock (an OS lock: a
    writer killed mid-append cannot leave it held, as Optuna's default symlink lock would
    for its 30 s grace period). A last line cut short by a kill is dropped first, so the
    next append starts on a line of its own."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    class _Lock:  # what JournalFileBackend calls of its lock_obj
        def __init__(self, file):
            self._lock = FileLock(str(file), is_singleton=True)

        def acquire(self) -> bool:
            self._lock.acquire()
            return True

        def release(self) -> None:
            self._lock.release()

    lock = _Lock(path.with_name(f".{path.name}.lock"))
    lock.acquire()
    try:
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):
                with path.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
    finally:
        lock.release()
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


class ResultStore:
    """The run directory: rows, predictions and checkpoints by trial id, and the Optuna
    storage. Holds OUT's lock until :meth:`close` (or the process ends)."""

    def __init__(self, out, lock: bool = True):
        self.root = Path(out).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = None
        if lock:
            self._lock = FileLock(str(self.root / LOCK_NAME))  # a second store in this process too
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise StoreBusy(f"{self.root}: another s4trade research is working on this "
                                f"folder (it holds {self.root / LOCK_NAME}); wait for it or "
                                "choose another --out") from None
        for sub in _SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.removed_temporaries = self._clean()

    def _clean(self) -> list[Path]:
        """Remove what killed writes left: their temporary files (no other writer exists
        while this store holds the lock)."""
        removed = []
        for folder in (self.root, *(self.root / s for s in _SUBDIRS)):
            for entry in os.scandir(folder):
                if _TEMPORARY.match(entry.name) and entry.is_file():
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
        return removed

    def close(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, path: Path, write) -> None:
        write_atomically(path, write, lock=False)  # OUT's lock excludes other writers

    def optuna_storage(self, url: str | None = None):
        """The Optuna storage of this run: ``OUT/optuna.journal`` by default, or ``url``
        (a database URL such as ``postgresql://...`` or ``sqlite:///...`` for Optuna's RDB
        storage, or a journal file path)."""
        if url and "://" in url:
            import optuna

            return optuna.storages.RDBStorage(url)
        return _journal_storage(Path(url).expanduser() if url else self.root / JOURNAL_NAME)

    def write_spec(self, spec_dict: dict) -> None:
        text = json.dumps(spec_dict, indent=2, default=str).encode()
        self._write(self.root / "spec.json", lambda f: f.write(text))

    def write_text(self, name: str, text: str) -> Path:
        path = self.root / name
        self._write(path, lambda f: f.write(text.encode()))
        return path

    def save(self, result: dict) -> None:
        """One finished trial: its predictions and checkpoint first, then its row (so a row
        on disk always has what it points to)."""
        row = dict(result["row"])
        tid = row["trial_id"]
        if result.get("predictions") is not None:
            self._write(self.root / "predictions" / f"{tid}.parquet",
                        lambda f: result["predictions"].to_parquet(f))
        if result.get("checkpoint"):
            self._write(self.root / "checkpoints" / f"{tid}.pt",
                        lambda f: f.write(result["checkpoint"]))
            row["checkpoint"] = str(Path("checkpoints") / f"{tid}.pt")
        for part in result.get("parts") or ():  # a multi-asset trial's rows per dataset
            self.save(part)  # before the group's row, which marks the trial done
        self._write(self.root / "trials" / f"{tid}.parquet",
                    lambda f: pd.DataFrame([row]).to_parquet(f))

    def rows(self) -> pd.DataFrame:
        """Every recorded trial row (empty frame when none)."""
        files = sorted((self.root / "trials").glob("*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def recorded(self) -> dict[str, dict]:
        """Every recorded row (``ok`` or ``failed``; one per trial id), by trial id."""
        rows = self.rows()
        return {} if rows.empty else {r["trial_id"]: r for r in rows.to_dict("records")}

    def predictions(self, trial_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.root / "predictions" / f"{trial_id}.parquet")

    def log_invocation(self, entry: dict) -> list[dict]:
        """Append one run's command, counts and wall time to ``runs.jsonl``; every entry so
        far (a resumed study's wall time is the sum of its invocations'). A line cut short
        by a killed run is skipped."""
        path = self.root / "runs.jsonl"
        old = path.read_bytes() if path.exists() else b""
        if old and not old.endswith(b"\n"):
            old = old[: old.rfind(b"\n") + 1]
        text = old + (json.dumps(entry, default=str) + "\n").encode()
        self._write(path, lambda f: f.write(text))
        runs = []
        for line in text.decode().splitlines():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return runs

    def consolidate(self) -> Path:
        """Write ``trials.parquet``: every row in one file."""
        rows = self.rows()
        path = self.root / "trials.parquet"
        self._write(path, lambda f: rows.to_parquet(f))
        return path
