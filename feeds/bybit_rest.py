"""Bybit REST history: klines paged through pybit's ``HTTP.get_kline``, validated, cached.

``fetch_bybit_klines`` pages a range (Bybit returns at most 1000 klines a call, newest first,
as strings) until every part of it is covered, retries rate limits within a bounded budget,
and returns closed bars only; ``load_bybit_klines`` adds the parquet cache, one file per
(network, category, symbol, interval) that records what it holds. The backtrader feed is
``feeds.bybit.BybitData``.

Retry policy (the one in force, also through a real ``pybit.unified_trading.HTTP``): a rate
limit (retCode 10006) is retried at most ``max_retries`` times, waiting until Bybit's
``X-Bapi-Limit-Reset-Timestamp`` when it sends one (else ``backoff * 2**n``), and never
waiting more than ``max_wait`` seconds in all; then ``FeedError`` with the retCode. pybit
would otherwise retry 10006 itself with no bound on the wait (and crash on a reset in the
past), so a pybit session is used through :func:`policy_session`, a copy with pybit's own
retry codes switched off; the caller's session is not changed.
"""

from __future__ import annotations

import copy
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
RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"  # ms epoch at which Bybit's rate limit resets
MAX_CLOCK_SKEW = 5.0  # seconds a reset may lie in the past before we blame the clock
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


class _BodyError(Exception):
    """A 200 answer whose JSON body is not an object (pybit would fail on it obscurely)."""

    def __init__(self, body):
        super().__init__(f"JSON {type(body).__name__}, not an object: {str(body)[:200]!r}")
        self.body = body


class _CheckedClient:
    """A ``requests.Session`` stand-in for pybit that refuses non-object JSON bodies."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def send(self, request, **kwargs):
        response = self._client.send(request, **kwargs)
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                return response  # not JSON at all: pybit reports that itself
            if not isinstance(body, dict):
                raise _BodyError(body)
        return response


def policy_session(session):
    """``session`` with this module's retry policy in force (see the module docstring).

    For a pybit ``HTTP`` (anything with ``retry_codes`` and ``client``) returns a shallow
    copy whose ``retry_codes`` is empty, so every non-zero retCode reaches us as
    ``InvalidRequestError`` with the response headers, and whose HTTP client refuses a JSON
    body that is not an object. Any other object is returned as it is.
    """
    if not (hasattr(session, "retry_codes") and hasattr(session, "client")):
        return session
    adapted = copy.copy(session)
    adapted.retry_codes = set()  # pybit fills in its defaults only when it is constructed
    if not isinstance(session.client, _CheckedClient):
        adapted.client = _CheckedClient(session.client)
    return adapted


def network_of(session, testnet=None) -> str:
    """``"mainnet"`` or ``"testnet"`` (``-demo`` added for pybit's demo trading).

    ``testnet=None`` takes the session's own ``testnet`` attribute (pybit's ``HTTP`` has one;
    objects without it count as mainnet); an explicit value that contradicts the session's
    raises ``ValueError``, so testnet bars are never filed as mainnet ones.
    """
    known = getattr(session, "testnet", None)
    known = known if isinstance(known, bool) else None
    if testnet is None:
        testnet = bool(known)
    elif known is not None and known != bool(testnet):
        raise ValueError(
            f"testnet={testnet!r} but the session talks to Bybit's "
            f"{'testnet' if known else 'mainnet'}; make them agree"
        )
    demo = getattr(session, "demo", False) is True
    return ("testnet" if testnet else "mainnet") + ("-demo" if demo else "")


class _RetryBudget:
    """Bounded rate-limit retries: at most ``max_retries`` per call, ``max_wait`` s in all."""

    def __init__(self, max_retries: int, backoff: float, max_wait: float, sleep, clock):
        if int(max_retries) < 0 or float(max_wait) < 0 or float(backoff) < 0:
            raise ValueError("max_retries, max_wait and backoff must not be negative")
        self.max_retries, self.backoff, self.max_wait = int(max_retries), backoff, max_wait
        self.sleep, self.clock, self.waited = sleep, clock, 0.0

    def wait(self, attempt: int, headers, why: str) -> None:
        """Sleep before retry ``attempt + 1`` or raise ``FeedError`` (``why`` names the call)."""
        if attempt >= self.max_retries:
            raise FeedError(f"{why} after {self.max_retries} retries")
        reset = (headers or {}).get(RESET_HEADER)
        if reset is None:
            delay = min(self.backoff * 2**attempt, 30.0)
        else:
            try:
                reset_at = int(reset) / 1000.0
            except (TypeError, ValueError):
                raise FeedError(f"{why}; unreadable {RESET_HEADER} header {reset!r}") from None
            delay = reset_at - self.clock()
            when = _at(int(reset)).isoformat()
            if delay < -MAX_CLOCK_SKEW:
                raise FeedError(
                    f"{why}; Bybit says the limit reset at {when}, {-delay:.0f} s in the past "
                    "by this machine's clock: check the system clock (clock skew)"
                )
            if delay > self.max_wait - self.waited:
                raise FeedError(
                    f"{why}; Bybit says the limit resets at {when}, {delay:.0f} s from now, "
                    f"beyond the retry budget (max_wait={self.max_wait} s, "
                    f"{self.waited:.1f} s already waited)"
                )
            delay = max(delay, 0.0)
        if self.waited + delay > self.max_wait:
            raise FeedError(f"{why}; retry budget max_wait={self.max_wait} s spent")
        self.waited += delay
        self.sleep(delay)


def _answer(session, params: dict, what: str, method: str = "get_kline"):
    """One call of pybit's ``method``: ``(retCode, retMsg, headers, response)``; transport
    faults raise."""
    try:
        resp = getattr(session, method)(**params)
    except InvalidRequestError as exc:  # pybit: retCode != 0 that it does not retry
        return exc.status_code, exc.message, exc.resp_headers, None
    except FailedRequestError as exc:  # pybit: HTTP status, undecodable JSON, its retries
        raise FeedError(
            f"{what}: request failed after pybit's retries: {exc.message} "
            f"(status {exc.status_code})"
        ) from exc
    except _BodyError as exc:
        raise FeedError(f"{what}: unexpected response body, {exc}") from exc
    except RequestException as exc:
        raise FeedError(f"{what}: network error: {exc}") from exc
    headers = None
    if isinstance(resp, tuple):  # pybit with record_request_time / return_response_headers
        headers = resp[2] if len(resp) > 2 else None
        resp = resp[0]
    if not isinstance(resp, dict) or "retCode" not in resp:
        raise FeedError(f"{what}: unexpected response {str(resp)[:200]!r}")
    return resp["retCode"], resp.get("retMsg", ""), headers, resp


def _call(session, params: dict, budget: _RetryBudget, what: str | None = None,
          method: str = "get_kline") -> list:
    """One request of pybit's ``method`` (klines by default), rate-limit retries included.
    Returns ``result.list``."""
    if what is None:
        what = f"Bybit get_kline {params['category']}/{params['symbol']}/{params['interval']}"
    attempt = 0
    while True:
        code, msg, headers, resp = _answer(session, params, what, method)
        if code == RATE_LIMIT_CODE:
            budget.wait(attempt, headers, f"{what}: rate limited (retCode {code}: {msg})")
            attempt += 1
            continue
        if code != 0:
            raise FeedError(f"{what}: retCode {code}: {msg}")
        try:
            return list(resp["result"]["list"])
        except (KeyError, TypeError) as exc:
            raise FeedError(f"{what}: response without result.list: {str(resp)[:200]!r}") from exc


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
    clock=time.time,
    max_retries: int = 5,
    backoff: float = 1.0,
    max_wait: float = 60.0,
    allow_empty: bool = False,
    gaps: str = "warn",
) -> pd.DataFrame:
    """Closed Bybit klines with open time in ``[start, end]`` as a clean OHLCV frame.

    Params:
      - ``session``: object with pybit's ``get_kline(**kwargs)`` (``pybit.unified_trading.HTTP``,
        used through :func:`policy_session`).
      - ``category``: ``linear``, ``spot`` or ``inverse``; ``symbol``: e.g. ``BTCUSDT``.
      - ``interval``: Bybit code (``1 3 5 15 30 60 120 240 360 720 D W M``).
      - ``start``, ``end``: bar-open bounds, inclusive (naive = UTC); ``end`` defaults to now.
      - ``now``: the current time (for tests); bars with ``open + interval > now`` are
        still open and dropped.
      - ``limit``: bars per call (Bybit's maximum, 1000). Pages are walked backwards, and a
        page is never taken to mean "nothing more": whatever run of bars a call returns,
        the parts of the range on either side of it are asked for again until a call
        returns no bars, so a server that sends fewer rows than asked loses nothing.
      - ``sleep``, ``clock``, ``max_retries``, ``backoff``, ``max_wait``: the rate-limit
        policy (retCode 10006, see the module docstring); ``clock()`` is epoch seconds,
        compared with Bybit's reset header. ``max_wait`` bounds the waiting of this call.
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
    session, budget = (
        policy_session(session),
        _RetryBudget(max_retries, backoff, max_wait, sleep, clock),
    )
    step, pages = bar_length(code), []
    todo = [(_ms(start), _ms(end))]  # ranges still to ask for, inclusive ms
    while todo:
        lo, hi = todo.pop()
        params = dict(
            category=category, symbol=symbol, interval=code, start=lo, end=hi, limit=int(limit)
        )
        rows = _call(session, params, budget)
        if not rows:
            continue  # no bar in [lo, hi]: this part of the range is done
        page = _parse_rows(rows, what)
        inside = page.index[(page.index >= _at(lo)) & (page.index <= _at(hi))]
        if not len(inside):
            raise FeedError(
                f"{what}: Bybit answered {len(rows)} bars for [{_at(lo)}, {_at(hi)}], "
                "none of them inside it"
            )
        pages.append(page)
        # A page is one contiguous run of the bars in [lo, hi] (Bybit sends the newest, so we
        # walk backwards). Full or cut short, ask again for what lies on either side of it
        # that can still hold a bar; only an empty answer ends a side.
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


def kline_cache(cache_dir, network: str, category: str, symbol: str, interval):
    """``(path, meta)`` of the cache file of one kline series: the file
    (``bybit_<network>_<category>_<symbol>_<interval>.parquet`` in ``cache_dir``) and the
    series it records (``source, network, category, symbol, interval``)."""
    key = ("bybit", network, check_category(category), symbol, check_interval(interval))
    meta = dict(zip(("source", "network", "category", "symbol", "interval"), key))
    return cache_path(Path(cache_dir).expanduser(), *key), meta


def load_bybit_klines(
    session, category, symbol, interval, start, end=None, *,
    cache_dir=None, now=None, gaps: str = "warn", testnet=None, **fetch_kwargs,
) -> pd.DataFrame:  # fmt: skip
    """:func:`fetch_bybit_klines` through the parquet cache in ``cache_dir`` (None = no cache).

    The cache file is ``bybit_<network>_<category>_<symbol>_<interval>.parquet`` and records
    that series; a file that records another one (or none) is moved aside, never served.
    ``testnet`` (None: the session's own ``testnet``, see :func:`network_of`) picks the
    network. A second call asks Bybit only for the bars before the first / after the last
    cached bar. Raises ``FeedError`` when the range holds no bars at all.
    """
    category, code = check_category(category), check_interval(interval)
    network = network_of(session, testnet)
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    end = now if end is None else utc_timestamp(end)
    what = f"bybit:{category}:{symbol}:{code}" + ("" if network == "mainnet" else f"@{network}")

    fetch = functools.partial(  # fetch(a, b): the closed bars in [a, b], maybe none
        fetch_bybit_klines, session, category, symbol, code,
        now=now, allow_empty=True, gaps="allow", **fetch_kwargs,
    )  # fmt: skip
    path = meta = None
    if cache_dir is not None:
        path, meta = kline_cache(cache_dir, network, category, symbol, code)
    df = cached_fetch(path, fetch, start, end, name=what, meta=meta)
    if not len(df):
        raise FeedError(
            f"{what}: Bybit returned no closed bars between {utc_timestamp(start)} and {end}"
        )
    freq = None if code == "M" else INTERVALS[code]
    return clean_ohlcv(df, freq=freq, gaps=gaps, name=what)
