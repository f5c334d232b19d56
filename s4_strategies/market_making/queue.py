"""Queue position of a resting limit order, from the displayed size at its price. No backtrader.

A bid joins the queue at its price behind everyone already displayed there **when it reaches
the book** (after its entry latency): ``front`` is the size ahead of it. From then on:

- a trade at its price takes the size ahead first; what the trade leaves past ``front`` fills
  the order (:meth:`QueuePosition.on_trade`);
- a fall of the displayed size that trades do not explain is cancellations. Where they came
  from is unknown, so a queue model decides the share taken from ahead of the order
  (:meth:`QueuePosition.on_depth`);
- a rise of the displayed size is orders joining behind it: ``front`` does not move, but it
  can never exceed the size displayed.

Models (the two queue models of hftbacktest, Lee, "hftbacktest" docs, *Queue models*):

``"risk_averse"``
    Cancellations never advance the order; ``front`` only shrinks with trades and to the
    displayed size (``front = min(front, displayed)``). A lower bound on fills.
``"prob"`` (the default)
    The probabilistic queue model: a cancellation of ``chg`` comes from behind the order with
    probability ``p = f(back)/(f(back) + f(front))``, ``back = prev − front`` the size behind
    it, ``f(x) = x**n`` (``queue_power`` ``n``, 3 by default: the further back in the queue,
    the likelier a cancel comes from behind). The expected size ahead after the change::

        front' = front − (1 − p)·chg + min(back − p·chg, 0)        # clipped to [0, new]

    (the last term moves any cancellation that cannot have come from behind, as there is too
    little behind, to ahead). ``n → ∞`` gives the "cancels come from the longer side" rule,
    ``n = 0`` splits each cancellation half and half.

The displayed size of a level is only seen while it is the best bid (ask): a top-of-book feed
shows nothing deeper. An order deeper than the best has an unknown place (``front=None``) and
fills only when the market trades through its price, until its level becomes the best and
the displayed size there bounds ``front``.
"""

from __future__ import annotations

import math

__all__ = ["QUEUE_MODELS", "QueuePosition", "cancel_share_ahead", "displayed_ahead",
           "normalise_queue_model"]

QUEUE_MODELS = ("prob", "risk_averse")
_ALIASES = {"queue": "risk_averse", "risk_adverse": "risk_averse", "power": "prob"}


def normalise_queue_model(name: str) -> str:
    """The canonical queue model name (``"queue"`` is the earlier name of ``"risk_averse"``)."""
    return _ALIASES.get(name, name)


def cancel_share_ahead(front: float, back: float, power: float = 3.0) -> float:
    """``1 − p``: the expected share of a cancellation that comes from ahead of the order,
    ``front**n / (front**n + back**n)`` (½ when both are 0)."""
    if front <= 0.0:
        return 0.0
    if back <= 0.0:
        return 1.0
    # written with the ratio so that large sizes and powers do not overflow
    r = (back / front) ** power
    return 1.0 / (1.0 + r) if math.isfinite(r) else 0.0


class QueuePosition:
    """The size ahead of one resting order (``front``; ``None`` while unknown) under ``model``.

    Sizes are in the feed's units (contracts). ``cum_trade`` is the size traded at the level
    since its displayed size was last seen, so that a trade is not counted again as a
    cancellation when the next book update shows the level smaller.
    """

    __slots__ = ("model", "power", "front", "cum_trade")

    def __init__(self, model: str = "prob", power: float = 3.0):
        model = normalise_queue_model(model)
        if model not in QUEUE_MODELS:
            raise ValueError(f"queue model must be one of {QUEUE_MODELS}, got {model!r}")
        if not (math.isfinite(power) and power >= 0):
            raise ValueError(f"queue_power must be a finite number >= 0, got {power!r}")
        self.model, self.power = model, float(power)
        self.front: float | None = None
        self.cum_trade = 0.0

    def join(self, displayed: float | None) -> None:
        """Arrive behind ``displayed`` (0 when the order improves the best, ``None`` when its
        level is deeper than the best and its size unknown)."""
        self.front = None if displayed is None else max(float(displayed), 0.0)
        self.cum_trade = 0.0

    def see(self, displayed: float) -> None:
        """The level became (or is again) the best with ``displayed`` shown: everyone shown may
        be ahead, and no more than that."""
        self.front = displayed if self.front is None else min(self.front, displayed)
        self.cum_trade = 0.0

    def on_depth(self, prev: float, new: float) -> None:
        """The displayed size at the order's price went from ``prev`` to ``new`` (both seen)."""
        if self.front is None:
            self.see(new)
            return
        if new == prev:
            return  # not an update of the level (e.g. a trade row repeating the book)
        chg = prev - new - self.cum_trade  # cancellations, net of what trades already took
        self.cum_trade = 0.0
        if chg <= 0.0 or self.model == "risk_averse":
            self.front = min(self.front, new)
            return
        front = self.front
        back = max(prev - front, 0.0)
        ahead = cancel_share_ahead(front, back, self.power)   # 1 − p
        est = front - ahead * chg + min(back - (1.0 - ahead) * chg, 0.0)
        self.front = min(max(est, 0.0), new)

    def on_trade(self, size: float) -> float:
        """A trade of ``size`` at the order's price: returns the size that reaches the order
        (0 while the queue ahead absorbs it; 0 when ``front`` is unknown)."""
        if self.front is None or not size > 0:
            return 0.0
        self.cum_trade += size
        left = size - self.front
        self.front = max(self.front - size, 0.0)
        return max(left, 0.0)


def displayed_ahead(limit: float, buy: bool, best: float, size: float, eps: float = 0.0):
    """The size ahead of an order joining at ``limit`` given the best on its side: all that is
    displayed at the best when it joins there, nothing when it improves the best, unknown
    (``None``) when it is deeper."""
    if not math.isfinite(best):
        return None
    better = (limit - best) if buy else (best - limit)
    if better > eps:
        return 0.0
    if abs(better) <= eps and math.isfinite(size):
        return size
    return None
