"""The model comparison table: ``python scripts/compare_models.py [--quick] [...]``.

A thin entry point for ``s4trade compare`` (same options; see ``s4trade compare --help``).
"""

from __future__ import annotations

import sys

from s4_strategies.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
