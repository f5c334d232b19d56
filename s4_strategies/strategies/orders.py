"""The quoting strategies' view of their orders, as a live venue lets them see it.

A strategy knows what it sent and what the exchange reported back, nothing else:
``MarketMakingBroker`` delays every report by the response latency
(``market_making.venue``), and a live broker's reports come when the exchange sends them.
:class:`OrderView` keeps, per order, the state those give (the states of a live venue):

================  ============================================  =============================
state             how it is reached                             what the strategy may do
================  ============================================  =============================
``pending_new``   sent (``Submitted``), no acknowledgement yet  cancel it (Bybit: by client
                                                                 id before the ack), or wait
``open``          acknowledged (``Accepted``; a ``Partial``)    cancel it
``pending_cancel``  a cancel sent, not confirmed                wait: it can still fill
``filled``        ``Completed`` reported                        nothing (final)
``cancelled``     ``Canceled`` reported                         nothing (final)
``rejected``      ``Rejected`` / ``Margin`` / ``Expired``       nothing (final)
================  ============================================  =============================

A cancel the venue rejects because it reached the engine before the order
(``cancel_rejected`` on the report, see ``market_making.venue``) puts the order back to
``pending_new`` or ``open``. The position the strategy knows is the sum of the fills
reported (:meth:`OrderView.position`); the true one can be ahead by fills in flight, never by
more than what the working orders (not final) had left when last reported, which is what
:meth:`OrderView.worst_case` adds.

With backtrader's own broker a cancel is done at once and an accepted order is in the book.
:class:`TwoSidedQuoting` keeps a quoting strategy's bid and ask by these states;
``cancel_or_in_flight`` serves its ``requote="aggressive"`` policy, which acts on the
broker's side of things (``broker.cancel_pending``).
"""

from __future__ import annotations

import backtrader as bt

__all__ = ["FINAL", "OrderView", "TwoSidedQuoting", "ViewedOrder", "cancel_or_in_flight"]

PENDING_NEW, OPEN, PENDING_CANCEL = "pending_new", "open", "pending_cancel"
FILLED, CANCELLED, REJECTED = "filled", "cancelled", "rejected"
FINAL = frozenset({FILLED, CANCELLED, REJECTED})

_FINAL_OF = {bt.Order.Completed: FILLED, bt.Order.Canceled: CANCELLED,
             bt.Order.Rejected: REJECTED, bt.Order.Margin: REJECTED,
             bt.Order.Expired: REJECTED}


class ViewedOrder:
    """One order as the strategy knows it: ``order`` (backtrader's), ``sign`` (+1 buy, −1
    sell), ``price``, ``size`` (contracts), ``state``, ``acked`` (an acknowledgement or a
    fill was reported), ``filled`` (contracts reported filled) and ``remaining``."""

    __slots__ = ("order", "ref", "sign", "price", "size", "state", "acked", "filled")

    def __init__(self, order):
        self.order, self.ref = order, order.ref
        self.sign = 1.0 if order.isbuy() else -1.0
        self.price = order.created.price
        self.size = abs(order.created.size)
        self.state, self.acked, self.filled = PENDING_NEW, False, 0.0

    @property
    def remaining(self) -> float:
        return max(self.size - self.filled, 0.0)

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def __repr__(self):
        return (f"ViewedOrder(ref={self.ref}, {'buy' if self.sign > 0 else 'sell'} "
                f"{self.size:g} @ {self.price}, {self.state}, filled {self.filled:g})")


class OrderView:
    """The strategy's orders and position per feed, from what it sent and the reports it
    got (module doc). Feed it with :meth:`sent`, :meth:`cancel_sent` and, from
    ``notify_order``, :meth:`on_report`."""

    def __init__(self):
        self._orders: dict[int, ViewedOrder] = {}
        self._position: dict = {}
        self._working: dict = {}  # data -> {ref: ViewedOrder} not final

    def seed(self, data, position: float) -> None:
        """Start ``data``'s known position at ``position`` (e.g. what the broker holds at
        start)."""
        self._position[data] = float(position)

    def sent(self, order) -> ViewedOrder:
        """``order`` was just sent: ``pending_new``."""
        rec = self._orders[order.ref] = ViewedOrder(order)
        self._working.setdefault(order.data, {})[order.ref] = rec
        return rec

    def cancel_sent(self, rec: ViewedOrder) -> None:
        """A cancel for ``rec`` was sent: ``pending_cancel`` (unless it is already final)."""
        if not rec.final:
            rec.state = PENDING_CANCEL

    def get(self, order) -> ViewedOrder | None:
        return self._orders.get(order.ref)

    def on_report(self, report) -> ViewedOrder | None:
        """Apply one ``notify_order`` report (a clone of the order as the exchange had it);
        returns the order's record (``None`` for an order this view did not send)."""
        rec = self._orders.get(report.ref)
        if rec is None:
            return None
        done = abs(report.executed.size)
        if done > rec.filled:
            self._position[report.data] = self.position(report.data) + \
                rec.sign * (done - rec.filled)
            rec.filled = done
        status = report.status
        if rec.final:  # settled at once (a synchronous cancel): this report confirms it
            if status in _FINAL_OF:
                self._orders.pop(rec.ref, None)
            return rec
        if getattr(report, "cancel_rejected", False):
            rec.state = OPEN if rec.acked else PENDING_NEW
        elif status in _FINAL_OF:
            rec.state = _FINAL_OF[status]
            rec.acked = rec.acked or status != bt.Order.Margin
            self._working.get(report.data, {}).pop(rec.ref, None)
            self._orders.pop(rec.ref, None)
        elif status in (bt.Order.Accepted, bt.Order.Partial):
            rec.acked = True
            if rec.state == PENDING_NEW:
                rec.state = OPEN
        return rec

    def settle(self, rec: ViewedOrder, state: str = CANCELLED) -> None:
        """The venue answered synchronously (backtrader's own broker cancels at once):
        ``rec`` is final now; its report, when it comes, only confirms it."""
        rec.state = state
        self._working.get(rec.order.data, {}).pop(rec.ref, None)

    def position(self, data) -> float:
        """The position in ``data`` the reports add up to (contracts)."""
        return self._position.get(data, 0.0)

    def working(self, data) -> list[ViewedOrder]:
        """``data``'s orders that are not final."""
        return list(self._working.get(data, {}).values())

    def worst_case(self, data, exclude: ViewedOrder | None = None) -> tuple[float, float]:
        """``(long, short)``: the position if every working buy (sell) order filled what it
        had left when last reported: the true position lies between them. ``exclude``: an
        order left out (the one about to be replaced)."""
        pos = self.position(data)
        long = short = pos
        for rec in self._working.get(data, {}).values():
            if rec is exclude:
                continue
            if rec.sign > 0:
                long += rec.remaining
            else:
                short -= rec.remaining
        return long, short


def cancel_or_in_flight(strategy, order) -> bool:
    """Cancel ``order``; ``True`` once it is gone or its cancel is on the way to the book
    (the broker's side of it: the ``requote="aggressive"`` quoter).

    With cancel latency the order stays alive until the cancel arrives and can still fill
    meanwhile; the aggressive quoter places the replacement at once, so fills in flight can
    overshoot its inventory limit (``MarketMakingAnalyzer`` counts the breaches). ``False``:
    not cancellable yet (backtrader has not accepted it, or the venue rejected the cancel).
    """
    strategy.cancel(order)
    pending = getattr(strategy.broker, "cancel_pending", None)
    return not order.alive() or (pending is not None and pending(order))


def _floor_step(x: float, step: float) -> float:
    if not step:
        return max(x, 0.0)
    return max(round(int(x / step + 1e-9) * step, 12), 0.0)


class TwoSidedQuoting:
    """Order management for a ``bt.Strategy`` that keeps one bid and one ask per feed.

    The strategy holds per feed a book with ``orders`` (``{"bid": ViewedOrder | None,
    "ask": ...}``), ``flatten`` (the flattening market order's record) and ``p`` (``lot``,
    ``size_step``, ``max_inventory``, ``requote``), and ``self.view`` (an :class:`OrderView`
    fed from ``notify_order``). ``p.requote`` picks the policy:

    ``"live"`` (the default)
        What a live quoter does: one working order per side; a quote that should move is
        cancelled once it is acknowledged (``open``) and its replacement sent only once the
        cancel is confirmed (or the order reported filled); sizes are capped so that the
        position, counting every working order's worst-case fill, never passes
        ``max_inventory`` lots. Acts only on the reports (:class:`OrderView`).
    ``"aggressive"``
        The quoter before response latency was modelled: an order whose cancel is in flight
        on the broker (``cancel_or_in_flight``) is forgotten and replaced at once, sizes come
        from the broker's position, and fills in flight can overshoot the limit.
    """

    def _known_position(self, data) -> float:
        """The position the quoter acts on: the reports' (live) or the broker's."""
        if self._books[data].p.requote == "aggressive":
            return self.getposition(data).size
        return self.view.position(data)

    def _send(self, data, buy: bool, size: float, price=None, **info):
        exectype = bt.Order.Market if price is None else bt.Order.Limit
        make = self.buy if buy else self.sell
        order = make(data=data, size=size, price=price, exectype=exectype, **info)
        return None if order is None else self.view.sent(order)

    def _cancel_now(self, rec) -> bool:
        """Send a cancel for ``rec``; ``True`` when the broker confirmed it at once (its
        cancels are immediate and its reports not delayed, e.g. backtrader's own broker or
        bars), so that the slot is free now."""
        self.cancel(rec.order)
        self.view.cancel_sent(rec)
        delayed = getattr(self.broker, "reports_delayed", None)
        if rec.order.alive() or (delayed is not None and delayed(rec.order.data)):
            return False
        self.view.settle(rec)  # the venue's synchronous answer; its report comes too
        return True

    def _place(self, data, book, side, price, size, threshold, info):
        """Keep ``side``'s quote at ``price`` x ``size`` (``None`` / 0: no quote)."""
        if book.p.requote == "aggressive":
            return self._place_aggressive(data, book, side, price, size, threshold, info)
        step = book.p.size_step or 0.0
        rec = book.orders[side]
        if rec is not None and rec.final:
            rec = book.orders[side] = None
        if rec is not None:
            if rec.state != "open":
                return  # pending new: wait for the ack; pending cancel: for the answer
            rem = rec.remaining
            moved = price is None or abs(rec.price - price) >= threshold
            if not (moved or rem > size + 0.5 * step or rem < 0.5 * size):
                return
            if not self._cancel_now(rec):
                return  # the replacement goes once the cancel is confirmed
            book.orders[side] = None
        if price is None or size <= 0:
            return
        long, short = self.view.worst_case(data)
        limit = book.p.max_inventory * book.p.lot
        room = limit - long if side == "bid" else limit + short
        size = _floor_step(min(size, room), step)
        if size > 0.5 * step and size > 0:
            book.orders[side] = self._send(data, side == "bid", size, price, **info)
            book.n_quotes += 1

    def _place_aggressive(self, data, book, side, price, size, threshold, info):
        rec = book.orders[side]
        step = book.p.size_step or 0.0
        if rec is not None and rec.order.alive():
            order = rec.order
            rem = abs(order.executed.remsize)
            moved = price is None or abs(order.created.price - price) >= threshold
            if not (moved or rem > size + 0.5 * step or rem < 0.5 * size):
                return
            if not cancel_or_in_flight(self, order):
                return  # not cancellable yet (not accepted): try again next event
            self.view.cancel_sent(rec)
            book.orders[side] = None
        if size <= 0 or price is None:
            return
        book.orders[side] = self._send(data, side == "bid", size, price, **info)
        book.n_quotes += 1

    def _flatten(self, data, book, position):
        """Pull both quotes, then close ``position`` with a market order (taker fee)."""
        live = book.p.requote != "aggressive"
        for side, rec in book.orders.items():
            if rec is None:
                continue
            if live:
                if rec.final or (rec.state == "open" and self._cancel_now(rec)):
                    book.orders[side] = None
            elif rec.order.alive() and cancel_or_in_flight(self, rec.order):
                book.orders[side] = None
        if live and any(r is not None for r in book.orders.values()):
            return  # a quote may still fill: flatten once both are gone
        flat = book.flatten
        if flat is not None and (not flat.final if live else flat.order.alive()):
            return
        step = book.p.size_step or 1e-12
        if abs(position) < 0.5 * step:
            return
        book.flatten = self._send(data, position < 0, abs(position), flatten=True)
