"""What the exchange tells the trader, and when: the response side of ``MarketMakingBroker``.

The broker is the exchange: it matches orders the moment they reach the book. What it did
reaches the strategy later, as on a live venue:

- **Reports** (backtrader's ``notify_order`` notifications) are delivered ``response`` after
  the exchange acted, on the first event the strategy sees at or after that (it sees the
  event stamped ``s`` at ``s + feed``, or at its own receive time when the feed has a
  ``recv`` line: :meth:`VenueResponses.feed_delay`): the acknowledgement (``Accepted``)
  when the order reaches the book, a post-only ``Rejected`` on arrival, each fill
  (``Partial`` / ``Completed``) on the event that made it, ``Canceled`` when the cancel takes
  effect.
  ``Submitted`` is local (the strategy knows what it sent) and immediate. On bars the
  whole round trip fits in a bar: reports arrive on the bar that made them, and a cancel
  takes effect at once (nothing can trade in between).
- **Cancels** (Bybit's rules, the venue modelled): an order may be cancelled by its client
  id before it is acknowledged. A cancel that reaches the matching engine before the order
  itself (a cancel latency shorter than the entry latency) finds nothing to cancel: it is
  rejected ("order not exists", Bybit retCode 110001) and the order, arriving after it,
  rests. The strategy is told ``response`` later by a report with the order's status
  unchanged and ``cancel_rejected = True`` on it (backtrader has no status for it); the
  broker counts them in ``cancel_rejects``.
- **The truth** for measurement: ``add_exchange_listener(fn)`` calls ``fn(order, when)``
  at once for every status change (``when``: the exchange time it happened, in epoch
  seconds; ``None`` for a local one), before any response latency. ``MarketMakingAnalyzer``
  books fills, inventory and quotes from it, so its PnL is the exchange's, not the
  strategy's delayed view.

A strategy keeps the view the reports give it (``strategies.orders.OrderView``: pending new,
open, pending cancel, filled, cancelled, rejected) and may act only on that.
"""

from __future__ import annotations

import heapq
import itertools
import math

import backtrader as bt

from feeds.bartime import num_to_epoch

__all__ = ["TIME_TOL", "VenueResponses", "is_tick_feed", "now_of"]

#: seconds: backtrader keeps dates as float days, epoch seconds to about 15 µs. An order or
#: cancel reaching the book within this of an event's stamp reaches it before the event.
TIME_TOL = 5e-5

_LOCAL = (bt.Order.Created, bt.Order.Submitted, bt.Order.Margin)


def now_of(data) -> float:
    """The feed's current time in epoch seconds (UTC)."""
    return num_to_epoch(data.datetime[0]) if len(data) else 0.0


def is_tick_feed(data) -> bool:
    """Whether ``data`` is a tick feed (``feeds.ticks.TickData``: a ``trade_price`` line)."""
    return hasattr(data.lines, "trade_price")


class VenueResponses:
    """Mixin for ``MarketMakingBroker``: delayed reports, Bybit's cancel rules, listeners.

    Needs ``self.latency`` (a ``latency.Latency``) and ``self._ostate`` (ref → the order's
    state: ``arrive``, ``cancel_at``) from the broker, and backtrader's ``notifs`` deque."""

    def init_responses(self):
        self._due = []                  # heap of (due, seq, clone): reports in flight
        self._seq = itertools.count()
        self._listeners = []            # add_exchange_listener: after the broker starts
        self._feeds = {}                # id → feed of every order seen: the broker's clock
        self.cancel_rejects = 0

    def add_exchange_listener(self, fn):
        """Call ``fn(order, when)`` at once on every status change of every order (see the
        module doc); returns ``fn``."""
        self._listeners.append(fn)
        return fn

    # ------------------------------------------------------------------ reports
    def _acted_at(self, order):
        """Exchange time (epoch s) of what ``order``'s status says happened; ``None``: local."""
        if order.status in _LOCAL:
            return None
        st = self._ostate.get(order.ref)
        now = now_of(order.data)
        if st is None:
            return now
        if order.status in (bt.Order.Accepted, bt.Order.Rejected):
            return st.arrive
        if order.status == bt.Order.Canceled and st.cancel_at is not None:
            return min(st.cancel_at, now)
        return now

    def notify(self, order):
        """backtrader's hook for every status change: the listeners now, the strategy once
        the report has come back (module doc)."""
        clone = order.clone()
        when = self._acted_at(order)
        for fn in self._listeners:
            fn(clone, when)
        due = -math.inf  # local time the report reaches the strategy
        if when is not None and is_tick_feed(order.data):
            due = when + self.latency.response
        self._schedule(due, clone)

    def _schedule(self, due, clone):
        heapq.heappush(self._due, (due, next(self._seq), clone))

    def watch_feed(self, data):
        """Keep ``data``'s clock: reports are delivered by the latest time of these feeds."""
        self._feeds[id(data)] = data

    def feed_delay(self, data) -> float:
        """Seconds from the stamp of ``data``'s current event to the strategy seeing it: the
        event's own receive time when the feed has a ``recv`` line (epoch seconds, e.g. a
        recorder's clock; NaN: none), else ``latency.feed``."""
        if len(data) and hasattr(data.lines, "recv"):
            recv = data.lines.recv[0]
            if math.isfinite(recv):
                return max(recv - now_of(data), 0.0)
        return self.latency.feed

    def _clock(self) -> float:
        """The strategy's clock: the latest time it has seen an event of its feeds at."""
        return max((now_of(d) + self.feed_delay(d) for d in self._feeds.values() if len(d)),
                   default=-math.inf)

    def deliver_due(self):
        """Hand the strategy every report due by now (called after each matching step)."""
        now = self._clock()
        while self._due and self._due[0][0] <= now + TIME_TOL:
            self.notifs.append(heapq.heappop(self._due)[2])

    def reports_delayed(self, data) -> bool:
        """Whether reports on ``data``'s orders reach the strategy after the exchange acted
        (ticks with a response latency above the feed's); on bars they come on the bar."""
        return is_tick_feed(data) and self.latency.response > self.feed_delay(data) + TIME_TOL

    def reports_in_flight(self) -> int:
        """Reports the exchange sent that the strategy has not received yet."""
        return len(self._due)

    # ------------------------------------------------------------------ cancels
    def cancel_reaches_first(self, order, st, now: float) -> bool:
        """Whether a cancel sent now for ``order`` reaches the engine before the order does;
        if so it is rejected (module doc) and the strategy told ``response`` later."""
        lands = now + self.feed_delay(order.data) + self.latency.cancel
        if lands >= st.arrive - TIME_TOL:
            return False
        self.cancel_rejects += 1
        clone = order.clone()
        clone.cancel_rejected = True
        self._schedule(lands + self.latency.response, clone)
        return True
