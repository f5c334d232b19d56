"""Applications that join the parts: the ``s4trade`` command line, the demo, and the
backtest and market-making runners. Nothing below ``apps`` imports from here."""
