"""Write finished research runs' reports where readers find them: the tables are regenerated
from a run, never edited by hand.

    python scripts/research_readme.py KEY RUN_DIR
    python scripts/research_readme.py --page docs/results/research_quick.md RUN_DIR [RUN_DIR ...]

The first form replaces the block between ``<!-- research:KEY:begin -->`` and
``<!-- research:KEY:end -->`` of docs/results/research_KEY.md (``page_block.page_for``; the
full equities study is ``equities``) with ``RUN_DIR/report.md``; the second writes a results page
with each run's report (each names the command and wall time of every invocation that ran
its trials, from ``RUN_DIR/runs.jsonl``, and its placebo runs) under a header giving this
command and the date.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from page_block import ROOT, replace_block

PAGE_HEAD = """# Research: the quick studies

What the research pipeline makes of the quick specs (tiny models, two folds, two seeds: a
smoke run of the full studies, not a verdict on the architectures), with the verdicts under
each table: Model Confidence Sets, SPA/StepM against the linear baseline, paired two-level
bootstraps with Holm's adjustment, the deflated Sharpe ratio against the candidate paths,
the PBO over them, and a placebo (the spec rerun on bars whose returns carry no direction)
to read every number against. How each is computed: `s4_strategies/training/verdicts.py`,
`research/selection.py`, `research/placebo.py`.
"""


def write_block(key: str, run_dir: str, page: Path | None = None) -> Path:
    """``RUN_DIR/report.md`` between the ``research:KEY`` markers of ``page``
    (docs/results/research_KEY.md by default)."""
    report = (Path(run_dir) / "report.md").read_text().strip()
    block = "\n".join([f"From `{run_dir}/report.md`, written here by `python "
                        f"scripts/research_readme.py {key} {run_dir}`:", "", report])
    return replace_block(f"research:{key}", block, page)


def write_page(page: str, run_dirs: list[str], root: Path = ROOT) -> Path:
    """A results page with every run's ``report.md`` (its headings one level up)."""
    cmd = "python scripts/research_readme.py --page " + " ".join([page, *run_dirs])
    parts = [PAGE_HEAD, f"Written by `{cmd}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.",
             ""]
    for run in run_dirs:
        report = (Path(run) / "report.md").read_text().strip()
        parts += [f"From `{run}/report.md`:", "",
                  "\n".join(line[1:] if line.startswith("###") else line
                            for line in report.splitlines()), ""]
    out = root / page
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts).rstrip() + "\n")
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--page"] and len(sys.argv) >= 4:
        print(write_page(sys.argv[2], sys.argv[3:]))
    elif len(sys.argv) == 3:
        print(write_block(sys.argv[1], sys.argv[2]))
    else:
        raise SystemExit(__doc__)
