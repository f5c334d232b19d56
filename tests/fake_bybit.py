"""A fake Bybit V5 account for the broker tests: REST replies and private-stream pushes.

``FakeBybit`` keeps orders, executions, one-way positions and a USDT wallet, and answers the
REST calls with Bybit V5 reply dicts (``{"retCode", "retMsg", "result", "time"}``). Three
ways in, as the broker meets the real exchange:
  - ``FakeBybit.session()``: an object with pybit ``HTTP``'s method names that raises pybit's
    ``InvalidRequestError`` on a non-zero ``retCode``, as pybit does;
  - ``FakeBybit.route(path, params)``: the V5 endpoint paths, for the real pybit client
    intercepted by ``responses``;
  - ``FakeBybit.ws_factory``: pybit-like private sockets whose callbacks get the pushes (or
    ``pushes`` for a WebSocket server on 127.0.0.1 to send).

The market is driven by the test: ``trade(price, qty)`` prints a trade that fills resting
orders it reaches (as maker) and triggers stops; market orders fill at ``price`` against
``liquidity`` (the rest is cancelled, as Bybit's IOC market orders), on arrival or, with
``market_on_trade=True``, at the next trade (an order is then open for a while, as on a
venue under load). ``split=(f1, f2, ...)`` splits every fill into executions of those
fractions of its size (on the lot grid; a real market order often fills in several).
Margin: an order needs ``qty * price / leverage`` of available balance (retCode 110007
otherwise). The private stream can ``drop()`` (pushes are lost) and ``reconnect()`` (the
sockets get pybit's ``auth`` and ``subscribe`` replies again, within the same call, as pybit
reconnects in milliseconds). Times are Bybit milliseconds from the wall clock at creation;
``get_executions`` and ``get_order_history`` filter ``startTime``/``endTime`` (on
``execTime`` and ``createdTime``) and page by ``limit``/``cursor`` as Bybit does.
"""

from __future__ import annotations

import itertools
import math
import threading
import time

SYMBOL = "BTCUSDT"


def reply(result=None, code=0, msg="OK"):
    return {"retCode": code, "retMsg": msg, "result": result if result is not None else {},
            "retExtInfo": {}, "time": 1700000000000}


class FakeBybit:
    def __init__(self, balance=10_000.0, price=30_000.0, leverage=10.0, taker=0.00055,
                 maker=0.0002, liquidity=math.inf, symbol=SYMBOL, split=None,
                 market_on_trade=False):
        self.symbol = symbol
        self.balance = float(balance)
        self.price = float(price)
        self.leverage = float(leverage)
        self.taker, self.maker = taker, maker
        self.liquidity = liquidity
        self.orders: dict[str, dict] = {}  # orderId -> record
        self.executions: list[dict] = []
        self.position = [0.0, 0.0]  # size (signed), average price
        self.calls: list[tuple[str, dict]] = []
        self.callbacks: list = []
        self.pushes: list[dict] = []  # every private message, in order
        self.connected = True
        self.lose_reply: set[str] = set()  # methods whose next reply is lost (after acting)
        self.time_ms = int(time.time() * 1000)
        self.split = tuple(split) if split else None
        self.market_on_trade = market_on_trade
        self.klines = None  # an object with get_kline (market data), e.g. FrameKlines
        self.position_first = False  # push position and wallet before order and execution
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- pushing --------------------------------------------------------------------------
    def push(self, topic, data):
        msg = {"topic": topic, "id": f"{topic}-{next(self._ids)}",
               "creationTime": self.time_ms, "data": data}
        self.pushes.append(msg)
        if self.connected:
            for cb in list(self.callbacks):
                cb(msg)

    def _push_order(self, rec):
        self.push("order", [dict(rec, category="linear")])

    def _push_account(self):
        self.push("position", [self._position_record()])
        self.push("wallet", self._wallet_list())

    # -- records --------------------------------------------------------------------------
    def _position_record(self):
        size, avg = self.position
        return {"symbol": self.symbol, "side": "Buy" if size > 0 else "Sell" if size < 0 else "",
                "size": f"{abs(size):.3f}", "avgPrice": f"{avg:.2f}" if size else "0",
                "positionIdx": 0, "category": "linear"}

    def equity(self):
        size, avg = self.position
        return self.balance + size * (self.price - avg)

    def used_margin(self):
        size, avg = self.position
        resting = sum(float(o["leavesQty"]) * float(o["price"] or self.price)
                      for o in self.orders.values() if o["orderStatus"] in ("New",
                                                                            "PartiallyFilled"))
        return (abs(size) * avg + resting) / self.leverage

    def _wallet_list(self):
        return [{"accountType": "UNIFIED", "totalEquity": f"{self.equity():.4f}",
                 "coin": [{"coin": "USDT", "walletBalance": f"{self.balance:.4f}",
                           "equity": f"{self.equity():.4f}"}]}]

    # -- REST -----------------------------------------------------------------------------
    def get_instruments_info(self, category="linear", symbol=None, **kw):
        return reply({"category": category, "list": [{
            "symbol": self.symbol, "status": "Trading",
            "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001",
                              "maxOrderQty": "100", "minNotionalValue": "5"},
            "priceFilter": {"tickSize": "0.10", "minPrice": "0.10", "maxPrice": "1999999"}}]})

    def get_wallet_balance(self, accountType="UNIFIED", coin=None, **kw):
        return reply({"list": self._wallet_list()})

    def get_positions(self, category="linear", symbol=None, **kw):
        return reply({"category": category, "list": [self._position_record()]})

    def place_order(self, category="linear", symbol=SYMBOL, side="Buy", orderType="Market",
                    qty="0", price=None, timeInForce=None, orderLinkId="", reduceOnly=False,
                    triggerPrice=None, triggerDirection=None, **kw):
        if orderLinkId and any(o["orderLinkId"] == orderLinkId for o in self.orders.values()):
            return reply(code=110072, msg="OrderLinkedID is duplicate")
        q = float(qty)
        if abs(q / 0.001 - round(q / 0.001)) > 1e-9:
            return reply(code=10001, msg="Qty invalid")
        limit = float(price) if price is not None else None
        cost = q * (limit or self.price) / self.leverage
        opening = not reduceOnly and (self.position[0] == 0 or
                                      (self.position[0] > 0) == (side == "Buy"))
        if opening and cost > self.balance - self.used_margin():
            return reply(code=110007, msg="ab not enough for new order")
        oid = f"oid-{next(self._ids)}"
        rec = {"orderId": oid, "orderLinkId": orderLinkId, "symbol": symbol, "side": side,
               "orderType": orderType, "price": price or "0", "qty": qty,
               "timeInForce": timeInForce or ("IOC" if orderType == "Market" else "GTC"),
               "orderStatus": "Untriggered" if triggerPrice else "New", "cumExecQty": "0",
               "cumExecValue": "0", "leavesQty": qty, "avgPrice": "0",
               "rejectReason": "EC_NoError", "reduceOnly": bool(reduceOnly),
               "triggerPrice": triggerPrice or "", "triggerDirection": triggerDirection or 0,
               "createdTime": str(self.time_ms), "updatedTime": str(self.time_ms)}
        self.orders[oid] = rec
        self._push_order(rec)
        if not triggerPrice:
            self._on_arrival(rec)
        return reply({"orderId": oid, "orderLinkId": orderLinkId})

    def _on_arrival(self, rec):
        buy = rec["side"] == "Buy"
        if rec["orderType"] == "Market" and self.market_on_trade:
            return  # rests until the next trade
        if rec["orderType"] == "Market":
            self._fill(rec, min(float(rec["leavesQty"]), self.liquidity), self.price, maker=False)
            if float(rec["leavesQty"]) > 0:
                self._end(rec, "Cancelled", "EC_CancelForNoFullFill")
            return
        limit = float(rec["price"])
        crosses = limit >= self.price if buy else limit <= self.price
        if crosses and rec["timeInForce"] == "PostOnly":
            self._end(rec, "Cancelled", "EC_PostOnlyWillTakeLiquidity")
        elif crosses:
            self._fill(rec, min(float(rec["leavesQty"]), self.liquidity), self.price,
                       maker=False)

    def _fill(self, rec, qty, price, maker):
        if qty <= 0:
            return
        if self.split:
            parts, left = [], round(qty, 3)
            for f in self.split[:-1]:
                part = min(round(qty * f, 3), left)
                if part > 0:
                    parts.append(part)
                    left = round(left - part, 3)
            parts.append(left)
            for part in parts:
                if part > 0:
                    self._execute(rec, part, price, maker)
            return
        self._execute(rec, qty, price, maker)

    def _execute(self, rec, qty, price, maker):
        leaves = float(rec["leavesQty"]) - qty
        cum = float(rec["cumExecQty"]) + qty
        rec["cumExecQty"], rec["leavesQty"] = f"{cum:.3f}", f"{max(leaves, 0):.3f}"
        rec["cumExecValue"] = f"{float(rec['cumExecValue']) + qty * price:.4f}"
        rec["avgPrice"] = f"{float(rec['cumExecValue']) / cum:.4f}"
        rec["orderStatus"] = "Filled" if leaves <= 1e-12 else "PartiallyFilled"
        fee = qty * price * (self.maker if maker else self.taker)
        signed = qty if rec["side"] == "Buy" else -qty
        size, avg = self.position
        if size == 0 or (size > 0) == (signed > 0):
            new = size + signed
            avg = (abs(size) * avg + qty * price) / abs(new)
        else:
            closed = min(abs(size), qty)
            self.balance += closed * (price - avg) * (1 if size > 0 else -1)
            new = size + signed
            if abs(new) > 1e-12 and (new > 0) != (size > 0):
                avg = price
        self.position = [round(new, 9), avg if abs(new) > 1e-12 else 0.0]
        self.balance -= fee
        self.time_ms += 1
        ex = {"category": "linear", "symbol": rec["symbol"], "execId": f"ex-{next(self._ids)}",
              "orderId": rec["orderId"], "orderLinkId": rec["orderLinkId"], "side": rec["side"],
              "execPrice": f"{price:.2f}", "execQty": f"{qty:.3f}", "execFee": f"{fee:.6f}",
              "execType": "Trade", "isMaker": maker, "execTime": str(self.time_ms),
              "leavesQty": rec["leavesQty"]}
        self.executions.append(ex)
        if self.position_first:  # Bybit does not order its topics: the position may lead
            self._push_account()
        self._push_order(rec)
        self.push("execution", [ex])
        if not self.position_first:
            self._push_account()

    def _end(self, rec, status, reason="EC_NoError"):
        if status == "Cancelled" and float(rec["cumExecQty"]) > 0:
            status = "PartiallyFilledCanceled"
        rec["orderStatus"], rec["rejectReason"] = status, reason
        rec["updatedTime"] = str(self.time_ms)
        self._push_order(rec)

    def _find(self, orderId=None, orderLinkId=None):
        for rec in self.orders.values():
            if (orderId and rec["orderId"] == orderId) or (
                    orderLinkId and rec["orderLinkId"] == orderLinkId):
                return rec
        return None

    def cancel_order(self, category="linear", symbol=SYMBOL, orderId=None, orderLinkId=None,
                     **kw):
        rec = self._find(orderId, orderLinkId)
        if rec is None or rec["orderStatus"] not in ("New", "PartiallyFilled", "Untriggered"):
            return reply(code=110001, msg="order not exists or too late to cancel")
        self._end(rec, "Cancelled", "EC_PerCancelRequest")
        return reply({"orderId": rec["orderId"], "orderLinkId": rec["orderLinkId"]})

    def amend_order(self, category="linear", symbol=SYMBOL, orderId=None, orderLinkId=None,
                    qty=None, price=None, **kw):
        rec = self._find(orderId, orderLinkId)
        if rec is None or rec["orderStatus"] not in ("New", "PartiallyFilled", "Untriggered"):
            return reply(code=110001, msg="order not exists or too late to amend")
        if price is not None:
            rec["price"] = price
        if qty is not None:
            rec["qty"] = qty
            rec["leavesQty"] = f"{float(qty) - float(rec['cumExecQty']):.3f}"
        self._push_order(rec)
        self._on_arrival(rec) if rec["orderType"] == "Limit" else None
        return reply({"orderId": rec["orderId"], "orderLinkId": rec["orderLinkId"]})

    def get_open_orders(self, category="linear", symbol=None, orderLinkId=None, orderId=None,
                        openOnly=0, **kw):
        rows = [dict(r) for r in self.orders.values()
                if r["orderStatus"] in ("New", "PartiallyFilled", "Untriggered")
                and (not orderLinkId or r["orderLinkId"] == orderLinkId)
                and (not orderId or r["orderId"] == orderId)]
        return reply({"category": category, "list": rows, "nextPageCursor": ""})

    def get_order_history(self, category="linear", symbol=None, orderLinkId=None, orderId=None,
                          startTime=None, endTime=None, limit=20, cursor=None, **kw):
        rows = [dict(r) for r in self.orders.values()
                if (not orderLinkId or r["orderLinkId"] == orderLinkId)
                and (not orderId or r["orderId"] == orderId)
                and _within(r["createdTime"], startTime, endTime)]
        return _page(category, rows[::-1], limit, cursor)

    def get_executions(self, category="linear", symbol=None, orderId=None, startTime=None,
                       endTime=None, limit=50, cursor=None, **kw):
        rows = [dict(e) for e in self.executions if (not orderId or e["orderId"] == orderId)
                and _within(e["execTime"], startTime, endTime)]
        return _page(category, rows[::-1], limit, cursor)

    def get_kline(self, **kw):
        return self.klines.get_kline(**kw)

    # -- the private stream ---------------------------------------------------------------
    def drop(self):
        """The private stream goes down: pushes from now on are lost."""
        self.connected = False

    def reconnect(self):
        """pybit reconnects: each socket's callback gets the ``auth`` and ``subscribe``
        replies (pybit's ``callback_function`` receives every message), then pushes flow."""
        self.connected = True
        for cb in list(self.callbacks):
            cb({"success": True, "ret_msg": "", "op": "auth", "conn_id": "fake"})
            for topic in ("order", "execution", "position", "wallet"):
                cb({"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "fake",
                    "req_id": topic})

    # -- the market -----------------------------------------------------------------------
    def trade(self, price, qty=math.inf):
        """A trade prints at ``price``: stops trigger, resting limits it reaches fill."""
        self.price = float(price)
        self.time_ms += 1000
        for rec in list(self.orders.values()):
            if rec["orderStatus"] == "Untriggered":
                up = rec["triggerDirection"] == 1
                trig = float(rec["triggerPrice"])
                if (up and price >= trig) or (not up and price <= trig):
                    rec["orderStatus"] = "New"
                    self._push_order(rec)
                    self._on_arrival(rec)
        left = qty
        for rec in list(self.orders.values()):
            if rec["orderStatus"] in ("New", "PartiallyFilled") and rec["orderType"] == "Market":
                q = min(float(rec["leavesQty"]), self.liquidity)
                self._fill(rec, q, self.price, maker=False)
                if float(rec["leavesQty"]) > 0:
                    self._end(rec, "Cancelled", "EC_CancelForNoFullFill")
        for rec in list(self.orders.values()):
            if rec["orderStatus"] not in ("New", "PartiallyFilled") or rec["orderType"] != "Limit":
                continue
            limit = float(rec["price"])
            if (rec["side"] == "Buy" and price <= limit) or (rec["side"] == "Sell"
                                                              and price >= limit):
                q = min(float(rec["leavesQty"]), left)
                self._fill(rec, q, limit, maker=True)
                left -= q

    # -- clients --------------------------------------------------------------------------
    def session(self):
        return FakeSession(self)

    def ws_factory(self, channel_type, testnet):
        return FakeWS(self, channel_type)

    ROUTES = {"/v5/order/create": "place_order", "/v5/order/cancel": "cancel_order",
              "/v5/order/amend": "amend_order", "/v5/order/realtime": "get_open_orders",
              "/v5/order/history": "get_order_history", "/v5/position/list": "get_positions",
              "/v5/account/wallet-balance": "get_wallet_balance",
              "/v5/execution/list": "get_executions",
              "/v5/market/instruments-info": "get_instruments_info"}

    def route(self, path, params):
        with self._lock:
            return getattr(self, self.ROUTES[path])(**params)


def _within(ms, start, end) -> bool:
    ms = int(ms)
    return (start is None or ms >= int(start)) and (end is None or ms <= int(end))


def _page(category, rows, limit, cursor):
    """Bybit's paging: ``limit`` rows from the offset in ``cursor``, ``nextPageCursor``."""
    start, limit = int(cursor or 0), int(limit)
    nxt = str(start + limit) if start + limit < len(rows) else ""
    return reply({"category": category, "list": rows[start:start + limit],
                  "nextPageCursor": nxt})


class FakeSession:
    """pybit ``HTTP``'s method names on a :class:`FakeBybit`; Bybit errors raise pybit's
    ``InvalidRequestError``, and a method in ``lose_reply`` acts but raises a timeout."""

    def __init__(self, ex):
        self.ex = ex

    def __getattr__(self, name):
        method = getattr(self.ex, name)

        def call(**kwargs):
            from pybit.exceptions import InvalidRequestError

            self.ex.calls.append((name, kwargs))
            with self.ex._lock:
                out = method(**kwargs)
            if name in self.ex.lose_reply:
                self.ex.lose_reply.discard(name)
                raise TimeoutError(f"read timed out ({name})")
            if out["retCode"]:
                raise InvalidRequestError(request=f"{name} {kwargs}", message=out["retMsg"],
                                          status_code=out["retCode"], time="0",
                                          resp_headers={})
            return out

        return call


class FakeWS:
    """pybit ``WebSocket``'s private stream methods on a :class:`FakeBybit`. As pybit with a
    ``callback_function``, the callback also gets the ``auth`` reply (on the first
    subscription) and each ``subscribe`` reply."""

    def __init__(self, ex, channel_type):
        self.ex, self.channel_type = ex, channel_type
        self.topics = []
        self.exited = False

    def _sub(self, topic, callback):
        self.topics.append(topic)
        if callback not in self.ex.callbacks:
            self.ex.callbacks.append(callback)
            callback({"success": True, "ret_msg": "", "op": "auth", "conn_id": "fake"})
        callback({"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "fake",
                  "req_id": topic})

    def order_stream(self, callback):
        self._sub("order", callback)

    def execution_stream(self, callback):
        self._sub("execution", callback)

    def position_stream(self, callback):
        self._sub("position", callback)

    def wallet_stream(self, callback):
        self._sub("wallet", callback)

    def is_connected(self):
        return self.ex.connected and not self.exited

    def exit(self):
        self.exited = True
        self.ex.callbacks.clear()
