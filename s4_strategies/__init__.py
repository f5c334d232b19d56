"""s4-trading: structured state space models (S4, S4D, selective SSM) for backtrader.

Heavy parts (torch, backtrader) are imported on first use, so ``import s4_strategies`` is cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_model": "s4_strategies.checkpoint",
    "save_model": "s4_strategies.checkpoint",
    "make_features": "s4_strategies.features",
    "make_labels": "s4_strategies.features",
    "FeatureSpec": "s4_strategies.features",
    "S4Indicator": "s4_strategies.indicator",
    "S4DirectionalStrategy": "s4_strategies.strategies.directional",
    "S4PortfolioStrategy": "s4_strategies.strategies.portfolio",
    "AvellanedaStoikovStrategy": "s4_strategies.strategies.market_maker",
    "run_market_making": "s4_strategies.strategies.mm_runner",
    "MarketMakingBroker": "s4_strategies.strategies.fills",
    "MakerTakerCommInfo": "s4_strategies.strategies.fills",
    "Predictor": "s4_strategies.checkpoint",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 's4_strategies' has no attribute {name!r}")
