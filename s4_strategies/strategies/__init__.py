"""Trading strategies: S4 directional, multi-asset S4 allocation, Avellaneda–Stoikov market
making."""

from __future__ import annotations

import importlib

_LAZY = {
    "S4DirectionalStrategy": "s4_strategies.strategies.directional",
    "S4PortfolioStrategy": "s4_strategies.strategies.portfolio",
    "S4MultiAssetStrategy": "s4_strategies.strategies.multi_asset",
    "AvellanedaStoikovStrategy": "s4_strategies.strategies.market_maker",
    "ConstantSpreadStrategy": "s4_strategies.strategies.constant_spread",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 's4_strategies.strategies' has no attribute {name!r}")
