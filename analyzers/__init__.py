"""backtrader analyzers: quantstats metrics and tear sheets, trade and market-making statistics."""
