"""backtrader indicators: ``S4Indicator``, the only bridge between backtrader and a model."""

from __future__ import annotations

from .s4 import S4Indicator
from .tick_lean import TickLeanIndicator

__all__ = ["S4Indicator", "TickLeanIndicator"]
