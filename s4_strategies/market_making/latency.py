"""Latencies between a trader and the exchange, in seconds. No backtrader.

Four delays decide what a quote can do and when the trader knows it (the convention of
event-driven backtesters such as hftbacktest; all times are exchange time):

- ``feed``: the market event stamped ``t`` reaches the strategy at ``t + feed``;
- ``entry``: an order sent then reaches the matching engine ``entry`` later, so it can trade
  from ``t + feed + entry`` on, behind the queue standing at its price at that moment;
- ``response``: what the exchange does to an order (its acknowledgement when it reaches the
  book, a post-only rejection, a fill, a cancel taking effect) reaches the strategy
  ``response`` after the exchange did it;
- ``cancel``: a cancel sent then takes effect ``cancel`` later (the entry latency unless
  given); until then the order can still be filled (a fill "in flight").

So an order sent on the event stamped ``t`` is acknowledged to the strategy at
``t + feed + entry + response``: one round trip after the strategy saw ``t``.

Presets (:data:`LATENCY_PRESETS`), one-way, with the reasoning:

- ``"none"``: 0 / 0 / 0 / 0. Instant: what backtrader's own broker does, for comparison only.
- ``"colocated"``: feed 0.5 ms, entry, response and cancel 1 ms. A server in the exchange's
  data centre or its cloud zone (Binance and Bybit run in AWS Tokyo): sub-millisecond market
  data, about a millisecond each way through the gateway and matching engine.
- ``"cloud"`` (the default): feed 5 ms, entry, response and cancel 10 ms. A cloud server in
  the exchange's region but not in its zone, through the public WebSocket and REST/WS order
  entry: a few milliseconds for data, ~20 ms for an order's round trip.
- ``"retail"``: feed 30 ms, entry, response and cancel 50 ms. A home or office connection
  on another continent: tens of milliseconds each way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_LATENCY", "LATENCY_PRESETS", "Latency", "parse_latency"]

_FIELDS = ("feed", "entry", "response", "cancel")


@dataclass(frozen=True)
class Latency:
    """One-way delays in seconds: ``feed`` (market data to the strategy), ``entry`` (an order
    to the matching engine), ``response`` (the exchange's reports back to the strategy) and
    ``cancel`` (a cancel to the matching engine; ``None``: the entry latency)."""

    feed: float = 0.0
    entry: float = 0.0
    response: float = 0.0
    cancel: float | None = None

    def __post_init__(self):
        if self.cancel is None:
            object.__setattr__(self, "cancel", self.entry)
        for name in _FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"latency {name} must be a finite number of seconds >= 0, "
                                 f"got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def order(self) -> float:
        """Seconds from a market event to an order sent on it being matchable."""
        return self.feed + self.entry

    @property
    def cancel_total(self) -> float:
        """Seconds from a market event to a cancel sent on it taking effect."""
        return self.feed + self.cancel

    def ms(self) -> str:
        """``"feed 5 ms, entry 10 ms, response 10 ms, cancel 10 ms"``."""
        return ", ".join(f"{k} {1e3 * getattr(self, k):g} ms" for k in _FIELDS)


LATENCY_PRESETS = {
    "none": Latency(0.0, 0.0, 0.0, 0.0),
    "colocated": Latency(0.0005, 0.001, 0.001, 0.001),
    "cloud": Latency(0.005, 0.010, 0.010, 0.010),
    "retail": Latency(0.030, 0.050, 0.050, 0.050),
}
DEFAULT_LATENCY = "cloud"

_ACCEPTED = ("a preset (" + ", ".join(LATENCY_PRESETS) + "), seconds (entry = response = "
             "cancel, no feed), (feed, entry, response[, cancel]) seconds, a mapping of those "
             "keys, or milliseconds as 'MS', 'FEED,ENTRY,RESPONSE[,CANCEL]' or "
             "'entry=10,response=10,...'")


def _from_ms_text(key: str) -> Latency | None:
    """The command line's ``--latency-ms`` text, or ``None`` when it is not one."""
    parts = [p.strip() for p in key.split(",")]
    try:
        if all("=" in p for p in parts):
            pairs = dict(p.split("=", 1) for p in parts)
            unknown = set(pairs) - set(_FIELDS)
            if unknown:
                return None
            return Latency(**{k: float(v) / 1e3 for k, v in pairs.items()})
        ms = [float(p) for p in parts]
    except ValueError:
        return None
    if len(ms) == 1:
        return Latency(0.0, ms[0] / 1e3, ms[0] / 1e3, ms[0] / 1e3)
    if len(ms) in (3, 4):
        return Latency(*(x / 1e3 for x in ms))
    return None


def parse_latency(spec=None) -> Latency:
    """A :class:`Latency` from ``spec``:

    - ``None``: the default preset (``"cloud"``);
    - a :class:`Latency`; a preset name (:data:`LATENCY_PRESETS`);
    - a number: seconds of ``entry``, ``response`` and ``cancel`` latency, with no feed
      latency;
    - a tuple ``(feed, entry, response[, cancel])`` in seconds (cancel: the entry latency
      unless given), or a mapping with those keys (missing ones 0, cancel the entry);
    - a string of milliseconds (the command line's ``--latency-ms``): ``"10"`` is entry,
      response and cancel 10 ms with feed 0; ``"5,10,10"`` is feed, entry, response (cancel
      = entry) and ``"5,10,10,20"`` adds the cancel; ``"entry=10,response=20"`` names them.

    Anything else is a ``ValueError`` that says what is accepted.
    """
    if spec is None:
        return LATENCY_PRESETS[DEFAULT_LATENCY]
    if isinstance(spec, Latency):
        return spec
    if isinstance(spec, dict):
        unknown = set(spec) - set(_FIELDS)
        if unknown:
            raise ValueError(f"latency: unknown keys {sorted(unknown)}; use "
                             f"{', '.join(_FIELDS)}")
        return Latency(**spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Latency(0.0, spec, spec, spec)
    if isinstance(spec, (tuple, list)):
        if len(spec) not in (3, 4):
            raise ValueError(f"latency: a tuple is (feed, entry, response[, cancel]) in "
                             f"seconds, got {spec!r}")
        return Latency(*spec)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in LATENCY_PRESETS:
            return LATENCY_PRESETS[key]
        parsed = _from_ms_text(key)
        if parsed is not None:
            return parsed
    raise ValueError(f"latency {spec!r}: use {_ACCEPTED}")
