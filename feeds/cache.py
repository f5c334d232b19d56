"""Parquet download cache shared by the Bybit and Yahoo feeds.

One file per series (``bybit_linear_BTCUSDT_60.parquet``, ``yahoo_AAPL_1d_adj.parquet``) in a
folder you choose. A file holds the bars already downloaded, a sorted unique UTC index; the
range it covers is its first and last bar. :func:`cached_fetch` reads it, asks the source only
for what lies before the first or after the last cached bar, merges and writes it back.

Contract:

- **Atomic writes.** A file is written to a temporary file in the same folder and moved over
  the old one with ``os.replace``; a write that fails or is interrupted leaves the old file
  untouched (and removes its temporary file).
- **Corrupt files are moved aside, never served.** A file that cannot be read, lacks the
  OHLCV columns or fails :func:`~feeds.validate.clean_ohlcv` is renamed to
  ``<name>.corrupt-<UTC time>`` with a :class:`CacheWarning`, and the range is downloaded
  again. Nothing is deleted, so you can inspect it.
- **Changed history is detected where asked.** With ``overlap=True`` (Yahoo: dividends and
  splits rewrite adjusted history) the download re-reads the edge bar of the cache; when it
  no longer matches, the cache is dropped with a :class:`CacheWarning` and the whole range
  is downloaded again, so old and new adjustments never mix.
- **Nothing new is not an error here.** A range that returns no bars (a weekend, a symbol not
  yet listed) leaves the cache as it was; with ``stale_after`` a long range *after* the
  cache that returns nothing warns, since that is also what an offline Yahoo looks like.
  The feeds raise when the final answer has no bars at all.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .bartime import utc_timestamp
from .validate import OHLCV, clean_ohlcv

#: Step used to make cache ranges exclusive when ``overlap=False`` (timestamps are ms).
EPS = pd.Timedelta(1, "ms")


class CacheWarning(UserWarning):
    """Something about the cache needs your attention (moved aside, refetched, stale)."""


def cache_path(cache_dir, *parts) -> Path:
    """``cache_dir/<part>_<part>_....parquet`` with unsafe characters replaced by ``-``."""
    safe = [re.sub(r"[^A-Za-z0-9.=^-]+", "-", str(p)) for p in parts]
    return Path(cache_dir) / ("_".join(safe) + ".parquet")


def quarantine(path) -> Path:
    """Move a bad cache file aside to ``<name>.corrupt-<UTC time>``; returns the new path."""
    path = Path(path)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    return target


def read_cache(path, name: str = "cache") -> pd.DataFrame | None:
    """The cached bars in ``path`` (UTC index, sorted, unique), ``None`` when absent.

    A file that cannot be used is moved aside (see the module docstring) and ``None`` is
    returned, so the caller downloads again.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        df = pd.read_parquet(path)
        missing = [c for c in OHLCV if c not in df.columns]
        if missing:
            raise ValueError(f"missing columns {missing}")
        if not isinstance(df.index, pd.DatetimeIndex):
            raise ValueError("index is not a DatetimeIndex")
        df = clean_ohlcv(df, gaps="allow", name=name)
    except Exception as exc:  # any unreadable or invalid file is quarantined, never served
        moved = quarantine(path)
        warnings.warn(
            f"{name}: cache file {path} is unusable ({type(exc).__name__}: {exc}); moved it "
            f"to {moved} and downloading again",
            CacheWarning,
            stacklevel=3,
        )
        return None
    df.attrs = {}
    return df


def write_cache(path, df: pd.DataFrame) -> None:
    """Write ``df`` to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        out = df.copy()
        out.attrs = {}
        out.to_parquet(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _in_range(df: pd.DataFrame, start, end) -> pd.DataFrame:
    return df[(df.index >= start) & (df.index <= end)]


def _changed(old: pd.DataFrame, new: pd.DataFrame) -> bool:
    """True when bars present in both frames differ (relative tolerance 1e-6)."""
    common = old.index.intersection(new.index)
    if len(common) == 0:
        return False
    cols = [c for c in old.columns if c in new.columns and c in (*OHLCV, "adj_close")]
    a = old.loc[common, cols].to_numpy(dtype=np.float64)
    b = new.loc[common, cols].to_numpy(dtype=np.float64)
    return not np.allclose(a, b, rtol=1e-6, atol=0.0, equal_nan=True)


def merge_bars(old: pd.DataFrame | None, *new: pd.DataFrame) -> pd.DataFrame:
    """Union of frames, later frames winning on equal timestamps; sorted by time."""
    frames = [f for f in (old, *new) if f is not None and len(f)]
    if not frames:
        return old if old is not None else pd.DataFrame(columns=list(OHLCV))
    out = pd.concat(frames)
    out = out[~out.index.duplicated(keep="last")].sort_index(kind="stable")
    out.attrs = {}
    return out


def cached_fetch(
    path,
    fetch: Callable[[pd.Timestamp, pd.Timestamp], pd.DataFrame],
    start,
    end,
    *,
    overlap: bool = False,
    stale_after=None,
    name: str = "data",
) -> pd.DataFrame:
    """Bars in ``[start, end]`` from the cache at ``path``, downloading only what is missing.

    Params:
      - ``path``: cache file (``None`` disables the cache: one ``fetch(start, end)``).
      - ``fetch(a, b)``: downloads closed bars with open time in ``[a, b]`` (inclusive, UTC);
        may return an empty frame; raises on failure (the cache is then left untouched).
      - ``start``, ``end``: the range wanted (naive values are UTC).
      - ``overlap``: re-read the cached edge bars and refetch everything if they changed.
      - ``stale_after``: warn when a download after the cache brings nothing new although
        ``end`` is more than this after the last cached bar (None: never warn).
      - ``name``: used in messages.

    Returns the bars in ``[start, end]`` (possibly empty; the caller decides if that is an
    error). The cache stays one contiguous download: a range far from the cached one also
    fills the hole between them.
    """
    start, end = utc_timestamp(start), utc_timestamp(end)
    if path is None:
        return _in_range(fetch(start, end), start, end)
    cached = read_cache(path, name=name)
    if cached is None or len(cached) == 0:
        fresh = fetch(start, end)
        if len(fresh):
            write_cache(path, fresh)
        return _in_range(fresh, start, end)

    first, last = cached.index[0], cached.index[-1]
    pad = pd.Timedelta(0) if overlap else EPS
    parts = []
    if start < first:
        parts.append(fetch(start, first - pad))
    if end > last:
        after = fetch(last + pad, end)
        if stale_after is not None and end - last > stale_after and not (after.index > last).any():
            warnings.warn(
                f"{name}: no new bars after the cached {last} (nothing closed yet, market "
                "shut, or the source is unreachable)",
                CacheWarning,
                stacklevel=2,
            )
        parts.append(after)
    if not parts:
        return _in_range(cached, start, end)
    if overlap and any(_changed(cached, p) for p in parts):
        warnings.warn(
            f"{name}: the source changed bars that are in the cache (dividend or split "
            "adjustment?); discarding the cache and downloading the whole range again",
            CacheWarning,
            stacklevel=2,
        )
        fresh = fetch(start, end)
        if len(fresh):
            write_cache(path, fresh)
        return _in_range(fresh, start, end)
    merged = merge_bars(cached, *parts)
    if len(merged) > len(cached):
        write_cache(path, merged)
    return _in_range(merged, start, end)

