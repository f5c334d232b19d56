"""Parquet download cache shared by the Bybit and Yahoo feeds.

One file per series (``bybit_mainnet_linear_BTCUSDT_60.parquet``, ``yahoo_AAPL_1d_adj.parquet``)
in a folder you choose. A file holds the bars already downloaded, a sorted unique UTC index;
the range it covers is its first and last bar. :func:`cached_fetch` reads it, asks the source
only for what lies before the first or after the last cached bar, merges and writes it back.

Contract:

- **A file says what it holds.** With ``meta`` (Bybit: source, network, category, symbol,
  interval) the file records it and it is checked on every read: a file that records another
  series, or nothing, is moved aside to ``<name>.foreign-<UTC time>`` with a
  :class:`CacheWarning` and never served. File names keep the parts readable; when a part
  had to be changed to be safe in a file name, a hash of the exact parts is added, so two
  series never share a name.
- **One writer at a time, nothing lost.** :func:`cached_fetch` holds the file's lock
  (:func:`feeds.atomic.file_lock`, ``.<name>.lock`` beside it) from reading the cache to
  writing it back, so two processes filling the same file take turns and the second
  merges into what the first wrote, instead of overwriting it.
- **Temporary files of killed writes are cleaned.** Those of a file are removed the next
  time it is written (under its lock, so they cannot belong to a write in progress); other
  temporary files in the folder older than an hour (``STALE_TMP``) when the cache is used.

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

import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import file_lock, write_atomically
from .bartime import utc_timestamp
from .validate import OHLCV, clean_ohlcv

#: Step used to make cache ranges exclusive when ``overlap=False`` (timestamps are ms).
EPS = pd.Timedelta(1, "ms")
#: ``DataFrame.attrs`` key (stored in the parquet file) under which a file records its series.
META_KEY = "s4_cache"
#: Seconds after which a temporary file of ours is taken to be left by a killed write.
STALE_TMP = 3600.0
_TMP_NAME = re.compile(r"^\..+\.parquet\.[A-Za-z0-9_]+\.tmp$")  # write_cache's mkstemp names


class CacheWarning(UserWarning):
    """Something about the cache needs your attention (moved aside, refetched, stale)."""


def cache_path(cache_dir, *parts) -> Path:
    """``cache_dir/<part>_<part>_....parquet`` with unsafe characters replaced by ``-``.

    When a part had to change (``BTC/USDT`` and ``BTC-USDT`` would both read ``BTC-USDT``),
    ``~<hash of the exact parts>`` is added to the name so different series never collide.
    """
    raw = [str(p) for p in parts]
    safe = [re.sub(r"[^A-Za-z0-9.=^-]+", "-", p) for p in raw]
    stem = "_".join(safe)
    if safe != raw:
        stem += "~" + hashlib.sha1("\x00".join(raw).encode()).hexdigest()[:10]
    return Path(cache_dir) / (stem + ".parquet")


def quarantine(path, tag: str = "corrupt") -> Path:
    """Move a bad cache file aside to ``<name>.<tag>-<UTC time>``; returns the new path."""
    path = Path(path)
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%S%f")
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    os.replace(path, target)
    return target


def clean_stale_temporaries(folder, older_than: float = STALE_TMP) -> list[Path]:
    """Remove :func:`write_cache` temporary files older than ``older_than`` s; returns them.

    Such files are left only by a write that was killed (a failing write removes its own);
    younger ones may belong to a write in progress and are kept.
    """
    folder, removed = Path(folder), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    limit = time.time() - older_than
    for entry in entries:
        try:
            if _TMP_NAME.match(entry.name) and entry.is_file() and entry.stat().st_mtime < limit:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # gone already, or not ours to remove: leave it
    return removed


def _as_meta(meta) -> dict | None:
    return None if meta is None else json.loads(json.dumps(meta, sort_keys=True))


def read_cache(path, name: str = "cache", meta: dict | None = None) -> pd.DataFrame | None:
    """The cached bars in ``path`` (UTC index, sorted, unique), ``None`` when absent.

    A file that cannot be used, or (with ``meta``) that does not record exactly ``meta`` as
    its series, is moved aside (see the module docstring) and ``None`` is returned, so the
    caller downloads again.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        df = pd.read_parquet(path)
        held = df.attrs.get(META_KEY)
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
    if meta is not None and held != _as_meta(meta):
        moved = quarantine(path, "foreign")
        what = "records no series" if held is None else f"holds {held}"
        warnings.warn(
            f"{name}: cache file {path} {what}, not {_as_meta(meta)}; moved it to {moved} "
            "and downloading again",
            CacheWarning,
            stacklevel=3,
        )
        return None
    df.attrs = {}
    return df


def write_cache(path, df: pd.DataFrame, meta: dict | None = None) -> None:
    """Write ``df`` (recording ``meta`` as its series) to ``path`` atomically.

    The frame goes to a temporary file in the same folder, which is then moved over ``path``
    with ``os.replace``.
    """
    out = df.copy()
    out.attrs = {} if meta is None else {META_KEY: _as_meta(meta)}
    write_atomically(path, out.to_parquet)


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
    meta: dict | None = None,
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
      - ``meta``: the series, as a JSON-able dict, that the file must record (None: no check).

    Returns the bars in ``[start, end]`` (possibly empty; the caller decides if that is an
    error). The cache stays one contiguous download: a range far from the cached one also
    fills the hole between them.
    """
    start, end = utc_timestamp(start), utc_timestamp(end)
    if path is None:
        return _in_range(fetch(start, end), start, end)
    clean_stale_temporaries(Path(path).parent)
    with file_lock(path):  # read, download what is missing, write back: one process at a time
        return _fill(path, fetch, start, end, overlap, stale_after, name, meta)


def _fill(path, fetch, start, end, overlap, stale_after, name, meta) -> pd.DataFrame:
    cached = read_cache(path, name=name, meta=meta)
    if cached is None or len(cached) == 0:
        fresh = fetch(start, end)
        if len(fresh):
            write_cache(path, fresh, meta)
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
                stacklevel=3,
            )
        parts.append(after)
    if not parts:
        return _in_range(cached, start, end)
    if overlap and any(_changed(cached, p) for p in parts):
        warnings.warn(
            f"{name}: the source changed bars that are in the cache (dividend or split "
            "adjustment?); discarding the cache and downloading the whole range again",
            CacheWarning,
            stacklevel=3,
        )
        fresh = fetch(start, end)
        if len(fresh):
            write_cache(path, fresh, meta)
        return _in_range(fresh, start, end)
    merged = merge_bars(cached, *parts)
    if len(merged) > len(cached):
        write_cache(path, merged, meta)
    return _in_range(merged, start, end)
