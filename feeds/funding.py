"""Bybit funding rate history: paged through pybit's ``HTTP.get_funding_rate_history``, cached.

``fetch_funding_rates`` downloads the rates settled in a range; ``load_funding_rates`` adds
the parquet cache and builds a pybit session when none is given. Both return a float
Series of rates (fractions per funding interval, 0.0001 = 0.01 %) on a sorted, unique UTC
``DatetimeIndex`` of funding timestamps, named ``funding_rate``.

Bybit answers at most 200 rates a call, newest first, as ``{"symbol", "fundingRate",
"fundingRateTimestamp"}`` with strings for numbers. Paging follows the klines
(:mod:`feeds.bybit_rest`): walk backwards by ``endTime``, and never take a page to mean
"nothing more": the parts of the range on either side of a page that can still hold a rate
(marks fall on the hour, at most hourly) are asked for again until a call answers nothing.
Rate limits follow the klines' retry policy (:func:`~feeds.bybit_rest.policy_session`,
bounded retries and waiting); any other non-zero retCode is a ``FeedError`` naming the call.

Cache: one file per series, ``bybit_<network>_<category>_<symbol>_funding.parquet``, with
one column ``funding_rate``. Funding marks are sparse, so a file records the range it
covers (``covered_from``/``covered_to``, ms) with its series (source, network, category,
symbol, kind); a later call asks Bybit only for what lies outside that range. The covered
range stops ``SETTLE_LAG`` before the time of the download, so a rate Bybit had not yet
published is asked for again. Unusable or foreign files are moved aside as in
:mod:`feeds.cache`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import file_lock
from .bartime import to_utc_index, utc_timestamp
from .bybit_rest import (
    _at,
    _call,
    _ms,
    _RetryBudget,
    network_of,
    policy_session,
)
from .cache import (
    META_KEY,
    CacheWarning,
    cache_path,
    clean_stale_temporaries,
    quarantine,
    write_cache,
)
from .errors import FeedError

FUNDING_CATEGORIES = ("linear", "inverse")
PAGE_LIMIT = 200  # Bybit's most rates per call
MIN_INTERVAL = pd.Timedelta(hours=1)  # Bybit's shortest funding interval, marks on the hour
SETTLE_LAG = pd.Timedelta(hours=1)  # a rate younger than this may not be published yet
COLUMN = "funding_rate"
_MS = pd.Timedelta(1, "ms")


def check_funding_category(category) -> str:
    if category not in FUNDING_CATEGORIES:
        raise ValueError(f"Bybit funding category {category!r} is not one of "
                         f"{', '.join(FUNDING_CATEGORIES)} (spot has no funding)")
    return category


def empty_rates() -> pd.Series:
    index = pd.DatetimeIndex([], tz="UTC", name="datetime")
    return pd.Series([], index=index, name=COLUMN, dtype=np.float64)


def _parse_rows(rows: list, symbol: str, what: str) -> pd.Series:
    times, values = [], []
    for row in rows:
        try:
            if row.get("symbol", symbol) != symbol:
                raise ValueError(f"row is for symbol {row['symbol']!r}")
            t, v = int(row["fundingRateTimestamp"]), float(row["fundingRate"])
            if not math.isfinite(v):
                raise ValueError(f"rate {v}")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise FeedError(f"{what}: malformed funding row ({type(exc).__name__}: {exc}): "
                            f"{str(row)[:200]}") from exc
        times.append(t)
        values.append(v)
    index = pd.to_datetime(np.asarray(times, dtype=np.int64), unit="ms", utc=True)
    return pd.Series(values, index=pd.DatetimeIndex(index, name="datetime"), name=COLUMN,
                     dtype=np.float64)


def _combine(parts) -> pd.Series:
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return empty_rates()
    out = pd.concat(parts)
    return out[~out.index.duplicated(keep="last")].sort_index(kind="stable").rename(COLUMN)


def _closed(index: pd.DatetimeIndex, right) -> bool:
    """True when no rate can lie between the page's last one and ``right``, the next rate
    already known: they are no further apart than the page's own rates are."""
    if right is None or len(index) < 2:
        return False
    spacing = np.diff(np.sort(index.as_unit("ns").asi8)).min()
    return right - index.max() <= pd.Timedelta(int(spacing))


def fetch_funding_rates(
    session, category: str, symbol: str, start, end=None, *, now=None,
    limit: int = PAGE_LIMIT, sleep=time.sleep, clock=time.time, max_retries: int = 5,
    backoff: float = 1.0, max_wait: float = 60.0,
) -> pd.Series:  # fmt: skip
    """Funding rates with timestamp in ``[start, end]`` (inclusive; naive = UTC; ``end``
    defaults to ``now``), possibly none. ``session`` has pybit's
    ``get_funding_rate_history(**kwargs)``; ``limit``, ``sleep``, ``clock``, ``max_retries``,
    ``backoff`` and ``max_wait`` are as in :func:`feeds.bybit_rest.fetch_bybit_klines`."""
    category = check_funding_category(category)
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    start, end = utc_timestamp(start), (now if end is None else utc_timestamp(end))
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    if not 1 <= int(limit) <= PAGE_LIMIT:
        raise ValueError(f"limit must be in 1..{PAGE_LIMIT}, not {limit}")
    what = f"Bybit get_funding_rate_history {category}/{symbol}"
    session = policy_session(session)
    budget = _RetryBudget(max_retries, backoff, max_wait, sleep, clock)
    # ranges still to ask for (inclusive ms), with the known rate just after each (or None)
    pages, todo = [], [(_ms(start), _ms(end), None)]
    while todo:
        lo, hi, right = todo.pop()
        params = dict(category=category, symbol=symbol, startTime=lo, endTime=hi,
                      limit=int(limit))
        rows = _call(session, params, budget, what, method="get_funding_rate_history")
        if not rows:
            continue  # no rate in [lo, hi]
        page = _parse_rows(rows, symbol, what)
        inside = page[(page.index >= _at(lo)) & (page.index <= _at(hi))]
        if not len(inside):
            raise FeedError(f"{what}: Bybit answered {len(rows)} rates for "
                            f"[{_at(lo)}, {_at(hi)}], none of them inside it")
        pages.append(inside)
        first, last = inside.index.min(), inside.index.max()
        if last + MIN_INTERVAL <= _at(hi) and not _closed(inside.index, right):
            todo.append((_ms(last) + 1, hi, right))
        if first - MIN_INTERVAL >= _at(lo):  # popped first: the walk goes backwards
            todo.append((lo, _ms(first) - 1, first))
    return _combine(pages)


# ------------------------------------------------------------------ cache
def _meta(identity: dict, lo: pd.Timestamp, hi: pd.Timestamp) -> dict:
    return {**identity, "covered_from": _ms(lo), "covered_to": _ms(hi)}


def _read_cache(path: Path, name: str, identity: dict):
    """``(rates, covered_from, covered_to)`` from ``path``, or None (absent or moved aside)."""
    if not path.exists():
        return None
    try:
        df = pd.read_parquet(path)
        held = df.attrs.get(META_KEY)
        if list(df.columns) != [COLUMN] or not isinstance(df.index, pd.DatetimeIndex):
            raise ValueError(f"expected one column {COLUMN!r} on a DatetimeIndex")
        rates = df[COLUMN].astype(np.float64)
        rates.index = to_utc_index(rates.index)
        if not (np.isfinite(rates.to_numpy()).all() and rates.index.is_unique
                and rates.index.is_monotonic_increasing):
            raise ValueError("rates must be finite on a sorted, unique index")
    except Exception as exc:  # any unreadable or invalid file is moved aside, never served
        moved = quarantine(path)
        warnings.warn(f"{name}: cache file {path} is unusable ({type(exc).__name__}: {exc}); "
                      f"moved it to {moved} and downloading again", CacheWarning, stacklevel=3)
        return None
    want = json.loads(json.dumps(identity))
    ok = isinstance(held, dict) and {k: held.get(k) for k in want} == want
    cover = (held.get("covered_from"), held.get("covered_to")) if ok else (None, None)
    if not (ok and all(isinstance(c, int) for c in cover)):
        moved = quarantine(path, "foreign")
        warnings.warn(f"{name}: cache file {path} holds {held}, not {want} with its covered "
                      f"range; moved it to {moved} and downloading again", CacheWarning,
                      stacklevel=3)
        return None
    return rates, _at(cover[0]), _at(cover[1])


def _cached(path: Path, fetch, start, end, known_to, name: str, identity: dict) -> pd.Series:
    clean_stale_temporaries(path.parent)
    with file_lock(path):  # read, download what is missing, write back: one process at a time
        return _fill(path, fetch, start, end, known_to, name, identity)


def _fill(path: Path, fetch, start, end, known_to, name: str, identity: dict) -> pd.Series:
    found = _read_cache(path, name, identity)
    if found is None:
        rates, lo, hi, parts = empty_rates(), start, min(end, known_to), [fetch(start, end)]
    else:
        rates, lo, hi = found
        parts = []
        if start < lo:
            parts.append(fetch(start, lo - _MS))
            lo = start
        if end > hi:
            parts.append(fetch(hi + _MS, end))
            hi = max(hi, min(end, known_to))
    if parts:
        rates = _combine([rates, *parts])
        write_cache(path, rates.to_frame(COLUMN), _meta(identity, lo, hi))
    return rates


def funding_cache(cache_dir, network: str, category: str, symbol: str):
    """``(path, identity)`` of the cache file of one funding series: the file
    (``bybit_<network>_<category>_<symbol>_funding.parquet`` in ``cache_dir``) and the
    series it records besides its covered range (``source, network, category, symbol,
    kind``)."""
    key = ("bybit", network, check_funding_category(category), symbol, "funding")
    identity = dict(zip(("source", "network", "category", "symbol", "kind"), key))
    return cache_path(Path(cache_dir).expanduser(), *key), identity


def _default_session(testnet):
    from pybit.unified_trading import HTTP  # only when no session is given

    return HTTP(testnet=bool(testnet))


def load_funding_rates(
    symbol: str, start, end=None, *, category: str = "linear", session=None, cache_dir=None,
    testnet=None, now=None, allow_empty: bool = False, **fetch_kwargs,
) -> pd.Series:  # fmt: skip
    """:func:`fetch_funding_rates` through the cache in ``cache_dir`` (None = no cache).

    ``session``: a pybit ``HTTP`` (or look-alike); None builds one (``testnet`` picks the
    network, see :func:`feeds.bybit_rest.network_of`). ``end`` defaults to ``now``; rates
    after ``now`` do not exist yet. Raises ``FeedError`` when the range holds no rate,
    unless ``allow_empty``.
    """
    category = check_funding_category(category)
    if session is None:
        session = _default_session(testnet)
    network = network_of(session, testnet)
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    start = utc_timestamp(start)
    end = now if end is None else min(utc_timestamp(end), now)
    if start > end:
        raise ValueError(f"start {start} is after end {end} (or after now)")
    what = f"bybit:{category}:{symbol}:funding" + ("" if network == "mainnet" else f"@{network}")

    def fetch(a, b):
        return fetch_funding_rates(session, category, symbol, a, b, now=now, **fetch_kwargs)

    if cache_dir is None:
        rates = fetch(start, end)
    else:
        path, identity = funding_cache(cache_dir, network, category, symbol)
        rates = _cached(path, fetch, start, end, now - SETTLE_LAG, what, identity)
    rates = rates[(rates.index >= start) & (rates.index <= end)]
    if not len(rates) and not allow_empty:
        raise FeedError(f"{what}: Bybit has no funding rates between {start} and {end}")
    return rates
