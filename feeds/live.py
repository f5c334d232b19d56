"""Closed Bybit candles from pybit's WebSocket kline stream, handed over through a queue.

pybit's ``WebSocket`` connects in its constructor and calls back on its own thread. The
callback here only puts the raw message on a ``queue.Queue``; parsing, validation,
de-duplication and gap repair happen on the consumer's (backtrader's) thread, so errors
surface there instead of dying inside the socket thread.

A Bybit v5 kline message::

    {"topic": "kline.60.BTCUSDT", "type": "snapshot", "ts": 1672534800123,
     "data": [{"start": 1672531200000, "end": 1672534799999, "interval": "60",
               "open": "16541.5", "close": "16560", "high": "16580", "low": "16530",
               "volume": "1234.567", "turnover": "20433333.12", "confirm": true,
               "timestamp": 1672534800100}]}

Only ``confirm: true`` entries (the candle has closed) become bars.
"""

from __future__ import annotations

import collections
import logging
import queue

import pandas as pd

from .bartime import index_to_num
from .errors import FeedError
from .validate import clean_ohlcv

logger = logging.getLogger(__name__)

_FIELDS = ("open", "high", "low", "close", "volume", "turnover")
_STOP = object()


def parse_kline_message(msg, symbol: str | None = None, interval: str | None = None) -> list:
    """Confirmed candles in a Bybit v5 kline message, oldest first.

    Returns dicts ``{"start": Timestamp (UTC, bar open), "open": float, ..., "turnover":
    float}``. Messages for another topic (or not kline messages at all, e.g. subscription
    replies) give ``[]``; a kline message that cannot be read raises ``FeedError``.
    """
    topic = msg.get("topic", "") if isinstance(msg, dict) else ""
    if not topic.startswith("kline."):
        return []
    if symbol is not None and interval is not None and topic != f"kline.{interval}.{symbol}":
        return []
    bars = []
    try:
        for item in msg["data"]:
            if item.get("confirm") is not True:
                continue
            bar = {"start": pd.Timestamp(int(item["start"]), unit="ms", tz="UTC")}
            bar.update({k: float(item[k]) for k in _FIELDS})
            bars.append(bar)
    except (KeyError, TypeError, ValueError) as exc:
        raise FeedError(f"unreadable kline message on {topic} ({exc!r}): {str(msg)[:300]}") from exc
    return sorted(bars, key=lambda b: b["start"])


def _checked(bars: list, name: str) -> list:
    """Run bars through :func:`clean_ohlcv` (same policy as history) and add ``dtnum``."""
    if not bars:
        return []
    df = pd.DataFrame(bars).set_index("start")
    df = clean_ohlcv(df, gaps="allow", name=name)
    nums = index_to_num(df.index)
    out = []
    for i, (ts, row) in enumerate(df.iterrows()):
        bar = {k: float(row[k]) for k in _FIELDS if k in row}
        bar.update(start=ts, dtnum=float(nums[i]))
        out.append(bar)
    return out


class KlineStream:
    """Queue of closed candles for one (category, symbol, interval) from the WebSocket.

    Params:
      - ``category``, ``symbol``, ``interval``: as for the REST call (``interval`` a code).
      - ``testnet``: passed to the WebSocket factory.
      - ``ws_factory``: ``f(channel_type=, testnet=)`` returning an object with
        ``kline_stream(interval=, symbol=, callback=)`` and ``exit()`` (optionally
        ``is_connected()``); default ``pybit.unified_trading.WebSocket``.
      - ``refetch(start, end)``: returns the closed bars in ``[start, end]`` (REST); used to
        fill a hole when a streamed candle is more than ``step`` after the last one (after a
        reconnect). ``None`` or ``step=None`` disables the repair.
    """

    def __init__(
        self, category, symbol, interval, *, testnet=False, ws_factory=None, refetch=None, step=None
    ):
        self.category, self.symbol, self.interval = category, symbol, str(interval)
        self.testnet = testnet
        self.ws_factory = ws_factory
        self.refetch = refetch
        self.step = step
        self.name = f"bybit-ws:{category}:{symbol}:{self.interval}"
        self.queue: queue.Queue = queue.Queue()
        self.stopped = False
        self.last: pd.Timestamp | None = None  # newest bar handed out (or in the backfill)
        self._pending: collections.deque = collections.deque()
        self._ws = None

    def start(self) -> None:
        """Connect and subscribe (blocks until pybit's WebSocket is connected)."""
        factory = self.ws_factory
        if factory is None:
            from pybit.unified_trading import WebSocket as factory
        try:
            self._ws = factory(channel_type=self.category, testnet=self.testnet)
            self._ws.kline_stream(
                interval=self.interval, symbol=self.symbol, callback=self.on_message
            )
        except Exception as exc:  # pybit raises websocket-client errors after its retries
            self.stop()
            raise FeedError(f"{self.name}: could not subscribe to the kline stream: {exc}") from exc

    def on_message(self, msg) -> None:
        """The WebSocket callback (runs on the socket thread): queue the raw message."""
        self.queue.put(msg)

    def mark(self, last) -> None:
        """Tell the stream the newest bar already delivered (from the history)."""
        self.last = None if last is None else pd.Timestamp(last)

    @property
    def connected(self):
        """``True``/``False`` from the WebSocket's ``is_connected()``; ``None`` if unknown."""
        if self.stopped:
            return False
        probe = getattr(self._ws, "is_connected", None)
        if probe is None:
            return None
        try:
            return bool(probe())
        except Exception:  # a socket being replaced during a reconnect
            return False

    def has_data(self) -> bool:
        return bool(self._pending) or not self.queue.empty()

    def next_bar(self, timeout: float = 0.0):
        """The next new closed bar (dict with ``dtnum``), or ``None`` if none arrived in time."""
        if self._pending:
            return self._take()
        try:
            msg = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None
        if msg is _STOP:
            return None
        for bar in _checked(parse_kline_message(msg, self.symbol, self.interval), self.name):
            self._append(bar)
        return self._take() if self._pending else None

    def _append(self, bar: dict) -> None:
        newest = self._pending[-1]["start"] if self._pending else self.last
        if newest is not None and bar["start"] <= newest:
            return  # already delivered (the backfill had it, or a repeated message)
        if (
            newest is not None
            and self.step is not None
            and self.refetch is not None
            and bar["start"] - newest > self.step
        ):
            hole = self.refetch(newest + self.step, bar["start"] - pd.Timedelta(1, "ms"))
            if len(hole):
                rows = hole.reset_index().rename(columns={hole.index.name or "index": "start"})
                for missed in _checked(rows.to_dict("records"), self.name):
                    if missed["start"] > newest:
                        self._pending.append(missed)
            logger.info("%s: filled %d missed bars before %s", self.name, len(hole), bar["start"])
        self._pending.append(bar)

    def _take(self) -> dict:
        bar = self._pending.popleft()
        self.last = bar["start"]
        return bar

    def stop(self) -> None:
        """Close the WebSocket; ``next_bar`` returns ``None`` from now on. Never raises."""
        if self.stopped:
            return
        self.stopped = True
        self.queue.put(_STOP)
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.exit()
            except Exception as exc:  # closing a broken socket must not mask the real error
                logger.warning("%s: error while closing the WebSocket: %s", self.name, exc)
