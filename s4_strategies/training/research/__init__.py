"""Research at scale: walk-forward × models × seeds × assets, as Ray tasks or serially.

    from s4_strategies.training.research import load_spec, run_research
    result = run_research(load_spec("scripts/research/equities_daily_quick.yaml"),
                          out="runs/research/equities-quick")

``s4trade research --spec FILE --out DIR [--address auto|host:port]`` is the command.
"""

from __future__ import annotations

from .overfit import deflated_sharpe, expected_max_sharpe, pbo_cscv, probabilistic_sharpe
from .spec import ResearchSpec, SpecError, load_spec, parse_spec
from .walkforward import Fold, Layout, check_folds, parse_span, walk_forward

__all__ = [
    "Fold", "Layout", "ResearchSpec", "SpecError", "check_folds", "deflated_sharpe",
    "expected_max_sharpe", "load_spec", "parse_span", "parse_spec", "pbo_cscv",
    "probabilistic_sharpe", "walk_forward",
]
