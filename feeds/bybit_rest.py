"""Bybit REST history: klines paged through pybit's ``HTTP.get_kline``, validated, cached.

``fetch_bybit_klines`` pages a range (Bybit returns at most 1000 klines a call, newest first,
as strings), retries rate limits and transient faults within a bounded budget, and returns
closed bars only; ``load_bybit_klines`` adds the parquet cache. The backtrader feed is
``feeds.bybit.BybitData``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pybit.exceptions import FailedRequestError, InvalidRequestError
from requests import RequestException

from .bartime import utc_timestamp
from .cache import cache_path, cached_fetch
from .errors import FeedError
from .validate import clean_ohlcv

CATEGORIES = ("linear", "spot", "inverse")
#: Bybit interval code -> bar length (``M`` is a calendar month).
INTERVALS = {
    **{str(m): pd.Timedelta(minutes=m) for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": pd.Timedelta(days=1),
    "W": pd.Timedelta(days=7),
    "M": pd.DateOffset(months=1),
}
PAGE_LIMIT = 1000  # Bybit's most bars per kline call
RATE_LIMIT_CODE = 10006
COLUMNS = ["open", "high", "low", "close", "volume", "turnover"]


def check_interval(interval) -> str:
    """The Bybit code for ``interval`` (``60`` and ``"60"`` are both fine) or ``ValueError``."""
    code = str(interval).upper() if str(interval).upper() in ("D", "W", "M") else str(interval)
    if code not in INTERVALS:
        raise ValueError(
            f"Bybit interval {interval!r} is not one of {', '.join(INTERVALS)} "
            "(minutes, or D/W/M for day/week/month)"
        )
    return code


def check_category(category) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"Bybit category {category!r} is not one of {', '.join(CATEGORIES)}")
    return category


def bar_length(interval):
    """``pd.Timedelta`` (or ``DateOffset`` for ``M``) of one bar."""
    return INTERVALS[check_interval(interval)]


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)



def _at(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _call(session, params: dict, *, sleep, max_retries: int, backoff: float) -> list:
    """One ``get_kline`` call, rate-limit retries included. Returns ``result.list``."""
    what = f"Bybit get_kline {params['category']}/{params['symbol']}/{params['interval']}"
    for attempt in range(max_retries + 1):
        resp = None
        try:
            resp = session.get_kline(**params)
        except InvalidRequestError as exc:  # pybit: retCode != 0 that it does not retry
            code, msg = exc.status_code, exc.message
        except FailedRequestError as exc:  # pybit: HTTP status, or its own retries spent
            raise FeedError(
                f"{what}: request failed after pybit's retries: {exc.message} "
                f"(status {exc.status_code})"
            ) from exc
        except RequestException as exc:
            raise FeedError(f"{what}: network error: {exc}") from exc
        if isinstance(resp, tuple):  # pybit with record_request_time / return_response_headers
            resp = resp[0]
        if resp is not None:
            if not isinstance(resp, dict) or "retCode" not in resp:
                raise FeedError(f"{what}: unexpected response {str(resp)[:200]!r}")
            code, msg = resp["retCode"], resp.get("retMsg", "")
        if code == RATE_LIMIT_CODE:
            if attempt < max_retries:
                sleep(min(backoff * 2**attempt, 30.0))
                continue
            raise FeedError(
                f"{what}: rate limited (retCode {code}: {msg}) after {max_retries} retries"
            )
        if code != 0:
            raise FeedError(f"{what}: retCode {code}: {msg}")
        try:
            return list(resp["result"]["list"])
        except (KeyError, TypeError) as exc:
            raise FeedError(f"{what}: response without result.list: {str(resp)[:200]!r}") from exc
    raise AssertionError("unreachable")


def _parse_rows(rows: list, what: str) -> pd.DataFrame:
    try:
        start = np.array([int(r[0]) for r in rows], dtype=np.int64)
        values = np.array([[float(x) for x in r[1:7]] for r in rows], dtype=np.float64)
    except (TypeError, ValueError, IndexError) as exc:
        raise FeedError(f"{what}: malformed kline row ({exc}): {rows[:1]!r}") from exc
    if values.shape[1:] != (6,):
        raise FeedError(f"{what}: kline rows need 7 fields, got {rows[:1]!r}")
    index = pd.DatetimeIndex(pd.to_datetime(start, unit="ms", utc=True), name="datetime")
    return pd.DataFrame(values, index=index, columns=COLUMNS)


def empty_klines() -> pd.DataFrame:
    index = pd.DatetimeIndex([], tz="UTC", name="datetime")
    return pd.DataFrame(columns=COLUMNS, index=index, dtype=np.float64)


def fetch_bybit_klines(
    session,
    category: str,
    symbol: str,
    interval,
    start,
    end=None,
    *,
    now=None,
    limit: int = PAGE_LIMIT,
    sleep=time.sleep,
    max_retries: int = 5,
    backoff: float = 1.0,
    allow_empty: bool = False,
    gaps: str = "warn",
) -> pd.DataFrame:
    """Closed Bybit klines with open time in ``[start, end]`` as a clean OHLCV frame.

    Params:
      - ``session``: object with pybit's ``get_kline(**kwargs)`` (``pybit.unified_trading.HTTP``).
      - ``category``: ``linear``, ``spot`` or ``inverse``; ``symbol``: e.g. ``BTCUSDT``.
      - ``interval``: Bybit code (``1 3 5 15 30 60 120 240 360 720 D W M``).
      - ``start``, ``end``: bar-open bounds, inclusive (naive = UTC); ``end`` defaults to now.
      - ``now``: the current time (for tests); bars with ``open + interval > now`` are
        still open and dropped.
      - ``limit``: bars per call (Bybit's maximum, 1000); pages are walked backwards.
      - ``sleep``, ``max_retries``, ``backoff``: retries of rate-limit answers (retCode
        10006) that reach us: ``sleep(backoff * 2**n)`` then ``FeedError``.
      - ``allow_empty``: return an empty frame instead of raising when there are no bars.
      - ``gaps``: passed to :func:`clean_ohlcv`.

    Returns columns ``open high low close volume turnover`` (float64) on a UTC index.
    """
    category, code = check_category(category), check_interval(interval)
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    start, end = utc_timestamp(start), (now if end is None else utc_timestamp(end))
    what = f"bybit:{category}:{symbol}:{code}"
    if not 1 <= int(limit) <= PAGE_LIMIT:
        raise ValueError(f"limit must be in 1..{PAGE_LIMIT}, not {limit}")
    step, pages = bar_length(code), []
    todo = [(_ms(start), _ms(end))]  # ranges still to ask for, inclusive ms
    while todo:
        lo, hi = todo.pop()
        params = dict(
            category=category, symbol=symbol, interval=code, start=lo, end=hi, limit=int(limit)
        )
        rows = _call(session, params, sleep=sleep, max_retries=max_retries, backoff=backoff)
        if not rows:
            continue
        page = _parse_rows(rows, what)
        pages.append(page)
        if len(rows) < int(limit):
            continue  # the whole range fitted in this page
        # A full page is one contiguous run of the bars in [lo, hi]: Bybit sends the newest
        # (so we walk backwards), but whatever run it was, ask again for what lies on
        # either side of it that can still hold a bar.
        inside = page.index[(page.index >= _at(lo)) & (page.index <= _at(hi))]
        if not len(inside):
            raise FeedError(f"{what}: a full page with no bar inside [{_at(lo)}, {_at(hi)}]")
        first, last = inside.min(), inside.max()
        if last + step <= _at(hi):
            todo.append((_ms(last) + 1, hi))
        if first - step >= _at(lo):
            todo.append((lo, _ms(first) - 1))
    df = pd.concat(pages) if pages else empty_klines()
    df = df[(df.index >= start) & (df.index <= end)]
    df = df[df.index + bar_length(code) <= now] if len(df) else df  # the still-open candle
    if not len(df):
        if allow_empty:
            return df.sort_index()
        raise FeedError(f"{what}: Bybit returned no closed bars between {start} and {end}")
    freq = None if code == "M" else INTERVALS[code]
    return clean_ohlcv(df, freq=freq, gaps=gaps, name=what)


def load_bybit_klines(
    session, category, symbol, interval, start, end=None, *,
    cache_dir=None, now=None, gaps: str = "warn", **fetch_kwargs,
) -> pd.DataFrame:  # fmt: skip
    """:func:`fetch_bybit_klines` through the parquet cache in ``cache_dir`` (None = no cache).

    A second call asks Bybit only for the bars before the first / after the last cached bar.
    Raises ``FeedError`` when the range holds no bars at all.
    """
    category, code = check_category(category), check_interval(interval)
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    end = now if end is None else utc_timestamp(end)
    what = f"bybit:{category}:{symbol}:{code}"

    fetch = functools.partial(  # fetch(a, b): the closed bars in [a, b], maybe none
        fetch_bybit_klines, session, category, symbol, code,
        now=now, allow_empty=True, gaps="allow", **fetch_kwargs,
    )  # fmt: skip
    path = None
    if cache_dir is not None:
        path = cache_path(Path(cache_dir).expanduser(), "bybit", category, symbol, code)
    df = cached_fetch(path, fetch, start, end, name=what)
    if not len(df):
        raise FeedError(
            f"{what}: Bybit returned no closed bars between {utc_timestamp(start)} and {end}"
        )
    freq = None if code == "M" else INTERVALS[code]
    return clean_ohlcv(df, freq=freq, gaps=gaps, name=what)
