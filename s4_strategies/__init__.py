"""s4-trading: structured state space models (S4, S4D, selective SSM) for backtrader.

Heavy parts (torch, backtrader) are imported on first use, so ``import s4_strategies`` is cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_model": "s4_strategies.model",
    "save_model": "s4_strategies.model",
    "make_features": "s4_strategies.features",
    "make_labels": "s4_strategies.features",
    "FeatureSpec": "s4_strategies.features",
    "S4Indicator": "s4_strategies.indicators",
    "S4DirectionalStrategy": "s4_strategies.strategies.directional",
    "S4PortfolioStrategy": "s4_strategies.strategies.portfolio",
    "S4MultiAssetStrategy": "s4_strategies.strategies.multi_asset",
    "AvellanedaStoikovStrategy": "s4_strategies.strategies.market_maker",
    "run_market_making": "s4_strategies.apps.market_making",
    "MarketMakingBroker": "s4_strategies.market_making.broker",
    "MakerTakerCommInfo": "s4_strategies.fees",
    "Predictor": "s4_strategies.model",
    "default_checkpoint": "s4_strategies.model",
    "load_multi": "s4_strategies.model",
    "default_multi_checkpoint": "s4_strategies.model",
    "sweep": "s4_strategies.apps.sweep",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 's4_strategies' has no attribute {name!r}")
