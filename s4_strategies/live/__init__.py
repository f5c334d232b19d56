"""Taking a strategy live: state that survives restarts, the kill switch, the shadow broker.

``feeds.BybitStore`` is the exchange side (data and the Bybit broker); this package holds
what sits between it and a strategy, for every broker alike.

- :mod:`.state`: ``StateSaver`` (restore at start, save after every closed bar),
  ``save_state``/``load_state``/``restore_strategy``, ``fingerprint``; :mod:`.codec`: the
  safe (no pickle), exact serialiser and the atomic write.
- :mod:`.killswitch`: ``KillSwitch``, user limits that cancel, flatten and stop.
- :mod:`.gate`: ``live_only``/``trade_from``, strategies that order only on live bars or
  from a bar on.
- :mod:`.shadow`: ``ShadowBroker``, the backtest's broker on live bars with a journal
  (:mod:`.journal`: the records, and ``OrderJournal`` for any other broker);
  :mod:`.replay`: the journal read back, replayed and compared with a backtest.
"""

from .gate import live_only, trade_from
from .journal import OrderJournal
from .killswitch import KillSwitch, RateWindow
from .replay import compare_fills, journal_fills, load_journal, orders_placed, replay
from .shadow import ShadowBroker
from .state import (
    StateError,
    StateFile,
    StateMismatch,
    StateSaver,
    data_identity,
    fingerprint,
    load_state,
    restore_strategy,
    save_state,
)

__all__ = [
    "KillSwitch", "OrderJournal", "RateWindow", "ShadowBroker", "StateError", "StateFile",
    "StateMismatch", "StateSaver", "compare_fills", "data_identity", "fingerprint",
    "journal_fills", "live_only", "load_journal", "load_state", "orders_placed", "replay",
    "restore_strategy", "save_state", "trade_from",
]
