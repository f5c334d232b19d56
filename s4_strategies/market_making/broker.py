"""Fill models, latency and queue position for market making in backtrader.

backtrader's ``BackBroker`` fills a limit order whenever a bar's range touches it, at once and
first in the queue. For a market maker that overstates spread capture. ``MarketMakingBroker``
keeps orders as ordinary backtrader orders (``notify_order``, positions, broker value and
other analyzers work as usual) and replaces the matching with an event-driven exchange in the
manner of hftbacktest:

**Latency** (``latency``, :mod:`.latency`; default ``"cloud"``: feed 5 ms, entry, response
and cancel 10 ms). An order the strategy places on the event stamped ``t`` reaches the book
at ``t + feed + entry``; until then it cannot trade. A cancel sent on ``t`` takes effect at
``t + feed + cancel``; until then the order can still be filled (a fill in flight). A feed
with a ``recv`` line (each event's receive time) gives each event its own feed latency. What the
exchange does reaches the strategy ``response`` later (:mod:`.venue`: acknowledgements,
rejections, fills and cancels as delayed ``notify_order`` reports; Bybit's cancel rules;
``add_exchange_listener`` for the undelayed truth). ``cancel_pending(order)`` and
``in_book(order)`` answer from the exchange's side (the broker's truth, for tools and the
``requote="aggressive"`` quoter, not for a strategy that models a live venue).

**Arrival.** A limit order that is marketable against the book prevailing when it arrives (a
bid at or above the best ask; on bars: at or above the next bar's open) takes liquidity at
the opposite best (the open on bars) and pays the taker fee, or is rejected when it carries
``post_only=True`` in its info, as exchanges do. Never filled at its own limit as a maker.
Market orders fill at the opposite best prevailing on arrival (ticks) or the next bar's open.

**Fill models** (``fill_model``) for resting limit orders:

``"trade_through"`` (default)
    Tick feeds (a ``trade_price`` line, see ``feeds.ticks``): a resting bid fills when a sell
    trade prints *below* it (kind ``"through"``), or when the best ask drops to it or below
    (``"book"``: the book moved through it); a trade *at* its price fills it under ``queue``:

    - ``"prob"`` (default) / ``"risk_averse"``: the order joins the queue behind the size
      displayed at its price when it arrives (nothing when it improves the best; unknown when
      deeper than the best, until its level becomes the best) and advances with trades at its
      price and, under ``"prob"``, with a share of the cancellations (``queue_power``): see
      :mod:`.queue`. What a trade leaves past the queue fills it (``"queue"``), partially
      unless ``partial=False`` (then a trade that reaches it fills it whole, hftbacktest's
      no-partial-fill exchange);
    - ``"through"``: trades at the price never fill it (the most conservative);
    - ``"touch"``: trades at the price fill it up to their size (front of the queue).

    Bars: a bid fills only when the bar's low is strictly below it (``queue="touch"``: at or
    below), at the limit price. A bar that trades through a level cleared its queue.
``"intensity"``
    Poisson fills at rate ``A·exp(−kappa·delta)`` from a seeded generator; with
    ``require_touch`` (default) only on a print at or through the price (ticks) or a bar
    reaching it, so adverse selection is kept: see :mod:`.intensity_fill`. ``A, kappa`` come
    from the ``intensity`` param (a pair or ``{data name: pair}``) or the order's
    ``A``/``kappa`` info; while unknown the order rests and cannot fill.
``"touch"``
    backtrader's own rule (for comparison), after the order's arrival.

In every model an order is matched only against events after it arrived (with several feeds, a
feed that did not move is not re-matched). Every execution is logged in ``fill_log`` (dicts:
``ref, data, t, sign, price, size, kind, taker, placed, arrived, cancel_sent``; ``kind`` one of
``through, queue, book, taker, market, intensity, touch``). Fees: ``MakerTakerCommInfo``
charges ``maker`` on passive fills and ``taker`` on the rest.

backtrader has no public hook for order matching: its ``BackBroker`` internals are overridden
in :mod:`.bt_adapter` (``BackBrokerHooks``, pinned to its backtrader version); this module is
the exchange, on its hooks (``match``, ``fill``, ``executing``, ``on_submit``, ``on_cancel``).
"""

from __future__ import annotations

import contextlib
import math

import backtrader as bt
import numpy as np

from ..fees import MAKER, TAKER
from .bt_adapter import BackBrokerHooks
from .instrument import check_size_steps
from .intensity_fill import IntensityFills
from .latency import parse_latency
from .queue import QueuePosition, displayed_ahead, normalise_queue_model
from .venue import TIME_TOL, VenueResponses, is_tick_feed
from .venue import now_of as _now

__all__ = ["FILL_MODELS", "QUEUE_RULES", "MarketMakingBroker"]

FILL_MODELS = ("trade_through", "intensity", "touch")
QUEUE_RULES = ("prob", "risk_averse", "through", "touch")
_NAN = math.nan


def _line(data, name):
    lines = data.lines
    if not hasattr(lines, name):
        return _NAN
    return getattr(lines, name)[0]


def _bbo(data) -> tuple:
    """``(bid, ask, bid_size, ask_size)`` of the feed's current event (NaN where absent)."""
    return tuple(_line(data, k) for k in ("bid", "ask", "bid_size", "ask_size"))


class _OrderState:
    __slots__ = ("seen", "t", "placed", "arrive", "cancel_at", "cancel_sent", "book", "queue",
                 "new", "hazard")

    def __init__(self, seen: int, t: float, arrive: float, book: tuple, queue: QueuePosition):
        self.seen = seen          # len(data) when last matched (or placed)
        self.t = t                # epoch seconds of that event
        self.placed = t           # the event the strategy placed the order on
        self.arrive = arrive      # when it reaches the book
        self.cancel_at = None     # when a cancel sent for it takes effect
        self.cancel_sent = None
        self.book = book          # the BBO prevailing before the event being matched
        self.queue = queue        # size ahead at its price (ticks)
        self.new = True           # not yet in the book
        self.hazard = 0.0         # intensity accumulated since the last touch


class MarketMakingBroker(VenueResponses, IntensityFills, BackBrokerHooks):
    """``BackBroker`` with latency, queue position and market-making fill models (module doc).

    Extra params: ``fill_model`` (``"trade_through"``), ``queue`` (``"prob"``; ``"queue"`` is
    the earlier name of ``"risk_averse"``), ``queue_power`` (3), ``partial`` (``True``),
    ``latency`` (``None``: ``"cloud"``; see :func:`.latency.parse_latency`), ``seed`` (0),
    ``intensity`` (``None``), ``require_touch`` (``True``), ``size_step`` (``None``, a number
    or ``{data name: step}``: partial fills in whole steps of it).
    """

    params = (
        ("fill_model", "trade_through"),
        ("queue", "prob"),
        ("queue_power", 3.0),
        ("partial", True),
        ("latency", None),
        ("seed", 0),
        ("intensity", None),
        ("require_touch", True),
        ("size_step", None),
    )

    def init(self):
        super().init()
        if self.p.fill_model not in FILL_MODELS:
            raise ValueError(f"fill_model must be one of {FILL_MODELS}, got {self.p.fill_model!r}")
        check_size_steps(self.p.size_step)
        self.queue_rule = normalise_queue_model(self.p.queue)
        if self.queue_rule not in QUEUE_RULES:
            raise ValueError(f"queue must be one of {QUEUE_RULES}, got {self.p.queue!r}")
        QueuePosition("prob", self.p.queue_power)  # checks queue_power
        self.latency = parse_latency(self.p.latency)
        self._rng = np.random.default_rng(self.p.seed)
        self._ostate: dict[int, _OrderState] = {}
        self._taker_refs: set[int] = set()
        self.fill_log: list[dict] = []
        self.init_responses()

    # --------------------------------------------------------------- order lifecycle
    def _state(self, order, placed_now: bool) -> _OrderState:
        data = order.data
        t = _now(data)
        queue_model = self.queue_rule if self.queue_rule in ("prob", "risk_averse") else "prob"
        return _OrderState(len(data) if placed_now else len(data) - 1, t,
                           t + self.feed_delay(data) + self.latency.entry, _bbo(data),
                           QueuePosition(queue_model, self.p.queue_power))

    def on_submit(self, order):
        self.watch_feed(order.data)
        self._ostate[order.ref] = self._state(order, placed_now=True)

    def next(self):
        super().next()
        self.deliver_due()  # the reports that have come back by now

    def on_cancel(self, order):
        self._forget(order)

    def _forget(self, order):
        self._ostate.pop(order.ref, None)
        self._taker_refs.discard(order.ref)

    def cancel(self, order, bracket=False):
        """Cancel ``order`` when the cancel reaches the book (``cancel_pending(order)`` until
        then; it can still fill meanwhile); at once without cancel latency and on bars. A
        cancel that would reach the book before the order is rejected (:mod:`.venue`):
        ``False``."""
        st = self._ostate.get(order.ref)
        if st is None or not order.alive():
            return super().cancel(order, bracket)
        now, ticks = _now(order.data), is_tick_feed(order.data)
        if ticks and st.cancel_at is None and self.cancel_reaches_first(order, st, now):
            return False
        lands = now + self.feed_delay(order.data) + self.latency.cancel
        if not ticks or lands <= now:
            return super().cancel(order, bracket)
        if st.cancel_at is None:
            st.cancel_sent = now
            st.cancel_at = lands
        return True

    def cancel_pending(self, order) -> bool:
        """Whether a cancel was sent for ``order`` and has not taken effect yet."""
        st = self._ostate.get(order.ref)
        return st is not None and st.cancel_at is not None and order.alive()

    def in_book(self, order) -> bool:
        """Whether ``order`` has reached the book by its feed's current event (an order this
        broker does not track counts as there)."""
        st = self._ostate.get(order.ref)
        return st is None or _now(order.data) >= st.arrive - TIME_TOL

    def _fill(self, order, st, price, kind, qty=None, taker=False):
        if taker:
            self._taker_refs.add(order.ref)
            order.addinfo(taker=True)
        before = abs(order.executed.remsize)
        self.fill(order, price, qty)
        size = before - abs(order.executed.remsize)
        if size > 0:
            self._log(order, st, price, size, kind)

    def _log(self, order, st, price, size, kind):
        self.fill_log.append(dict(
            ref=order.ref, data=self.data_name(order.data), t=_now(order.data),
            sign=1.0 if order.isbuy() else -1.0, price=float(price), size=float(size),
            kind=kind, taker=order.ref in self._taker_refs or order.exectype != bt.Order.Limit,
            placed=st.placed, arrived=st.arrive, cancel_sent=st.cancel_sent))

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
        if st is None:  # submitted before this broker saw it: placed on the previous event
            st = self._ostate[order.ref] = self._state(order, placed_now=False)
        n = len(data)
        if n <= st.seen:
            return  # this feed has not moved since the order was placed or last matched
        st.seen = n
        now = _now(data)
        try:
            if st.cancel_at is not None and now >= st.cancel_at - TIME_TOL:
                self.cancel_now(order)  # the cancel reached the book before this event
            elif now < st.arrive - TIME_TOL:
                pass  # still on its way to the book
            else:
                dt = max(now - max(st.t, st.arrive), 0.0)
                st.t = now
                self._match_arrived(order, st, dt)
        finally:
            st.book = _bbo(data)
            if not order.alive():
                self._forget(order)

    def _match_arrived(self, order, st, dt):
        if order.exectype == bt.Order.Market:
            self._exec_market(order, st)
        elif order.exectype != bt.Order.Limit:
            self._default(order, st, "market")
        elif st.new:
            st.new = False
            if not self._arrive_limit(order, st):
                self._rest(order, st, dt)
        else:
            self._rest(order, st, dt)

    def _exec_market(self, order, st):
        bid, ask = st.book[0], st.book[1]
        price = ask if order.isbuy() else bid
        if math.isfinite(price):
            self._fill(order, st, price, "market", taker=True)
        else:
            self._default(order, st, "market")  # bars: backtrader fills at the open

    def _default(self, order, st, kind):
        """backtrader's own matching, logged."""
        before = abs(order.executed.remsize)
        self.match_default(order)
        size = before - abs(order.executed.remsize)
        if size > 0:
            self._log(order, st, order.executed.price, size, kind)

    def _arrive_limit(self, order, st) -> bool:
        """The order reaches the book: take liquidity (or be rejected post-only) when it is
        marketable; else join the queue. ``True`` when it is done with this event."""
        data = order.data
        limit, buy = order.created.price, order.isbuy()
        eps = 1e-8 * abs(limit)
        sign = 1.0 if buy else -1.0
        tick_feed = is_tick_feed(data)
        if tick_feed or math.isfinite(st.book[1 if buy else 0]):
            opposite = st.book[1 if buy else 0]          # the book prevailing on arrival
        else:
            opposite = data.open[0]                      # bars: the next bar opens the book
        if math.isfinite(opposite) and sign * (limit - opposite) >= -eps:
            if order.info.get("post_only", False):
                self.reject(order)
            else:
                self._fill(order, st, opposite, "taker", taker=True)
            return True
        if tick_feed:
            best, size = st.book[0 if buy else 1], st.book[2 if buy else 3]
            st.queue.join(displayed_ahead(limit, buy, best, size, eps))
        return False

    def _rest(self, order, st, dt):
        data = order.data
        limit, buy = order.created.price, order.isbuy()
        eps = 1e-8 * abs(limit)
        if self.p.fill_model == "touch":
            self._default(order, st, "touch")
            return
        bid, ask = _line(data, "bid"), _line(data, "ask")
        opposite = ask if buy else bid
        if math.isfinite(opposite) and (opposite <= limit + eps if buy else
                                        opposite >= limit - eps):
            self._fill(order, st, limit, "book")  # the book moved through the resting order
            return
        tick_feed = is_tick_feed(data)
        if self.p.fill_model == "intensity":
            self._intensity(order, st, limit, buy, eps, dt, tick_feed)
        elif tick_feed:
            self._trade_through_tick(order, st, limit, buy, eps)
        else:
            self._trade_through_bar(order, st, limit, buy, eps)

    def _update_queue(self, order, st, limit, buy, eps):
        """The displayed size at the order's price, before and now, moves its queue place."""
        data = order.data
        best, size = _line(data, "bid" if buy else "ask"), _line(data, "bid_size" if buy
                                                                 else "ask_size")
        if not math.isfinite(best):
            return
        better = (limit - best) if buy else (best - limit)
        if better > eps:
            st.queue.join(0.0)  # nobody displayed at or above its price: it is the best
            return
        if abs(better) > eps or not math.isfinite(size):
            return  # deeper than the best: its level is not displayed
        prev_best, prev_size = st.book[0 if buy else 1], st.book[2 if buy else 3]
        if abs(prev_best - limit) <= eps and math.isfinite(prev_size):
            if prev_size != size:  # a trade row repeats the book: no depth update
                st.queue.on_depth(prev_size, size)
        else:
            st.queue.see(size)  # its level became the best

    def _trade_through_tick(self, order, st, limit, buy, eps):
        data = order.data
        if self.queue_rule in ("prob", "risk_averse"):
            self._update_queue(order, st, limit, buy, eps)
        price, side = data.lines.trade_price[0], data.lines.trade_side[0]
        if not math.isfinite(price):
            return
        if math.isfinite(side) and side == (1.0 if buy else -1.0):
            return  # a buy print hits asks, not our bid (and vice versa)
        through = (limit - price) if buy else (price - limit)
        if through > eps:
            self._fill(order, st, limit, "through")
            return
        if abs(through) > eps or self.queue_rule == "through":
            return
        size = data.lines.trade_size[0]
        if not math.isfinite(size) or size <= 0:
            return
        if self.queue_rule == "touch":
            self._fill(order, st, limit, "touch", qty=size)
            return
        left = self._lots(order, st.queue.on_trade(size))
        if left > 0:
            self._fill(order, st, limit, "queue", qty=left if self.p.partial else None)

    def _lots(self, order, qty: float) -> float:
        """``qty`` rounded down to the feed's ``size_step`` (whole lots, as exchanges fill)."""
        step = self.p.size_step
        if isinstance(step, dict):
            step = step.get(self.data_name(order.data))
        if not step or qty <= 0:
            return qty
        return math.floor(qty / step + 1e-9) * step

    def _trade_through_bar(self, order, st, limit, buy, eps):
        data = order.data
        touch = self.queue_rule == "touch"
        if buy:
            low = data.low[0]
            hit = low < limit - eps or (touch and low <= limit + eps)
        else:
            high = data.high[0]
            hit = high > limit + eps or (touch and high >= limit - eps)
        if hit:
            self._fill(order, st, limit, "touch" if touch else "through")
