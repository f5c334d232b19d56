"""The kill switch: an analyzer enforcing user limits on position, notional, order rate,
daily loss and stale data. At the first breach it logs the limit, its value and what was
seen (``kill switch: daily loss 1,234.50 USDT exceeds max_daily_loss 1,000.00; cancelling 2
open orders, flattening BTCUSDT, stopping``), cancels every open order, optionally closes
every position, stops cerebro (``runstop``) and cancels whatever the strategy still sends.

A live loop without bars runs ``broker.next()`` but no analyzer ``next``: brokers with a
``watchers`` list get the kill switch appended at start and call ``w.poll(now)`` for each
watcher at the end of their ``next()``. The decisions are plain functions, tested directly.
"""

from __future__ import annotations

import logging
import math

import backtrader as bt

from feeds.bartime import num_to_epoch

from .limits import DAY as _DAY
from .limits import (
    RateWindow,
    bar_interval,
    check_daily_loss,
    check_position,
    daily_loss,
    finite,
    is_stale,
    staleness,
    to_seconds,
    utcnow,
)
from .limits import iso as _iso

log = logging.getLogger(__name__)

__all__ = ["KillSwitch", "RateWindow", "bar_interval", "check_daily_loss", "check_position",
           "daily_loss", "is_stale", "staleness", "to_seconds", "utcnow"]

_MAX_FLATTEN_ROUNDS = 3
_TEXT = {  # reason -> words (``cur``: " USDT" or "")
    "max_position": "{data} position {observed:g} exceeds max_position {limit_value:g}",
    "max_notional": "{data} notional {observed:,.2f}{cur} exceeds max_notional "
                    "{limit_value:,.2f}",
    "max_daily_loss": "daily loss {observed:,.2f}{cur} exceeds max_daily_loss {limit_value:,.2f}",
    "max_daily_loss_pct": "daily loss {observed:.2%} exceeds max_daily_loss_pct "
                          "{limit_value:.2%}",
    "max_orders": "{observed} orders in {per_seconds:g} s exceeds max_orders {limit_value} per "
                  "{per_seconds:g} s",
    "stale_intervals": "{data} has had no bar for {age_s:,.0f} s ({observed:.2f} intervals of "
                       "{interval_s:g} s) exceeds stale_intervals {limit_value:g}",
    "invalid_input": "{what} is {observed!r}, so {limit_value} cannot be checked",
}


class KillSwitch(bt.Analyzer):
    """Stops the strategy when a user limit is breached (see the module docstring).

    Params (``None`` turns a limit off):
      - ``max_position``: largest ``|position size|`` per data, in units.
      - ``max_notional``: largest ``|position size| * close`` per data, in account currency.
      - ``max_orders``, ``per_seconds`` (60): at most ``max_orders`` orders within any
        ``per_seconds`` of ``clock`` time. An order counts once, when first notified
        (whatever its status); the kill switch's own orders do not count.
      - ``max_daily_loss``: largest loss in account currency over the UTC day (the bar's
        date): the broker value before the day's first bar (after the last bar of the day
        before, or at start) minus the value now, so a loss inside the first bar counts.
      - ``max_daily_loss_pct``: the same as a fraction of the day's first value (0.02 = 2%).
      - ``stale_intervals``: N; tripped when ``now - (last bar's close) > N * interval`` for
        any data (bars are stamped at their open; before the first bar, and while history
        older than the start is served, the kill switch's start time is the reference).
      - ``interval_s``: the bar interval in seconds; default: each data's
        ``timeframe``/``compression`` (``ValueError`` at start for tick data).
      - ``flatten`` (False): also close every open position with a market order; the stop
        then waits until those orders are done (flattening again what is still open, at
        most 3 rounds) or ``flatten_timeout_s`` (30) seconds of ``clock`` have passed.
      - ``clock``: callable giving the time now (Timestamp/datetime, naive = UTC, or epoch
        seconds); default :func:`utcnow`.
      - ``on_trip``: optional ``callback(reason)``, called once after the orders are handled.
      - ``currency`` (""): the account currency named in messages.

    ``tripped``: ``None`` or the reason ``{limit, limit_value, observed, time, message, ...}``
    (``data`` for per-data limits). ``get_analysis()``: ``{tripped, limits, orders_in_window,
    day, day_start_value, last_bars, cancelled, after_trip, flatten_orders, stopped}``.
    """

    params = dict(max_position=None, max_notional=None, max_orders=None, per_seconds=60.0,
                  max_daily_loss=None, max_daily_loss_pct=None, stale_intervals=None,
                  interval_s=None, flatten=False, flatten_timeout_s=30.0, clock=None,
                  on_trip=None, currency="")

    def __init__(self):
        self.tripped: dict | None = None
        self.cancelled = self.after_trip = 0  # cancels sent; of them, after the trip
        self._window, self._in_window = None, 0
        self._seen, self._own, self._cancelling = set(), set(), set()  # order refs
        self._live: dict = {}  # ref -> alive order as last notified
        self._flat: list = []  # the kill switch's closing orders
        self._rounds, self._stopped = 0, False
        self._start_s = self._trip_s = self._day = self._day_start = None
        self._last_value = None  # broker value after the last bar checked (or at start)
        self._lens, self._last_open, self._intervals = {}, {}, {}  # per data index

    def start(self):
        p = self.p
        self._names = [d._name or f"data{i}" for i, d in enumerate(self.datas)]
        for name in ("max_position", "max_notional", "max_orders", "per_seconds",
                     "max_daily_loss", "max_daily_loss_pct", "stale_intervals", "interval_s"):
            value, pct = getattr(p, name), name == "max_daily_loss_pct"
            if value is not None and not (isinstance(value, (int, float))
                                          and not isinstance(value, bool) and finite(value)
                                          and 0 < value <= (1 if pct else math.inf)):
                raise ValueError(f"KillSwitch: {name} must be a finite number > 0"
                                 f"{' and <= 1' * pct}, or None; got {value!r}")
        if p.max_orders is not None:
            self._window = RateWindow(p.max_orders, p.per_seconds)
        for i, d in enumerate(self.datas if p.stale_intervals is not None else ()):
            self._intervals[i] = p.interval_s or bar_interval(d._timeframe, d._compression)
            if self._intervals[i] is None:
                raise ValueError(f"KillSwitch: {self._names[i]} has no bar interval "
                                 "(tick data); pass interval_s")
        self._start_s = self._now()
        self._last_value = self.strategy.broker.getvalue()
        self.attach(self.strategy.broker)

    def stop(self):
        watchers = getattr(self.strategy.broker, "watchers", None) or []
        watchers[:] = [w for w in watchers if w is not self]

    def attach(self, broker) -> bool:
        """Append this kill switch to ``broker.watchers`` (once), for the broker to poll;
        ``False`` when the broker has no ``watchers`` list."""
        watchers = getattr(broker, "watchers", None)
        if watchers is None:
            return False
        if not any(w is self for w in watchers):
            watchers.append(self)
        return True

    def next(self):
        now = self._now()
        self._observe_bars()
        day = math.floor(num_to_epoch(self.strategy.datetime[0]) / _DAY + 1e-9)
        value = self.strategy.broker.getvalue()
        if day != self._day:  # the day starts from the value before its first bar
            start = self._last_value
            self._day = day
            self._day_start = start if start is not None and finite(start) else value
        self._last_value = value
        if self.tripped:
            return self._after(now)
        reason = (self._check_positions()
                  or check_daily_loss(self._day_start, value,
                                      self.p.max_daily_loss, self.p.max_daily_loss_pct)
                  or self._check_stale(now))
        if reason:
            self._trip(reason, now)

    def notify_order(self, order):
        if order.ref in self._own:
            if self.tripped and not order.alive():
                self._after(self._now())
            return
        self._live.pop(order.ref, None)
        if order.alive():
            self._live[order.ref] = order
        first = order.ref not in self._seen
        self._seen.add(order.ref)
        if self.tripped:
            self._after(self._now())
        elif first and self._window is not None:
            now = self._now()
            self._in_window = self._window.add(now)
            if self._in_window > self._window.max_events:
                self._trip({"limit": "max_orders", "limit_value": self._window.max_events,
                            "observed": self._in_window,
                            "per_seconds": self._window.per_seconds}, now)

    def poll(self, now=None) -> dict | None:
        """Check what needs no bar: stale data; after a trip, cancel what the strategy still
        sends and finish the stop. Brokers call it at the end of their ``next()`` (after
        their fills); ``now`` as ``clock`` gives it (default: ``clock()``). Returns
        ``tripped``."""
        if self._start_s is None:  # not started
            return None
        now = self._now() if now is None else to_seconds(now)
        self._observe_bars()
        if self.tripped:
            self._after(now)
        elif reason := self._check_stale(now):
            self._trip(reason, now)
        return self.tripped

    def get_analysis(self) -> dict:
        limits = {k: getattr(self.p, k) for k in self.p._getkeys()
                  if k not in ("clock", "on_trip", "currency")}
        return {"tripped": self.tripped, "limits": limits, "orders_in_window": self._in_window,
                "day": None if self._day is None else _iso(self._day * _DAY)[:10],
                "day_start_value": self._day_start,
                "last_bars": {self._names[i]: _iso(t) for i, t in self._last_open.items()},
                "cancelled": self.cancelled, "after_trip": self.after_trip,
                "flatten_orders": len(self._flat), "stopped": self._stopped}

    def _now(self) -> float:
        return to_seconds((self.p.clock or utcnow)())

    def _observe_bars(self):
        for i, d in enumerate(self.datas):
            if len(d) and len(d) != self._lens.get(i):
                self._lens[i] = len(d)
                self._last_open[i] = round(num_to_epoch(d.datetime[0]), 3)

    def _check_positions(self) -> dict | None:
        for i, d in enumerate(self.datas):
            size = self.strategy.getposition(d).size
            if r := check_position(size, d.close[0], self.p.max_position, self.p.max_notional):
                return {**r, "data": self._names[i]}
        return None

    def _check_stale(self, now: float) -> dict | None:
        n = self.p.stale_intervals
        for i, iv in self._intervals.items():
            if is_stale(now, last := self._last_open.get(i), iv, n, since=self._start_s):
                seen = staleness(now, last, iv, since=self._start_s)
                return {"limit": "stale_intervals", "limit_value": n, "observed": seen,
                        "data": self._names[i], "interval_s": iv, "age_s": seen * iv,
                        "last_bar": _iso(last)}
        return None

    def _trip(self, reason: dict, now: float):
        if self.tripped:
            return
        self.tripped, self._trip_s = reason, now  # first: re-entrant notifications see it
        orders = self._open_orders()
        for order in orders:
            self._cancel(order)
        actions = [f"cancelling {len(orders)} open order{'' if len(orders) == 1 else 's'}"]
        if self.p.flatten:
            names = self._flatten()
            actions.append(f"flattening {', '.join(names)}" if names else "nothing to flatten")
        cur = f" {self.p.currency}" if self.p.currency else ""
        reason["time"] = _iso(now)
        reason["message"] = (f"kill switch: {_TEXT[reason['limit']].format(**reason, cur=cur)}"
                             f"; {', '.join(actions)}, stopping")
        log.error(reason["message"])
        if self.p.on_trip is not None:
            try:
                self.p.on_trip(reason)
            except Exception:  # the stop must not depend on a callback
                log.exception("kill switch: on_trip callback failed")
        self._settle(now)

    def _open_orders(self) -> list:
        """Alive orders not ours: the broker's open ones (or the alive ones notified) and
        BackBroker's queue of orders not yet accepted, where its ``cancel`` does not look."""
        broker = self.strategy.broker
        getter = getattr(broker, "get_orders_open", None)
        found = list(getter()) if getter is not None else list(self._live.values())
        if isinstance(broker, bt.brokers.BackBroker):
            found += list(broker.submitted)
        out = {o.ref: o for o in reversed(found) if o.alive() and o.ref not in self._own}
        return list(reversed(out.values()))

    def _cancel(self, order):
        broker = self.strategy.broker
        self.cancelled += 1
        self._cancelling.add(order.ref)
        ok = broker.cancel(order)
        if (ok is False and isinstance(broker, bt.brokers.BackBroker) and order.alive()
                and order in broker.submitted):  # submitted this bar, not yet accepted
            broker.submitted.remove(order)
            order.cancel()
            broker.notify(order)

    def _flatten(self) -> list:
        self._rounds += 1
        names = []
        for i, d in enumerate(self.datas):
            if self.strategy.getposition(d).size:
                if (order := self.strategy.close(data=d)) is not None:
                    self._own.add(order.ref)
                    self._flat.append(order)
                names.append(self._names[i])
        return names

    def _after(self, now: float):
        """After the trip: cancel what the strategy still sends, then finish the stop."""
        for order in self._open_orders():
            if order.ref not in self._cancelling:
                self.after_trip += 1
                self._cancel(order)
        self._settle(now)

    def _settle(self, now: float):
        """Stop cerebro once the closing orders are done (or have taken too long)."""
        if self._stopped:
            return
        open_positions = [self._names[i] for i, d in enumerate(self.datas)
                          if self.strategy.getposition(d).size]
        if any(o.alive() for o in self._flat):
            if now - self._trip_s <= self.p.flatten_timeout_s:
                return
            log.error("kill switch: closing orders still open after %g s; stopping anyway",
                      self.p.flatten_timeout_s)
        elif self.p.flatten and open_positions:
            if self._rounds < _MAX_FLATTEN_ROUNDS:
                self._flatten()
                return
            log.error("kill switch: positions still open after %d flattening rounds: %s",
                      self._rounds, ", ".join(open_positions))
        self._stopped = True
        self.strategy.env.runstop()
