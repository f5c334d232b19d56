"""What the account says, applied to the Bybit broker's orders, positions and wallet.

The mixin of :class:`~feeds.bybit_broker.BybitBroker` that reads: private-stream messages
(``order``, ``execution``, ``position``, ``wallet``) and the REST re-syncs after a
reconnect, on a timer, and when a request's reply was lost. Executions are applied once
(by ``execId``) whichever way they arrive; an order that ended with fills not seen yet has
them fetched first, so a cancel never overtakes the fills before it.
"""

from __future__ import annotations

import logging
import time

from .bartime import epoch_to_num
from .bybit_orders import Execution, order_outcome
from .errors import ExchangeError

logger = logging.getLogger("feeds.bybit_broker")


def data_symbol(data) -> str:
    """The exchange symbol of a feed: its ``symbol`` param, else its name."""
    return getattr(data.p, "symbol", None) or data._name


def _num(ms: int) -> float:
    """Bybit milliseconds (0: now) → backtrader's date number (naive UTC)."""
    return epoch_to_num(ms / 1000.0 if ms else time.time())


class AccountSync:
    """Reading side of the broker (a mixin: the broker holds the state it updates)."""

    def reconcile(self) -> None:
        """Wallet, open orders and positions from the account (start, reconnect, timer).

        Orders first: fills they had while we were not listening are applied before the
        positions are compared, so a position is only overwritten for a real difference."""
        self._read_wallet()
        for symbol in self.store.symbols:
            for rec in self.store.rows("get_open_orders", category=self.category, symbol=symbol,
                                       openOnly=0):
                link = str(rec.get("orderLinkId") or "")
                if link in self.orders:
                    self._resync_order(link, rec)
                elif link.startswith(f"{self.p.prefix}-"):
                    if self.p.stale_orders == "cancel":
                        logger.warning("bybit broker: cancelling %s order %s left by an earlier "
                                       "run", symbol, link)
                        self._send_cancel(symbol, link)
                    else:
                        logger.warning("bybit broker: keeping %s order %s left by an earlier "
                                       "run (not tracked by this run)", symbol, link)
                else:
                    logger.info("bybit broker: %s has an open order %s not placed by s4; "
                                "left alone", symbol, rec.get("orderId"))
        for link, order in list(self.orders.items()):
            if order.alive() and order.status != order.Created:
                self._resync_order(link)
        for symbol in self.store.symbols:
            self._read_position(symbol)
        self._last_sync = self.p.clock()
        self._synced_once = True
        if self.startingcash is None:
            self.startingcash = self.cash  # backtrader's writer and analyzers read it

    def _read_wallet(self) -> None:
        rows = self.store.call("get_wallet_balance", accountType=self.store.account_type,
                               coin=self.store.coin).get("list") or []
        self._apply_wallet(rows)

    def _apply_wallet(self, rows) -> None:
        for acct in rows:
            for coin in acct.get("coin") or []:
                if coin.get("coin") == self.store.coin:
                    self.cash = float(coin.get("walletBalance") or 0.0)
                    self.value = float(coin.get("equity") or self.cash)
                    return

    def _read_position(self, symbol: str) -> None:
        rows = self.store.rows("get_positions", category=self.category, symbol=symbol)
        self._apply_positions(rows, source="REST")

    def _apply_positions(self, rows, source: str) -> None:
        """Compare the exchange's positions with ours. A difference first re-reads the
        symbol's live orders (a position update can overtake the execution that made it:
        the fill is then fetched and applied once); only a difference that remains (a trade
        made outside this broker, a liquidation) makes ours the exchange's, with a warning."""
        for rec in rows:
            symbol = rec.get("symbol")
            if not symbol:
                continue
            size = float(rec.get("size") or 0.0)
            size = -size if rec.get("side") == "Sell" else size
            price = float(rec.get("avgPrice") or rec.get("entryPrice") or 0.0)
            pos = self.positions[symbol]
            if abs(pos.size - size) <= 1e-12:
                continue
            if source == "stream":
                for link, order in list(self.orders.items()):
                    if order.alive() and data_symbol(order.data) == symbol:
                        self._resync_order(link)
                if abs(pos.size - size) <= 1e-12:
                    continue
            if self._synced_once or source == "stream":
                logger.warning("bybit broker: %s position %g on the exchange (%s), %g here; "
                               "taking the exchange's", symbol, size, source, pos.size)
            elif size:
                logger.info("bybit broker: %s starts from the account's position %g at %g",
                            symbol, size, price)
            pos.set(size, price if size else 0.0)

    def on_message(self, msg) -> None:
        """Apply one private-stream message (V5 dict) to orders, positions and wallet."""
        if not isinstance(msg, dict):
            return
        topic = str(msg.get("topic", ""))
        data = msg.get("data") or []
        if topic == "execution" or topic.startswith("execution."):
            for rec in data:
                self._apply_execution(Execution.from_record(rec))
        elif topic == "order" or topic.startswith("order."):
            for rec in data:
                link = self.by_id.get(str(rec.get("orderId")), str(rec.get("orderLinkId") or ""))
                if link in self.orders:
                    self._apply_order(link, rec)
        elif topic == "position" or topic.startswith("position."):
            self._apply_positions(data, source="stream")
        elif topic == "wallet":
            self._apply_wallet(data)
        elif msg.get("op") in ("auth", "subscribe") and msg.get("success") is False:
            raise ExchangeError(f"Bybit refused the private stream ({msg.get('op')}): "
                                f"{msg.get('ret_msg')}")

    def _check_connection(self) -> None:
        ws = self._ws
        probe = getattr(ws, "is_connected", None)
        if probe is None:
            return
        try:
            up = bool(probe())
        except Exception:
            up = False
        if up and self._was_connected is False:
            logger.warning("bybit broker: private stream back; re-syncing orders and positions")
            self.reconcile()
        self._was_connected = up

    def _apply_execution(self, ex: Execution) -> None:
        if ex.exec_id in self._seen or ex.exec_type != "Trade":
            return
        link = self.by_id.get(ex.order_id, ex.link_id)
        order = self.orders.get(link)
        if order is None:  # not ours (or a liquidation): the position stream reports it
            return
        self._seen.add(ex.exec_id)
        pos = self.positions[ex.symbol]
        old_price = pos.price
        psize, pprice, opened, closed = pos.update(ex.size, ex.price)
        ci = order.comminfo
        closed_comm = ex.fee * abs(closed) / abs(ex.size) if ex.size else 0.0
        pnl = ci.profitandloss(-closed, old_price, ex.price) if closed else 0.0
        order.execute(_num(ex.time_ms), ex.size, ex.price,
                      closed, ci.getoperationcost(closed, old_price), closed_comm,
                      opened, ci.getoperationcost(opened, ex.price), ex.fee - closed_comm,
                      ci.getvaluesize(ex.size, ex.price), pnl, psize, pprice)
        if order.executed.remsize:
            order.partial()
        else:
            order.completed()
            self.orders.pop(link, None)
        self.notify(order)
        self._cancel_siblings(order)

    def _apply_order(self, link: str, rec: dict) -> None:
        order = self.orders[link]
        if rec.get("orderId"):
            self.by_id[str(rec["orderId"])] = link
        outcome, reason = order_outcome(rec)
        if outcome in ("accepted", "open"):
            if order.status == order.Submitted:
                order.accept(self)
                self.notify(order)
            return
        cum = float(rec.get("cumExecQty") or 0.0)
        if cum > abs(order.executed.size) + 1e-12:  # fills not seen yet: fetch them first
            self._fetch_executions(link, rec)
        if link in self.orders and outcome in ("cancelled", "rejected"):
            if reason and outcome == "rejected":
                logger.error("bybit broker: order %s %s by Bybit: %s", link, outcome, reason)
            self._finish(order, outcome, reason)

    def _fetch_executions(self, link: str, rec: dict) -> None:
        symbol = rec.get("symbol") or data_symbol(self.orders[link].data)
        kw = {"orderId": rec["orderId"]} if rec.get("orderId") else {}
        for row in self.store.rows("get_executions", category=self.category, symbol=symbol, **kw):
            ex = Execution.from_record(row)
            if ex.link_id in ("", link) or self.by_id.get(ex.order_id) == link:
                self._apply_execution(ex)

    def _resync_order(self, link: str, rec: dict | None = None) -> bool:
        """Read order ``link`` over REST and apply what happened; False if Bybit has none."""
        order = self.orders.get(link)
        if order is None:
            return False
        symbol = data_symbol(order.data)
        if rec is None:
            rows = self.store.rows("get_open_orders", category=self.category, symbol=symbol,
                                   orderLinkId=link, openOnly=0)
            if not rows:
                rows = self.store.rows("get_order_history", category=self.category,
                                       symbol=symbol, orderLinkId=link)
            if not rows:
                return False
            rec = rows[0]
        if rec.get("orderId"):
            self.by_id[str(rec["orderId"])] = link
            order.addinfo(orderId=str(rec["orderId"]))
        if float(rec.get("cumExecQty") or 0.0) > abs(order.executed.size) + 1e-12:
            self._fetch_executions(link, rec)
        if link in self.orders:
            self._apply_order(link, rec)
        return True
