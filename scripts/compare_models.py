"""The model comparison: ``python scripts/compare_models.py [--quick] [...]``.

A thin entry point for ``s4trade compare`` (same options; see ``s4trade compare --help``).

    python scripts/compare_models.py --readme runs/compare/compare.json

writes the tables of a finished run (its ``compare.json``) into README.md between the
``<!-- compare:begin -->`` and ``<!-- compare:end -->`` markers, with the command that made
them: the README's tables are regenerated from a run, never edited by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from readme_block import README, replace_block


def readme_block(result: dict, command: str) -> str:
    p = result["periods"]
    head = (f"{result['data']}: train {p['train'][0][:10]} .. {p['train'][1][:16]}, validation "
            f"{p['val'][0][:10]} .. {p['val'][1][:16]}, test {p['test'][0][:10]} .. "
            f"{p['test'][1][:16]}; taker fee {result['fee_per_side']:.3%} per side, funding "
            f"{result['funding_rate_per_8h']:.2%} per 8 h; seeds {result['seeds']}; "
            f"wall time {result['wall_seconds']:.0f} s")
    return "\n".join([f"From `{command}` (its `compare.json`, written into this README "
                      "by `python scripts/compare_models.py --readme runs/compare/compare.json`):",
                      "", head, "", result["tables"]])


def write_readme(json_path: str, readme: Path = README,
                 command: str = "s4trade compare --out runs/compare") -> None:
    from s4_strategies.training.compare import tables

    result = json.loads(Path(json_path).read_text())
    result["tables"] = tables(result)  # the same formatting as the run printed
    replace_block("compare", readme_block(result, command), readme)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--readme"]:
        write_readme(sys.argv[2])
        sys.exit(0)
    from s4_strategies.apps.cli import main

    sys.exit(main(["compare", *sys.argv[1:]]))
