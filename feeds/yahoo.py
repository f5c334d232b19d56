"""Yahoo Finance bars through yfinance: a plain fetch function and the ``YFinanceData`` feed.

::

    data = YFinanceData(ticker="AAPL", interval="1d", fromdate=datetime(2020, 1, 1),
                        cache_dir="~/.cache/s4")

yfinance 1.7 returns MultiIndex columns (level 0 ``Price``, level 1 ``Ticker``) even for one
ticker, a tz-aware exchange-time index for intraday bars and naive dates for daily ones;
here the columns are flattened and lower-cased (``Adj Close`` -> ``adj_close``) and the
index is UTC (daily bars at 00:00 UTC of their date). yfinance answers an offline or
unknown-ticker request with an empty frame instead of an error: that raises ``DataError``.

Yahoo's intraday limits are checked before asking (``now`` is the current time):

========================  ===========================================================
interval                  what Yahoo serves
========================  ===========================================================
``1m``                    the last 30 days, at most 7 days per request (split here)
``2m 5m 15m 30m 90m``     the last 60 days
``60m`` / ``1h``          the last 730 days
========================  ===========================================================
"""

from __future__ import annotations

from pathlib import Path

import backtrader as bt
import pandas as pd

from .arrayfeed import ArrayData
from .bartime import to_utc_index, utc_timestamp
from .cache import cache_path, cached_fetch
from .errors import DataError
from .validate import clean_ohlcv

#: yfinance interval -> (bar length, backtrader timeframe, compression)
INTERVALS = {
    "1m": (pd.Timedelta(minutes=1), bt.TimeFrame.Minutes, 1),
    "2m": (pd.Timedelta(minutes=2), bt.TimeFrame.Minutes, 2),
    "5m": (pd.Timedelta(minutes=5), bt.TimeFrame.Minutes, 5),
    "15m": (pd.Timedelta(minutes=15), bt.TimeFrame.Minutes, 15),
    "30m": (pd.Timedelta(minutes=30), bt.TimeFrame.Minutes, 30),
    "60m": (pd.Timedelta(minutes=60), bt.TimeFrame.Minutes, 60),
    "90m": (pd.Timedelta(minutes=90), bt.TimeFrame.Minutes, 90),
    "1h": (pd.Timedelta(minutes=60), bt.TimeFrame.Minutes, 60),
    "1d": (pd.Timedelta(days=1), bt.TimeFrame.Days, 1),
    "5d": (pd.Timedelta(days=5), bt.TimeFrame.Days, 5),
    "1wk": (pd.Timedelta(days=7), bt.TimeFrame.Weeks, 1),
    "1mo": (pd.DateOffset(months=1), bt.TimeFrame.Months, 1),
    "3mo": (pd.DateOffset(months=3), bt.TimeFrame.Months, 3),
}
#: intraday interval -> (how far back Yahoo serves, longest single request)
LIMITS = {
    "1m": (pd.Timedelta(days=30), pd.Timedelta(days=7)),
    **{k: (pd.Timedelta(days=60), None) for k in ("2m", "5m", "15m", "30m", "90m")},
    "60m": (pd.Timedelta(days=730), None),
    "1h": (pd.Timedelta(days=730), None),
}
_COLUMNS = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adj close": "adj_close",
    "volume": "volume",
}



def check_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ValueError(f"yfinance interval {interval!r} is not one of {', '.join(INTERVALS)}")
    return interval


def check_limits(interval: str, start, now) -> None:
    """``ValueError`` naming Yahoo's limit when ``start`` is further back than it serves."""
    if interval not in LIMITS:
        return
    back, _ = LIMITS[interval]
    earliest = utc_timestamp(now) - back
    if utc_timestamp(start) < earliest:
        raise ValueError(
            f"Yahoo serves {interval} bars only for the last {back.days} days (from "
            f"{earliest:%Y-%m-%d %H:%M} UTC); asked from {utc_timestamp(start):%Y-%m-%d %H:%M}. "
            "Use a later fromdate or a coarser interval."
        )


def flatten_columns(raw: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """yfinance's (Price, Ticker) MultiIndex columns ->
    ``open high low close [adj_close] volume``."""
    df = raw
    if isinstance(df.columns, pd.MultiIndex):
        price_level = next(
            (
                i
                for i in range(df.columns.nlevels)
                if {str(v).lower() for v in df.columns.get_level_values(i)} & {"close", "open"}
            ),
            None,
        )
        if price_level is None:
            raise DataError(f"yahoo:{ticker}: no price columns in {list(df.columns)}")
        for level in range(df.columns.nlevels):
            if level == price_level:
                continue
            values = set(df.columns.get_level_values(level))
            if len(values) > 1:  # several tickers: yfinance upper-cases their names
                match = ticker if ticker in values else ticker.upper()
                if match not in values:
                    raise DataError(f"yahoo:{ticker}: ticker not in the result ({sorted(values)})")
                df = df.xs(match, axis=1, level=level, drop_level=False)
        df = df.copy()
        df.columns = df.columns.get_level_values(price_level)
    out = df.rename(columns=lambda c: str(c).strip().lower())
    keep = [c for c in out.columns if c in _COLUMNS]
    return out[keep].rename(columns=_COLUMNS)


def fetch_yfinance(
    ticker: str,
    interval: str = "1d",
    start=None,
    end=None,
    *,
    auto_adjust: bool = True,
    downloader=None,
    now=None,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Closed Yahoo bars with open time in ``[start, end]`` (inclusive) as a clean OHLCV frame.

    Params:
      - ``ticker``: e.g. ``"AAPL"``; ``interval``: a yfinance code (``1m`` .. ``3mo``).
      - ``start`` (required), ``end`` (default now): naive values are UTC.
      - ``auto_adjust``: as yfinance (True: split/dividend adjusted OHLC; False adds ``adj_close``).
      - ``downloader``: callable with ``yfinance.download``'s signature (default it).
      - ``now``: the current time (tests); bars with ``open + interval > now`` are dropped.
      - ``allow_empty``: return an empty frame instead of raising ``DataError``.

    Rows yfinance pads with all-NaN prices are dropped; any other NaN raises (see
    :func:`clean_ohlcv`).
    """
    check_interval(interval)
    if start is None:
        raise ValueError("fetch_yfinance needs start= (Yahoo's period= is not supported)")
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    start, end = utc_timestamp(start), (now if end is None else min(utc_timestamp(end), now))
    check_limits(interval, start, now)
    if downloader is None:
        import yfinance

        downloader = yfinance.download
    step = INTERVALS[interval][0]
    chunk = LIMITS.get(interval, (None, None))[1]
    frames, lo = [], start
    while lo <= end:
        stop = end + step if chunk is None else min(end + step, lo + chunk)  # exclusive
        raw = downloader(
            ticker,
            start=lo.to_pydatetime(),
            end=stop.to_pydatetime(),
            interval=interval,
            auto_adjust=auto_adjust,
            progress=False,
        )
        if raw is not None and len(raw):
            frames.append(flatten_columns(raw, ticker))
        lo = stop
    what = f"yahoo:{ticker}:{interval}"
    if not frames:
        if allow_empty:
            return _empty()
        raise DataError(
            f"{what}: yfinance returned no rows for {start} .. {end} (offline, unknown ticker, "
            "or no trading in the range; yfinance reports these as an empty frame)"
        )
    df = pd.concat(frames)
    df.index = to_utc_index(df.index)
    prices = df[[c for c in ("open", "high", "low", "close") if c in df.columns]]
    df = df[~prices.isna().all(axis=1)]
    df = df[(df.index >= start) & (df.index <= end) & (df.index + step <= now)]
    if not len(df):
        if allow_empty:
            return _empty()
        _none(what, start, end)
    return clean_ohlcv(df, freq=None, name=what)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        columns=["open", "high", "low", "close", "volume"],
        dtype="float64",
        index=pd.DatetimeIndex([], tz="UTC", name="datetime"),
    )


def _none(what, start, end):
    raise DataError(f"{what}: no closed bars between {start} and {end}")


def load_yfinance(
    ticker,
    interval="1d",
    start=None,
    end=None,
    *,
    auto_adjust=True,
    downloader=None,
    now=None,
    cache_dir=None,
) -> pd.DataFrame:
    """:func:`fetch_yfinance` through the parquet cache in ``cache_dir`` (None = no cache).

    The cache re-reads its edge bar on each update and starts over when Yahoo has
    re-adjusted history (dividends, splits), so adjusted and unadjusted bars never mix.
    """
    check_interval(interval)
    if start is None:
        raise ValueError("load_yfinance needs start=")
    now = utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)
    end = now if end is None else min(utc_timestamp(end), now)
    what = f"yahoo:{ticker}:{interval}"

    def fetch(a, b):
        return fetch_yfinance(
            ticker,
            interval,
            a,
            b,
            auto_adjust=auto_adjust,
            downloader=downloader,
            now=now,
            allow_empty=True,
        )

    path = None
    if cache_dir is not None:
        path = cache_path(
            Path(cache_dir).expanduser(), "yahoo", ticker, interval, "adj" if auto_adjust else "raw"
        )
    stale = max(pd.Timedelta(days=4), 3 * INTERVALS[interval][0]) if "mo" not in interval else None
    df = cached_fetch(path, fetch, start, end, overlap=True, stale_after=stale, name=what)
    if not len(df):
        _none(what, utc_timestamp(start), end)
    return clean_ohlcv(df, freq=None, name=what)


class YFinanceData(ArrayData):
    """Yahoo Finance bars as a backtrader feed.

    Params:
      - ``ticker``: e.g. ``"AAPL"`` (required).
      - ``interval``: yfinance code (``"1d"`` default; ``1m 2m 5m 15m 30m 60m 90m 1h 1d 5d
        1wk 1mo 3mo``). Sets backtrader's ``timeframe``/``compression`` unless you pass them.
      - ``fromdate`` (required) / ``todate`` (default now): naive values are UTC.
      - ``auto_adjust``: adjusted OHLC (default True); False keeps raw OHLC and fills the
        ``adj_close`` line.
      - ``cache_dir``: folder for the parquet cache (None = no cache).
      - ``downloader``: callable like ``yfinance.download`` (default it); ``now``: callable
        or value giving the current time (tests).

    Lines: ``open high low close volume adj_close`` (``adj_close`` NaN when auto-adjusted).
    """

    lines = ("adj_close",)
    params = (
        ("ticker", None),
        ("interval", "1d"),
        ("auto_adjust", True),
        ("cache_dir", None),
        ("downloader", None),
        ("now", None),
    )

    def __init__(self):
        super().__init__()
        if not self.p.ticker:
            raise ValueError("YFinanceData needs ticker=, e.g. 'AAPL'")
        _, timeframe, compression = INTERVALS[check_interval(self.p.interval)]
        if self.p.timeframe == bt.TimeFrame.Days and self.p.compression == 1:
            self.p.timeframe, self.p.compression = timeframe, compression
        if self.p.fromdate is None:
            raise ValueError("YFinanceData needs fromdate=")
        if not self.p.name:
            self._name = self.p.ticker

    def _frame(self) -> pd.DataFrame:
        now = self.p.now() if callable(self.p.now) else self.p.now
        return load_yfinance(
            self.p.ticker,
            self.p.interval,
            self.p.fromdate,
            self.p.todate,
            auto_adjust=self.p.auto_adjust,
            downloader=self.p.downloader,
            now=now,
            cache_dir=self.p.cache_dir,
        )
