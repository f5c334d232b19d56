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

from readme_block import README, replace_block


def write_readme(key: str, run_dir: str, readme: Path = README) -> None:
    report = (Path(run_dir) / "report.md").read_text().strip()
    block = "\n".join([f"From `{run_dir}/report.md`, written here by `python "
                        f"scripts/research_readme.py {key} {run_dir}`:", "", report])
    replace_block(f"research:{key}", block, readme)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    write_readme(sys.argv[1], sys.argv[2])
