"""``TradeStats``: what the strategy did, trade by trade.

::

    cerebro.addanalyzer(TradeStats, _name="tradestats")
    stats = cerebro.run()[0].analyzers.tradestats.get_analysis()
    stats["win_rate"], stats["profit_factor"], stats["fees_paid"], stats["trades"][0]

Unlike quantstats' period-based win rate and profit factor (share of positive *bars*), these
are per closed trade, in money, after commission.
"""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np

__all__ = ["TradeStats", "summarize_trades"]


def _ratio(num: float, den: float) -> float:
    if den == 0:
        return float("nan") if num == 0 else math.copysign(float("inf"), num)
    return float(num / den)


def summarize_trades(pnl, bars=None) -> dict:
    """Statistics of closed trades from their net P&L (money) and lengths (bars).

    ``win_rate`` = winners / closed trades (a trade at exactly zero is neither a winner nor a
    loser but counts as closed); ``profit_factor`` = gross profit / gross loss (``inf`` with
    no losing trade, NaN with no trade at all); ``expectancy`` = mean net P&L per trade.
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n = len(pnl)
    nan = float("nan")
    out = {
        "closed_trades": n,
        "won": len(wins),
        "lost": len(losses),
        "win_rate": len(wins) / n if n else nan,
        "gross_profit": float(wins.sum()),
        "gross_loss": float(losses.sum()),
        "net_pnl": float(pnl.sum()),
        "profit_factor": _ratio(float(wins.sum()), abs(float(losses.sum()))),
        "avg_win": float(wins.mean()) if len(wins) else nan,
        "avg_loss": float(losses.mean()) if len(losses) else nan,
        "largest_win": float(wins.max()) if len(wins) else nan,
        "largest_loss": float(losses.min()) if len(losses) else nan,
        "expectancy": float(pnl.mean()) if n else nan,
    }
    out["payoff_ratio"] = (
        _ratio(out["avg_win"], abs(out["avg_loss"])) if len(wins) and len(losses) else nan
    )
    if bars is not None:
        bars = np.asarray(bars, dtype=np.float64)
        out["avg_bars"] = float(bars.mean()) if len(bars) else nan
    return out


class TradeStats(bt.Analyzer):
    """Closed trades, win rate, profit factor, average win and loss, expectancy, exposure,
    turnover and fees.

    ``get_analysis()`` keys: everything ``summarize_trades`` returns (on net P&L, i.e. after
    commission) plus ``open_trades`` (still open at the end), ``orders`` (executed),
    ``fees_paid`` (commission on every execution, open trades included),
    ``traded_notional`` (sum of |size x price x multiplier| over executions),
    ``turnover`` (traded notional / mean portfolio value), ``exposure`` (share of bars with a
    position in any data), ``avg_gross_leverage`` (mean of sum |position value| / portfolio
    value), ``bars``, and ``trades``: one dict per closed trade (``data, ref, open, close,
    bars, pnl, pnl_net, commission``).
    """

    params = dict()

    def start(self):
        self._trades = []
        self._open = {}
        self._fees = 0.0
        self._notional = 0.0
        self._orders = 0
        self._bars = 0
        self._in_market = 0
        self._values = []
        self._leverage = []

    def notify_order(self, order):
        # executed.* accumulates over partial fills: count an order once, when it is done
        done = (order.Completed, order.Canceled, order.Expired, order.Margin, order.Rejected)
        ex = order.executed
        if order.status not in done or not ex.size:
            return
        mult = getattr(getattr(order.comminfo, "p", None), "mult", 1.0) or 1.0
        self._fees += float(ex.comm)
        self._notional += abs(float(ex.size) * float(ex.price) * float(mult))
        self._orders += 1

    def notify_trade(self, trade):
        if trade.justopened:
            self._open[trade.ref] = trade
        if not trade.isclosed:
            return
        self._open.pop(trade.ref, None)
        self._trades.append(
            dict(
                data=trade.data._name or getattr(trade.data.p, "name", None) or "",
                ref=trade.ref,
                open=bt.num2date(trade.dtopen) if trade.dtopen else None,
                close=bt.num2date(trade.dtclose) if trade.dtclose else None,
                bars=int(trade.barlen),
                pnl=float(trade.pnl),
                pnl_net=float(trade.pnlcomm),
                commission=float(trade.commission),
            )
        )

    def next(self):
        strat = self.strategy
        value = float(strat.broker.getvalue())
        gross = 0.0
        for data in strat.datas:
            pos = strat.getposition(data)
            if pos.size:
                mult = getattr(strat.broker.getcommissioninfo(data).p, "mult", 1.0) or 1.0
                gross += abs(pos.size * float(data.close[0]) * mult)
        self._bars += 1
        self._in_market += gross > 0
        self._values.append(value)
        self._leverage.append(gross / value if value > 0 else float("nan"))

    def stop(self):
        pnl = [t["pnl_net"] for t in self._trades]
        out = summarize_trades(pnl, [t["bars"] for t in self._trades])
        mean_value = float(np.mean(self._values)) if self._values else float("nan")
        out.update(
            open_trades=len(self._open),
            orders=self._orders,
            fees_paid=self._fees,
            traded_notional=self._notional,
            turnover=self._notional / mean_value if mean_value else float("nan"),
            exposure=self._in_market / self._bars if self._bars else float("nan"),
            avg_gross_leverage=(
                float(np.nanmean(self._leverage)) if self._leverage else float("nan")
            ),
            bars=self._bars,
            trades=self._trades,
        )
        self.rets = out

    def get_analysis(self):
        return self.rets
