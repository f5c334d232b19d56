"""Session timing for quoting: time to a daily close and the AS horizon ``tau`` (seconds)."""

from __future__ import annotations

import math

from feeds.bartime import SECONDS_PER_DAY, seconds_after_midnight


def parse_session_close(value) -> float | None:
    """A daily close as seconds after UTC midnight, from ``"HH:MM[:SS]"``, a
    ``datetime.time`` or a number of seconds; ``None`` stays ``None`` (no session)."""
    return seconds_after_midnight(value)


def time_to_close(now: float, close: float | None) -> float:
    """Seconds from ``now`` (epoch seconds, UTC) to the next daily ``close`` (seconds after
    UTC midnight); ``inf`` without a session. At the close instant 0, just after it a day."""
    if close is None:
        return math.inf
    return float((close - now) % SECONDS_PER_DAY)


def session_tau(now: float, close: float | None, horizon: float) -> float:
    """AS ``tau``: ``min(horizon, time to the close)``. ``close=None`` gives the rolling
    horizon of 24/7 markets; ``horizon=inf`` the classic time-to-close of a daily session."""
    return min(float(horizon), time_to_close(now, close))


def close_ramp(to_close: float, window: float) -> float:
    """Weight of the into-the-close inventory skew: rises linearly from 0 to 1 over the last
    ``window`` seconds before the close (``1 − to_close/window``), 0 before them, without a
    session (``to_close = inf``) or with ``window <= 0``."""
    if window > 0 and to_close < window:
        return 1.0 - to_close / window
    return 0.0
