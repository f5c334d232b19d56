"""Funding of the USDT perpetual, charged the way Bybit charges it, aligned with the backtest.

Bybit settles funding at fixed marks (every 8 h at 00:00, 08:00 and 16:00 UTC for BTCUSDT;
some symbols use 4 h or 1 h intervals, which a Series of rates indexed by the actual
funding timestamps handles) on the position held at that instant: the holder pays
``rate * position value``, so with ``rate > 0`` a long pays and a short receives, and the
other way round with ``rate < 0``. Here the position value is ``pos`` (a fraction of the
equity, as in :func:`~s4_strategies.training.evaluation.backtest_positions`, which also
rebalances to a constant fraction every bar), so a unit long pays ``rate`` per mark.

Timing (bars indexed by their open time, of length ``L``, usually 1 h):

- ``pos[t]`` is decided at the close of bar ``t`` (time ``index[t] + L``) and held until the
  close of bar ``t+1`` (``index[t+1] + L``); the backtest credits it ``returns[t+1]``.
- A trade at a close is placed after the close is seen, so at a funding mark that coincides
  with a close the position held is the one *before* that trade. Hence the marks charged to
  ``pos[t]`` are those ``T`` with ``index[t] + L < T <= index[t+1] + L``; without missing
  bars that is ``open[t+1] < T <= open[t+2]``.
- ``pos[t] * (sum of those rates)`` is subtracted from ``returns[t+1]``, like the fee.
  ``pos[-1]`` is charged nothing: the backtest closes it at the last close.

Example, hourly bars opening at 22:00 (t=0), 23:00, 00:00, 01:00: ``pos[0]`` is held from
23:00 to 00:00 and pays the 00:00 funding in ``returns[1]``; ``pos[1]`` (00:00 to 01:00)
pays nothing.

Public names: ``DEFAULT_FUNDING_RATE``, ``FUNDING_INTERVAL``, ``funding_per_bar`` (the rate a
unit long pays for holding over bar ``t``, aligned with ``pos``), ``charge`` (per-bar costs
from that), ``funding_costs`` (both in one).
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from feeds.bartime import bar_spacing, to_utc_index

#: Funding rate per 8-hour interval used offline when no history is given: 0.01 %. Bybit's
#: formula is ``F = P + clamp(I - P, 0.05 %, -0.05 %)`` with the interest rate
#: ``I = 0.03 %`` a day, i.e. 0.01 % per 8-hour interval, so ``F = I = 0.01 %`` whenever the
#: premium index ``P`` is within 0.05 % of it (Bybit Help Center, "Introduction to Funding
#: Rate"). A documented constant, not a measurement: real rates vary with the premium.
DEFAULT_FUNDING_RATE = 0.0001
#: Bybit's standard funding interval; marks at 00:00, 08:00 and 16:00 UTC.
FUNDING_INTERVAL = pd.Timedelta(hours=8)
_P = FUNDING_INTERVAL.value  # ns; the epoch is 00:00 UTC, so multiples of _P are the marks


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8


def _held_intervals(index, bar) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` in ns: ``pos[t]`` is held over ``(a[t], b[t]]`` (see the module docstring)."""
    idx = to_utc_index(index)
    if len(idx) > 1 and not (np.diff(_ns(idx)) > 0).all():
        raise ValueError("the bar index must be strictly increasing")
    if bar is None:
        if len(idx) < 2:
            raise ValueError("pass bar= (the bar length) for fewer than two bars")
        bar = bar_spacing(idx)
    length = pd.Timedelta(bar).value
    if length <= 0:
        raise ValueError(f"bar length must be positive, not {bar!r}")
    a = _ns(idx) + length
    b = np.append(a[1:], a[-1] + length) if len(a) else a
    return a, b


def _series_rates(rates: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    times = to_utc_index(rates.index)
    values = np.asarray(rates, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("funding rates must be finite (found NaN or inf)")
    if times.has_duplicates:
        raise ValueError("funding rates have duplicate timestamps")
    order = np.argsort(_ns(times), kind="stable")
    return _ns(times)[order], values[order]


def _check_coverage(times: np.ndarray, lo: int, hi: int) -> None:
    """Every standard 8-hourly mark in ``(lo, hi]`` must have a rate."""
    marks = np.arange((lo // _P + 1) * _P, hi // _P * _P + 1, _P, dtype=np.int64)
    missing = marks[~np.isin(marks, times)]
    if len(missing):
        first = pd.Timestamp(int(missing[0]), tz="UTC")
        raise ValueError(
            f"funding rates miss {len(missing)} of the {len(marks)} 8-hourly marks the bars "
            f"span (first {first}): fetch the history over the bars' range "
            "(feeds.funding.load_funding_rates) or fill the gaps yourself, e.g. "
            "rates.reindex(marks).fillna(DEFAULT_FUNDING_RATE)"
        )


def funding_per_bar(index, rates=DEFAULT_FUNDING_RATE, bar=None) -> np.ndarray:
    """The funding rate a unit long pays for holding ``pos[t]``, for every bar ``t``.

    ``index``: the bars' open times (naive = UTC). ``rates``: a number (charged at every
    8-hourly mark, 00:00/08:00/16:00 UTC) or a Series of rates indexed by funding timestamp;
    a Series must have a rate for every 8-hourly mark the charged bars span (``ValueError``
    otherwise), and any further timestamps (shorter intervals) are charged too. ``bar``: the
    bar length (default: the median spacing of ``index``). Sums the rates at the marks ``T``
    with ``index[t] + bar < T <= index[t+1] + bar``; the last entry assumes one more bar.
    """
    a, b = _held_intervals(index, bar)
    if isinstance(rates, numbers.Real) and not isinstance(rates, bool):
        rate = float(rates)
        if not np.isfinite(rate):
            raise ValueError(f"funding rate must be finite, not {rates!r}")
        return (b // _P - a // _P) * rate
    if not isinstance(rates, pd.Series):
        raise TypeError(f"rates must be a number or a pandas Series, not {type(rates).__name__}")
    times, values = _series_rates(rates)
    if len(a) > 1:
        _check_coverage(times, int(a[0]), int(b[-2]))
    cum = np.concatenate([[0.0], np.cumsum(values)])
    return cum[np.searchsorted(times, b, "right")] - cum[np.searchsorted(times, a, "right")]


def charge(pos, per_bar) -> np.ndarray:
    """Per-bar funding costs aligned with ``backtest_positions``' returns:
    ``cost[t+1] = pos[t] * per_bar[t]`` (positive: paid), ``cost[0] = 0``."""
    pos = np.asarray(pos, dtype=np.float64)
    per_bar = np.asarray(per_bar, dtype=np.float64)
    if pos.shape != per_bar.shape or pos.ndim != 1:
        raise ValueError(f"pos {pos.shape} and per-bar funding {per_bar.shape} must be "
                         "1-D and of the same length")
    cost = np.zeros(len(pos))
    cost[1:] = pos[:-1] * per_bar[:-1]
    return cost


def funding_costs(index, pos, rates=DEFAULT_FUNDING_RATE, bar=None) -> np.ndarray:
    """Funding paid per bar by holding ``pos`` (see the module docstring for the timing);
    subtract it from ``backtest_positions(close, pos, fee)["returns"]``."""
    pos = np.asarray(pos, dtype=np.float64)
    if len(pos) != len(index):
        raise ValueError(f"pos has {len(pos)} entries for {len(index)} bars")
    if len(pos) < 2:
        return np.zeros(len(pos))
    return charge(pos, funding_per_bar(index, rates, bar))
