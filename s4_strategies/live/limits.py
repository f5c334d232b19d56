"""The kill switch's decisions as plain functions: position and notional limits, the daily
loss, staleness of a feed and a sliding window of order times (tested directly; the
``KillSwitch`` analyzer in :mod:`.killswitch` applies them)."""

from __future__ import annotations

import collections
import math

import backtrader as bt
import pandas as pd

from feeds.bartime import epoch_to_iso, utc_timestamp

__all__ = ["RateWindow", "bar_interval", "check_daily_loss", "check_position", "daily_loss",
           "finite", "is_stale", "staleness", "to_seconds", "utcnow"]

DAY = 86_400.0
_TF = bt.TimeFrame
# calendar months and years count as their longest, so staleness is never called early
_TF_SECONDS = {_TF.MicroSeconds: 1e-6, _TF.Seconds: 1.0, _TF.Minutes: 60.0, _TF.Days: DAY,
               _TF.Weeks: 7 * DAY, _TF.Months: 31 * DAY, _TF.Years: 366 * DAY}


def finite(*xs) -> bool:
    try:
        return all(math.isfinite(float(x)) for x in xs)
    except (TypeError, ValueError):
        return False


def _invalid(what: str, value, limit: str) -> dict:
    return {"limit": "invalid_input", "limit_value": limit, "observed": value, "what": what}


def utcnow() -> pd.Timestamp:
    """The current time, UTC (the default ``clock``)."""
    return pd.Timestamp.now(tz="UTC")


def to_seconds(t) -> float:
    """Epoch seconds of a Timestamp/datetime (naive = UTC) or of a number (kept as is)."""
    if isinstance(t, (int, float)):
        return float(t)
    return utc_timestamp(t).value / 1e9


def iso(t: float | None) -> str | None:
    return None if t is None else epoch_to_iso(t)


def bar_interval(timeframe: int, compression: int = 1) -> float | None:
    """Seconds in one bar of backtrader's ``timeframe``/``compression`` (``None``: ticks)."""
    unit = _TF_SECONDS.get(timeframe)
    return None if unit is None else unit * compression


def check_position(size: float, price: float, max_position: float | None = None,
                   max_notional: float | None = None) -> dict | None:
    """``{limit, limit_value, observed}`` of the limit a position of ``size`` units at
    ``price`` exceeds, or ``None``: ``max_position`` caps ``|size|``, ``max_notional``
    ``|size| * price`` (``None`` = off; reaching a limit is no breach). A size or price
    that is not a finite number is a breach of the limit it stops being checked
    (``limit="invalid_input"``): a kill switch that cannot see must not say all is well."""
    if max_position is not None and not finite(size):
        return _invalid("the position size", size, "max_position")
    if max_notional is not None and not finite(size, price):
        return _invalid("the position notional (size, price)", (size, price), "max_notional")
    if max_position is not None and abs(size) > max_position:
        return {"limit": "max_position", "limit_value": max_position, "observed": abs(size)}
    notional = abs(size) * price
    if max_notional is not None and notional > max_notional:
        return {"limit": "max_notional", "limit_value": max_notional, "observed": notional}
    return None


def daily_loss(start_value: float, value: float) -> tuple[float, float]:
    """The day's loss ``start_value - value`` (positive = money lost) and that loss as a
    fraction of ``start_value`` (NaN when the day started at zero or below)."""
    loss = start_value - value
    return loss, (loss / start_value if start_value > 0 else float("nan"))


def check_daily_loss(start_value: float, value: float, max_loss: float | None = None,
                     max_loss_pct: float | None = None) -> dict | None:
    """The daily-loss limit breached by an account worth ``value`` that started the day
    worth ``start_value``, or ``None``: ``max_loss`` in account currency, ``max_loss_pct`` a
    fraction of ``start_value`` (``None`` = off; breached when exceeded). A value that is not
    a finite number breaches the limits that are on (``limit="invalid_input"``)."""
    if (max_loss is not None or max_loss_pct is not None) and not finite(start_value, value):
        on = "max_daily_loss" if max_loss is not None else "max_daily_loss_pct"
        return _invalid("the account value (day start, now)", (start_value, value), on)
    loss, pct = daily_loss(start_value, value)
    if max_loss is not None and loss > max_loss:
        return {"limit": "max_daily_loss", "limit_value": max_loss, "observed": loss}
    if max_loss_pct is not None and pct > max_loss_pct:
        return {"limit": "max_daily_loss_pct", "limit_value": max_loss_pct, "observed": pct}
    return None


def _fresh_at(last_bar_open, interval_s: float, since) -> float:
    """When the data was last known fresh: the last bar's close, never before ``since``."""
    times = [to_seconds(t) + dt for t, dt in ((last_bar_open, interval_s), (since, 0.0))
             if t is not None]
    if not times:
        raise ValueError("staleness needs last_bar_open or since")
    return max(times)


def staleness(now, last_bar_open, interval_s: float, since=None) -> float:
    """Bar intervals elapsed at ``now`` since the last bar closed at ``last_bar_open +
    interval_s`` (bars are stamped at their open). ``since`` (when watching began) is the
    reference before the first bar and while the last bar closed before it (history served
    at start-up is not stale)."""
    return (to_seconds(now) - _fresh_at(last_bar_open, interval_s, since)) / interval_s


def is_stale(now, last_bar_open, interval_s: float, n: float, since=None) -> bool:
    """``now - (last_bar_open + interval_s) > n * interval_s`` (see :func:`staleness`)."""
    return to_seconds(now) - _fresh_at(last_bar_open, interval_s, since) > n * interval_s


class RateWindow:
    """Events in a sliding window: at time ``t`` it holds those of ``(t - per_seconds, t]``.

    ``add(t)`` records one and returns the count then, ``count(t)`` only looks; more than
    ``max_events`` is a breach. Times (epoch seconds or timestamps) must not go back.
    """

    def __init__(self, max_events: int, per_seconds: float):
        if not max_events >= 1 or not per_seconds > 0:
            raise ValueError("RateWindow needs max_events >= 1 and per_seconds > 0")
        self.max_events, self.per_seconds = int(max_events), float(per_seconds)
        self._times: collections.deque = collections.deque()

    def count(self, t) -> int:
        t = to_seconds(t)
        while self._times and self._times[0] <= t - self.per_seconds:
            self._times.popleft()
        return len(self._times)

    def add(self, t) -> int:
        self._times.append(to_seconds(t))
        return self.count(t)
