"""Your own bars from a CSV (or parquet) file, read as `s4trade backtest --data FILE` reads it.

    python examples/own_csv.py                    # writes a sample CSV first, then reads it
    python examples/own_csv.py path/to/bars.csv   # your file

What is accepted (docs/guide/own-data.md has every case): a time column named datetime,
timestamp, date, time or open_time (else the first column) holding ISO 8601 text, with or
without a zone (naive = UTC), or epoch seconds, milliseconds or microseconds (told apart by
magnitude); columns open, high, low, close, volume in any case; the bar's OPEN time.
"""

import matplotlib

matplotlib.use("Agg")

import sys
from pathlib import Path

import backtrader as bt
import pandas as pd

import analyzers
import feeds
from s4_strategies import S4DirectionalStrategy, default_checkpoint
from s4_strategies.apps.sources import load_source, timeframe_of

OUT = Path("runs/examples/own_csv")

if len(sys.argv) > 1:
    path = Path(sys.argv[1])
else:  # a sample in a common exchange export: epoch milliseconds, capitalised columns
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "ethusdt_1h.csv"
    eth = feeds.load_embedded("bybit:ETHUSDT:60", "2024-03-01", "2024-04-30 23:00")
    pd.DataFrame({"Timestamp": eth.index.as_unit("ms").asi8, "Open": eth["open"],
                  "High": eth["high"], "Low": eth["low"], "Close": eth["close"],
                  "Volume": eth["volume"]}).to_csv(path, index=False)

bars = load_source(path)  # parsed and validated (feeds.clean_ohlcv): UTC index of bar opens
print(f"{path}: {len(bars):,} bars, {bars.index[0]} .. {bars.index[-1]}")

timeframe, compression = timeframe_of(bars.index)  # hourly: Minutes, 60
cerebro = bt.Cerebro()
cerebro.adddata(feeds.ArrayData(dataname=bars, timeframe=timeframe, compression=compression),
                name=path.stem)
# the shipped model was trained on hourly BTCUSDT bars; its spacing check refuses other spacings
cerebro.addstrategy(S4DirectionalStrategy, model=default_checkpoint())
analyzers.add_all(cerebro)
strat = cerebro.run()[0]
m = strat.analyzers.quantstats.get_analysis()["metrics"]
print(f"final value {cerebro.broker.getvalue():,.2f}, Sharpe {m['sharpe']:.2f}, "
      f"CAGR {m['cagr']:.1%}")
