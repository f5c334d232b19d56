"""Return series as the reports see them: an equity curve's returns under the ruin policy,
returns compounded to calendar days, and the benchmark as both reports use it. Plain
functions, no Cerebro.

Policies (shared by the tear sheet and ``metrics.json``, so that the two always agree):

- **Ruin.** Equity at or below zero means the account is ruined: the return of the first bar
  whose value is ``<= 0`` is exactly −100 % and the series stops there (a negative equity
  has no meaningful return, and nothing can be compounded back from zero). ``equity_returns``
  says when it happened; both reports say so.
- **Missing values.** A portfolio value that is NaN or infinite is an error naming the bar:
  it is never read as a zero return. A return series handed to the tear sheet must be
  finite and no return may be below −100 % (``check_returns``).
- **Benchmark.** Before its first value (and where it has no data) the benchmark is flat:
  a 0 % return, as cash. Its numbers in ``metrics.json`` and on the sheet are both computed
  over the strategy's whole span on that series (``benchmark_start`` says where it begins).
- **Days.** quantstats takes every row for a day ("Best Day", "Daily VaR", "Win Days", the
  cumulative-sum panels). Intraday returns are compounded to UTC calendar days for the sheet
  (``to_daily``); daily and coarser rows are left as they are.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.bartime import to_naive_utc

from .calendar import TRADING_DAYS, align_benchmark

__all__ = [
    "check_returns",
    "daily_periods",
    "equity_returns",
    "is_intraday",
    "report_benchmark",
    "to_daily",
]


def equity_returns(value: pd.Series, start_value: float) -> tuple[pd.Series, pd.Timestamp | None]:
    """Simple returns of an equity curve that starts at ``start_value``, and the time of ruin.

    Returns ``(returns, ruined_at)``: ``returns`` on ``value``'s index, the first one measured
    from ``start_value``; ``ruined_at`` is the first bar whose value is ``<= 0`` (None if
    none), where the return is −1.0 and the series ends. Raises ``ValueError`` for a
    starting value that is not a positive number or for a NaN/infinite value (naming it).
    """
    start = float(start_value)
    if not (np.isfinite(start) and start > 0):
        raise ValueError(f"the starting portfolio value must be a positive number, not {start!r}")
    v = pd.Series(value, dtype="float64")
    bad = ~np.isfinite(v.to_numpy())
    if bad.any():
        where = v.index[bad]
        raise ValueError(
            f"portfolio value is NaN or infinite on {int(bad.sum())} bar(s), first at "
            f"{where[0]} ({v[bad].iloc[0]}): a price the broker marks positions at is "
            "missing; clean the data (feeds.clean_ohlcv) instead of reading it as a 0 % return"
        )
    ruined_at = None
    dead = np.flatnonzero(v.to_numpy() <= 0)
    if len(dead):
        v = v.iloc[: dead[0] + 1]
        ruined_at = v.index[-1]
    prev = np.concatenate([[start], v.to_numpy()[:-1]])
    r = pd.Series(v.to_numpy() / prev - 1.0, index=v.index, name=value.name)
    if ruined_at is not None:
        r.iloc[-1] = -1.0
    return r, ruined_at


def check_returns(returns: pd.Series, what: str = "returns") -> None:
    """``ValueError`` unless every return is finite and ``>= -1`` (−100 %)."""
    r = pd.Series(returns, dtype="float64")
    arr = r.to_numpy()
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{what} hold {int(bad.sum())} NaN/infinite value(s), first at {r.index[bad][0]}: "
            "drop or fill them first (a NaN is not a 0 % return)"
        )
    below = arr < -1.0
    if below.any():
        raise ValueError(
            f"{what} hold {int(below.sum())} return(s) below -100 %, first {arr[below][0]:.4g} "
            f"at {r.index[below][0]}: the equity went negative. An account whose equity "
            "reaches zero is ruined (see analyzers.returns.equity_returns)"
        )


def is_intraday(index) -> bool:
    """True when some UTC calendar day holds more than one row."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return False
    return bool(to_naive_utc(index).normalize().has_duplicates)


def to_daily(returns: pd.Series) -> pd.Series:
    """Returns compounded to UTC calendar days: ``prod(1 + r) - 1`` of each day's rows,
    stamped at 00:00 (naive UTC). Days without rows are absent; a day whose rows are all NaN
    is NaN."""
    r = pd.Series(returns, dtype="float64")
    if not isinstance(r.index, pd.DatetimeIndex):
        raise TypeError("to_daily needs returns on a DatetimeIndex")
    r.index = to_naive_utc(r.index)
    day = r.index.normalize()
    daily = (1.0 + r).groupby(day).prod(min_count=1) - 1.0
    daily.index.name = None
    return daily.rename(returns.name)


def daily_periods(calendar: str) -> int:
    """Days per year of daily rows in ``calendar`` (252 equities, 365 crypto)."""
    return TRADING_DAYS[calendar]


def report_benchmark(benchmark: pd.Series | None, index) -> tuple[pd.Series | None, object]:
    """The benchmark both reports use: aligned to ``index``, 0 % before its first value and
    wherever it has none. Returns ``(series, first timestamp with a value or None)``."""
    if benchmark is None:
        return None, None
    b = pd.Series(benchmark, dtype="float64").replace([np.inf, -np.inf], np.nan)
    b.index = to_naive_utc(b.index)
    out_index = to_naive_utc(index)
    if not b.index.equals(out_index):
        b = align_benchmark(b, out_index)
    start = b.first_valid_index()
    return b.fillna(0.0).rename(benchmark.name), start
