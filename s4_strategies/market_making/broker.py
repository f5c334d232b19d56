"""Fill models and maker/taker fees for market making in backtrader.

backtrader's ``BackBroker`` fills a limit order whenever a bar's range touches it, with no
queue. For a market maker that overstates spread capture: every quote the range reaches is
filled, first in the queue, including those the market only touched. ``MarketMakingBroker``
keeps orders as ordinary backtrader orders (``notify_order``, positions, broker value and
other analyzers work as usual) and replaces the limit-order matching with one of:

``"trade_through"`` (default for ticks and for bars)
    Tick feeds (a ``trade_price`` line, see ``feeds.ticks``): a resting bid fills only when
    a sell trade prints *below* it, or when the best ask drops to it or below (the book
    moved through it); a trade *at* its price fills it under the ``queue`` rule:

    - ``"queue"`` (default): the order joins behind the displayed size at its price (the
      best bid's size when it is placed at the best bid, nothing when it improves the best,
      the displayed size when its level later becomes the best); only trades at the price
      advance it (the queue ahead never exceeds the size now displayed), and what a trade
      leaves past the queue fills it, partially if need be;
    - ``"through"``: trades at the price never fill it (the most conservative);
    - ``"touch"``: trades at the price fill it up to their size (front of the queue).

    Bars: a bid fills only when the bar's low is strictly below it (``queue="touch"``: at or
    below), at the limit price. A bar that trades through a level cleared its queue.
``"intensity"``
    Poisson fills: per broker step of ``dt`` seconds the order fills with probability
    ``1 − exp(−A·exp(−kappa·delta)·dt)``, ``delta`` its distance from the mid when it was
    quoted, from a seeded generator. On bars a fill also needs the bar's range to have
    reached the price (``require_touch``, default on bars): fills stay on the side the
    price went (adverse selection is kept) and are a thinned subset of touches. On tick
    feeds the draws are the AS model's world as it stands (default off there: a per-event
    draw that also needed a trade at the price in that same event would almost never
    fill; ``require_touch=True`` asks for it anyway). ``A, kappa`` come from the
    ``intensity`` param (a pair or ``{data name: pair}``) or else from the order's
    ``A``/``kappa`` info, which ``AvellanedaStoikovStrategy`` attaches from its rolling
    calibration.
``"touch"``
    backtrader's own rule (for comparison).

Why trade-through is the default: it needs no parameters that could be tuned to flatter
a result, it fills a quote only when the market demonstrably traded at it, and on bars it
drops the touch-only fills that backtrader's rule counts. The intensity model is the AS
model's own world: useful to check the maths, but its fills are as good as its ``A, kappa``.

In every model an order is matched only against events after the one it was placed on
(with several feeds, a feed that did not move is not re-matched), a limit order that is
marketable when it reaches the book fills at the opposite best as a taker (or is rejected
when it carries ``post_only=True`` in its info, as exchanges do), and market
orders fill at the opposite best (ticks) or the next bar's open (bars). Fees:
``MakerTakerCommInfo`` charges ``maker`` on passive fills and ``taker`` on the rest.

backtrader has no public hook for order matching: what must override its ``BackBroker``
internals lives in :mod:`.bt_adapter` (``BackBrokerHooks``, pinned to the backtrader version
it was written for). This module is only the fill models, written against its hooks
(``match``, ``fill``, ``executing``, ``on_submit``, ``on_cancel``).
"""

from __future__ import annotations

import contextlib
import math

import backtrader as bt
import numpy as np

from feeds.bartime import num_to_epoch

from ..fees import MAKER, TAKER
from .bt_adapter import BackBrokerHooks
from .quotes import fill_probability

__all__ = ["FILL_MODELS", "QUEUE_RULES", "MarketMakingBroker"]

FILL_MODELS = ("trade_through", "intensity", "touch")
QUEUE_RULES = ("queue", "through", "touch")


def _line(data, name):
    lines = data.lines
    if not hasattr(lines, name):
        return math.nan
    return getattr(lines, name)[0]


class _OrderState:
    __slots__ = ("seen", "t", "queue", "new")

    def __init__(self, seen: int, t: float):
        self.seen = seen      # len(data) when last matched (or placed)
        self.t = t            # epoch seconds of that event
        self.queue = None     # size ahead in the queue at the order's price (ticks)
        self.new = True       # not yet matched against any event


class MarketMakingBroker(BackBrokerHooks):
    """``BackBroker`` with market-making fill models (see the module doc).

    Extra params: ``fill_model`` (``"trade_through"``), ``queue`` (``"queue"``), ``seed``
    (0), ``intensity`` (``None``), ``require_touch`` (``None``: on bars, not on ticks).
    """

    params = (
        ("fill_model", "trade_through"),
        ("queue", "queue"),
        ("seed", 0),
        ("intensity", None),
        ("require_touch", None),
    )

    def init(self):
        super().init()
        if self.p.fill_model not in FILL_MODELS:
            raise ValueError(f"fill_model must be one of {FILL_MODELS}")
        if self.p.queue not in QUEUE_RULES:
            raise ValueError(f"queue must be one of {QUEUE_RULES}")
        self._rng = np.random.default_rng(self.p.seed)
        self._ostate: dict[int, _OrderState] = {}
        self._taker_refs: set[int] = set()

    # --------------------------------------------------------------- bookkeeping
    def on_submit(self, order):
        data = order.data
        self._ostate[order.ref] = _OrderState(len(data), _now(data))

    def on_cancel(self, order):
        self._ostate.pop(order.ref, None)

    def _fill(self, order, price, qty=None, taker=False):
        if taker:
            self._taker_refs.add(order.ref)
            order.addinfo(taker=True)
        self.fill(order, price, qty)

    @contextlib.contextmanager
    def executing(self, order):
        """Tell the commission scheme whether this execution is maker or taker."""
        ci = self.getcommissioninfo(order.data)
        taker = order.exectype != bt.Order.Limit or order.ref in self._taker_refs
        previous = getattr(ci, "liquidity", None)
        ci.liquidity = TAKER if taker else MAKER
        try:
            yield
        finally:
            ci.liquidity = previous

    # --------------------------------------------------------------- matching
    def match(self, order):
        data = order.data
        st = self._ostate.get(order.ref)
        if st is None:
            st = self._ostate[order.ref] = _OrderState(len(data) - 1, _now(data))
        n = len(data)
        if n <= st.seen:
            return  # this feed has not moved since the order was placed or last matched
        st.seen = n
        now = _now(data)
        dt = max(now - st.t, 0.0)
        st.t = now
        try:
            if order.exectype == bt.Order.Market:
                self._exec_market(order)
            elif order.exectype == bt.Order.Limit and self.p.fill_model != "touch":
                self._exec_limit(order, st, dt)
            else:
                self.match_default(order)
        finally:
            st.new = False
            if not order.alive():
                self._ostate.pop(order.ref, None)
                self._taker_refs.discard(order.ref)

    def _exec_market(self, order):
        data = order.data
        price = _line(data, "ask") if order.isbuy() else _line(data, "bid")
        if math.isfinite(price):
            self._fill(order, price, taker=True)
        else:
            self.match_default(order)

    def _exec_limit(self, order, st, dt):
        data = order.data
        limit = order.created.price
        buy = order.isbuy()
        eps = 1e-8 * abs(limit)
        bid, ask = _line(data, "bid"), _line(data, "ask")
        opposite = ask if buy else bid
        sign = 1.0 if buy else -1.0
        if math.isfinite(opposite) and sign * (limit - opposite) >= -eps:
            # the opposite best is at or through the limit. On arrival: a post-only order is
            # rejected, any other fills as a taker at the best. Resting: the book moved
            # through it, so it fills at its price.
            if st.new and order.info.get("post_only", False):
                self.reject(order)
            elif st.new:
                self._fill(order, opposite, taker=True)
            else:
                self._fill(order, limit)
            return
        tick_feed = hasattr(data.lines, "trade_price")
        if self.p.fill_model == "trade_through":
            if tick_feed:
                self._trade_through_tick(order, st, limit, buy, eps)
            else:
                self._trade_through_bar(order, limit, buy, eps)
        else:
            self._intensity(order, limit, buy, eps, dt, tick_feed)

    def _update_queue(self, order, st, limit, buy, eps):
        best = _line(order.data, "bid" if buy else "ask")
        size = _line(order.data, "bid_size" if buy else "ask_size")
        if not math.isfinite(best):
            return
        better = (limit - best) if buy else (best - limit)
        if better > eps:
            st.queue = 0.0  # we improve the displayed best: nobody ahead
        elif abs(better) <= eps and math.isfinite(size):
            st.queue = size if st.queue is None else min(st.queue, size)

    def _trade_through_tick(self, order, st, limit, buy, eps):
        data = order.data
        if self.p.queue == "queue":
            self._update_queue(order, st, limit, buy, eps)
        price, side = data.lines.trade_price[0], data.lines.trade_side[0]
        if not math.isfinite(price):
            return
        if math.isfinite(side) and side == (1.0 if buy else -1.0):
            return  # a buy print hits asks, not our bid (and vice versa)
        through = (limit - price) if buy else (price - limit)
        if through > eps:
            self._fill(order, limit)
            return
        if abs(through) > eps or self.p.queue == "through":
            return
        size = data.lines.trade_size[0]
        if not math.isfinite(size) or size <= 0:
            return
        if self.p.queue == "touch":
            self._fill(order, limit, qty=size)
            return
        if st.queue is None:
            return  # deeper than the displayed best: our place in the queue is unknown
        left = size - st.queue
        st.queue = max(st.queue - size, 0.0)
        if left > 0:
            self._fill(order, limit, qty=left)

    def _trade_through_bar(self, order, limit, buy, eps):
        data = order.data
        touch = self.p.queue == "touch"
        if buy:
            low = data.low[0]
            hit = low < limit - eps or (touch and low <= limit + eps)
        else:
            high = data.high[0]
            hit = high > limit + eps or (touch and high >= limit - eps)
        if hit:
            self._fill(order, limit)

    def _touched(self, order, limit, buy, eps, tick_feed):
        data = order.data
        if tick_feed:
            price, side = data.lines.trade_price[0], data.lines.trade_side[0]
            if not math.isfinite(price):
                return False
            if math.isfinite(side) and side == (1.0 if buy else -1.0):
                return False
            return (price <= limit + eps) if buy else (price >= limit - eps)
        return data.low[0] <= limit + eps if buy else data.high[0] >= limit - eps

    def _intensity_params(self, order):
        spec = self.p.intensity
        if isinstance(spec, dict):
            spec = spec.get(self.data_name(order.data))
        if spec is not None:
            return float(spec[0]), float(spec[1])
        A, kappa = order.info.get("A"), order.info.get("kappa")
        if A is None or kappa is None:
            raise ValueError("intensity fills need A and kappa: pass intensity=(A, kappa) to "
                             "the broker or quote with AvellanedaStoikovStrategy")
        return float(A), float(kappa)

    def _intensity(self, order, limit, buy, eps, dt, tick_feed):
        u = self._rng.random()  # drawn on every step: the stream does not depend on touches
        need = (not tick_feed) if self.p.require_touch is None else self.p.require_touch
        if need and not self._touched(order, limit, buy, eps, tick_feed):
            return
        A, kappa = self._intensity_params(order)
        mid = order.info.get("mid")
        if mid is None:
            mid = order.data.close[-1] if len(order.data) > 1 else order.data.close[0]
        delta = abs(limit - mid)
        if u < fill_probability(delta, A, kappa, dt):
            self._fill(order, limit)


def _now(data) -> float:
    """The feed's current time in epoch seconds (UTC)."""
    return num_to_epoch(data.datetime[0]) if len(data) else 0.0
