"""Taking a strategy live: state that survives restarts, the kill switch, the shadow broker.

``feeds.BybitStore`` is the exchange side (data and the Bybit broker); this package holds
what sits between it and a strategy, for every broker alike.

- :mod:`.state`: ``StateSaver`` (restore at start, save after every closed bar),
  ``save_state``/``load_state``/``restore_strategy``, ``fingerprint``; :mod:`.codec`: the
  safe (no pickle), exact serialiser and the atomic write.
"""

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
    "StateError", "StateFile", "StateMismatch", "StateSaver", "data_identity", "fingerprint",
    "load_state", "restore_strategy", "save_state",
]

# the kill switch (:mod:`.killswitch`): user limits that cancel, flatten and stop
from .killswitch import KillSwitch, RateWindow  # noqa: E402

__all__ += ["KillSwitch", "RateWindow"]
