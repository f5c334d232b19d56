"""``make demo``: the main job on the embedded data."""

from __future__ import annotations

import json
from pathlib import Path


def run_demo(out: str = "runs/demo") -> int:
    import backtrader as bt

    import feeds

    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)

    class SmaCross(bt.Strategy):
        params = dict(fast=24, slow=24 * 7)

        def __init__(self):
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

        def next(self):
            if self.cross[0] > 0:
                self.order_target_percent(target=0.95)
            elif self.cross[0] < 0:
                self.order_target_percent(target=0.0)

    cerebro = bt.Cerebro()
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60"), name="BTCUSDT")
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(100_000)
    cerebro.broker.setcommission(commission=0.00055)
    cerebro.run()
    summary = {"strategy": "SMA crossover (24h/168h)", "data": "bybit:BTCUSDT:60",
               "final_value": round(cerebro.broker.getvalue(), 2)}
    print(json.dumps(summary, indent=2))
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0
