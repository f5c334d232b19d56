"""Bybit v5 klines through pybit: a plain fetch function and the ``BybitData`` feed.

History::

    data = BybitData(symbol="BTCUSDT", category="linear", interval="60",
                     fromdate=datetime(2024, 1, 1), cache_dir="~/.cache/s4")

Live (history first, then closed candles from the WebSocket stream)::

    data = BybitData(symbol="BTCUSDT", interval="1", live=True, backfill=300)

Bars are stamped in UTC at the bar open, the still-open last candle is never served, and
everything passes :func:`~feeds.validate.clean_ohlcv`. API errors raise
:class:`~feeds.errors.FeedError` with Bybit's ``retCode``/``retMsg``; there is no fallback
to synthetic or embedded data and no empty success.
"""

from __future__ import annotations

import logging
import time

import backtrader as bt
import pandas as pd

from .arrayfeed import ArrayData
from .bartime import utc_timestamp
from .bybit_rest import (
    CATEGORIES,
    COLUMNS,
    INTERVALS,
    check_category,
    check_interval,
    empty_klines,
    fetch_bybit_klines,
    load_bybit_klines,
)
from .errors import FeedError
from .live import KlineStream

logger = logging.getLogger(__name__)

__all__ = ["BybitData", "fetch_bybit_klines", "load_bybit_klines", "check_interval",
           "CATEGORIES", "INTERVALS"]


_TIMEFRAMES = {
    "D": (bt.TimeFrame.Days, 1),
    "W": (bt.TimeFrame.Weeks, 1),
    "M": (bt.TimeFrame.Months, 1),
}


class BybitData(ArrayData):
    """Bybit klines as a backtrader feed (history, cache, and optionally the live stream).

    Params:
      - ``symbol``: e.g. ``"BTCUSDT"`` (required).
      - ``category``: ``"linear"`` (default), ``"spot"`` or ``"inverse"``.
      - ``interval``: Bybit code, ``"60"`` by default (``1 3 5 15 30 60 120 240 360 720 D W M``).
        Sets backtrader's ``timeframe``/``compression`` unless you pass them.
      - ``fromdate`` / ``todate``: bar-open bounds (naive = UTC). ``fromdate`` is required
        unless ``live=True`` (then ``backfill`` bars are loaded); ``todate`` defaults to now.
      - ``cache_dir``: folder for the parquet cache (None = no cache).
      - ``session``: object with pybit's ``get_kline``; default ``pybit.unified_trading.HTTP
        (testnet=testnet)``, created when the feed starts.
      - ``testnet``: use Bybit's testnet (default session and WebSocket).
      - ``live``: after the history, stream closed candles from the WebSocket.
      - ``backfill``: bars of history before the stream when ``fromdate`` is None (500).
      - ``ws_factory``: ``f(channel_type=, testnet=)`` returning a pybit-like WebSocket
        (``kline_stream(interval=, symbol=, callback=)``, ``exit()``); default pybit's.
      - ``now``: callable returning the current time (tests); ``sleep``: for rate-limit backoff.
      - ``gaps``: :func:`clean_ohlcv` gap policy for the history (``"warn"``).
      - ``qcheck``: seconds ``_load`` waits for a live bar before returning ``None`` (0.5).
      - ``reconnects``: new WebSockets tried in a row when the socket closed for good (5).
      - ``repair_retries``: extra tries of the REST call that fills a hole (3).

    Lines: ``open high low close volume turnover`` (+ ``openinterest`` = 0).
    Notifications (``live=True``): ``DELAYED`` while serving history, ``LIVE`` on switching
    to the stream, ``DISCONNECTED`` when the stream drops (``LIVE`` again when it is back)
    and on stop. While the stream is down the feed keeps waiting (``_load`` returns
    ``None``); a hole left by a reconnect is filled over REST before newer bars. A socket
    that closed for good is replaced (``reconnects`` tries, backing off with ``sleep``); a
    bad candle is logged and skipped (REST fills its place). When the socket cannot be
    brought back, Bybit refuses the subscription, or the hole cannot be fetched after
    ``repair_retries``, the feed notifies ``CONNBROKEN`` (the ``FeedError`` as the
    notification's argument, also in ``data.error``) and ends: never a silent hole.
    """

    lines = ("turnover",)
    params = (
        ("symbol", None),
        ("category", "linear"),
        ("interval", "60"),
        ("cache_dir", None),
        ("session", None),
        ("testnet", False),
        ("live", False),
        ("backfill", 500),
        ("ws_factory", None),
        ("now", None),
        ("sleep", time.sleep),
        ("gaps", "warn"),
        ("qcheck", 0.5),
        ("reconnects", 5),
        ("repair_retries", 3),
    )

    def __init__(self):
        super().__init__()
        if not self.p.symbol:
            raise ValueError("BybitData needs symbol=, e.g. 'BTCUSDT'")
        check_category(self.p.category)
        self._code = check_interval(self.p.interval)
        if self.p.timeframe == bt.TimeFrame.Days and self.p.compression == 1:
            if self._code in _TIMEFRAMES:
                self.p.timeframe, self.p.compression = _TIMEFRAMES[self._code]
            else:
                self.p.timeframe, self.p.compression = bt.TimeFrame.Minutes, int(self._code)
        if self.p.fromdate is None and not self.p.live:
            raise ValueError("BybitData needs fromdate= (or live=True with backfill=)")
        if not self.p.name:
            self._name = self.p.symbol
        self._stream = None
        self._session = None
        self.error = None

    # -- helpers ----------------------------------------------------------------------
    def _now(self) -> pd.Timestamp:
        now = self.p.now() if callable(self.p.now) else self.p.now
        return utc_timestamp(pd.Timestamp.now(tz="UTC") if now is None else now)

    def _get_session(self):
        if self._session is None:
            if self.p.session is not None:
                self._session = self.p.session
            else:
                from pybit.unified_trading import HTTP

                self._session = HTTP(testnet=self.p.testnet)
        return self._session

    # -- backtrader -------------------------------------------------------------------
    def islive(self):
        return bool(self.p.live)

    def _frame(self) -> pd.DataFrame:
        now = self._now()
        end = now if self.p.todate is None else min(utc_timestamp(self.p.todate), now)
        if self.p.fromdate is not None:
            start = utc_timestamp(self.p.fromdate)
        elif self.p.backfill <= 0:
            return empty_klines()
        else:
            start = now - INTERVALS[self._code] * (int(self.p.backfill) + 1)
        df = load_bybit_klines(
            self._get_session(), self.p.category, self.p.symbol, self._code, start, end,
            cache_dir=self.p.cache_dir, now=now, gaps=self.p.gaps, sleep=self.p.sleep,
            testnet=self.p.testnet,
        )  # fmt: skip
        self._hist_last = df.index[-1]
        return df

    def start(self):
        self.error = None
        if self.p.live:  # subscribe first: candles that close during the backfill are queued
            self._stream = KlineStream(
                self.p.category, self.p.symbol, self._code, testnet=self.p.testnet,
                ws_factory=self.p.ws_factory, refetch=self._refetch,
                step=None if self._code == "M" else INTERVALS[self._code],
                reconnects=self.p.reconnects, repair_retries=self.p.repair_retries,
                sleep=self.p.sleep,
            )  # fmt: skip
            self._stream.start()
        self._hist_last = None
        super().start()
        if self._stream is not None:
            self._stream.mark(self._hist_last)
        self._streaming = False
        if self.p.live:
            self.put_notification(self.DELAYED)

    def _refetch(self, start, end) -> pd.DataFrame:
        """Bars missed by the stream (after a reconnect): closed by definition at ``end``."""
        return fetch_bybit_klines(
            self._get_session(), self.p.category, self.p.symbol, self._code, start, end,
            now=end + pd.Timedelta(1, "ms"), allow_empty=True, gaps="allow", sleep=self.p.sleep,
        )  # fmt: skip

    def haslivedata(self):
        if not self.p.live:
            return False
        return self._i < self._n or (self._stream is not None and self._stream.has_data())

    def _load(self):
        if self._stream is not None and self._stream.stopped:
            return False
        if not self._streaming:
            if super()._load():
                return True
            if not self.p.live:
                return False
            self._streaming = True
            self.put_notification(self.LIVE)
        try:
            bar = self._stream.next_bar(timeout=self._qcheck)
        except FeedError as exc:  # the stream is stopped: report, end the feed
            logger.error("%s: %s", self._name, exc)
            self.error = exc
            self.put_notification(self.CONNBROKEN, exc)
            return False
        if self._stream.connected is False:
            self.put_notification(self.DISCONNECTED)
        elif self._stream.connected:
            self.put_notification(self.LIVE)
        if bar is None:
            return False if self._stream.stopped else None
        self.lines.datetime[0] = bar["dtnum"]
        for name in COLUMNS:
            getattr(self.lines, name)[0] = bar[name]
        self.lines.openinterest[0] = 0.0
        return True

    def stop(self):
        if self._stream is not None:
            self._stream.stop()
            if self.error is None:
                self.put_notification(self.DISCONNECTED)
        super().stop()
