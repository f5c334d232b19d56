"""BybitData(live=True): history backfill, then closed candles from the kline WebSocket.

Offline: the callback is fed recorded Bybit v5 kline messages, and end to end the REAL
pybit ``WebSocket`` talks to a small ``websockets`` server on 127.0.0.1 (pybit builds its
URL from the module constant ``PUBLIC_WSS``, which the test points at the local server).
"""

import json
import threading
import time
from pathlib import Path

import backtrader as bt
import pandas as pd
import pytest

import feeds
from feeds.live import KlineStream, parse_kline_message
from tests.live_helpers import local_ws_server

FIX = Path(__file__).parent / "fixtures" / "bybit"
HOUR = pd.Timedelta(hours=1)
RECORDED = json.loads((FIX / "kline_linear_BTCUSDT_60.json").read_text())
MESSAGES = json.loads((FIX / "ws_kline_60_BTCUSDT.json").read_text())
EMB = feeds.load_embedded("bybit:BTCUSDT:60")
NOW = pd.Timestamp("2023-01-03 00:00", tz="UTC")  # backfill ends with the 2023-01-02 23:00 bar
FROM = pd.Timestamp("2023-01-02 00:00", tz="UTC")
COLS = ["open", "high", "low", "close", "volume", "turnover"]


class RecordedBybit:
    """pybit-like REST session serving the recorded rows (start..end, newest first, limit)."""

    def __init__(self):
        self.rows = RECORDED["result"]["list"]
        self.calls = []

    def get_kline(self, **kw):
        self.calls.append(kw)
        rows = [r for r in self.rows if kw["start"] <= int(r[0]) <= kw["end"]][: kw["limit"]]
        return {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": kw["category"], "symbol": kw["symbol"], "list": rows},
            "retExtInfo": {},
            "time": 0,
        }


class FakeWebSocket:
    """Stands in for pybit's WebSocket: sends ``messages`` from its own thread, like pybit."""

    def __init__(self, messages, connected=None, delay=0.01):
        self.messages, self.delay = messages, delay
        self.connected = connected  # None: no is_connected(); else a list [bool] to toggle
        self.exited = False
        self.args = None

    def __call__(self, channel_type, testnet):  # the factory
        self.args = dict(channel_type=channel_type, testnet=testnet)
        if self.connected is None:
            return _NoProbe(self)
        return self

    def kline_stream(self, interval, symbol, callback):
        self.topic = f"kline.{interval}.{symbol}"

        def push():
            for m in self.messages:
                time.sleep(self.delay)
                if callable(m):
                    m()
                else:
                    callback(m)

        threading.Thread(target=push, daemon=True).start()

    def is_connected(self):
        return self.connected[0]

    def exit(self):
        self.exited = True


class _NoProbe:
    def __init__(self, ws):
        self._ws = ws

    def kline_stream(self, **kw):
        self._ws.kline_stream(**kw)

    def exit(self):
        self._ws.exit()


class Recorder(bt.Strategy):
    params = (("stop_after", 0),)

    def __init__(self):
        self.bars, self.statuses = [], []

    def notify_data(self, data, status, *args, **kwargs):
        self.statuses.append(data._getstatusname(status))

    def next(self):
        d = self.data
        self.bars.append((d.datetime.datetime(0), *(getattr(d, c)[0] for c in COLS)))
        if len(self.bars) >= self.p.stop_after:
            self.env.runstop()


def run_live(data, stop_after, limit_s=15.0):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Recorder, stop_after=stop_after)
    fired = threading.Event()  # Timer.finished is also set by cancel(): not a timeout flag

    def timeout():
        fired.set()
        cerebro.runstop()

    watchdog = threading.Timer(limit_s, timeout)
    watchdog.start()
    try:
        strat = cerebro.run()[0]
    finally:
        watchdog.cancel()
    assert not fired.is_set(), f"live run timed out after {limit_s} s with {len(strat.bars)} bars"
    return strat


def frame(bars):
    df = pd.DataFrame(bars, columns=["dt", *COLS])
    return df.set_index(pd.DatetimeIndex(df.pop("dt")).tz_localize("UTC"))


def expected(last):
    return EMB.loc[FROM : pd.Timestamp(last, tz="UTC") if isinstance(last, str) else last, COLS]


def live_data(ws_factory, **kw):
    return feeds.BybitData(
        symbol="BTCUSDT",
        interval="60",
        fromdate=FROM.to_pydatetime(),
        live=True,
        session=RecordedBybit(),
        now=NOW,
        ws_factory=ws_factory,
        qcheck=0.05,
        **kw,
    )


def message_for(ts, confirm=True):
    bar = EMB.loc[ts]
    start = int(ts.value // 1_000_000)
    item = {
        "start": start,
        "end": start + 3_599_999,
        "interval": "60",
        **{k: repr(float(bar[k])) for k in COLS},
        "confirm": confirm,
        "timestamp": start,
    }
    return {"topic": "kline.60.BTCUSDT", "data": [item], "ts": start, "type": "snapshot"}


# -- parsing --------------------------------------------------------------------------------
def test_parse_keeps_only_confirmed_candles():
    assert parse_kline_message(MESSAGES[0], "BTCUSDT", "60") == []  # confirm: false
    (bar,) = parse_kline_message(MESSAGES[1], "BTCUSDT", "60")
    assert bar["start"] == pd.Timestamp("2023-01-02 23:00", tz="UTC")
    assert {k: bar[k] for k in COLS} == {k: float(EMB.loc[bar["start"], k]) for k in COLS}
    assert parse_kline_message(MESSAGES[1], "ETHUSDT", "60") == []  # another topic
    assert parse_kline_message({"success": True, "op": "subscribe"}) == []
    broken = json.loads(json.dumps(MESSAGES[1]))
    del broken["data"][0]["close"]
    with pytest.raises(feeds.FeedError, match="unreadable kline message"):
        parse_kline_message(broken)


def test_stream_dedupes_and_times_out_with_none():
    ws = FakeWebSocket([], delay=0)
    stream = KlineStream("linear", "BTCUSDT", "60", ws_factory=ws)
    stream.start()
    stream.mark(pd.Timestamp("2023-01-02 23:00", tz="UTC"))
    for m in MESSAGES:
        stream.on_message(m)
    got = [stream.next_bar() for _ in range(len(MESSAGES))]
    starts = [b["start"] for b in got if b is not None]
    assert starts == [
        pd.Timestamp("2023-01-03 00:00", tz="UTC"),
        pd.Timestamp("2023-01-03 01:00", tz="UTC"),
    ]
    t = time.monotonic()
    assert stream.next_bar(timeout=0.05) is None and time.monotonic() - t >= 0.04
    stream.stop()
    assert ws.exited and stream.next_bar() is None


# -- in Cerebro, recorded messages ----------------------------------------------------------
@pytest.mark.slow
def test_live_cerebro_backfills_then_streams_closed_bars():
    ws = FakeWebSocket(MESSAGES)
    data = live_data(ws)
    strat = run_live(data, stop_after=26)  # 24 backfilled + 2 new closed bars
    got = frame(strat.bars)
    pd.testing.assert_frame_equal(
        got, expected("2023-01-03 01:00"), check_names=False, check_freq=False
    )
    assert got.index.is_unique and got.index.is_monotonic_increasing
    assert strat.statuses[:2] == ["DELAYED", "LIVE"]
    assert data.islive() and ws.exited and ws.args == {"channel_type": "linear", "testnet": False}
    assert data._laststatus == data.DISCONNECTED  # stop() reports the disconnect


@pytest.mark.slow
def test_live_gap_after_a_reconnect_is_filled_from_rest():
    late = pd.Timestamp("2023-01-03 03:00", tz="UTC")
    ws = FakeWebSocket([message_for(late)])
    data = live_data(ws)
    strat = run_live(data, stop_after=28)
    pd.testing.assert_frame_equal(
        frame(strat.bars), expected(late), check_names=False, check_freq=False
    )
    gap_call = data._session.calls[-1]
    assert gap_call["start"] == int(pd.Timestamp("2023-01-03 00:00", tz="UTC").value // 10**6)


@pytest.mark.slow
def test_disconnect_and_reconnect_are_notified():
    state = [True]
    seen = threading.Event()

    def drop():
        state[0] = False

    def back():
        assert seen.wait(5)
        state[0] = True

    ws = FakeWebSocket(
        [drop, back, message_for(pd.Timestamp("2023-01-03 00:00", tz="UTC"))], connected=state
    )

    class Watch(Recorder):
        def notify_data(self, data, status, *args, **kwargs):
            super().notify_data(data, status)
            if status == data.DISCONNECTED:
                seen.set()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(live_data(ws))
    cerebro.addstrategy(Watch, stop_after=25)
    watchdog = threading.Timer(15, cerebro.runstop)
    watchdog.start()
    strat = cerebro.run()[0]
    watchdog.cancel()
    assert len(strat.bars) == 25
    assert strat.statuses == ["DELAYED", "LIVE", "DISCONNECTED", "LIVE"]


# -- end to end: real pybit WebSocket against a local server --------------------------------
@pytest.fixture
def bybit_ws_server(monkeypatch):
    from websockets.exceptions import ConnectionClosed

    received = []

    def handler(conn):
        try:
            for raw in conn:
                msg = json.loads(raw)
                received.append(msg)
                if msg.get("op") == "subscribe":
                    conn.send(
                        json.dumps(
                            {
                                "success": True,
                                "ret_msg": "",
                                "conn_id": "local",
                                "req_id": msg.get("req_id", ""),
                                "op": "subscribe",
                            }
                        )
                    )
                    for m in MESSAGES:
                        conn.send(json.dumps(m))
                elif msg.get("op") == "ping":
                    conn.send(
                        json.dumps(
                            {
                                "success": True,
                                "ret_msg": "pong",
                                "op": "ping",
                                "conn_id": "local",
                                "req_id": msg.get("req_id", ""),
                            }
                        )
                    )
        except ConnectionClosed:
            pass

    import pybit.unified_trading as ut

    with local_ws_server(handler) as port:
        monkeypatch.setattr(ut, "PUBLIC_WSS",
                            f"ws://127.0.0.1:{port}/v5/public/{{CHANNEL_TYPE}}")
        yield received


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.timeout(60)
def test_end_to_end_real_pybit_websocket_against_local_server(bybit_ws_server):
    data = feeds.BybitData(
        symbol="BTCUSDT",
        interval="60",
        fromdate=FROM.to_pydatetime(),
        live=True,
        session=RecordedBybit(),
        now=NOW,
        qcheck=0.05,
    )
    strat = run_live(data, stop_after=26)
    pd.testing.assert_frame_equal(
        frame(strat.bars), expected("2023-01-03 01:00"), check_names=False, check_freq=False
    )
    assert strat.statuses[:2] == ["DELAYED", "LIVE"]
    subscribe = [m for m in bybit_ws_server if m.get("op") == "subscribe"]
    assert subscribe and subscribe[0]["args"] == ["kline.60.BTCUSDT"]
    assert data._stream.stopped and data._stream.connected is False


def test_load_returns_none_while_waiting_and_false_once_stopped():
    ws = FakeWebSocket([], delay=0)
    data = live_data(ws)
    data.start()
    results = []
    for _ in range(26):
        data.forward()
        results.append(data._load())
    assert results[:24] == [True] * 24 and results[24:] == [None, None]
    assert [n[0] for n in data.notifs] == [data.DELAYED, data.LIVE]
    data.stop()
    data.forward()
    assert data._load() is False and ws.exited
    assert data.notifs[-1][0] == data.DISCONNECTED

