"""When a strategy may place orders: only on live bars, or only from a given bar on.

Both wrap a strategy class without changing it: its ``next()`` is skipped before the gate
opens, while its indicators (the S4 model's recurrent state) advance on every bar. A strategy
that carries its model state itself (``S4MultiAssetStrategy``) has a ``step_model()``: what
it does on a bar where it may not trade, called instead.
"""

from __future__ import annotations

import pandas as pd


def _named(sub, cls):
    sub.__name__ = sub.__qualname__ = cls.__name__  # the saved state names the user's class
    sub.__doc__ = cls.__doc__
    return sub


def _pass_over(strategy) -> None:
    step = getattr(type(strategy), "step_model", None)  # the class's, never a line's
    if callable(step):
        step(strategy)


def is_live(datas) -> bool:
    """True when no live feed among ``datas`` is still serving its history (the backfill
    before the stream); feeds that are not live count as live."""
    return all(not d.islive() or getattr(d, "_laststatus", None) == d.LIVE for d in datas)


def live_only(cls):
    """``cls`` placing orders only on live bars: ``next()`` is skipped while any live feed
    is still serving its history (the backfill before the stream)."""

    class LiveOnly(cls):
        def next(self):
            if is_live(self.datas):
                super().next()
            else:
                _pass_over(self)

    return _named(LiveOnly, cls)


def trade_from(cls, start):
    """``cls`` placing orders only on bars at or after ``start`` (UTC): the backtest of a
    period that a live or shadow run began at ``start``, after the same history."""
    first = pd.Timestamp(start)
    first = (first.tz_convert("UTC") if first.tzinfo else first).tz_localize(None)

    class TradeFrom(cls):
        def next(self):
            if self.data.datetime.datetime(0) >= first:
                super().next()
            else:
                _pass_over(self)

    return _named(TradeFrom, cls)
