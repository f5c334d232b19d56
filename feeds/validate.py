"""Checks and documented repairs for OHLCV frames.

Every feed passes its bars through :func:`clean_ohlcv` before backtrader sees them.
The policy, per defect:

==========================  ==========================================================
defect                      what happens
==========================  ==========================================================
index not datetime          ``DataError``
missing timestamps (NaT)    ``DataError`` naming the row positions
naive timestamps            taken as UTC (documented convention of every feed here)
out-of-order rows           sorted (a pure reordering, no value changes)
exact duplicate rows        dropped, keeping one
conflicting duplicates      ``DataError`` naming the timestamps
NaN / inf in OHLC           ``DataError`` naming the first rows (``nan="drop"`` drops them)
NaN volume                  ``DataError`` (``nan="drop"`` drops the rows)
non-positive prices         ``DataError``
implausible prices          ``DataError`` naming the rows: a price outside
                            ``price_range`` (default ``PRICE_RANGE``, 1e-12 .. 1e12), or a
                            jump by more than ``max_jump`` times (default ``MAX_JUMP``,
                            100) from the previous close to a bar's prices, or from a
                            bar's open/close to its own high/low (a fat-finger spike, a
                            scale mix-up); ``price_range=None``/``max_jump=None`` turn
                            them off for data that really does that (a token's collapse)
high < low, or open/close   ``DataError`` naming the rows
outside [low, high]
negative volume             ``DataError``
zero volume                 kept: real markets have empty bars (exchange outages)
gaps (``freq`` given)       ``gaps="warn"`` (default) warns with the count,
                            ``"raise"`` raises, ``"allow"`` is silent,
                            ``"fill"`` inserts flat bars at the previous close, volume 0
bars off the grid           ``off_grid="warn"`` (default) warns with the count and the
                            first: a stamp that is not the first bar's plus a multiple
                            of the bar spacing (``freq``, or the median spacing when it
                            is under a day); ``"raise"`` raises, ``"allow"`` is silent
==========================  ==========================================================

Tick (event) frames go through :func:`clean_ticks` instead: several events may share a
stamp, so duplicates are kept; missing timestamps raise, out-of-order rows are sorted
(stably: events with one stamp keep their order); book prices (``open high low close bid
ask mid price``) must be finite and positive on every row, sizes (``volume bid_size
ask_size size``) finite and non-negative; ``trade_price``/``trade_size`` may be NaN (an
event without a trade) but not inf, non-positive/negative, or one without the other;
``trade_side``/``side`` are NaN (unknown) or ±1.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .bartime import to_utc_index
from .errors import DataError

PRICE_COLS = ("open", "high", "low", "close")
OHLCV = (*PRICE_COLS, "volume")
#: Prices outside this range are taken for a data error (override: ``price_range=``).
PRICE_RANGE = (1e-12, 1e12)
#: A bar's prices more than this many times above or below the previous close, or its
#: high/low that far from its own open/close, are taken for a data error (``max_jump=``).
MAX_JUMP = 100.0


def _fmt(idx, limit=5) -> str:
    items = [str(x) for x in list(idx)[:limit]]
    more = len(idx) - limit
    return ", ".join(items) + (f" (+{more} more)" if more > 0 else "")


def find_gaps(index: pd.DatetimeIndex, freq) -> pd.DataFrame:
    """Gaps longer than ``freq`` in a sorted index: last bar before, first after, bars missing."""
    step = pd.Timedelta(freq)
    if len(index) < 2:
        return pd.DataFrame(columns=["before", "after", "missing"])
    diffs = index[1:] - index[:-1]
    where = np.flatnonzero(diffs > step)
    return pd.DataFrame(
        {
            "before": index[where],
            "after": index[where + 1],
            "missing": [int(diffs[i] / step) - 1 for i in where],
        }
    )


def clean_ohlcv(
    df: pd.DataFrame,
    *,
    freq=None,
    gaps: str = "warn",
    nan: str = "raise",
    name: str = "data",
    price_range: tuple[float, float] | None = PRICE_RANGE,
    max_jump: float | None = MAX_JUMP,
    off_grid: str = "warn",
) -> pd.DataFrame:
    """Validate and (where documented) repair an OHLCV frame. Returns a new frame.

    ``df`` must have columns ``open, high, low, close, volume`` (extra columns are kept)
    and a datetime index (bar open). The result has a sorted, unique UTC index and
    float64 columns. ``price_range``, ``max_jump`` and ``off_grid``: see the module doc.
    """
    _check_options(gaps, nan, off_grid, price_range, max_jump)
    _check_columns(df, name)
    out = _to_utc_float(df, name)
    out = _sort_rows(out)
    out = _drop_duplicates(out, name)
    out = _handle_nonfinite(out, nan, name)
    _check_positive_prices(out, name)
    _check_plausible_prices(out, price_range, max_jump, name)
    _check_bar_consistency(out, name)
    _check_volume(out, name)
    # stacklevel 3: the warnings point at the caller of clean_ohlcv
    if off_grid != "allow":
        _check_grid(out, freq, off_grid, name, stacklevel=3)
    if freq is not None and gaps != "allow":
        out = _handle_gaps(out, freq, gaps, name, stacklevel=3)
    return out


def _check_options(gaps: str, nan: str, off_grid: str = "warn", price_range=None,
                   max_jump=None) -> None:
    if gaps not in ("warn", "raise", "allow", "fill"):
        raise ValueError(f"gaps must be warn, raise, allow or fill, not {gaps!r}")
    if nan not in ("raise", "drop"):
        raise ValueError(f"nan must be raise or drop, not {nan!r}")
    if off_grid not in ("warn", "raise", "allow"):
        raise ValueError(f"off_grid must be warn, raise or allow, not {off_grid!r}")
    if price_range is not None and not (
            len(price_range) == 2 and 0 <= price_range[0] < price_range[1]):
        raise ValueError(f"price_range must be (low, high) with 0 <= low < high, or None; "
                         f"got {price_range!r}")
    if max_jump is not None and not max_jump > 1:
        raise ValueError(f"max_jump must be a ratio above 1, or None; got {max_jump!r}")


def _check_plausible_prices(out: pd.DataFrame, price_range, max_jump, name: str) -> None:
    """Prices outside ``price_range`` or jumping more than ``max_jump`` times: ``DataError``."""
    o, h, l, c = (out[k].to_numpy() for k in PRICE_COLS)
    if price_range is not None:
        lo, hi = price_range
        bad = (np.minimum(l, np.minimum(o, c)) < lo) | (np.maximum(h, np.maximum(o, c)) > hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{name}: {int(bad.sum())} bars with prices outside {lo:g} .. {hi:g}, first "
                f"{out.index[i]} (open {o[i]:g}, high {h[i]:g}, low {l[i]:g}, close {c[i]:g}): "
                "a data error? (price_range=None accepts them)")
    if max_jump is not None and len(out):
        prev = np.concatenate([[np.nan], c[:-1]])
        body_hi, body_lo = np.maximum(o, c), np.minimum(o, c)
        with np.errstate(invalid="ignore", divide="ignore"):
            bad = ((np.maximum(h, body_hi) > max_jump * prev)
                   | (np.minimum(l, body_lo) * max_jump < prev)
                   | (h > max_jump * body_hi) | (l * max_jump < body_lo))
        if bad.any():
            i = int(np.argmax(bad))
            before = f"previous close {prev[i]:g}, " if i else ""
            raise DataError(
                f"{name}: {int(bad.sum())} bars jump more than {max_jump:g} times, first "
                f"{out.index[i]} ({before}open {o[i]:g}, high {h[i]:g}, low {l[i]:g}, close "
                f"{c[i]:g}): a data error? (max_jump=None accepts them)")


def _check_grid(out: pd.DataFrame, freq, off_grid: str, name: str, stacklevel: int) -> None:
    """Bars whose stamp is not the first bar's plus a multiple of the spacing."""
    if len(out) < 3:
        return
    ns = out.index.as_unit("ns").asi8
    if freq is not None:
        step = pd.Timedelta(freq).value
    else:
        step = int(np.median(np.diff(ns)))
        if step >= pd.Timedelta(days=1).value:
            return  # trading days, weeks, months: no fixed grid to hold bars to
    if step <= 0:
        return
    off = (ns - ns[0]) % step != 0
    if off.any():
        every = pd.Timedelta(step, "ns").to_pytimedelta()
        msg = (f"{name}: {int(off.sum())} bars off the every-{every} grid of the "
               f"first bar, first at {out.index[int(np.argmax(off))]} (off_grid='allow' "
               "accepts them)")
        if off_grid == "raise":
            raise DataError(msg)
        warnings.warn(msg, stacklevel=stacklevel + 1)


def _check_columns(df: pd.DataFrame, name: str) -> None:
    """No bars or missing OHLCV columns: ``DataError``."""
    if df is None or len(df) == 0:
        raise DataError(f"{name}: no bars")
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing columns {missing}; have {list(df.columns)}")


def _utc_index(index, name: str) -> pd.DatetimeIndex:
    """``index`` as a UTC DatetimeIndex named ``datetime``; NaT is a ``DataError``."""
    idx = to_utc_index(index)
    if idx.hasnans:
        rows = np.flatnonzero(idx.isna())
        raise DataError(f"{name}: {len(rows)} rows have no timestamp (NaT) at rows {_fmt(rows)}")
    return idx.rename("datetime")


def _to_utc_float(df: pd.DataFrame, name: str, numeric=(*OHLCV, "turnover", "adj_close")
                  ) -> pd.DataFrame:
    """A copy with a UTC index (naive taken as UTC, non-datetime or NaT a ``DataError``) and
    the known numeric columns as float64."""
    out = df.copy()
    out.index = _utc_index(out.index, name)
    for col in out.columns:
        if col in numeric:
            try:
                out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
            except (TypeError, ValueError) as exc:
                raise DataError(f"{name}: column {col!r} is not numeric: {exc}") from exc
    return out


def _sort_rows(out: pd.DataFrame) -> pd.DataFrame:
    """Out-of-order rows: sorted (a pure, stable reordering)."""
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


def _drop_duplicates(out: pd.DataFrame, name: str) -> pd.DataFrame:
    """Exact duplicate rows: one kept. Conflicting duplicates: ``DataError``."""
    dup = out.index.duplicated(keep=False)
    if not dup.any():
        return out
    groups = out[dup].groupby(level=0)
    conflicting = [ts for ts, g in groups if len(g.drop_duplicates()) > 1]
    if conflicting:
        raise DataError(
            f"{name}: {len(conflicting)} timestamps carry different bars: {_fmt(conflicting)}"
        )
    return out[~out.index.duplicated(keep="first")]


def _handle_nonfinite(out: pd.DataFrame, nan: str, name: str) -> pd.DataFrame:
    """NaN / inf in OHLCV: ``DataError``, or the rows dropped with ``nan="drop"``."""
    values = out[list(OHLCV)].to_numpy()
    bad = ~np.isfinite(values).all(axis=1)
    if not bad.any():
        return out
    if nan != "drop":
        raise DataError(
            f"{name}: {int(bad.sum())} bars have NaN or inf values: {_fmt(out.index[bad])} "
            "(pass nan='drop' to drop them)"
        )
    out = out[~bad]
    if len(out) == 0:
        raise DataError(f"{name}: every bar has a NaN")
    return out


def _check_positive_prices(out: pd.DataFrame, name: str) -> None:
    """Non-positive prices: ``DataError``."""
    lowest = np.minimum.reduce([out[k].to_numpy() for k in PRICE_COLS])
    if (lowest <= 0).any():
        raise DataError(f"{name}: non-positive prices at {_fmt(out.index[lowest <= 0])}")


def _check_bar_consistency(out: pd.DataFrame, name: str) -> None:
    """High below low, or open/close outside [low, high]: ``DataError``."""
    o, h, l, c = (out[k].to_numpy() for k in PRICE_COLS)
    inconsistent = (h < l) | (h < np.maximum(o, c)) | (l > np.minimum(o, c))
    if inconsistent.any():
        raise DataError(
            f"{name}: {int(inconsistent.sum())} bars with high below low or open/close outside "
            f"[low, high]: {_fmt(out.index[inconsistent])}"
        )


def _check_volume(out: pd.DataFrame, name: str) -> None:
    """Negative volume: ``DataError`` (zero volume is kept)."""
    v = out["volume"].to_numpy()
    if (v < 0).any():
        raise DataError(f"{name}: negative volume at {_fmt(out.index[v < 0])}")


def _handle_gaps(
    out: pd.DataFrame, freq, gaps: str, name: str, stacklevel: int = 2
) -> pd.DataFrame:
    """Gaps longer than ``freq``: warn, raise or fill, as ``gaps`` says."""
    found = find_gaps(out.index, freq)
    if not len(found):
        return out
    total = int(found["missing"].sum())
    msg = (
        f"{name}: {len(found)} gaps, {total} bars missing at {freq}; first after "
        f"{found['before'].iloc[0]}"
    )
    if gaps == "raise":
        raise DataError(msg)
    if gaps == "warn":
        warnings.warn(msg, stacklevel=stacklevel)
        return out
    return _fill_gaps(out, freq)


def _fill_gaps(out: pd.DataFrame, freq) -> pd.DataFrame:
    """Insert flat bars at the previous close, volume (and turnover) 0, on the ``freq`` grid."""
    full = pd.date_range(out.index[0], out.index[-1], freq=pd.Timedelta(freq))
    full = full.union(out.index)  # keep bars off the grid (never drop real bars)
    out = out.reindex(full)
    out.index.name = "datetime"
    close = out["close"].ffill()
    filled = out["open"].isna()
    for col in PRICE_COLS:
        out.loc[filled, col] = close[filled]
    out.loc[filled, "volume"] = 0.0
    if "turnover" in out:
        out.loc[filled, "turnover"] = 0.0
    return out.ffill()


# ------------------------------------------------------------------ tick (event) frames
TICK_PRICES = ("open", "high", "low", "close", "bid", "ask", "mid", "price")
TICK_SIZES = ("volume", "bid_size", "ask_size", "size")
TRADE_PRICE, TRADE_SIZE = "trade_price", "trade_size"
SIDES = ("trade_side", "side")
TICK_NUMERIC = (*TICK_PRICES, *TICK_SIZES, TRADE_PRICE, TRADE_SIZE, *SIDES)


def clean_ticks(df: pd.DataFrame, *, required=(), name: str = "ticks") -> pd.DataFrame:
    """Validate an event frame (trades, best bid/offer or merged events; see the module
    doc). Returns a new frame with a sorted UTC index and float64 known columns.

    ``required``: columns that must be there. Every check applies to the known columns
    that are present; other columns are kept as they are.
    """
    if df is None or len(df) == 0:
        raise DataError(f"{name}: no events")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing columns {missing}; have {list(df.columns)}")
    out = _sort_rows(_to_utc_float(df, name, numeric=TICK_NUMERIC))
    for col in TICK_PRICES:
        if col in out:
            _check_rows(out, col, ~(out[col] > 0) | ~np.isfinite(out[col]),
                        "non-positive, NaN or inf", name)
    for col in TICK_SIZES:
        if col in out:
            _check_rows(out, col, ~(out[col] >= 0) | ~np.isfinite(out[col]),
                        "negative, NaN or inf", name)
    if TRADE_PRICE in out:
        v = out[TRADE_PRICE]
        _check_rows(out, TRADE_PRICE, v.notna() & ~((v > 0) & np.isfinite(v)),
                    "non-positive or inf", name)
    if TRADE_SIZE in out:
        v = out[TRADE_SIZE]
        _check_rows(out, TRADE_SIZE, v.notna() & ~((v >= 0) & np.isfinite(v)),
                    "negative or inf", name)
    if TRADE_PRICE in out and TRADE_SIZE in out:
        _check_rows(out, TRADE_SIZE, out[TRADE_PRICE].isna() != out[TRADE_SIZE].isna(),
                    "given without trade_price (or missing where trade_price is given)", name)
    for col in SIDES:
        if col in out:
            v = out[col]
            _check_rows(out, col, v.notna() & ~v.isin((-1.0, 1.0)), "not +1, -1 or NaN", name)
    return out


def _check_rows(out: pd.DataFrame, col: str, bad, what: str, name: str) -> None:
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        raise DataError(
            f"{name}: {int(bad.sum())} events with {col} {what} at {_fmt(out.index[bad])}"
        )
