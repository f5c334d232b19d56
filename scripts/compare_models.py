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

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"


def readme_block(result: dict, command: str) -> str:
    p = result["periods"]
    head = (f"{result['data']}: train {p['train'][0][:10]} .. {p['train'][1][:16]}, validation "
            f"{p['val'][0][:10]} .. {p['val'][1][:16]}, test {p['test'][0][:10]} .. "
            f"{p['test'][1][:16]}; taker fee {result['fee_per_side']:.3%} per side, funding "
            f"{result['funding_rate_per_8h']:.2%} per 8 h; seeds {result['seeds']}; "
            f"wall time {result['wall_seconds']:.0f} s")
    return "\n".join([BEGIN, f"From `{command}` (its `compare.json`, written into this README "
                      "by `python scripts/compare_models.py --readme runs/compare/compare.json`):",
                      "", head, "", result["tables"], END])


def write_readme(json_path: str, readme: Path = ROOT / "README.md",
                 command: str = "s4trade compare --out runs/compare") -> None:
    from s4_strategies.training.compare import tables

    result = json.loads(Path(json_path).read_text())
    result["tables"] = tables(result)  # the same formatting as the run printed
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    readme.write_text(before + readme_block(result, command) + after)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--readme"]:
        write_readme(sys.argv[2])
        sys.exit(0)
    from s4_strategies.apps.cli import main

    sys.exit(main(["compare", *sys.argv[1:]]))
