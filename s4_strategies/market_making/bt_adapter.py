"""The one place where the fill-model broker reaches into backtrader's ``BackBroker``.

backtrader has no public extension point for order matching, so ``BackBrokerHooks``
overrides a few of ``BackBroker``'s methods, two of them private, and hands the fill model
plain hooks instead. Written for and checked against backtrader ``1.9.78.123``
(``BACKTRADER_VERSION``). Importing this module warns (``RuntimeWarning``) when another
version is installed, and ``tests/test_bt_adapter.py`` fails on purpose after an upgrade. To
move to a new version, re-read ``backtrader/brokers/bbroker.py`` against the notes below,
then update ``BACKTRADER_VERSION`` and ``BACKBROKER_SIGNATURES``.

What is overridden, what backtrader does there (1.9.78.123), and the hook that replaces it:

``_try_exec(self, order)`` (private)
    ``BackBroker.next`` calls it once a step for every active pending order. backtrader reads
    the bar (``open/high/low/close``, or ``tick_*`` when set) and dispatches on
    ``order.exectype`` to ``_try_exec_market/_close/_limit/_stop/...``. Those call
    ``_execute(order, ago=0, price=p)`` when the bar reaches the order. A limit order fills at
    its price (or at the open when the bar gaps through it) as soon as the range touches it.
    Hook: ``match(order)``. The default is ``match_default(order)``, which is backtrader's
    own ``_try_exec``.
``_execute(self, order, ago=None, price=None, cash=None, position=None, dtcoc=None)``
    (private)
    Carries out a fill: sizes it (``order.executed.remsize``, or ``p.filler(order, price,
    ago)`` when a filler is set and ``ago`` is not ``None``), updates cash and position,
    computes the commission with ``getcommissioninfo(order.data)``, calls
    ``order.execute(...)`` and notifies. ``ago=None`` is a pseudo-execution: the cash check
    ``check_submitted`` runs at submission, which returns the cash left and changes nothing.
    Hook: ``executing(order)``, a context manager entered around every call, real or pseudo
    (the fill model uses it to tell the commission scheme maker from taker).
``p.filler`` (the ``filler`` param)
    Public, but taken over here: backtrader calls it from ``_execute`` for the size of a real
    fill. The adapter installs its own filler so that ``fill(..., qty=)`` can fill part of an
    order. A filler the user passes (``filler=`` or ``set_filler``) still caps every fill.
``submit(self, order, check=True)`` and ``cancel(self, order, bracket=False)`` (public)
    backtrader queues the order (``cancel``: removes it from ``pending``, notifies and
    returns ``True``, or returns ``False`` when it was not pending). Hooks:
    ``on_submit(order)`` before backtrader queues it, ``on_cancel(order)`` after a cancel
    that took effect.

Given to the fill model:

- ``fill(order, price, qty=None)``: execute ``order`` now (on the current event) at
  ``price``, at most ``qty`` (``None``: all that remains), through backtrader's ``_execute``
  (which executes ``closed + opened``: a remainder within float noise of 0 completes the
  order).
- ``reject(order)``: reject it and notify the owner.
- ``cancel_now(order)``: cancel it while it is being matched (a cancel that was in flight
  reaches the book): what ``cancel`` does for an order in ``pending``, for the order that
  ``_try_exec`` holds (out of ``pending``, so it is not put back once dead).
- ``data_name(data)``: the name the feed was added with.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import backtrader as bt

__all__ = ["BACKTRADER_VERSION", "BACKBROKER_SIGNATURES", "BackBrokerHooks",
           "check_backtrader_version"]

BACKTRADER_VERSION = "1.9.78.123"

# BackBroker methods the adapter overrides or calls, with the parameters it relies on.
BACKBROKER_SIGNATURES = {
    "_try_exec": "(self, order)",
    "_execute": "(self, order, ago=None, price=None, cash=None, position=None, dtcoc=None)",
    "submit": "(self, order, check=True)",
    "cancel": "(self, order, bracket=False)",
    "set_filler": "(self, filler)",
    "init": "(self)",
    "notify": "(self, order)",
}


def check_backtrader_version(version: str | None = None) -> bool:
    """``True`` when ``version`` (default: the installed one) is ``BACKTRADER_VERSION``;
    otherwise warn (``RuntimeWarning``) and return ``False``."""
    version = bt.__version__ if version is None else version
    if version == BACKTRADER_VERSION:
        return True
    warnings.warn(
        f"s4_strategies.market_making.bt_adapter overrides private BackBroker methods "
        f"({', '.join(n for n in BACKBROKER_SIGNATURES if n.startswith('_'))}) and was verified "
        f"against backtrader {BACKTRADER_VERSION}; backtrader {version} is installed. "
        f"Fills may be wrong: check backtrader/brokers/bbroker.py against the adapter's notes.",
        RuntimeWarning, stacklevel=2)
    return False


check_backtrader_version()


class BackBrokerHooks(bt.brokers.BackBroker):
    """``BackBroker`` whose matching, executions and order lifecycle go through hooks (see
    the module doc). Subclasses override ``match``, ``executing``, ``on_submit`` and
    ``on_cancel``, and call ``fill``, ``reject``, ``match_default`` and ``data_name``."""

    def init(self):
        super().init()
        self._fill_qty = None
        if not hasattr(self, "_user_filler"):
            self._user_filler = None
        # init runs again when cerebro starts the broker: keep the user's filler then
        if self.p.filler is not None and self.p.filler != self._filler:
            self._user_filler = self.p.filler
        self.p.filler = self._filler

    # ------------------------------------------------------------ hooks to override
    def match(self, order):
        """Try to fill ``order`` on the current event (its feed's current bar or tick)."""
        self.match_default(order)

    def executing(self, order):
        """Context manager around each execution of ``order``, real or pseudo."""
        return contextlib.nullcontext()

    def on_submit(self, order):
        """``order`` is about to be queued."""

    def on_cancel(self, order):
        """``order`` was cancelled."""

    # ------------------------------------------------------------ hooks to call
    def match_default(self, order):
        """backtrader's own matching (a limit order fills when the range touches it)."""
        super()._try_exec(order)

    def fill(self, order, price, qty=None):
        """Execute ``order`` now at ``price``, at most ``qty`` of it (``None``: all)."""
        self._fill_qty = qty
        try:
            self._execute(order, ago=0, price=price)
        finally:
            self._fill_qty = None
        # backtrader executes ``closed + opened``, which is not the size asked for in floats
        # (a buy of 0.01 against a short of 0.003 executes 0.010000000000000002): a remainder
        # within float noise of 0 left the order alive, and each later fill of ``|remsize|``
        # doubled it. Such an order is complete.
        if order.alive() and abs(order.executed.remsize) <= 1e-9 * abs(order.created.size):
            order.executed.remsize = 0.0
            order.completed()
            self.notify(order)

    def reject(self, order):
        """Reject ``order`` and notify its owner."""
        order.reject(self)
        self.notify(order)

    def cancel_now(self, order):
        """Cancel ``order`` from inside ``match`` and notify its owner."""
        order.cancel()
        self.notify(order)
        self._ococheck(order)
        self._bracketize(order, cancel=True)
        self.on_cancel(order)

    @staticmethod
    def data_name(data):
        """The name ``data`` was added to cerebro with."""
        return data._name

    # ------------------------------------------------------------ backtrader overrides
    def set_filler(self, filler):
        self._user_filler = filler

    def submit(self, order, check=True):
        self.on_submit(order)
        return super().submit(order, check)

    def cancel(self, order, bracket=False):
        done = super().cancel(order, bracket)
        if done:
            self.on_cancel(order)
        return done

    def _filler(self, order, price, ago):
        rem = abs(order.executed.remsize)
        cap = math.inf if self._fill_qty is None else self._fill_qty
        if self._user_filler is not None:
            cap = min(cap, abs(self._user_filler(order, price, ago)))
        # a part within float noise of what is left is all of it
        return rem if cap >= rem - 1e-9 * abs(order.created.size) else cap

    def _try_exec(self, order):
        self.match(order)

    def _execute(self, order, ago=None, price=None, cash=None, position=None, dtcoc=None):
        with self.executing(order):
            return super()._execute(order, ago=ago, price=price, cash=cash,
                                    position=position, dtcoc=dtcoc)
