"""The model comparison: ``python scripts/compare_models.py [--quick] [...]``.

A thin entry point for ``s4trade compare`` (same options; see ``s4trade compare --help``).

    python scripts/compare_models.py --write runs/compare/compare.json [--command 'LINE']

writes the tables of a finished run (its ``compare.json``) into docs/results/compare.md
between the ``<!-- compare:begin -->`` and ``<!-- compare:end -->`` markers, with the command
that made them (``--command``: the ``s4trade compare`` line of the run, default ``s4trade
compare --out runs/compare``): the tables are regenerated from a run, never edited by hand.
``--readme`` is the flag's old name (the README held these tables once), still accepted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from page_block import replace_block


def compare_block(result: dict, command: str) -> str:
    p = result["periods"]
    head = (f"{result['data']}: train {p['train'][0][:10]} .. {p['train'][1][:16]}, validation "
            f"{p['val'][0][:10]} .. {p['val'][1][:16]}, test {p['test'][0][:10]} .. "
            f"{p['test'][1][:16]}; taker fee {result['fee_per_side']:.3%} per side, funding "
            f"{result['funding_rate_per_8h']:.2%} per 8 h; seeds {result['seeds']}; "
            f"wall time {result['wall_seconds']:.0f} s")
    out = _out_dir(command)
    return "\n".join([f"From `{command}` (its `compare.json`, written into this page "
                      f"by `python scripts/compare_models.py --write {out}/compare.json "
                      f"--command '{command}'`):", "", head, "", result["tables"]])


def _out_dir(command: str) -> str:
    words = command.split()
    return words[words.index("--out") + 1] if "--out" in words[:-1] else "runs/compare"


def write_block(json_path: str, page: Path | None = None,
                command: str = "s4trade compare --out runs/compare") -> Path:
    """The tables of ``json_path`` into ``page`` (docs/results/compare.md by default)."""
    from s4_strategies.training.compare import tables

    result = json.loads(Path(json_path).read_text())
    result["tables"] = tables(result)  # the same formatting as the run printed
    return replace_block("compare", compare_block(result, command), page)


if __name__ == "__main__":
    if sys.argv[1:2] in (["--write"], ["--readme"]):
        # --command: the s4trade compare line that made the run (it is quoted on the page)
        cmd = sys.argv[sys.argv.index("--command") + 1] if "--command" in sys.argv[3:] else None
        print(write_block(sys.argv[2], **({"command": cmd} if cmd else {})))
        sys.exit(0)
    from s4_strategies.apps.cli import main

    sys.exit(main(["compare", *sys.argv[1:]]))
