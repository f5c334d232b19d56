"""``BybitBroker``: backtrader orders placed, amended and cancelled on Bybit through pybit.

Orders go out over REST (``place_order``/``amend_order``/``cancel_order``) with a client
order id (``orderLinkId``) of ours; what the exchange does to them comes back on the private
WebSocket streams (``order``, ``execution``, ``position``, ``wallet``), whose messages are
queued by the socket thread and applied in :meth:`next` on backtrader's thread. So
``notify_order`` sees Submitted → Accepted → Partial … → Completed (or Canceled/Rejected),
``notify_trade`` and ``getposition`` follow the fills Bybit reported (its prices, its fees),
and cash and value are the wallet's.

Never a duplicate order: a ``place_order`` whose reply was lost (timeout, dropped
connection) is looked up by its ``orderLinkId`` before it is sent again, and sent again under
the same id (Bybit refuses a second order with an id it has seen: retCode 110072). After the
private stream reconnects, and every ``resync_every`` seconds, open orders, missed
executions (deduplicated by ``execId``), positions and the wallet are re-read over REST.

At its first pass, before the strategy's first bar, the broker reconciles with the account:
the wallet (cash, value), the position of every symbol of the store, what an earlier run
left (fills while it was down, orders of ours: :mod:`feeds.bybit_restart`), and tells every
strategy with ``notify_reconcile(data, position, open_orders)`` what it found.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import time
import uuid
from datetime import datetime, timezone

import backtrader as bt

from .bybit_orders import DUPLICATE_LINK_ID, OrderRefused, fmt, order_request
from .bybit_restart import BybitRestart
from .bybit_sync import AccountSync, data_symbol
from .errors import ExchangeError

logger = logging.getLogger(__name__)


class BybitBroker(BybitRestart, AccountSync, bt.BrokerBase):
    """A backtrader broker on a Bybit account (made by :meth:`BybitStore.getbroker`).

    Params:
      - ``prefix``: start of this broker's ``orderLinkId`` values (``"s4"``)
      - ``stale_orders``: open orders of ours left by an earlier run, found at the first
        pass: ``"cancel"`` (default; the strategy and journal see them end), ``"adopt"``
        (tracked as this run's orders, e.g. a restart of the same strategy) or ``"keep"``
        (left on the exchange, untracked)
      - ``resync_every``: seconds between REST re-syncs of open orders, positions and wallet
      - ``place_retries``: times a ``place_order`` whose reply was lost is looked up and
        re-sent under the same ``orderLinkId`` before the order is rejected
      - ``clock``: monotonic seconds (tests)

    ``buy``/``sell`` take backtrader's arguments plus ``postonly=True``, ``reduceonly=True``
    and ``tif="IOC"|"FOK"``. ``oco=`` is kept here: when one order of a group fills, the
    others are cancelled. ``amend(order, size=, price=)`` changes a live order in place.
    ``watchers``: objects whose ``poll(now)`` runs in every :meth:`next`, bar or not (the kill
    switch's stale-data check). ``get_state()``/``set_state()``: where a restart resumes
    (saved with the strategy's state by ``s4_strategies.live.StateSaver``). ``connects``:
    successful authentications of the private stream (1 + reconnects).

    Notifications of fills carry ``exec_ids`` (the Bybit ``execId`` of each fill reported),
    so a journal can tell a fill it has already written.
    """

    params = (
        ("prefix", "s4"),
        ("stale_orders", "cancel"),
        ("resync_every", 60.0),
        ("place_retries", 2),
        ("clock", time.monotonic),
    )

    def __init__(self, store=None):
        super().__init__()
        if store is None:
            raise ValueError("BybitBroker needs store= (use BybitStore(...).getbroker())")
        if self.p.stale_orders not in ("cancel", "keep", "adopt"):
            raise ValueError(f"stale_orders must be 'cancel', 'keep' or 'adopt', got "
                             f"{self.p.stale_orders!r}")
        self.store = store
        self.category = store.category
        self.positions = collections.defaultdict(bt.Position)  # symbol -> Position
        self.orders: dict[str, bt.Order] = {}  # orderLinkId -> order
        self.by_id: dict[str, str] = {}  # Bybit orderId -> orderLinkId
        self.notifs = collections.deque()
        self.messages: queue.Queue = queue.Queue()
        self.watchers = []
        self.cash = self.value = 0.0
        self.startingcash = None
        self._seen: set[str] = set()  # execIds applied
        self._lots: dict[str, int] = {}  # orderLinkId -> lots executed (reported here)
        self._base: dict[str, int] = {}  # orderLinkId -> lots executed before adoption
        self._ignored: set[str] = set()  # open orders not ours to track (logged once)
        self._last_exec_ms: dict[str, int] = {}  # symbol -> latest execTime applied
        self._last_exec_ids: dict[str, set] = {}  # symbol -> execIds at that time
        self._last_seen_ms = 0  # latest exchange time seen (executions, order updates)
        self._resume = None  # an earlier run's get_state(), until the first pass
        self.connects = 0
        self._started = 0.0
        self._oco: dict[int, list] = {}  # OCO group -> its orders
        self._group_of: dict[int, int] = {}  # order ref -> OCO group
        self._need_sync = False
        self._synced_once = False  # the first reconcile adopts the account's positions
        self._run = uuid.uuid4().hex[:8]
        self._count = itertools.count(1)
        self._ws = None
        self._was_connected = None
        self._last_sync = None
        self._datas: dict[str, object] = {}

    # -- life cycle -----------------------------------------------------------------------
    def start(self):
        super().start()
        cerebro = getattr(self, "cerebro", None)
        for data in list(self.store.datas) + list(getattr(cerebro, "datas", None) or []):
            self._datas.setdefault(data_symbol(data), data)
        self._started = self.p.clock()
        self._ws = self.store.open_private(self.messages.put)
        self._read_wallet()  # cash and value from the start; the rest at the first pass
        if self.startingcash is None:
            self.startingcash = self.cash

    def _first_pass_due(self) -> bool:
        """The first pass waits until every feed of the account's symbols has a bar (an order
        of an earlier run becomes a backtrader order on its feed) and every live one has
        served its history (the account is read just before the first live decision), at
        most ``resync_every`` seconds."""
        if self._synced_once:
            return False
        ready = all(len(d) and (not d.islive() or getattr(d, "_laststatus", None) == d.LIVE)
                    for s, d in self._datas.items() if s in self.store.symbols)
        return ready or self.p.clock() - self._started > self.p.resync_every

    def stop(self):
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.exit()
            except Exception as exc:  # closing a broken socket must not mask anything
                logger.warning("bybit broker: error closing the private stream: %s", exc)
        super().stop()

    # -- what backtrader asks -------------------------------------------------------------
    def getcash(self):
        return self.cash

    def getvalue(self, datas=None):
        """The wallet's equity, marked to the feeds' last closes between wallet updates."""
        value = self.cash
        for symbol, pos in self.positions.items():
            data = self._datas.get(symbol)
            if pos.size and data is not None and len(data):
                value += pos.size * (data.close[0] - pos.price)
            elif pos.size:
                return self.value
        return value

    def getposition(self, data, clone=True):
        pos = self.positions[data_symbol(data)]
        return pos.clone() if clone else pos

    def get_notification(self):
        try:
            return self.notifs.popleft()
        except IndexError:
            return None

    def notify(self, order, exec_ids=()) -> None:
        note = order.clone()
        note.exec_ids = tuple(exec_ids)
        self.notifs.append(note)

    # -- placing --------------------------------------------------------------------------
    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
            tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
            transmit=True, **kwargs):
        order = bt.BuyOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                            exectype=exectype, valid=valid, tradeid=tradeid, oco=oco,
                            trailamount=trailamount, trailpercent=trailpercent,
                            parent=parent, transmit=transmit)
        return self._submit(order, kwargs)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
             tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
             transmit=True, **kwargs):
        order = bt.SellOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                             exectype=exectype, valid=valid, tradeid=tradeid, oco=oco,
                             trailamount=trailamount, trailpercent=trailpercent,
                             parent=parent, transmit=transmit)
        return self._submit(order, kwargs)

    def submit(self, order):
        return self._submit(order, {})

    def _submit(self, order, info: dict):
        order.addinfo(**info)
        order.addcomminfo(self.getcommissioninfo(order.data))
        symbol = data_symbol(order.data)
        self._datas.setdefault(symbol, order.data)
        if not self._synced_once:  # an order before the first pass: reconcile first
            self.reconcile()
        link = f"{self.p.prefix}-{self._run}-{next(self._count)}"
        order.addinfo(orderLinkId=link)
        order.submit(self)
        self.notify(order)
        try:
            if order.parent is not None:
                raise OrderRefused("bracket (parent/child) orders are not supported by the "
                                   "Bybit broker; use oco= for a stop/target pair")
            req = order_request(order, self.store.instrument(symbol), self.category, link)
        except ExchangeError as exc:
            logger.error("bybit broker: order not sent: %s", exc)
            self._finish(order, "rejected", str(exc))
            return order
        qty = float(req["qty"])  # rounded to the lot step: what the exchange will fill
        if qty != abs(order.size):
            signed = qty if order.isbuy() else -qty
            order.size = order.created.size = order.created.remsize = signed
            order.executed.remsize = signed
        self.orders[link] = order
        if order.oco is not None:
            group = self._group_of.get(order.oco.ref, order.oco.ref)
            members = self._oco.setdefault(group, [order.oco])
            members.append(order)
            for m in members:
                self._group_of[m.ref] = group
        self._place(order, req)
        return order

    def _place(self, order, req: dict) -> None:
        link = req["orderLinkId"]
        for attempt in range(self.p.place_retries + 1):
            try:
                result = self.store.call("place_order", **req)
            except ExchangeError as exc:
                if exc.code == DUPLICATE_LINK_ID and self._resync_order(link):
                    return  # it did arrive the first time
                logger.error("bybit broker: %s %s rejected: %s", req["side"], req["symbol"], exc)
                self._finish(order, "rejected", str(exc))
                return
            except Exception as exc:  # the reply was lost: did the order arrive?
                logger.warning("bybit broker: place_order %s: no reply (%s); looking it up",
                               link, exc)
                try:
                    if self._resync_order(link):
                        return
                except Exception as again:
                    logger.warning("bybit broker: looking up %s failed too: %s", link, again)
                    continue
                if attempt < self.p.place_retries:
                    logger.warning("bybit broker: %s not on the exchange; sending it again "
                                   "under the same orderLinkId", link)
                continue
            self.by_id[str(result.get("orderId"))] = link
            order.addinfo(orderId=str(result.get("orderId")))
            if order.status == order.Submitted:
                order.accept(self)
                self.notify(order)
            return
        logger.error("bybit broker: %s could not be placed after %d tries; rejected here, "
                     "re-synced on the next pass", link, self.p.place_retries + 1)
        self._finish(order, "rejected", "no reply from Bybit")

    def cancel(self, order):
        """Ask Bybit to cancel; the order is Canceled when the exchange confirms."""
        if not order.alive():
            return
        link = order.info.get("orderLinkId")
        if link not in self.orders:
            return
        self._send_cancel(data_symbol(order.data), link)

    def _send_cancel(self, symbol: str, link: str) -> None:
        try:
            self.store.call("cancel_order", category=self.category, symbol=symbol,
                            orderLinkId=link)
        except ExchangeError as exc:  # already filled or cancelled: look at what happened
            logger.info("bybit broker: cancel %s: %s; re-reading the order", link, exc)
            if link in self.orders:
                self._resync_order(link)

    def amend(self, order, size=None, price=None) -> bool:
        """Change a live limit order's size and/or price on the exchange. False (logged, the
        order re-read) when Bybit refuses, e.g. it filled or was cancelled meanwhile."""
        link = order.info.get("orderLinkId")
        if not order.alive() or link not in self.orders:
            return False
        symbol = data_symbol(order.data)
        inst = self.store.instrument(symbol)
        req = {"category": self.category, "symbol": symbol, "orderLinkId": link}
        side = "Buy" if order.isbuy() else "Sell"
        if size is not None:
            req["qty"] = fmt(inst.round_qty(size))
        if price is not None:
            req["price"] = fmt(inst.round_price(price, side))
        try:
            self.store.call("amend_order", **req)
        except ExchangeError as exc:
            logger.warning("bybit broker: amend %s refused: %s; re-reading the order", link, exc)
            self._resync_order(link)
            return False
        if price is not None:
            order.created.price = order.price = float(req["price"])
        if size is not None:
            lots = inst.lots(float(req["qty"]))
            order.created.size = order.size = inst.from_lots(lots, 1 if order.isbuy() else -1)
            order.executed.remsize = inst.from_lots(
                max(lots - self._lots.get(link, 0), 0), order.size)
        return True

    # -- what comes back ------------------------------------------------------------------
    def next(self):
        self._drain()
        self._check_connection()
        if self._synced_once:
            due = self.p.clock() - self._last_sync > self.p.resync_every
            if due or self._need_sync:
                self._need_sync = False
                self.reconcile()
        elif self._first_pass_due():
            self._need_sync = False
            self.reconcile()
        now = datetime.now(timezone.utc)
        for w in list(self.watchers):
            w.poll(now)

    def drain(self) -> None:
        """Apply every private-stream message received so far (``next()`` does this on each
        pass; at the end of a run, the last ones)."""
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                msg = self.messages.get_nowait()
            except queue.Empty:
                return
            try:
                self.on_message(msg)
            except ExchangeError as exc:
                logger.error("bybit broker: unreadable message skipped (%s); re-syncing", exc)
                self._need_sync = True

    def _finish(self, order, outcome: str, reason: str) -> None:
        link = order.info.get("orderLinkId")
        self.orders.pop(link, None)
        if not order.alive():
            return
        if outcome == "rejected":
            order.addinfo(reject_reason=reason)
            order.reject(self)
        else:
            order.cancel()
        self.notify(order)
        self._cancel_siblings(order)

    def _cancel_siblings(self, order) -> None:
        """backtrader's OCO: once one order of a group fills or ends, cancel the others."""
        group = self._group_of.get(order.ref)
        if group is None:
            return
        for other in self._oco.pop(group, []):
            self._group_of.pop(other.ref, None)
            if other.ref != order.ref and other.alive():
                self.cancel(other)

    def get_orders_open(self, safe=False):
        """The orders still alive on the exchange (backtrader's broker API)."""
        alive = [o for o in self.orders.values() if o.alive()]
        return [o.clone() for o in alive] if safe else alive
