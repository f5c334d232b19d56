"""Fill the download cache ahead of time, and say what it holds (``s4trade data``).

The feeds fetch what a run needs when Cerebro starts. These functions fetch a whole range
beforehand into the very files the feeds read (:mod:`feeds.cache` for bars,
:mod:`feeds.funding` for funding rates), so a later backtest, training or research run on
that range reads the cache and asks nothing of the network.

- **In chunks, each kept.** A range is fetched in chunks of ``chunk_bars`` bars (Bybit pages
  are 1000 bars), and each chunk is merged into the cache file as soon as it arrives, under
  the file's lock. A download that is interrupted (Ctrl-C, a lost connection) keeps every
  finished chunk.
- **Resume.** The cache is one contiguous series per file: a second download of the same
  range asks the source only for what lies before the first or after the last cached bar,
  so it fetches what is missing and nothing else.
- **Progress.** ``progress`` is a factory with tqdm's signature (``progress(total=...,
  desc=..., unit=...)`` returning an object with ``update(n)`` and ``close()``); the total is
  the number of bars of the range not yet cached.

:func:`list_cache` reads every cache file of a folder: the series it holds, its first and
last bar, its rows and its gaps (runs of missing bars).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .bartime import utc_timestamp
from .bybit_rest import (
    INTERVALS,
    check_category,
    check_interval,
    fetch_bybit_klines,
    kline_cache,
    network_of,
)
from .cache import META_KEY, cache_path, cached_fetch, read_cache
from .funding import PAGE_LIMIT as FUNDING_PAGE
from .funding import _read_cache as _read_funding
from .funding import funding_cache, load_funding_rates
from .validate import find_gaps

#: bars per chunk of a kline download: 20 Bybit pages, written to the cache together
CHUNK_BARS = 20_000
#: funding marks are at most 8 h apart on Bybit (1 h at the least): a longer spacing is a gap
FUNDING_GAP = pd.Timedelta(hours=8)
#: one funding chunk spans five full pages of 8-hourly rates
FUNDING_CHUNK = FUNDING_PAGE * 5 * FUNDING_GAP
_MOVED_ASIDE = (".corrupt-", ".foreign-")


@dataclass(frozen=True)
class Download:
    """What one download left in the cache: the whole cached series, not only the range."""

    source: str  # as ``--data`` spells it: bybit:BTCUSDT:1, yahoo:AAPL:1d, bybit:BTCUSDT:funding
    path: Path
    rows: int  # rows in the cache file now
    new: int  # rows this download added
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: int | None  # runs of missing bars in the file (None: not counted, e.g. equities)
    missing: int | None  # bars missing in those runs


def spelling(short: str, full: str) -> str:
    """How ``--data`` names a fetched series: ``short`` unless an embedded sample has that
    name (``bybit:BTCUSDT:60``, ``yahoo:AAPL:1d``), then ``full``."""
    from .embedded import list_embedded

    return full if short in list_embedded() else short


def _kline_name(symbol, code, category) -> str:
    short = f"bybit:{symbol}:{code}" + ("" if category == "linear" else f":{category}")
    return spelling(short, f"bybit:{symbol}:{code}:{category}")


def _step(interval: str) -> pd.Timedelta:
    step = INTERVALS[interval]
    return pd.Timedelta(days=31) if isinstance(step, pd.DateOffset) else step


def plan_chunks(first, last, start, end, span: pd.Timedelta) -> list[tuple]:
    """The ``(a, b)`` ranges to ask :func:`~feeds.cache.cached_fetch` for, in order, so that
    each call extends a cache holding ``[first, last]`` (``None``: empty) by at most ``span``
    towards ``[start, end]``: backwards from ``first`` to ``start``, then forwards from
    ``last`` to ``end``; nothing for what is cached."""
    if span <= pd.Timedelta(0):
        raise ValueError(f"a chunk must span some time, not {span}")
    chunks = []
    if first is None:
        a = start
        while a <= end:
            chunks.append((a, min(a + span, end)))
            a += span
        return chunks
    b = first
    while start < b:
        a = max(start, b - span)
        chunks.append((a, first))  # cached_fetch asks only for [a, first)
        b = a
    a = last
    while a < end:
        b = min(a + span, end)
        chunks.append((last, b))  # cached_fetch asks only for (last, b]
        a = b
    return chunks


def _bars(chunks, first, last, step) -> list[int]:
    """Bars each chunk may add (for the progress bar): its uncached span in bars."""
    counts = []
    for a, b in chunks:
        lo, hi = (a, b) if first is None else ((a, first) if b == first else (last, b))
        counts.append(max(int((hi - lo) / step), 1))
    return counts


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _bar(progress, total: int, desc: str):
    return _NoBar() if progress is None else progress(total=total, desc=desc, unit="bar")


def _summary(source, path, df, before: int, step) -> Download:
    if df is None or not len(df):
        return Download(source, Path(path), 0, 0, None, None, None, None)
    gaps = None if step is None else find_gaps(df.index, step)
    return Download(source, Path(path), len(df), len(df) - before, df.index[0], df.index[-1],
                    None if gaps is None else len(gaps),
                    None if gaps is None else int(gaps["missing"].sum()))


def _now(now) -> pd.Timestamp:
    return utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)


def download_klines(session, category: str, symbol: str, interval, start, end=None, *,
                    cache_dir, testnet=None, now=None, chunk_bars: int = CHUNK_BARS,
                    progress=None, **fetch_kwargs) -> Download:
    """Fill the kline cache of one Bybit series with the closed bars in ``[start, end]``
    (inclusive bar opens, naive = UTC, ``end`` defaults to now), chunk by chunk.

    ``session`` has pybit's ``get_kline`` (a ``pybit.unified_trading.HTTP``); ``testnet``
    picks the network as in :func:`feeds.bybit_rest.network_of`. Other keyword arguments
    go to :func:`~feeds.bybit_rest.fetch_bybit_klines` (the rate-limit policy).
    """
    category, code = check_category(category), check_interval(interval)
    if int(chunk_bars) < 1:
        raise ValueError(f"chunk_bars must be at least 1, not {chunk_bars}")
    network, now = network_of(session, testnet), _now(now)
    start = utc_timestamp(start)
    end = now if end is None else min(utc_timestamp(end), now)
    if start > end:
        raise ValueError(f"start {start} is after end {end} (or after now)")
    path, meta = kline_cache(cache_dir, network, category, symbol, code)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = _kline_name(symbol, code, category)
    what = source + ("" if network == "mainnet" else f"@{network}")
    fetch = functools.partial(fetch_bybit_klines, session, category, symbol, code, now=now,
                              allow_empty=True, gaps="allow", **fetch_kwargs)
    step = _step(code)
    cached = read_cache(path, name=what, meta=meta)
    first, last = (None, None) if cached is None or not len(cached) else (
        cached.index[0], cached.index[-1])
    before = 0 if cached is None else len(cached)
    chunks = plan_chunks(first, last, start, end, step * int(chunk_bars))
    counts = _bars(chunks, first, last, step)
    bar = _bar(progress, sum(counts), what)
    try:
        for (a, b), n in zip(chunks, counts):
            cached_fetch(path, fetch, a, b, name=what, meta=meta)
            bar.update(n)
    finally:
        bar.close()
    df = read_cache(path, name=what, meta=meta) if path.exists() else None
    return _summary(source, path, df, before, None if code == "M" else INTERVALS[code])


def download_funding(session, category: str, symbol: str, start, end=None, *, cache_dir,
                     testnet=None, now=None, chunk=FUNDING_CHUNK, progress=None,
                     **fetch_kwargs) -> Download:
    """Fill the funding cache of one Bybit perpetual with the rates settled in
    ``[start, end]``, chunk by chunk (``chunk``: a span of time). As
    :func:`download_klines`; the file records the range it covers, so a later call asks
    only for what lies outside it."""
    network, now = network_of(session, testnet), _now(now)
    path, identity = funding_cache(cache_dir, network, category, symbol)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = utc_timestamp(start)
    end = now if end is None else min(utc_timestamp(end), now)
    if start > end:
        raise ValueError(f"start {start} is after end {end} (or after now)")
    source = f"bybit:{symbol}:funding" + ("" if category == "linear" else f":{category}")
    what = source + ("" if network == "mainnet" else f"@{network}")
    found = _read_funding(path, what, identity)
    first, last = (None, None) if found is None else found[1:]
    before = 0 if found is None else len(found[0])
    chunks = plan_chunks(first, last, start, end, pd.Timedelta(chunk))
    counts = _bars(chunks, first, last, FUNDING_GAP)
    bar = _bar(progress, sum(counts), what)
    try:
        for (a, b), n in zip(chunks, counts):
            load_funding_rates(symbol, a, b, category=category, session=session,
                               cache_dir=cache_dir, testnet=testnet, now=now, allow_empty=True,
                               **fetch_kwargs)
            bar.update(n)
    finally:
        bar.close()
    found = _read_funding(path, what, identity) if path.exists() else None
    rates = None if found is None else found[0].to_frame()
    return _summary(source, path, rates, before, FUNDING_GAP)


def download_yahoo(ticker: str, interval: str, start, end=None, *, cache_dir,
                   downloader=None, now=None, progress=None) -> Download:
    """Fill the Yahoo cache of one ticker (adjusted prices, as the feeds and ``--data
    yahoo:…`` read them) with the bars in ``[start, end]``: one request (``1m`` in the
    7-day pieces Yahoo allows), what is cached is not asked again. Gaps are not counted:
    markets close."""
    from .yahoo import check_interval as check_yahoo
    from .yahoo import load_yfinance

    check_yahoo(interval)
    path = cache_path(Path(cache_dir).expanduser(), "yahoo", ticker, interval, "adj")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = read_cache(path, name=f"yahoo:{ticker}:{interval}")
    bar = _bar(progress, 1, f"yahoo:{ticker}:{interval}")
    try:
        load_yfinance(ticker, interval, start, end, downloader=downloader, now=now,
                      cache_dir=cache_dir)
        bar.update(1)
    finally:
        bar.close()
    df = read_cache(path, name=f"yahoo:{ticker}:{interval}")
    source = spelling(f"yahoo:{ticker}:{interval}", f"yahoo:{ticker}:{interval}:adjusted")
    return _summary(source, path, df, 0 if old is None else len(old), None)


# ------------------------------------------------------------------ what is cached
@dataclass(frozen=True)
class CacheEntry:
    """One file of the cache folder."""

    source: str  # bybit:BTCUSDT:1, bybit:BTCUSDT:funding, yahoo:AAPL:1d, or the file name
    network: str  # mainnet, testnet, ... ("" for Yahoo)
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    rows: int
    gaps: int | None
    missing: int | None
    path: Path
    note: str = ""


def _entry(path: Path) -> CacheEntry:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is listed as such
        return CacheEntry(path.name, "", None, None, 0, None, None, path,
                          f"unreadable ({type(exc).__name__}); the feeds move it aside")
    meta = df.attrs.get(META_KEY) or {}
    index = df.index if isinstance(df.index, pd.DatetimeIndex) else None
    first, last = (index[0], index[-1]) if index is not None and len(index) else (None, None)
    step, note, network = None, "", str(meta.get("network", ""))
    if meta.get("source") == "bybit" and meta.get("kind") == "funding":
        cat = "" if meta.get("category") == "linear" else f":{meta.get('category')}"
        source, step = f"bybit:{meta.get('symbol')}:funding{cat}", FUNDING_GAP
        if isinstance(meta.get("covered_to"), int):
            note = ("covers " + pd.Timestamp(meta["covered_from"], unit="ms").strftime(
                "%Y-%m-%d %H:%M") + " .. " + pd.Timestamp(meta["covered_to"], unit="ms")
                .strftime("%Y-%m-%d %H:%M"))
    elif meta.get("source") == "bybit":
        code = str(meta.get("interval"))
        source = _kline_name(meta.get("symbol"), code, meta.get("category"))
        step = INTERVALS.get(code) if code != "M" else None
    elif path.name.startswith("yahoo_") and path.stem.split("~")[0].count("_") >= 3:
        ticker, interval, kind = path.stem.split("~")[0][len("yahoo_"):].rsplit("_", 2)
        source = f"yahoo:{ticker}:{interval}"
        if kind == "adj":
            source = spelling(source, source + ":adjusted")
        else:
            note = "unadjusted (YFinanceData(auto_adjust=False))"
    else:
        source, note = path.name, "not a file of these feeds"
    gaps = None if step is None or index is None else find_gaps(index, step)
    return CacheEntry(source, network, first, last, len(df),
                      None if gaps is None else len(gaps),
                      None if gaps is None else int(gaps["missing"].sum()), path, note)


def list_cache(cache_dir) -> tuple[list[CacheEntry], list[Path]]:
    """Every cache file in ``cache_dir`` (sorted by source) and the files moved aside there
    (``.corrupt-…``, ``.foreign-…``: kept for you to inspect, never read)."""
    folder = Path(cache_dir).expanduser()
    if not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.iterdir() if p.is_file())
    entries = [_entry(p) for p in files if p.suffix == ".parquet" and not p.name.startswith(".")]
    aside = [p for p in files if any(m in p.name for m in _MOVED_ASIDE)]
    return sorted(entries, key=lambda e: (e.source, e.network)), aside
