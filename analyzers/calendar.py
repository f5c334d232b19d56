"""Calendars and sampling frequencies of return series: how many periods make a year, and a
benchmark aligned to a strategy's bars. Plain functions, no Cerebro.

    from analyzers.calendar import infer_periods_per_year
    infer_periods_per_year(returns.index)      # 252 (equities daily), 365, 8760 (hourly), ...
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
import pandas as pd

from feeds.bartime import to_naive_utc

__all__ = ["align_benchmark", "detect_calendar", "infer_periods_per_year"]

TRADING_DAYS = {"equities": 252, "crypto": 365}
EQUITY_SESSION = pd.Timedelta(hours=6, minutes=30)  # NYSE 09:30-16:00
# backtrader.TimeFrame values (kept here so that this module needs no backtrader).
_BT_TIMEFRAME = {
    3: pd.Timedelta(seconds=1),  # Seconds
    4: pd.Timedelta(minutes=1),  # Minutes
    5: pd.Timedelta(days=1),  # Days
    6: pd.Timedelta(weeks=1),  # Weeks
    7: pd.Timedelta(days=30),  # Months
    8: pd.Timedelta(days=365),  # Years
}
_CALENDAR_FREQ = {"W": 7, "M": 30, "ME": 30, "MS": 30, "Q": 91, "QE": 91, "Y": 365, "YE": 365}


# ---------------------------------------------------------------- time and calendars


def detect_calendar(index) -> str:
    """``"crypto"`` when bars fall on (nearly) every day of the week, else ``"equities"``.

    A weekday counts when it holds at least 5% of the bars, so a venue that opens on Sunday
    evening UTC (forex, Sydney) or an exchange whose UTC stamps shift by a day (Tokyo dailies)
    still reads as a five-day calendar, while 24/7 markets show all seven days. Series that
    are too short to tell (under a week) read as equities; pass ``calendar=`` for those.
    """
    idx = to_naive_utc(index)
    if len(idx) < 2:
        return "equities"
    share = np.bincount(idx.day_of_week, minlength=7) / len(idx)
    return "crypto" if int((share >= 0.05).sum()) >= 6 else "equities"


def _spacing(value, compression: int) -> pd.Timedelta:
    if isinstance(value, (pd.Timedelta, _dt.timedelta, np.timedelta64)):
        return pd.Timedelta(value) * compression
    if isinstance(value, str):
        key = value.lstrip("0123456789") or value
        if key in _CALENDAR_FREQ:
            mult = int(value[: len(value) - len(key)] or 1)
            return pd.Timedelta(days=_CALENDAR_FREQ[key]) * mult * compression
        return pd.to_timedelta(value if value[0].isdigit() else "1" + value) * compression
    if isinstance(value, (int, np.integer)):
        if int(value) not in _BT_TIMEFRAME:
            raise ValueError(f"unsupported backtrader timeframe {value!r} (ticks/microseconds)")
        return _BT_TIMEFRAME[int(value)] * compression
    raise TypeError(f"cannot infer a bar spacing from {type(value).__name__}")


def infer_periods_per_year(index_or_timeframe, calendar: str = "auto", compression: int = 1) -> int:
    """Bars per year for annualising.

    ``index_or_timeframe`` is a DatetimeIndex (or a Series with one), a ``backtrader.TimeFrame``
    value with ``compression``, a ``Timedelta`` or a pandas frequency (``"1h"``, ``"D"``, ``"W"``).
    ``calendar`` is ``"crypto"`` (365 days of 24 h), ``"equities"`` (252 sessions of 6.5 h) or
    ``"auto"``: read from the index (see ``detect_calendar``); equities when only a timeframe
    is given.

    daily: 252 / 365; weekly 52; monthly 12; quarterly 4; yearly 1; intraday crypto
    ``365 * 24 h / spacing`` (hourly 8760); intraday equities ``252 * bars per session``, the
    bars per session counted in the index when there is one (hourly US: 252 * 7 = 1764).
    """
    if calendar not in ("auto", "crypto", "equities"):
        raise ValueError(f"calendar must be 'auto', 'crypto' or 'equities', not {calendar!r}")
    index, step = _index_and_step(index_or_timeframe, compression)
    if calendar == "auto":
        calendar = detect_calendar(index) if index is not None else "equities"
    days = step / pd.Timedelta(days=1)
    if days >= 5:
        return _periods_multi_day(days)
    if days >= 0.9 or (calendar == "equities" and step >= EQUITY_SESSION):
        return TRADING_DAYS[calendar]
    if calendar == "crypto":
        return max(1, round(pd.Timedelta(days=365) / step))
    return TRADING_DAYS["equities"] * max(1, _equity_bars_per_session(index, step))


def _index_and_step(index_or_timeframe, compression: int):
    """The sorted unique naive-UTC index (None when only a timeframe is given) and the
    typical bar spacing."""
    if isinstance(index_or_timeframe, (pd.Series, pd.DataFrame)):
        index_or_timeframe = index_or_timeframe.index
    if not isinstance(index_or_timeframe, pd.DatetimeIndex):
        return None, _spacing(index_or_timeframe, compression)
    index = to_naive_utc(index_or_timeframe).unique().sort_values()
    if len(index) < 2:
        raise ValueError("need at least two timestamps to infer the bar spacing")
    return index, pd.Series(index).diff().dropna().median()


def _periods_multi_day(days: float) -> int:
    """Periods per year for bars spaced ``days`` >= 5 apart: weekly and longer."""
    if days >= 300:
        return 1
    if days >= 80:
        return 4
    if days >= 25:
        return 12
    return 52


def _equity_bars_per_session(index, step: pd.Timedelta) -> int:
    """Intraday equity bars per session: counted in the index when there is one, else
    a full session divided by the spacing."""
    if index is not None:  # bars per session as seen in the data
        return int(pd.Series(1, index=index).groupby(index.normalize()).size().median())
    return math.ceil(EQUITY_SESSION / step)


# ---------------------------------------------------------------- benchmark alignment


def align_benchmark(benchmark: pd.Series, index) -> pd.Series:
    """Re-express benchmark *returns* on another set of timestamps.

    Each benchmark return counts in the first period of ``index`` stamped at or after it
    (the period it was known by), and returns falling into the same period are compounded,
    so nothing is lost when the two series are stamped differently (hourly bars 30 minutes
    apart, a daily benchmark under an hourly strategy) and the total return over the common
    span is kept. The first period takes only the last benchmark return at or before it.
    Periods inside the benchmark's span that received nothing are 0; periods before its
    first or after its last timestamp are NaN. Both sides are compared in naive UTC.
    """
    out_index = to_naive_utc(index)
    b = pd.Series(benchmark, dtype="float64").dropna()
    if len(b) == 0 or len(out_index) == 0:
        return pd.Series(np.nan, index=out_index, name=benchmark.name, dtype="float64")
    b.index = to_naive_utc(b.index)
    b = b[~b.index.duplicated(keep="last")].sort_index()
    if b.index.equals(out_index):
        return b.rename(benchmark.name)
    pos = np.searchsorted(out_index.to_numpy(), b.index.to_numpy(), side="left")
    keep = pos < len(out_index)
    head = np.flatnonzero(pos == 0)
    if len(head) > 1:  # only the most recent return before the first period
        keep[head[:-1]] = False
    s = pd.Series(b.to_numpy()[keep], index=pos[keep])
    grouped = s.groupby(level=0)
    single = grouped.size() == 1
    values = ((1.0 + s).groupby(level=0).prod() - 1.0).where(~single, grouped.first())
    out = values.reindex(np.arange(len(out_index)))
    span = np.asarray((out_index >= b.index[0]) & (out_index <= b.index[-1]))
    out = out.where(out.notna().to_numpy() | ~span, 0.0)
    out.index = out_index
    return out.rename(benchmark.name)


# ---------------------------------------------------------------- metrics
