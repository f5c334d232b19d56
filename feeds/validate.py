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
high < low, or open/close   ``DataError`` naming the rows
outside [low, high]
negative volume             ``DataError``
zero volume                 kept: real markets have empty bars (exchange outages)
gaps (``freq`` given)       ``gaps="warn"`` (default) warns with the count,
                            ``"raise"`` raises, ``"allow"`` is silent,
                            ``"fill"`` inserts flat bars at the previous close, volume 0
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
) -> pd.DataFrame:
    """Validate and (where documented) repair an OHLCV frame. Returns a new frame.

    ``df`` must have columns ``open, high, low, close, volume`` (extra columns are kept)
    and a datetime index (bar open). The result has a sorted, unique UTC index and
    float64 columns.
    """
    _check_options(gaps, nan)
    _check_columns(df, name)
    out = _to_utc_float(df, name)
    out = _sort_rows(out)
    out = _drop_duplicates(out, name)
    out = _handle_nonfinite(out, nan, name)
    _check_positive_prices(out, name)
    _check_bar_consistency(out, name)
    _check_volume(out, name)
    if freq is not None and gaps != "allow":
        # stacklevel 3: the warning points at the caller of clean_ohlcv
        out = _handle_gaps(out, freq, gaps, name, stacklevel=3)
    return out


def _check_options(gaps: str, nan: str) -> None:
    if gaps not in ("warn", "raise", "allow", "fill"):
        raise ValueError(f"gaps must be warn, raise, allow or fill, not {gaps!r}")
    if nan not in ("raise", "drop"):
        raise ValueError(f"nan must be raise or drop, not {nan!r}")


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
