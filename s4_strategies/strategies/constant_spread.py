"""A constant spread around the mid, skewed by inventory: a deliberately simple reference
quoting rule for cross-checking fill models (``scripts/crosscheck_hftbacktest.py`` runs the
same rule in hftbacktest).

On every event of its feed (``data0``; it needs the ``bid``/``ask`` lines of
``feeds.ticks.TickData``), with ``q = position/lot``::

    mid = (bid + ask)/2
    bid = floor((mid − half_spread − skew·q)/tick)·tick
    ask =  ceil((mid + half_spread − skew·q)/tick)·tick
    post_only: bid ≤ best ask − tick, ask ≥ best bid + tick
    no order on a side that would take |q| past max_inventory lots

(``market_making.hftbacktest_ref.constant_spread_quotes``). A resting order whose price
differs from the new one is cancelled and replaced. When the broker says the cancel is in
flight (``broker.cancel_pending(order)``, ``MarketMakingBroker`` with latency) the order is
forgotten and the replacement sent at once, as a real market maker does (the old order can
still fill meanwhile); an order that is not yet in the book (backtrader has not accepted
it) cannot be cancelled, so the rule tries again on the next event. With
``cancel_in_flight=False`` an order is not cancelled before it has reached the book
(``broker.in_book``: placement + feed + entry latency), as in hftbacktest, which cannot cancel an
order until it is acknowledged.
"""

from __future__ import annotations

import math

import backtrader as bt

from ..market_making.hftbacktest_ref import constant_spread_quotes
from .orders import cancel_or_in_flight, in_book

__all__ = ["ConstantSpreadStrategy"]


class ConstantSpreadStrategy(bt.Strategy):
    """Constant-spread-plus-skew quoting on ``data0`` (see the module doc).

    Params: ``half_spread`` (price, 0.5), ``skew`` (price per lot of inventory, 0.1), ``lot``
    (contracts per order, 0.01), ``tick`` (price increment, 0.1), ``max_inventory`` (lots,
    10), ``post_only`` (``True``: keep quotes off the opposite best and flag the orders
    post-only, so the broker rejects one that would take liquidity on arrival),
    ``cancel_in_flight`` (``True``: an order may be cancelled while it is still on its way to
    the book; ``False``: only once it has arrived).
    """

    params = dict(half_spread=0.5, skew=0.1, lot=0.01, tick=0.1, max_inventory=10.0,
                  post_only=True, cancel_in_flight=True)

    def __init__(self):
        for name in ("half_spread", "lot", "tick"):
            if not getattr(self.p, name) > 0:
                raise ValueError(f"ConstantSpreadStrategy: {name} must be > 0")
        if not self.p.max_inventory >= 0:
            raise ValueError("ConstantSpreadStrategy: max_inventory must be >= 0")
        self._quote_orders = {"bid": None, "ask": None}  # the order each side manages

    def inventory_limit(self, data=None) -> float:
        """``max_inventory`` in contracts (``MarketMakingAnalyzer`` counts breaches of it)."""
        return self.p.max_inventory * self.p.lot

    def notify_order(self, order):
        if order.alive():
            return
        for side, o in self._quote_orders.items():
            if o is not None and o.ref == order.ref:
                self._quote_orders[side] = None

    def next(self):
        data = self.data0
        best_bid, best_ask = data.lines.bid[0], data.lines.ask[0]
        if not (math.isfinite(best_bid) and math.isfinite(best_ask)):
            return
        p = self.p
        bid, ask = constant_spread_quotes(
            0.5 * (best_bid + best_ask), best_bid, best_ask, self.getposition(data).size,
            half_spread=p.half_spread, skew=p.skew, lot=p.lot, tick=p.tick,
            max_inventory=p.max_inventory, post_only=p.post_only)
        self._requote("bid", bid)
        self._requote("ask", ask)

    def _requote(self, side: str, k):
        """Cancel-and-replace ``side``'s order to ``k`` ticks (``None``: no order)."""
        order = self._quote_orders[side]
        if order is not None:
            if k is not None and round(order.created.price / self.p.tick) == k:
                return
            if not self.p.cancel_in_flight and not in_book(self, order):
                return  # still on its way to the book: cancel once it is there
            if not cancel_or_in_flight(self, order):
                return  # not accepted yet: cancel on the next event
            self._quote_orders[side] = None
        if k is None:
            return
        make = self.buy if side == "bid" else self.sell
        info = {"post_only": True} if self.p.post_only else {}
        order = make(data=self.data0, size=self.p.lot, price=k * self.p.tick,
                     exectype=bt.Order.Limit, **info)
        self._quote_orders[side] = order
