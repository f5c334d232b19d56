"""Where a research run keeps what it has done, so that a rerun resumes.

    OUT/spec.json                   the spec as parsed
    OUT/trials/<trial_id>.parquet   one row per finished trial (ok or failed), written as
                                    each finishes, atomically (temporary file, then rename)
    OUT/predictions/<trial_id>.parquet   its test-bar predictions, positions, net returns
    OUT/checkpoints/<trial_id>.pt   a network trial's checkpoint
    OUT/trials.parquet              every row together (rewritten as the run goes)
    OUT/runs.jsonl                  each invocation: command, executor, trials run, wall time

A trial whose row says ``ok`` is never run again with the same ``OUT``; a failed one is tried
again (its failure may have been the machine's, not the trial's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    tmp.replace(path)


class ResultStore:
    """The run directory: rows, predictions and checkpoints by trial id."""

    def __init__(self, out):
        self.root = Path(out).expanduser()
        for sub in ("trials", "predictions", "checkpoints"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write_spec(self, spec_dict: dict) -> None:
        text = json.dumps(spec_dict, indent=2, default=str)
        _atomic(self.root / "spec.json", lambda p: p.write_text(text))

    def save(self, result: dict) -> None:
        """One finished trial: its predictions and checkpoint first, then its row (so a row
        on disk always has what it points to)."""
        row = dict(result["row"])
        tid = row["trial_id"]
        if result.get("predictions") is not None:
            _atomic(self.root / "predictions" / f"{tid}.parquet",
                    lambda p: result["predictions"].to_parquet(p))
        if result.get("checkpoint"):
            _atomic(self.root / "checkpoints" / f"{tid}.pt",
                    lambda p: p.write_bytes(result["checkpoint"]))
            row["checkpoint"] = str(Path("checkpoints") / f"{tid}.pt")
        _atomic(self.root / "trials" / f"{tid}.parquet",
                lambda p: pd.DataFrame([row]).to_parquet(p))

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
        far (a resumed study's wall time is the sum of its invocations')."""
        path = self.root / "runs.jsonl"
        with path.open("a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def consolidate(self) -> Path:
        """Write ``trials.parquet``: every row in one file."""
        rows = self.rows()
        path = self.root / "trials.parquet"
        _atomic(path, lambda p: rows.to_parquet(p))
        return path
