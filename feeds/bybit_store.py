"""``BybitStore``: one Bybit account for backtrader, handing out live data and a broker.

The backtrader way (as its IB and Oanda stores)::

    store = BybitStore(testnet=True)            # keys from BYBIT_API_KEY / BYBIT_API_SECRET
    cerebro.adddata(store.getdata("BTCUSDT", interval="60"))
    cerebro.setbroker(store.getbroker())

Clients are injected as in the feeds: ``session=`` any object with pybit's ``HTTP`` method
names (``place_order``, ``amend_order``, ``cancel_order``, ``get_open_orders``,
``get_order_history``, ``get_positions``, ``get_wallet_balance``, ``get_executions``,
``get_instruments_info``, ``get_kline``), ``ws_factory(channel_type=, testnet=)`` an object
with pybit's stream methods (``order_stream``, ``execution_stream``, ``position_stream``,
``wallet_stream``, ``kline_stream``, ``exit``) that calls back with Bybit V5 message dicts.
By default both are pybit's, built when first needed.

Credentials come only from the arguments or the environment (``BYBIT_API_KEY``,
``BYBIT_API_SECRET``); they are never logged, and ``repr(store)`` hides them.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from .bybit_orders import Instrument, RateLimiter
from .errors import ExchangeError

logger = logging.getLogger(__name__)

# Calls that count against Bybit's order-rate limit.
_ORDER_CALLS = {"place_order", "amend_order", "cancel_order", "cancel_all_orders"}
_PRIVATE_TOPICS = ("order_stream", "execution_stream", "position_stream", "wallet_stream")


class BybitStore:
    """One Bybit account: REST session, private streams, instrument rules, rate limit.

    Params:
      - ``api_key`` / ``api_secret``: default ``$BYBIT_API_KEY`` / ``$BYBIT_API_SECRET``.
        Needed for the broker; market data needs none.
      - ``testnet``: Bybit's testnet (default ``True``: never mainnet by accident).
      - ``demo``: Bybit's demo trading (mainnet market data, play money; ``testnet=False``).
      - ``category``: ``"linear"`` (USDT perpetuals, default), ``"inverse"`` or ``"spot"``.
      - ``session`` / ``ws_factory``: injected clients (see the module doc).
      - ``order_rate``: order create/amend/cancel calls a second (10, Bybit's usual limit).
      - ``account_type`` / ``coin``: the wallet read for cash and value (UNIFIED, USDT).
      - ``symbols``: symbols whose positions and orders the broker reconciles at start, besides
        those of ``getdata`` (for feeds that did not come from this store).
      - ``clock`` / ``sleep``: for the rate limiter (tests).
    """

    def __init__(self, api_key=None, api_secret=None, testnet=True, demo=False,
                 category="linear", session=None, ws_factory=None, order_rate=10.0,
                 account_type="UNIFIED", coin="USDT", symbols=(), clock=time.monotonic,
                 sleep=time.sleep):
        self._key = api_key if api_key is not None else os.environ.get("BYBIT_API_KEY")
        self._secret = (api_secret if api_secret is not None
                        else os.environ.get("BYBIT_API_SECRET"))
        if demo and testnet:
            raise ValueError("BybitStore: demo=True trades on mainnet's demo service; "
                             "pass testnet=False with it")
        self.testnet, self.demo = bool(testnet), bool(demo)
        self.category, self.account_type, self.coin = category, account_type, coin
        self._session = session
        self.ws_factory = ws_factory
        self.limiter = RateLimiter(order_rate, 1.0, clock=clock, sleep=sleep)
        self.sleep = sleep
        self.instruments: dict[str, Instrument] = {}
        self.symbols: list[str] = list(symbols)
        self.datas = []
        self.broker = None
        self.private = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        net = "demo" if self.demo else "testnet" if self.testnet else "mainnet"
        key = "set" if self._key else "none"
        return f"BybitStore({net}, category={self.category!r}, api_key={key})"

    @property
    def network(self) -> str:
        return "demo" if self.demo else "testnet" if self.testnet else "mainnet"

    @property
    def has_credentials(self) -> bool:
        return bool(self._key and self._secret)

    # -- clients --------------------------------------------------------------------------
    @property
    def session(self):
        """The REST client (pybit ``HTTP`` with the keys, unless one was injected)."""
        with self._lock:
            if self._session is None:
                from pybit.unified_trading import HTTP

                self._session = HTTP(testnet=self.testnet, demo=self.demo,
                                     api_key=self._key, api_secret=self._secret)
            return self._session

    def open_private(self, callback):
        """A private WebSocket subscribed to the order, execution, position and wallet
        streams, every message going to ``callback`` (on the socket's thread)."""
        if self.ws_factory is not None:
            ws = self.ws_factory(channel_type="private", testnet=self.testnet)
        else:
            if not self.has_credentials:
                raise ExchangeError("the Bybit broker needs API keys: pass api_key=/api_secret= "
                                    "or set BYBIT_API_KEY and BYBIT_API_SECRET")
            from pybit.unified_trading import WebSocket

            # One callback for every message: pybit records a subscription only after
            # sending it, so a fast reply would otherwise be lost (see feeds.live).
            ws = WebSocket(channel_type="private", testnet=self.testnet, demo=self.demo,
                           api_key=self._key, api_secret=self._secret,
                           callback_function=callback)
        for topic in _PRIVATE_TOPICS:
            getattr(ws, topic)(callback=callback)
        return ws

    # -- REST with errors made plain ------------------------------------------------------
    def call(self, method: str, **kwargs) -> dict:
        """``session.<method>(**kwargs)["result"]``; order calls wait for the rate limiter.

        Bybit's refusals (pybit's ``InvalidRequestError``, or a reply with a non-zero
        ``retCode`` from an injected session) raise :class:`ExchangeError` with the
        ``code``; anything else (a timeout, a dropped connection) propagates as it is: the
        caller cannot know whether the request took effect and must look before retrying.
        """
        if method in _ORDER_CALLS:
            self.limiter.acquire()
        try:
            reply = getattr(self.session, method)(**kwargs)
        except Exception as exc:
            code = getattr(exc, "status_code", None)
            if type(exc).__name__ == "InvalidRequestError":
                raise ExchangeError(f"Bybit refused {method}: {getattr(exc, 'message', exc)} "
                                    f"(retCode {code})", code=code) from exc
            raise
        if not isinstance(reply, dict):
            raise ExchangeError(f"Bybit {method}: unreadable reply {str(reply)[:200]}")
        code = reply.get("retCode", 0)
        if code:
            raise ExchangeError(f"Bybit refused {method}: {reply.get('retMsg')} (retCode {code})",
                                code=int(code))
        return reply.get("result") or {}

    def rows(self, method: str, **kwargs) -> list:
        """``call(...)["list"]``, following ``nextPageCursor`` through every page."""
        out, cursor = [], None
        for _ in range(100):
            args = dict(kwargs, cursor=cursor) if cursor else kwargs
            result = self.call(method, **args)
            out += list(result.get("list") or [])
            cursor = result.get("nextPageCursor")
            if not cursor:
                return out
        raise ExchangeError(f"Bybit {method}: more than 100 pages")

    def instrument(self, symbol: str) -> Instrument:
        """Tick and lot rules of ``symbol`` (``get_instruments_info``, fetched once)."""
        if symbol not in self.instruments:
            items = self.call("get_instruments_info", category=self.category,
                              symbol=symbol).get("list") or []
            match = [i for i in items if i.get("symbol") == symbol]
            if not match:
                raise ExchangeError(f"Bybit has no {self.category} instrument {symbol!r}")
            self.instruments[symbol] = Instrument.from_info(match[0])
        return self.instruments[symbol]

    # -- backtrader -----------------------------------------------------------------------
    def getdata(self, symbol: str, interval="60", **kwargs):
        """A live :class:`~feeds.BybitData` for ``symbol`` on this store's network (demo
        trading reads mainnet's market data)."""
        from .bybit import BybitData

        kwargs.setdefault("live", True)
        kwargs.setdefault("testnet", self.testnet)
        if self.ws_factory is not None:
            kwargs.setdefault("ws_factory", self.ws_factory)
        if self._session is not None:
            kwargs.setdefault("session", self._session)
        data = BybitData(symbol=symbol, category=self.category, interval=str(interval), **kwargs)
        if symbol not in self.symbols:
            self.symbols.append(symbol)
        self.datas.append(data)
        return data

    def getbroker(self, **kwargs):
        """The :class:`~feeds.bybit_broker.BybitBroker` of this account (one per store)."""
        from .bybit_broker import BybitBroker

        if self.broker is None:
            self.broker = BybitBroker(store=self, **kwargs)
        return self.broker
