"""Write a finished research run's report into README.md: the README's research tables are
regenerated from a run, never edited by hand.

    python scripts/research_readme.py KEY RUN_DIR

replaces the block between ``<!-- research:KEY:begin -->`` and ``<!-- research:KEY:end -->``
with ``RUN_DIR/report.md`` (which names the command and wall time of every invocation that
ran its trials, from ``RUN_DIR/runs.jsonl``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_readme(key: str, run_dir: str, readme: Path = ROOT / "README.md") -> None:
    begin, end = f"<!-- research:{key}:begin -->", f"<!-- research:{key}:end -->"
    report = (Path(run_dir) / "report.md").read_text().strip()
    text = readme.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{readme} has no {begin} ... {end} block")
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    block = "\n".join([begin, f"From `{run_dir}/report.md`, written here by `python "
                       f"scripts/research_readme.py {key} {run_dir}`:", "", report, end])
    readme.write_text(before + block + after)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    write_readme(sys.argv[1], sys.argv[2])
