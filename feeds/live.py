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

Only ``confirm: true`` entries (the candle has closed) become bars. One unreadable or
invalid candle is logged and skipped (the hole it leaves is filled over REST when the next
candle arrives); it does not end the run.

pybit 5.17 records a subscription's ``req_id`` and topic callback only *after*
``ws.send()``: a fast reply is then handled first, raises ``KeyError`` on pybit's socket
thread and closes the socket for good. The default factory avoids that race by handing
pybit one ``callback_function`` that receives every message; for any factory, a socket that
closed for good (``exited``) or stayed down too long is replaced by a new one, a bounded
number of times, then :class:`~feeds.errors.FeedError`.
"""

from __future__ import annotations

import collections
import functools
import logging
import queue
import threading
import time

import pandas as pd

from .bartime import index_to_num
from .errors import DataError, FeedError
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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
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


def pybit_websocket(channel_type, testnet, callback):
    """pybit's ``WebSocket`` with ``callback`` receiving every message (replies included)."""
    from pybit.unified_trading import WebSocket

    return WebSocket(channel_type=channel_type, testnet=testnet, callback_function=callback)


class KlineStream:
    """Queue of closed candles for one (category, symbol, interval) from the WebSocket.

    Params:
      - ``category``, ``symbol``, ``interval``: as for the REST call (``interval`` a code).
      - ``testnet``: passed to the WebSocket factory.
      - ``ws_factory``: ``f(channel_type=, testnet=)`` returning an object with
        ``kline_stream(interval=, symbol=, callback=)`` and ``exit()`` (optionally
        ``is_connected()`` and pybit's ``exited``); default :func:`pybit_websocket`.
      - ``refetch(start, end)``: returns the closed bars in ``[start, end]`` (REST); used to
        fill a hole when a streamed candle is more than ``step`` after the last one (after a
        reconnect). ``None`` or ``step=None`` disables the repair. A failing ``refetch`` is
        tried ``repair_retries`` more times (``sleep(backoff * 2**n)``), then ``FeedError``.
      - ``reconnects``: new sockets tried in a row (without a kline message between them)
        when the socket closed for good, before ``FeedError``.
      - ``dead_after``: seconds a socket may report ``exited`` before it is replaced;
        ``down_after``: seconds it may report not connected (pybit reconnecting by itself).
      - ``connect_timeout``: seconds one connect-and-subscribe may take.
    """

    def __init__(
        self, category, symbol, interval, *, testnet=False, ws_factory=None, refetch=None,
        step=None, reconnects=5, repair_retries=3, backoff=1.0, sleep=time.sleep,
        dead_after=1.0, down_after=60.0, connect_timeout=30.0,
    ):  # fmt: skip
        self.category, self.symbol, self.interval = category, symbol, str(interval)
        self.testnet = testnet
        self.ws_factory = ws_factory
        self.refetch = refetch
        self.step = step
        self.reconnects, self.repair_retries = int(reconnects), int(repair_retries)
        self.backoff, self.sleep = float(backoff), sleep
        self.dead_after, self.down_after = float(dead_after), float(down_after)
        self.connect_timeout = float(connect_timeout)
        self.name = f"bybit-ws:{category}:{symbol}:{self.interval}"
        self.queue: queue.Queue = queue.Queue()
        self.stopped = False
        self.last: pd.Timestamp | None = None  # newest bar handed out (or in the backfill)
        self._pending: collections.deque = collections.deque()
        self._ws = None
        self._gen = 0  # which socket is current: messages from replaced ones are dropped
        self._since: float | None = None  # when the current socket was first seen down
        self._tries = 0  # reconnects since the last kline message

    # -- connecting -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect and subscribe (blocks until connected, at most ``connect_timeout``)."""
        try:
            self._ws = self._open()
        except Exception as exc:  # pybit raises websocket-client errors after its retries
            self.stop()
            raise FeedError(f"{self.name}: could not subscribe to the kline stream: {exc}") from exc

    def _open(self):
        """A new subscribed socket whose messages reach the queue (bounded wait)."""
        self._gen += 1
        callback = functools.partial(self._receive, self._gen)
        box: dict = {}
        lock = threading.Lock()

        def work():
            try:
                if self.ws_factory is None:
                    ws = pybit_websocket(self.category, self.testnet, callback)
                else:
                    ws = self.ws_factory(channel_type=self.category, testnet=self.testnet)
                with lock:
                    box["ws"] = ws
                ws.kline_stream(interval=self.interval, symbol=self.symbol, callback=callback)
            except Exception as exc:
                box["error"] = exc
            with lock:
                box["done"] = True
                late = box.get("abandoned")
            if late and "ws" in box:
                self._close(box["ws"])

        worker = threading.Thread(target=work, name=f"{self.name}-connect", daemon=True)
        worker.start()
        worker.join(self.connect_timeout)
        with lock:
            box["abandoned"] = not box.get("done")
        if box["abandoned"] or "error" in box:
            if "ws" in box:
                self._close(box["ws"])
            if box["abandoned"]:
                raise FeedError(f"no subscription within {self.connect_timeout:g} s")
            raise box["error"]
        self._since = None
        return box["ws"]

    def _close(self, ws) -> None:
        try:
            ws.exit()
        except Exception as exc:  # closing a broken socket must not mask the real error
            logger.warning("%s: error while closing the WebSocket: %s", self.name, exc)

    def _receive(self, gen, msg) -> None:
        if gen == self._gen and not self.stopped:
            self.queue.put(msg)

    def on_message(self, msg) -> None:
        """The WebSocket callback (runs on the socket thread): queue the raw message."""
        self.queue.put(msg)

    def _dead(self) -> bool:
        """Whether the current socket has to be replaced (closed for good, or down too long)."""
        ws = self._ws
        if ws is None or self.connected is not False:
            self._since = None
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        limit = self.dead_after if getattr(ws, "exited", False) is True else self.down_after
        return now - self._since >= limit

    def _reconnect(self) -> None:
        """Replace a dead socket; ``FeedError`` after ``reconnects`` tries in a row."""
        old, self._ws = self._ws, None
        self._close(old)
        error = None
        while self._tries < self.reconnects:
            self.sleep(self.backoff * 2 ** min(self._tries, 5))
            self._tries += 1
            logger.warning("%s: the WebSocket closed; reconnect %d of %d",
                           self.name, self._tries, self.reconnects)  # fmt: skip
            try:
                self._ws = self._open()
                return
            except Exception as exc:
                error = exc
                logger.warning("%s: reconnect %d failed: %s", self.name, self._tries, exc)
        self.stop()
        raise FeedError(
            f"{self.name}: the WebSocket closed and {self.reconnects} reconnects in a row "
            f"brought no data back (last error: {error})"
        )

    def mark(self, last) -> None:
        """Tell the stream the newest bar already delivered (from the history)."""
        self.last = None if last is None else pd.Timestamp(last)

    @property
    def connected(self):
        """``True``/``False`` from the WebSocket's ``is_connected()``; ``None`` if unknown."""
        if self.stopped or self._ws is None:
            return False
        if getattr(self._ws, "exited", False) is True:
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

    # -- reading --------------------------------------------------------------------------
    def next_bar(self, timeout: float = 0.0):
        """The next new closed bar (dict with ``dtnum``), or ``None`` if none arrived in time.

        Raises ``FeedError`` when the socket cannot be brought back, Bybit refuses the
        subscription, or the missed bars cannot be fetched; the stream is stopped then.
        """
        if self._pending:
            return self._take()
        if not self.stopped and self._dead():
            self._reconnect()
        try:
            msg = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return None
        if msg is _STOP:
            return None
        self._check_reply(msg)
        for bar in self._bars(msg):
            self._append(bar)
        return self._take() if self._pending else None

    def _check_reply(self, msg) -> None:
        if isinstance(msg, dict) and msg.get("op") == "subscribe" and msg.get("success") is False:
            self.stop()
            raise FeedError(f"{self.name}: Bybit refused the subscription: {msg.get('ret_msg')}")

    def _bars(self, msg) -> list:
        """Checked bars of one message; an unreadable or invalid candle is logged, skipped."""
        if not (isinstance(msg, dict) and str(msg.get("topic", "")).startswith("kline.")):
            return []
        self._tries = 0  # data flows on this socket
        items = msg.get("data")
        if not isinstance(items, list):
            items = [items]
        bars = []
        for item in items:
            one = {**msg, "data": [item]}
            try:
                bars += _checked(parse_kline_message(one, self.symbol, self.interval), self.name)
            except (FeedError, DataError) as exc:
                logger.error("%s: rejected a bad candle (%s): %s", self.name, exc, str(item)[:300])
        return bars

    def _repair(self, start, end) -> pd.DataFrame:
        """``refetch(start, end)``, retried; ``FeedError`` when it keeps failing."""
        for attempt in range(self.repair_retries + 1):
            try:
                return self.refetch(start, end)
            except Exception as exc:
                error = exc
                logger.warning("%s: fetching the missed bars %s .. %s failed (try %d of %d): %s",
                               self.name, start, end, attempt + 1, self.repair_retries + 1,
                               exc)  # fmt: skip
                if attempt < self.repair_retries:
                    self.sleep(self.backoff * 2**attempt)
        self.stop()
        raise FeedError(
            f"{self.name}: the bars {start} .. {end} were missed by the stream and could not "
            f"be fetched over REST after {self.repair_retries + 1} tries: {error}"
        ) from error

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
            hole = self._repair(newest + self.step, bar["start"] - pd.Timedelta(1, "ms"))
            if len(hole):
                rows = hole.reset_index().rename(columns={hole.index.name or "index": "start"})
                for missed in _checked(rows.to_dict("records"), self.name):
                    if missed["start"] > newest:
                        self._pending.append(missed)
            expected = int((bar["start"] - newest) / self.step) - 1
            log = logger.info if len(hole) >= expected else logger.warning
            log("%s: filled %d of %d missed bars before %s (REST)",
                self.name, len(hole), expected, bar["start"])  # fmt: skip
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
            self._close(ws)
