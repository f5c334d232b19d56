"""Scripted backtrader runs for the fill-model tests: tick and bar frames from short
descriptions, a strategy that places planned orders and logs every execution."""

import backtrader as bt
import numpy as np
import pandas as pd

from feeds import ArrayData
from feeds.ticks import TickData
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker

T0 = pd.Timestamp("2024-08-08 23:00", tz="UTC")
NAN = float("nan")


def tick_frame(rows):
    """Events from dicts with bid/ask (default 99.99/100.00, sizes 2) and an optional trade,
    one a second unless a row gives its own time ``t`` (seconds after T0)."""
    out = []
    for r in rows:
        bid, ask = r.get("bid", 99.99), r.get("ask", 100.00)
        mid = (bid + ask) / 2
        tp = r.get("tp", NAN)
        out.append(dict(open=mid, high=np.fmax(mid, tp), low=np.fmin(mid, tp), close=mid,
                        volume=r.get("ts", 0.0) if tp == tp else 0.0, bid=bid, ask=ask,
                        bid_size=r.get("bs", 2.0), ask_size=r.get("as", 2.0), mid=mid,
                        trade_price=tp, trade_size=r.get("ts", NAN),
                        trade_side=r.get("side", NAN)))
    secs = [r.get("t", float(i)) for i, r in enumerate(rows)]
    idx = T0 + pd.to_timedelta(secs, unit="s")
    return pd.DataFrame(out, index=idx)


def bar_frame(bars, freq="1h"):
    idx = pd.date_range(T0, periods=len(bars), freq=freq)
    frame = pd.DataFrame(bars, columns=["open", "high", "low", "close"], index=idx)
    return frame.assign(volume=1.0)


class Scripted(bt.Strategy):
    """Places the orders of ``plan[i]`` on event ``i`` (``(kind, price, size[, info])``, kind
    ``bid``/``ask`` limit, ``buy``/``sell`` market, or ``("cancel", k, None)`` to cancel the
    ``k``-th order placed); logs every execution (``fills``: on the event the exchange made
    it, from the broker's listener; ``seen_fills``: on the event it was reported) and every
    report (``statuses``, ``reports``)."""

    params = dict(plan=None)

    def __init__(self):
        self.fills = []
        self.statuses = []
        self.reports = []  # (event the strategy learnt it on, ref, status)
        self.seen_fills = []  # executions as reported to the strategy
        self.cancel_rejected = []  # (event, ref): the venue found no order to cancel
        self.orders = []
        self.i = -1

    def start(self):
        listen = getattr(self.broker, "add_exchange_listener", None)
        if listen is not None:
            listen(self._on_exchange)

    def _on_exchange(self, order, when):
        """The exchange's side, undelayed: every execution on the event that made it."""
        for bit in order.executed.iterpending():
            self.fills.append(dict(event=len(self.data) - 1, size=bit.size, price=bit.price,
                                   comm=bit.comm, taker=bool(order.info.get("taker", False))))

    def notify_order(self, order):
        """The strategy's side: reports as they reach it (``response`` after the exchange)."""
        now = len(self.data) - 1
        self.statuses.append((order.ref, order.getstatusname()))
        self.reports.append((now, order.ref, order.getstatusname()))
        if getattr(order, "cancel_rejected", False):
            self.cancel_rejected.append((now, order.ref))
        for bit in order.executed.iterpending():
            self.seen_fills.append(dict(event=now, size=bit.size, price=bit.price))
        if not hasattr(self.broker, "add_exchange_listener"):
            for bit in order.executed.iterpending():
                self.fills.append(dict(event=now, size=bit.size, price=bit.price,
                                       comm=bit.comm, taker=bool(order.info.get("taker", False))))

    def prenext(self):
        self.next()

    def next(self):
        self.i += 1
        for kind, price, size, *info in self.p.plan.get(self.i, []):
            kw = info[0] if info else {}
            if kind == "cancel":  # ("cancel", index of the order in self.orders, None)
                self.cancel(self.orders[price])
                continue
            if kind == "bid":
                order = self.buy(price=price, size=size, exectype=bt.Order.Limit, **kw)
            elif kind == "ask":
                order = self.sell(price=price, size=size, exectype=bt.Order.Limit, **kw)
            elif kind == "buy":
                order = self.buy(size=size, exectype=bt.Order.Market, **kw)
            else:
                order = self.sell(size=size, exectype=bt.Order.Market, **kw)
            self.orders.append(order)


def run(frame, plan, tick=True, comm=None, broker=None, **broker_kw):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker or MarketMakingBroker(**broker_kw)
    cerebro.broker.setcash(1e6)
    cerebro.broker.addcommissioninfo(comm or MakerTakerCommInfo())
    cerebro.adddata(TickData(dataname=frame) if tick else ArrayData(dataname=frame), name="X")
    cerebro.addstrategy(Scripted, plan=plan)
    strat = cerebro.run()[0]
    return strat, cerebro.broker
