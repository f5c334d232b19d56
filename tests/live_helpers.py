"""Live-feed stand-ins serving a DataFrame of bars: the REST history (pybit ``get_kline``)
and the kline WebSocket (closed candles pushed from a thread, as pybit's socket does)."""

from __future__ import annotations

import contextlib
import threading
import time

import pandas as pd


class FrameKlines:
    """pybit-like ``get_kline`` over ``frame`` (bar-open UTC index), newest first, strings."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.calls = []

    def get_kline(self, category, symbol, interval, start, end, limit=1000, **kw):
        self.calls.append(dict(start=start, end=end, limit=limit))
        ms = self.frame.index.as_unit("ms").asi8
        rows = [[str(m), *(repr(float(self.frame[c].iloc[i])) for c in
                           ("open", "high", "low", "close", "volume")), "0"]
                for i, m in enumerate(ms) if start <= m <= end]
        return {"retCode": 0, "retMsg": "OK", "time": 0, "retExtInfo": {},
                "result": {"category": category, "symbol": symbol, "list": rows[::-1][:limit]}}


def kline_message(ts: pd.Timestamp, row, interval="60", symbol="BTCUSDT") -> dict:
    start = int(ts.value // 1_000_000)
    item = {"start": start, "end": start + int(interval) * 60_000 - 1, "interval": interval,
            "confirm": True, "timestamp": start + int(interval) * 60_000,
            **{c: repr(float(row[c])) for c in ("open", "high", "low", "close", "volume")},
            "turnover": "0"}
    return {"topic": f"kline.{interval}.{symbol}", "type": "snapshot", "ts": start,
            "data": [item]}


class FrameKlineSocket:
    """A pybit-like kline WebSocket pushing ``frame``'s bars as closed candles, one every
    ``delay`` seconds from its own thread; ``private`` answers the private channel."""

    def __init__(self, frame: pd.DataFrame, delay=0.002, private=None):
        self.frame, self.delay, self.private = frame, delay, private
        self.exited = False

    def __call__(self, channel_type, testnet):
        if channel_type == "private":
            return self.private(channel_type=channel_type, testnet=testnet)
        return self

    def kline_stream(self, interval, symbol, callback):
        def push():
            for ts, row in self.frame.iterrows():
                if self.exited:
                    return
                time.sleep(self.delay)
                callback(kline_message(ts, row, interval, symbol))

        threading.Thread(target=push, daemon=True).start()

    def is_connected(self):
        return not self.exited

    def exit(self):
        self.exited = True


@contextlib.contextmanager
def local_ws_server(handler):
    """A ``websockets`` server on 127.0.0.1 (any free port) running ``handler(conn)`` per
    connection on its own thread; yields the port, shuts down on exit."""
    from websockets.sync.server import serve

    server = serve(handler, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        thread.join(5)


class FramesKlines:
    """``FrameKlines`` for several symbols: ``frames`` ``{symbol: frame}``."""

    def __init__(self, frames: dict):
        self.by_symbol = {s: FrameKlines(f) for s, f in frames.items()}

    def get_kline(self, category, symbol, interval, start, end, limit=1000, **kw):
        return self.by_symbol[symbol].get_kline(category, symbol, interval, start, end,
                                                limit=limit, **kw)


class FramesKlineSocket:
    """A kline WebSocket for several symbols, as Bybit sends them: each bar time's candles
    of every symbol one after another (in a seeded random order, ``delay`` seconds apart),
    before the next time's. Starts pushing once every symbol of ``frames`` subscribed."""

    def __init__(self, frames: dict, delay=0.002, seed=0):
        import numpy as np

        self.frames, self.delay = frames, delay
        self.rng = np.random.default_rng(seed)
        self.callbacks: dict = {}
        self.exited = False

    def __call__(self, channel_type, testnet):
        return self

    def kline_stream(self, interval, symbol, callback):
        self.callbacks[symbol] = (interval, callback)
        if set(self.callbacks) == set(self.frames):
            threading.Thread(target=self._push, daemon=True).start()

    def _push(self):
        index = sorted(set().union(*(f.index for f in self.frames.values())))
        for ts in index:
            for symbol in self.rng.permutation(sorted(self.frames)):
                frame = self.frames[symbol]
                if self.exited:
                    return
                if ts in frame.index:
                    time.sleep(self.delay)
                    interval, callback = self.callbacks[symbol]
                    callback(kline_message(ts, frame.loc[ts], interval, symbol))

    def is_connected(self):
        return not self.exited

    def exit(self):
        self.exited = True
