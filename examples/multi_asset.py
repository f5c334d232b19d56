"""One model for several assets: a shared S4D encoder over BTC, ETH and SOL, then its
portfolio head trading them together.

    python examples/multi_asset.py            # a small model: about a minute of CPU
    python examples/multi_asset.py --tiny     # a few seconds (what the test runs)

`train_multi` lays the assets on the union of their bar times (SOL starts in October 2021 and
joins once warmed up), trains one `MultiAssetS4` with a head per asset and a long-only
portfolio head, and `S4MultiAssetStrategy` targets the portfolio head's weights.
"""

import matplotlib

matplotlib.use("Agg")

import sys
from datetime import datetime
from pathlib import Path

import backtrader as bt

import analyzers
import feeds
from s4_strategies import S4MultiAssetStrategy
from s4_strategies.training import TrainConfig
from s4_strategies.training.multi_asset import frames_from, save_multi, train_multi

OUT = Path("runs/examples/multi_asset")
ASSETS = ["bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60"]
tiny = "--tiny" in sys.argv

frames = frames_from(ASSETS, "2021-06-01", "2022-06-30")  # {name: OHLCV frame}
cfg = TrainConfig(layer="s4d", d_model=8 if tiny else 32, d_state=8 if tiny else 32,
                  n_layers=1 if tiny else 2, seq_len=128 if tiny else 256, burn_in=32,
                  batch_size=4 if tiny else 16, epochs=2 if tiny else 6,
                  steps_per_epoch=4 if tiny else 40, progress=False)
result = train_multi(frames, ("2021-06-01", "2022-06-30"), cfg)  # last 15 %: validation
path = save_multi(result, OUT / "multi.pt")
print(f"trained on {result.meta['periods']}: best validation loss "
      f"{result.meta['best_val_loss']:.4f} (from {result.meta['initial_val_loss']:.4f})")

cerebro = bt.Cerebro()
cerebro.broker.setcash(100_000)
for name in ASSETS:  # out of sample: after the training and validation period
    cerebro.adddata(feeds.EmbeddedData(name=name, fromdate=datetime(2022, 7, 1),
                                       todate=datetime(2022, 8, 31)), name=name)
cerebro.addstrategy(S4MultiAssetStrategy, model=str(path), rebalance=24, max_weight=0.6)
analyzers.add_all(cerebro)
strat = cerebro.run()[0]
m = strat.analyzers.quantstats.get_analysis()["metrics"]
print(f"{strat.rebalances} rebalances, final value {cerebro.broker.getvalue():,.2f}, "
      f"Sharpe {m['sharpe']:.2f}; last weights {strat.weights_history[-1][1]}")
