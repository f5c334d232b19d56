"""Where ``s4trade train`` and ``s4trade backtest`` read their bars: one parser for ``--data``.

Accepted forms, tried in this order:

- an embedded name (``feeds.list_embedded()``, e.g. ``bybit:BTCUSDT:60``): always wins;
- a ``.csv`` / ``.parquet`` file of OHLCV bars (a ``datetime``/``timestamp``/``date``/``time``
  column or the first column is the bar open), passed through ``feeds.clean_ohlcv``. Bar
  times are ISO 8601 text with or without a zone (naive = UTC), or epoch numbers, whose
  unit (seconds, milliseconds, microseconds, nanoseconds) is told by their magnitude; a
  column that is neither is an error naming it and showing the row;
- ``bybit:SYMBOL:INTERVAL[:CATEGORY]`` (``bybit:BTCUSDT:15``, ``bybit:ETHUSDT:D:spot``), fetched
  with ``feeds.load_bybit_klines`` through the parquet cache;
- ``yahoo:TICKER:INTERVAL[:adjusted]`` (``yahoo:AAPL:1d``), fetched with
  ``feeds.load_yfinance`` (split and dividend adjusted) through the same cache.

An embedded name is the shipped sample even where Bybit or Yahoo has the same series; the
full spelling (``bybit:BTCUSDT:60:linear``, ``yahoo:AAPL:1d:adjusted``) names the fetched
and cached one (what ``s4trade data download`` fills).

Fetching needs a start date. Offline, a fetch fails at once with ``feeds.FeedError`` or
``feeds.DataError`` (one line); nothing is substituted.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import feeds
from feeds.bartime import utc_timestamp

DEFAULT_CACHE = "~/.cache/s4-trading"
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
FORMS = ("an embedded name (feeds.list_embedded()), a .csv/.parquet file, "
         "bybit:SYMBOL:INTERVAL[:linear|spot|inverse] or yahoo:TICKER:INTERVAL[:adjusted]")
_TIME_COLUMNS = ("datetime", "timestamp", "date", "time", "open_time")


class SourceError(ValueError):
    """A ``--data`` value that names no usable source."""


@dataclass(frozen=True)
class Source:
    """One parsed ``--data`` value."""

    spec: str  # as written
    kind: str  # "embedded", "file", "bybit" or "yahoo"
    symbol: str  # a short name for the feed (BTCUSDT, AAPL, the file's stem)
    interval: str | None = None
    category: str | None = None
    path: Path | None = None

    @property
    def remote(self) -> bool:
        return self.kind in ("bybit", "yahoo")


def parse_source(spec) -> Source:
    """Parse a ``--data`` value; :class:`SourceError` says what is wrong and what is accepted."""
    text = str(spec).strip()
    if not text:
        raise SourceError(f"empty data source; use {FORMS}")
    if text in feeds.list_embedded():
        return Source(text, "embedded", text.split(":")[1])
    if text.lower().endswith(FILE_SUFFIXES) or Path(text).expanduser().is_file():
        path = Path(text).expanduser()
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise SourceError(f"{path}: only .csv and .parquet files are read")
        return Source(text, "file", path.stem, path=path)
    head, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    if head == "bybit" and len(parts) in (2, 3) and all(parts):
        from feeds.bybit_rest import check_category, check_interval

        try:
            interval = check_interval(parts[1])
            category = check_category(parts[2] if len(parts) == 3 else "linear")
        except ValueError as exc:
            raise SourceError(f"{text}: {exc}") from None
        return Source(text, "bybit", parts[0].upper(), interval, category)
    if head == "yahoo" and len(parts) in (2, 3) and all(parts):
        from feeds.yahoo import check_interval

        try:
            check_interval(parts[1])
        except ValueError as exc:
            raise SourceError(f"{text}: {exc}") from None
        if len(parts) == 3 and parts[2] != "adjusted":
            raise SourceError(f"{text}: Yahoo bars are read split and dividend adjusted; the "
                              f"fourth part can only be 'adjusted', not {parts[2]!r}")
        return Source(text, "yahoo", parts[0].upper(), parts[1])
    raise SourceError(f"unknown data source {text!r}; use {FORMS}; embedded: "
                      f"{', '.join(feeds.list_embedded())}")


def end_of(value):
    """An inclusive end: a bare date (``2021-08-31``) means the whole of that day."""
    if value is None:
        return None
    if isinstance(value, str) and len(value.strip()) <= 10:
        return utc_timestamp(value) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return utc_timestamp(value)


def check_period(fromdate=None, todate=None) -> None:
    """``ValueError`` when ``--from`` comes after ``--to``."""
    if fromdate is not None and todate is not None \
            and utc_timestamp(fromdate) > end_of(todate):
        raise ValueError(f"--from {fromdate} is after --to {todate}")


#: epoch numbers of dates in 1980 .. 2100, by unit (what a bar time column can hold)
_EPOCH_UNITS = (("s", 3.15e8, 4.11e9), ("ms", 3.15e11, 4.11e12), ("us", 3.15e14, 4.11e15),
                ("ns", 3.15e17, 4.11e18))
_TIME_HELP = ("bar times are ISO 8601 text (2024-01-01 00:00, 2024-01-01T00:00:00Z, "
              "+02:00 offsets; naive = UTC) or epoch seconds, milliseconds or microseconds")


def _bad_row(where: str, col, values: pd.Series, i: int, why: str):
    value = values.iloc[i]
    value = value.item() if hasattr(value, "item") else value  # numpy scalars as plain ones
    return feeds.DataError(f"{where}: column {col!r} is not a bar time: row {i + 1} holds "
                           f"{value!r} ({why}); {_TIME_HELP}")


def parse_bar_times(values: pd.Series, col="time", where: str = "data") -> pd.DatetimeIndex:
    """A column of bar times as a UTC ``DatetimeIndex``: ISO 8601 text with or without a
    zone (naive = UTC), or epoch numbers in seconds, milliseconds, microseconds or
    nanoseconds, told apart by magnitude (every value in one unit, dates 1980 .. 2100).
    ``feeds.DataError`` names the column and shows the first row that is neither."""
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # a parquet time column
        return feeds.to_utc_index(pd.DatetimeIndex(values))
    missing = values.isna()
    if missing.any():
        raise _bad_row(where, col, values, int(missing.to_numpy().argmax()), "empty")
    numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(
        values) else pd.Series(float("nan"), index=values.index)
    if numbers.notna().all() and len(values):
        magnitude = numbers.abs().to_numpy(dtype=float)
        for unit, lo, hi in _EPOCH_UNITS:
            inside = (magnitude >= lo) & (magnitude < hi)
            if inside[0]:
                if not inside.all():
                    raise _bad_row(where, col, values, int((~inside).argmax()),
                                   f"not epoch {unit} as the first row is")
                return pd.DatetimeIndex(pd.to_datetime(numbers.to_numpy(), unit=unit,
                                                       utc=True))
        raise _bad_row(where, col, values, 0, "a number, but not an epoch time of a date "
                                              "between 1980 and 2100 in s, ms, us or ns")
    try:
        out = pd.to_datetime(values.astype(str), utc=True, format="ISO8601", errors="coerce")
    except (ValueError, TypeError) as exc:
        raise _bad_row(where, col, values, 0, str(exc)) from None
    bad = out.isna().to_numpy()
    if bad.any():
        raise _bad_row(where, col, values, int(bad.argmax()), "not ISO 8601 text")
    return pd.DatetimeIndex(out)


def check_date(value: str) -> str:
    """``--from``/``--to`` values: ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]`` (UTC)."""
    try:
        utc_timestamp(_dt.datetime.fromisoformat(str(value).strip()))
    except ValueError:
        raise ValueError(f"{value!r} is not a date; use YYYY-MM-DD or 'YYYY-MM-DD HH:MM' "
                         "(UTC)") from None
    return str(value).strip()


def _read_file(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path) if path.suffix.lower() != ".csv" else pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure means "cannot read it"
        raise feeds.DataError(f"{path}: cannot read it ({type(exc).__name__}: {exc})") from None
    if not isinstance(df.index, pd.DatetimeIndex):
        df.columns = [str(c).strip().lower() for c in df.columns]
        if not len(df.columns):
            raise feeds.DataError(f"{path}: no columns")
        col = next((c for c in _TIME_COLUMNS if c in df.columns), df.columns[0])
        df = df.set_index(parse_bar_times(df.pop(col), col, str(path)))
    df.columns = [str(c).strip().lower() for c in df.columns]
    return feeds.clean_ohlcv(df, name=str(path))


def _fetch(src: Source, start, end, cache_dir, session, downloader) -> pd.DataFrame:
    if start is None:
        raise SourceError(f"{src.spec}: fetching needs a start date (--from)")
    cache = None if cache_dir is None else str(Path(cache_dir).expanduser())
    try:
        if src.kind == "bybit":
            if session is None:
                from pybit.unified_trading import HTTP

                session = HTTP()
            if end is not None and src.interval.isdigit():  # the last bar that can open
                end = end.floor(f"{int(src.interval)}min")  # (a cached range needs no fetch)
            elif end is not None and src.interval == "D":
                end = end.floor("D")
            return feeds.load_bybit_klines(session, src.category, src.symbol, src.interval,
                                           start, end, cache_dir=cache)
        return feeds.load_yfinance(src.symbol, src.interval, start, end, cache_dir=cache,
                                   downloader=downloader)
    except (feeds.FeedError, feeds.DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - offline, blocked, client bugs: one clear line
        raise feeds.FeedError(f"{src.spec}: could not fetch ({type(exc).__name__}: {exc}); "
                              "offline? use an embedded name or a CSV/parquet file") from None


def load_source(spec, fromdate=None, todate=None, *, cache_dir=DEFAULT_CACHE, session=None,
                downloader=None, bars_only: bool = True) -> pd.DataFrame:
    """The bars of ``spec`` (a string or :class:`Source`) with open time in [fromdate, todate]
    (inclusive, naive = UTC, a bare ``todate`` date includes its day), UTC-indexed and clean.

    ``session`` (pybit ``HTTP``) and ``downloader`` (``yfinance.download``) are for tests.
    Raises :class:`SourceError`, ``feeds.FeedError`` or ``feeds.DataError``; never returns an
    empty frame."""
    src = spec if isinstance(spec, Source) else parse_source(spec)
    check_period(fromdate, todate)
    start = None if fromdate is None else utc_timestamp(fromdate)
    end = end_of(todate)
    if src.kind == "embedded":
        if bars_only and feeds.is_tick_dataset(src.spec):
            raise SourceError(f"{src.spec} is tick data; this needs bars: "
                              f"{', '.join(feeds.list_embedded('bars'))}")
        df = feeds.load_embedded(src.spec)
    elif src.kind == "file":
        df = _read_file(src.path)
    else:
        df = _fetch(src, start, end, cache_dir, session, downloader)
    if start is not None:
        df = df[df.index >= start]
    if end is not None:
        df = df[df.index <= end]
    if not len(df):
        raise feeds.DataError(f"{src.spec}: no bars between {start or 'the start'} and "
                              f"{end or 'the end'}")
    return df


def timeframe_of(index: pd.DatetimeIndex):
    """backtrader ``(timeframe, compression)`` for bars spaced like ``index`` (the median)."""
    import backtrader as bt

    step = pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(days=1)
    minutes = max(int(round(step.total_seconds() / 60)), 1)
    if minutes < 24 * 60:
        return bt.TimeFrame.Minutes, minutes
    if minutes < 7 * 24 * 60:
        return bt.TimeFrame.Days, max(minutes // (24 * 60), 1)
    if minutes < 28 * 24 * 60:
        return bt.TimeFrame.Weeks, 1
    return bt.TimeFrame.Months, 1


def make_feed(spec, df: pd.DataFrame, fromdate=None, todate=None):
    """A backtrader feed over ``df`` (from :func:`load_source`); embedded names keep
    ``EmbeddedData`` (its timeframe and tick lines)."""
    src = spec if isinstance(spec, Source) else parse_source(spec)

    def naive(ts):
        return None if ts is None else utc_timestamp(ts).tz_localize(None).to_pydatetime()

    if src.kind == "embedded":
        return feeds.EmbeddedData(name=src.spec, fromdate=naive(fromdate),
                                  todate=naive(end_of(todate)))
    timeframe, compression = timeframe_of(df.index)
    return feeds.ArrayData(dataname=df, timeframe=timeframe, compression=compression)
