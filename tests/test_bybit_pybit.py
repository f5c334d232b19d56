"""The Bybit broker through the real pybit clients: ``HTTP`` intercepted by ``responses``
(nothing leaves the process), the private ``WebSocket`` talking to a server on 127.0.0.1
that relays the fake exchange's pushes. Same order life cycle as the injected-client tests.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from urllib.parse import parse_qsl, urlparse

import backtrader as bt
import pytest

import feeds
from tests.fake_bybit import FakeBybit
from tests.live_helpers import local_ws_server
from tests.test_bybit_broker import Script, bars, statuses


@pytest.fixture
def private_ws_server(monkeypatch):
    from websockets.exceptions import ConnectionClosed

    conns, received = [], []
    lock = threading.Lock()
    gate = threading.Event()  # cleared: a new connection waits before it is served
    gate.set()

    def handler(conn):
        gate.wait(10)
        with lock:
            conns.append(conn)
        try:
            for raw in conn:
                msg = json.loads(raw)
                received.append(msg)
                op = msg.get("op")
                if op in ("auth", "subscribe", "ping"):
                    conn.send(json.dumps({"success": True, "ret_msg": "pong" if op == "ping"
                                          else "", "op": op, "conn_id": "local",
                                          "req_id": msg.get("req_id", "")}))
        except ConnectionClosed:
            pass
        finally:
            with lock:
                conns.remove(conn)

    def broadcast(msg):
        with lock:
            for c in list(conns):
                try:
                    c.send(json.dumps(msg))
                except ConnectionClosed:
                    pass

    import pybit.unified_trading as ut

    with local_ws_server(handler) as port:
        monkeypatch.setattr(ut, "PRIVATE_WSS", f"ws://127.0.0.1:{port}/v5/private")
        yield broadcast, received, (conns, gate)


def intercept_rest(rsps, ex):
    def handle(request):
        url = urlparse(request.url)
        if request.method == "GET":
            params = dict(parse_qsl(url.query))
        else:
            params = json.loads(request.body or "{}")
        with ex._lock:
            ex.calls.append((ex.ROUTES.get(url.path, url.path), params))
            body = ex.route(url.path, params)
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    for method in ("GET", "POST"):
        rsps.add_callback(method, re.compile(r"https://api-testnet\.bybit\.com/v5/.*"),
                          callback=handle)


class Paced(Script):
    """The script, waiting for the socket's pushes after each step (they cross a thread)."""

    def next(self):
        super().next()
        time.sleep(0.15)


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.timeout(90)
def test_order_life_cycle_through_real_pybit_http_and_websocket(private_ws_server):
    import responses

    broadcast, received, _ = private_ws_server
    ex = FakeBybit()
    ex.callbacks.append(broadcast)
    orders = {}

    def place(s):
        orders["a"] = s.buy(size=0.01, exectype=bt.Order.Limit, price=29_990.0)

    plan = {1: place, 3: lambda s: ex.trade(29_990.0, qty=0.004),
            5: lambda s: s.cancel(orders["a"])}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        intercept_rest(rsps, ex)
        store = feeds.BybitStore(api_key="key", api_secret="secret", testnet=True,
                                 symbols=("BTCUSDT",))
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
        cerebro.adddata(feeds.ArrayData(dataname=bars()), name="BTCUSDT")
        cerebro.setbroker(store.getbroker())
        cerebro.addstrategy(Paced, plan=plan)
        strat = cerebro.run(runonce=False)[0]
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Accepted", "Partial", "Canceled"]
    assert strat.getposition().size == pytest.approx(0.004) == ex.position[0]
    auth = [m for m in received if m.get("op") == "auth"]
    assert auth and auth[0]["args"][0] == "key"  # signed with the key; the secret never sent
    assert "secret" not in json.dumps(received)
    topics = sorted(a for m in received if m.get("op") == "subscribe" for a in m["args"])
    assert topics == ["execution", "order", "position", "wallet"]
    place_calls = [kw for name, kw in ex.calls if name == "place_order"]
    assert len(place_calls) == 1 and place_calls[0]["price"] == "29990"


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.timeout(90)
def test_a_fill_while_pybit_reconnects_is_re_synced_on_the_next_bar(private_ws_server):
    """The server drops the private socket; the order fills while it is down; pybit is back
    within milliseconds (re-auth, re-subscribe). The broker re-syncs on those replies, not
    on a timer (``resync_every`` is an hour here)."""
    import responses

    broadcast, received, (conns, gate) = private_ws_server
    ex = FakeBybit()
    ex.callbacks.append(broadcast)
    orders, seen = {}, {}

    def drop_and_fill(s):
        gate.clear()  # the reconnection is held until the fill has happened
        for c in list(conns):
            c.socket.shutdown(socket.SHUT_RDWR)  # the network drops: pybit reconnects
        ex.trade(29_990.0)  # the fill's pushes reach no socket
        gate.set()
        deadline = time.monotonic() + 5
        while sum(m.get("op") == "auth" for m in received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)

    plan = {1: lambda s: orders.setdefault("a", s.buy(size=0.01, exectype=bt.Order.Limit,
                                                       price=29_990.0)),
            3: drop_and_fill, 5: lambda s: seen.setdefault("pos", s.getposition().size)}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        intercept_rest(rsps, ex)
        store = feeds.BybitStore(api_key="key", api_secret="secret", testnet=True,
                                 symbols=("BTCUSDT",))
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
        cerebro.adddata(feeds.ArrayData(dataname=bars()), name="BTCUSDT")
        broker = cerebro.setbroker(store.getbroker(resync_every=3600.0))
        cerebro.addstrategy(Paced, plan=plan)
        strat = cerebro.run(runonce=False)[0]
    assert sum(m.get("op") == "auth" for m in received) == 2  # pybit did reconnect
    assert seen["pos"] == pytest.approx(0.01) == ex.position[0]
    assert broker.connects == 2
    assert statuses(strat, orders["a"].ref)[-1] == "Completed"
