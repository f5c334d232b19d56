"""Your own strategy with the S4 indicator: the model's forecasts as backtrader lines.

    python examples/own_strategy.py

`S4Indicator` advances the model's recurrent state one bar at a time and exposes the lines
signal (-1/0/+1), confidence, expected_signal, pred_return, pred_move and pred_vol. Here a
long/flat rule trades the predicted move when it clears the round trip's fees, sized by the
predicted volatility, next to an ordinary backtrader SMA.
"""

import matplotlib

matplotlib.use("Agg")

from datetime import datetime

import backtrader as bt

import analyzers
import feeds
from s4_strategies import S4Indicator, default_checkpoint
from s4_strategies.fees import BYBIT_TAKER, apply_fees


class TrendAndModel(bt.Strategy):
    params = dict(model=None, sma=48, risk=0.02)

    def __init__(self):
        self.s4 = S4Indicator(self.data, model=self.p.model)  # a path or a loaded model
        self.sma = bt.indicators.SMA(self.data.close, period=self.p.sma)

    def start(self):
        apply_fees(self.broker, self.datas, "bybit")  # Bybit's taker fee on every fill

    def next(self):
        move, vol = self.s4.pred_move[0], self.s4.pred_vol[0]  # 5-bar log return, per-bar vol
        long = move > 4 * BYBIT_TAKER and self.data.close[0] > self.sma[0]
        weight = min(self.p.risk / vol, 0.95) if long and vol > 0 else 0.0
        if abs(weight - self.getposition().size * self.data.close[0]
               / self.broker.getvalue()) > 0.05:
            self.order_target_percent(target=weight)


cerebro = bt.Cerebro()
cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60",
                                   fromdate=datetime(2023, 6, 1), todate=datetime(2023, 8, 31)))
cerebro.addstrategy(TrendAndModel, model=default_checkpoint())
analyzers.add_all(cerebro)
strat = cerebro.run()[0]
m = strat.analyzers.quantstats.get_analysis()["metrics"]
t = strat.analyzers.tradestats.get_analysis()
print(f"final value {cerebro.broker.getvalue():,.2f}, Sharpe {m['sharpe']:.2f}, "
      f"closed trades {t['closed_trades']}, fees {t['fees_paid']:,.2f}")
print(f"last forecast: signal {strat.s4.signal[0]:+.0f}, confidence {strat.s4.confidence[0]:.2f}, "
      f"pred_move {strat.s4.pred_move[0]:+.4f}, pred_vol {strat.s4.pred_vol[0]:.4f}")
