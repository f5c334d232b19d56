"""Checks and documented repairs for OHLCV frames.

Every feed passes its bars through :func:`clean_ohlcv` before backtrader sees them.
The policy, per defect:

==========================  ==========================================================
defect                      what happens
==========================  ==========================================================
index not datetime          ``DataError``
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
    if gaps not in ("warn", "raise", "allow", "fill"):
        raise ValueError(f"gaps must be warn, raise, allow or fill, not {gaps!r}")
    if nan not in ("raise", "drop"):
        raise ValueError(f"nan must be raise or drop, not {nan!r}")
    if df is None or len(df) == 0:
        raise DataError(f"{name}: no bars")
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataError(f"{name}: missing columns {missing}; have {list(df.columns)}")

    out = df.copy()
    out.index = to_utc_index(out.index)
    out.index.name = "datetime"
    for col in out.columns:
        if col in OHLCV or col in ("turnover", "adj_close"):
            try:
                out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
            except (TypeError, ValueError) as exc:
                raise DataError(f"{name}: column {col!r} is not numeric: {exc}") from exc

    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")

    dup = out.index.duplicated(keep=False)
    if dup.any():
        groups = out[dup].groupby(level=0)
        conflicting = [ts for ts, g in groups if len(g.drop_duplicates()) > 1]
        if conflicting:
            raise DataError(
                f"{name}: {len(conflicting)} timestamps carry different bars: {_fmt(conflicting)}"
            )
        out = out[~out.index.duplicated(keep="first")]

    values = out[list(OHLCV)].to_numpy()
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        if nan == "drop":
            out = out[~bad]
            if len(out) == 0:
                raise DataError(f"{name}: every bar has a NaN")
        else:
            raise DataError(
                f"{name}: {int(bad.sum())} bars have NaN or inf values: {_fmt(out.index[bad])} "
                "(pass nan='drop' to drop them)"
            )

    o, h, l, c, v = (out[k].to_numpy() for k in OHLCV)
    if (np.minimum.reduce([o, h, l, c]) <= 0).any():
        rows = out.index[np.minimum.reduce([o, h, l, c]) <= 0]
        raise DataError(f"{name}: non-positive prices at {_fmt(rows)}")
    inconsistent = (h < l) | (h < np.maximum(o, c)) | (l > np.minimum(o, c))
    if inconsistent.any():
        raise DataError(
            f"{name}: {int(inconsistent.sum())} bars with high below low or open/close outside "
            f"[low, high]: {_fmt(out.index[inconsistent])}"
        )
    if (v < 0).any():
        raise DataError(f"{name}: negative volume at {_fmt(out.index[v < 0])}")

    if freq is not None and gaps != "allow":
        found = find_gaps(out.index, freq)
        if len(found):
            total = int(found["missing"].sum())
            msg = (
                f"{name}: {len(found)} gaps, {total} bars missing at {freq}; first after "
                f"{found['before'].iloc[0]}"
            )
            if gaps == "raise":
                raise DataError(msg)
            if gaps == "warn":
                warnings.warn(msg, stacklevel=2)
            else:  # fill
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
                out = out.ffill()
    return out
