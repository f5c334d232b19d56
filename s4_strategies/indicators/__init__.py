"""backtrader indicators: ``S4Indicator``, the only bridge between backtrader and a model, and
``RegimeIndicator`` (its lines plus the market regime read from the model's hidden state)."""

from __future__ import annotations

from .regime import RegimeIndicator
from .s4 import S4Indicator
from .tick_lean import TickLeanIndicator

__all__ = ["RegimeIndicator", "S4Indicator", "TickLeanIndicator"]
