"""Order handling shared by the quoting strategies, for brokers with and without latency.

``MarketMakingBroker`` delays orders and cancels (``market_making.latency``): a cancel may be
on its way to the book while the order can still fill (``broker.cancel_pending``), and a new
order may not have reached the book yet (``broker.in_book``). backtrader's own brokers have
neither: there a cancel is done at once and an accepted order is in the book.
"""

from __future__ import annotations

__all__ = ["cancel_or_in_flight", "in_book"]


def cancel_or_in_flight(strategy, order) -> bool:
    """Cancel ``order``; ``True`` once it is gone or its cancel is on the way to the book.

    With cancel latency the order stays alive until the cancel arrives and can still fill
    meanwhile; a quoting strategy places the replacement at once, as a real market maker
    does, so fills in flight can overshoot its inventory limit (``MarketMakingAnalyzer``
    counts the breaches). ``False``: not cancellable yet (backtrader has not accepted it).
    """
    strategy.cancel(order)
    pending = getattr(strategy.broker, "cancel_pending", None)
    return not order.alive() or (pending is not None and pending(order))


def in_book(strategy, order) -> bool:
    """Whether ``order`` has reached the book (always, for a broker without latency)."""
    reached = getattr(strategy.broker, "in_book", None)
    return reached is None or reached(order)
