"""A first backtest: the shipped S4D model trading BTCUSDT hourly bars in backtrader.

    python examples/first_backtest.py

Writes a quantstats tear sheet, metrics.json and an equity chart into
runs/examples/first_backtest/ and prints the headline numbers.
"""

import matplotlib

matplotlib.use("Agg")  # headless: before backtrader, whose plotting forces TkAgg

from datetime import datetime

import backtrader as bt

import analyzers
import feeds
from s4_strategies import S4DirectionalStrategy, default_checkpoint, load_model

OUT = "runs/examples/first_backtest"

model = load_model(default_checkpoint())  # the shipped S4D (trained on 2021-2022 bars)
cerebro = bt.Cerebro()
cerebro.broker.setcash(100_000)
cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60",  # real Bybit bars, shipped
                                   fromdate=datetime(2024, 1, 1), todate=datetime(2024, 3, 31)))
cerebro.addstrategy(S4DirectionalStrategy, model=model)  # Bybit's taker fee by default
analyzers.add_all(cerebro, benchmark="buyhold")  # quantstats + trade statistics
strat = cerebro.run()[0]
report = analyzers.write_report(strat, OUT)  # tearsheet.html, metrics.json, equity_drawdown.png

m, t = report["metrics"], report["trades"]
print(f"final value {cerebro.broker.getvalue():,.2f}  Sharpe {m['sharpe']:.2f}  "
      f"max drawdown {m['max_drawdown']:.1%}  closed trades {t['closed_trades']}  "
      f"fees {t['fees_paid']:,.2f}")
print("report:", ", ".join(str(p) for p in report["files"].values()))
