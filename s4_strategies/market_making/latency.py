"""Latencies between a trader and the exchange, in seconds. No backtrader.

Three delays decide what a quote can do (the convention of event-driven backtesters such as
hftbacktest; all times are exchange time):

- ``feed``: the market event stamped ``t`` reaches the strategy at ``t + feed``;
- ``entry``: an order sent then reaches the matching engine ``entry`` later, so it can trade
  from ``t + feed + entry`` on, behind the queue standing at its price at that moment;
- ``cancel``: a cancel sent then takes effect ``cancel`` later; until then the order can
  still be filled (a fill "in flight").

Fill reports are not delayed: the strategy learns of a fill on the event that made it, one
response latency earlier than a real one would (stated in the broker's doc).

Presets (:data:`LATENCY_PRESETS`), one-way, with the reasoning:

- ``"none"``: 0 / 0 / 0. Instant: what backtrader's own broker does, for comparison only.
- ``"colocated"``: feed 0.5 ms, entry 1 ms, cancel 1 ms. A server in the exchange's data
  centre or its cloud zone (Binance and Bybit run in AWS Tokyo): sub-millisecond market
  data, about a millisecond through the gateway and matching engine.
- ``"cloud"`` (the default): feed 5 ms, entry 10 ms, cancel 10 ms. A cloud server in the
  exchange's region but not in its zone, through the public WebSocket and REST/WS order
  entry: a few milliseconds for data, ~10 ms for an order acknowledgement.
- ``"retail"``: feed 30 ms, entry 50 ms, cancel 50 ms. A home or office connection on
  another continent: tens of milliseconds each way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_LATENCY", "LATENCY_PRESETS", "Latency", "parse_latency"]


@dataclass(frozen=True)
class Latency:
    """One-way delays in seconds: ``feed`` (market data to the strategy), ``entry`` (an order
    to the matching engine), ``cancel`` (a cancel to the matching engine)."""

    feed: float = 0.0
    entry: float = 0.0
    cancel: float = 0.0

    def __post_init__(self):
        for name in ("feed", "entry", "cancel"):
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
        """``"feed 5 ms, entry 10 ms, cancel 10 ms"``."""
        return ", ".join(f"{k} {1e3 * getattr(self, k):g} ms" for k in ("feed", "entry", "cancel"))


LATENCY_PRESETS = {
    "none": Latency(0.0, 0.0, 0.0),
    "colocated": Latency(0.0005, 0.001, 0.001),
    "cloud": Latency(0.005, 0.010, 0.010),
    "retail": Latency(0.030, 0.050, 0.050),
}
DEFAULT_LATENCY = "cloud"


def parse_latency(spec=None) -> Latency:
    """A :class:`Latency` from ``spec``:

    - ``None``: the default preset (``"cloud"``);
    - a :class:`Latency`; a preset name (:data:`LATENCY_PRESETS`);
    - a number: seconds of ``entry`` and ``cancel`` latency, with no feed latency;
    - a tuple ``(feed, entry, cancel)`` in seconds, or a mapping with those keys;
    - a string of milliseconds ``"ENTRY[,CANCEL[,FEED]]"`` (the command line's
      ``--latency-ms``): ``"10"`` is entry and cancel 10 ms, feed 0; ``"10,20,5"``.

    Anything else is a ``ValueError`` that says what is accepted.
    """
    if spec is None:
        return LATENCY_PRESETS[DEFAULT_LATENCY]
    if isinstance(spec, Latency):
        return spec
    if isinstance(spec, dict):
        unknown = set(spec) - {"feed", "entry", "cancel"}
        if unknown:
            raise ValueError(f"latency: unknown keys {sorted(unknown)}; use feed, entry, cancel")
        return Latency(**spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Latency(0.0, spec, spec)
    if isinstance(spec, (tuple, list)):
        if len(spec) != 3:
            raise ValueError(f"latency: a tuple is (feed, entry, cancel) in seconds, got {spec!r}")
        return Latency(*spec)
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in LATENCY_PRESETS:
            return LATENCY_PRESETS[key]
        try:
            ms = [float(x) for x in key.split(",")]
        except ValueError:
            ms = []
        if 1 <= len(ms) <= 3:
            entry = ms[0]
            cancel = ms[1] if len(ms) > 1 else entry
            feed = ms[2] if len(ms) > 2 else 0.0
            return Latency(feed / 1e3, entry / 1e3, cancel / 1e3)
    raise ValueError(f"latency {spec!r}: use a preset ({', '.join(LATENCY_PRESETS)}), seconds, "
                     "(feed, entry, cancel) seconds or 'ENTRY[,CANCEL[,FEED]]' milliseconds")
