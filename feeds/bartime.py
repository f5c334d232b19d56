"""Bar time, in one place: backtrader float dates ⇄ epoch seconds ⇄ UTC ``DatetimeIndex``.

backtrader stores a bar's time as a float number of days (``date2num``: proleptic Gregorian
ordinal plus the fraction of the day), naive, in UTC for every feed of this package. Every
conversion the project makes goes through the functions here:

==========================  ===========================================================
``EPOCH_ORDINAL``           ``date2num(1970-01-01 00:00)`` = ``date(1970, 1, 1).toordinal()``
``num_to_epoch(num)``       backtrader float date -> seconds since the epoch (UTC)
``epoch_to_num(t)``         the inverse
``index_to_num(index)``     vectorised ``date2num`` of a DatetimeIndex (naive = UTC)
``num_to_index(nums)``      vectorised ``num2date`` -> DatetimeIndex, snapped to the ms
``to_utc_index(index)``     any timestamp-like index -> UTC DatetimeIndex
``utc_timestamp(value)``    one value -> UTC Timestamp (naive = UTC)
``to_naive_utc(index)``     a DatetimeIndex -> naive UTC (quantstats' convention)
``utc_naive(value)``        one value -> naive UTC Timestamp (backtrader's convention)
``parse_hhmm(value)``       ``"HH:MM[:SS]"`` / ``datetime.time`` -> ``datetime.time``
``seconds_after_midnight``  a daily time of day (``"HH:MM"``, ``time`` or seconds) -> s
``bar_spacing(index)``      the median spacing of bars (the data's frequency)
``bar_open(data)``          the open of a backtrader data's current bar
==========================  ===========================================================

The convention: **a bar is stamped with its open**, in DataFrames and in backtrader alike
(``data.datetime[0]`` of our feeds is the bar's open; the bar is complete one bar length
later). ``cerebro.resampledata``/``replaydata`` of our feeds bin as pandas does and stamp a
bin with the open of its last base bar, so that every data of a cerebro runs on the same
clock (see :mod:`feeds.resample`); :func:`bar_open` gives such a bin's own open.

Only pandas and numpy: ``feeds``, ``analyzers`` and ``s4_strategies`` all import it.
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
import pandas as pd

from .errors import DataError

#: backtrader's date2num of 1970-01-01 00:00 (``datetime.date(1970, 1, 1).toordinal()``)
EPOCH_ORDINAL = 719163.0
SECONDS_PER_DAY = 86_400.0
_NS_PER_DAY = 86_400e9

__all__ = [
    "EPOCH_ORDINAL", "SECONDS_PER_DAY", "bar_open", "bar_spacing", "epoch_to_iso", "epoch_to_num",
    "index_to_num", "num_to_epoch", "num_to_index", "num_to_iso", "parse_hhmm",
    "seconds_after_midnight", "to_naive_utc", "to_utc_index", "utc_naive", "utc_timestamp",
]


# ------------------------------------------------------------------ backtrader float dates
def num_to_epoch(num: float) -> float:
    """A backtrader float date (naive UTC) as seconds since 1970-01-01 UTC."""
    return (num - EPOCH_ORDINAL) * SECONDS_PER_DAY


def epoch_to_num(t: float) -> float:
    """Seconds since 1970-01-01 UTC as a backtrader float date."""
    return t / SECONDS_PER_DAY + EPOCH_ORDINAL


def epoch_to_iso(t: float) -> str:
    """Seconds since 1970-01-01 UTC as ISO text in UTC, snapped to the millisecond."""
    return pd.Timestamp(round(t * 1000.0), unit="ms", tz="UTC").isoformat()


def num_to_iso(num: float) -> str:
    """A backtrader float date as ISO text in UTC: one value of :func:`num_to_index`,
    without building an index."""
    return epoch_to_iso(num_to_epoch(num))


def index_to_num(index) -> np.ndarray:
    """Vectorised ``backtrader.date2num`` for a (UTC) DatetimeIndex."""
    idx = to_utc_index(index)
    ns = idx.as_unit("ns").asi8.astype(np.float64)
    return ns / _NS_PER_DAY + EPOCH_ORDINAL


def num_to_index(nums, utc: bool = True) -> pd.DatetimeIndex:
    """Vectorised ``backtrader.num2date``: float dates to a DatetimeIndex (UTC, or naive UTC
    with ``utc=False``), snapped to the millisecond — backtrader's float dates carry ~10 µs
    of rounding, which would otherwise leak into hour-of-day features."""
    ms = np.round((np.asarray(nums, dtype=np.float64) - EPOCH_ORDINAL) * 86_400_000.0)
    return pd.DatetimeIndex(pd.to_datetime(ms.astype(np.int64), unit="ms", utc=utc))


# ------------------------------------------------------------------ pandas timestamps
def to_utc_index(index) -> pd.DatetimeIndex:
    """Return ``index`` as a UTC ``DatetimeIndex`` (naive values are taken as UTC)."""
    if not isinstance(index, pd.DatetimeIndex):
        dtype = getattr(index, "dtype", None)
        if dtype is not None and (pd.api.types.is_numeric_dtype(dtype)
                                  or pd.api.types.is_bool_dtype(dtype)):
            # pd.to_datetime would read 0, 1, 2 ... as nanoseconds after 1970: never intended
            raise DataError(f"index is {dtype}, not timestamps (set a DatetimeIndex)")
        try:
            index = pd.DatetimeIndex(pd.to_datetime(index, utc=True))
        except (TypeError, ValueError) as exc:
            raise DataError(f"index cannot be read as timestamps: {exc}") from exc
    if index.tz is None:
        index = index.tz_localize("UTC")
    else:
        index = index.tz_convert("UTC")
    return index


def utc_timestamp(value) -> pd.Timestamp:
    """``value`` (string, datetime, Timestamp) as a UTC Timestamp (naive values are UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_naive_utc(index) -> pd.DatetimeIndex:
    """A DatetimeIndex in UTC without a time zone (naive input is taken as UTC)."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx


def utc_naive(value) -> pd.Timestamp | None:
    """``value`` as a naive UTC Timestamp, backtrader's convention (``None`` stays ``None``)."""
    if value is None:
        return None
    return utc_timestamp(value).tz_localize(None)


def bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The median spacing of bars: the data's frequency as far as a model is concerned."""
    if len(index) < 2:
        raise ValueError("need at least two bars to tell the bar spacing")
    return pd.Timedelta(int(np.median(np.diff(index.as_unit("ns").asi8))), unit="ns")


def bar_open(data, num: float | None = None) -> float:
    """The open (backtrader float date) of ``data``'s bar stamped ``num`` (default: the
    current bar): the stamp itself for our feeds' bars, the bin's open for a bar that
    ``resampledata``/``replaydata`` built from them (:mod:`feeds.resample`)."""
    num = data.datetime[0] if num is None else num
    binning = getattr(data, "_s4_binning", None)
    return num if binning is None else binning.open_of(num)


# ------------------------------------------------------------------ times of day
def parse_hhmm(value) -> _dt.time | None:
    """``"HH:MM"`` or ``"HH:MM:SS"`` (UTC) or a ``datetime.time`` as a ``datetime.time``;
    ``None`` stays ``None``. Anything else is a ``ValueError`` that says what is accepted."""
    if value is None or isinstance(value, _dt.time):
        return value
    text = str(value).strip()
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return _dt.time(*(int(p) for p in parts))
    except ValueError:
        raise ValueError(f"time of day must be 'HH:MM' or 'HH:MM:SS' (UTC), not {value!r}"
                         ) from None


def seconds_after_midnight(value) -> float | None:
    """A daily time as seconds after UTC midnight, from ``"HH:MM[:SS]"``, a
    ``datetime.time`` or a number of seconds (taken modulo a day); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"time of day in seconds must be finite, not {value!r}")
        return float(value) % SECONDS_PER_DAY
    if not isinstance(value, (str, _dt.time)):
        raise ValueError(f"time of day must be 'HH:MM', a datetime.time or seconds, not {value!r}")
    t = parse_hhmm(value)
    return t.hour * 3600.0 + t.minute * 60.0 + t.second
