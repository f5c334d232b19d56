"""State that survives restarts: the indicators' recurrent state and feature stream and the
strategy's own state, saved after every closed bar and restored at start.

The one way to use it (the live runner's recipe)::

    cerebro.addstrategy(S4DirectionalStrategy, model=ckpt)
    cerebro.addanalyzer(StateSaver, path="state/btc.json")    # resume="auto"
    cerebro.adddata(feeds.BybitData(symbol="BTCUSDT", live=True, backfill=500))
    cerebro.run(runonce=False)

At start, if ``path`` exists, ``StateSaver`` restores it (:func:`restore_strategy`): every
``S4Indicator`` of the strategy (``strategy.getindicators()``, named by the attribute that
holds it, e.g. ``s4``) gets its saved state and the strategy its ``set_state``; nothing
moves if any check fails. After each closed bar (after the strategy's ``next``, also during
its warm-up) it writes the file again (``every`` bars; atomically, :mod:`.codec`).

On restore the feed's backfill must reach back to the saved bar T and at least the
indicator's warm-up before it: bars up to T are passed over (already in the state; lines NaN),
the bar at T must equal the saved one, and the next bar must come one bar spacing after T
(``allow_gap=True``: a later bar only warns). The checkpoint (:func:`fingerprint`) and the
data (:func:`data_identity`: name, timeframe, symbol, category, interval, testnet) must be
those of the saved state. Every refusal is a ``StateMismatch`` naming both sides; a file
that cannot be read is a ``StateError`` naming it: never a silent fresh start. A missing
file with ``resume="auto"`` is a first start (logged); ``resume=True`` requires the file.

Convention: any strategy with ``get_state()``/``set_state(state)`` (plain data: dicts,
lists, tuples, numbers, strings, numpy arrays) gets its state saved and restored; open
orders and positions are the broker's, not part of it. A strategy whose model state lives
in it (``S4MultiAssetStrategy``: no ``S4Indicator``) says when it has one to save
(``state_ready``), checks what it restores in ``set_state`` (a ``StateError`` it raises
comes through as it is) and names the bar it resumes from (``resumed_from``). A simulated
broker with ``get_state()``/``set_state(state, datas)`` (the shadow broker: cash and
positions) is saved and restored with it; an exchange's broker reads its account instead.

File: JSON (no pickle), ``{"format": "s4-trading-state", "version": 1, "sha256", "body"}``,
body = ``{"saved_at" (UTC), "strategy": {"class", "state"} | None, "indicators": {name:
{"fingerprint", "data", "settings", "spacing_s", "bar": {"time" (UTC), "num", "open", ...,
"volume"}, "state"}}, "broker": {...} | None}``; :func:`load_state` returns it as a
:class:`StateFile`.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt

from feeds.bartime import SECONDS_PER_DAY, num_to_iso

from ..indicators import S4Indicator
from ..indicators.identity import _plain, bar_spacing_s, data_identity, fingerprint
from ..indicators.s4 import StateError, StateMismatch
from .codec import dump_bytes, load_bytes, read_bytes, write_atomic

logger = logging.getLogger(__name__)

FORMAT = "s4-trading-state"
VERSION = 1
_OHLCV = ("open", "high", "low", "close", "volume")
_SAME_TIME = 0.5 / SECONDS_PER_DAY
_ENTRY_KEYS = ("fingerprint", "data", "settings", "spacing_s", "bar", "state")

__all__ = ["FORMAT", "VERSION", "StateError", "StateFile", "StateMismatch", "StateSaver",
           "data_identity", "fingerprint", "load_state", "restore_strategy", "s4_indicators",
           "save_state"]


# -- identities (fingerprint, data_identity: indicators.identity) ---------------------
def _settings(ind: S4Indicator) -> dict:
    rt = ind._reset_time
    return {"warmup": ind._warmup, "reset_time": None if rt is None else rt.isoformat(),
            "reset_gap": _plain(ind.p.reset_gap)}


def s4_indicators(strategy) -> dict:
    """The strategy's ``S4Indicator``s by name: the attribute holding each (``s4``), else
    ``s4_<i>`` by creation order."""
    found = [i for i in strategy.getindicators() if isinstance(i, S4Indicator)]
    attrs = {}
    for name, val in vars(strategy).items():
        if isinstance(val, S4Indicator) and not name.startswith("_"):
            attrs.setdefault(id(val), name)
    out = {}
    for i, ind in enumerate(found):
        name = attrs.get(id(ind), f"s4_{i}")
        out[name if name not in out else f"{name}_{i}"] = ind
    return out


def _on_bar(inds: dict) -> bool:
    """Every indicator's state is the state after its data's current bar."""
    for ind in inds.values():
        last = ind.last_num
        if ind.resuming or last is None or abs(last - ind.data.datetime[0]) > _SAME_TIME:
            return False
    return True


# -- the file --------------------------------------------------------------------------
@dataclass
class StateFile:
    """A loaded state file (:func:`load_state`)."""

    path: Path
    version: int
    body: dict

    @property
    def saved_at(self) -> str:
        return self.body["saved_at"]

    @property
    def indicators(self) -> dict:
        """Indicator name -> ``{"fingerprint", "data", "settings", "spacing_s", "bar",
        "state"}`` (what ``S4Indicator(resume=...)`` takes)."""
        return self.body["indicators"]

    @property
    def strategy(self) -> dict | None:
        """``{"class": name, "state": ...}``, or None for a strategy without state."""
        return self.body["strategy"]

    def _first(self, key):
        return next(iter(self.indicators.values()))[key] if self.indicators else None

    @property
    def fingerprint(self) -> str | None:
        """The (first) indicator's checkpoint fingerprint."""
        return self._first("fingerprint")

    @property
    def data(self) -> dict | None:
        """The (first) indicator's data identity."""
        return self._first("data")

    @property
    def bar(self) -> dict | None:
        """The (first) indicator's last bar: ``time`` (UTC ISO), ``num`` and OHLCV."""
        return self._first("bar")


def collect(strategy, inds: dict | None = None, prints: dict | None = None) -> dict:
    """The state body of ``strategy`` now (every S4 indicator must be on its current bar)."""
    inds = s4_indicators(strategy) if inds is None else inds
    if not _on_bar(inds):
        raise StateError("an S4Indicator's state is not the state after its data's current "
                         "bar (before the first bar, or passing over resumed bars): nothing to "
                         "save yet")
    entries = {}
    for name, ind in inds.items():
        d = ind.data
        num = float(d.datetime[0])
        bar = {"time": num_to_iso(num), "num": num}
        bar.update({k: float(getattr(d, k)[0]) for k in _OHLCV})
        entries[name] = {
            "fingerprint": (prints or {}).get(name) or fingerprint(ind.predictor),
            "data": data_identity(d), "settings": _settings(ind),
            "spacing_s": bar_spacing_s(d), "bar": bar, "state": ind.get_state(),
        }
    get = getattr(strategy, "get_state", None)
    strat = {"class": type(strategy).__name__, "state": get()} if callable(get) else None
    getb = getattr(strategy.broker, "get_state", None)  # a simulated broker's cash, positions
    return {"saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "strategy": strat,
            "indicators": entries, "broker": getb() if callable(getb) else None}


def save_state(path, strategy, inds: dict | None = None, prints: dict | None = None,
               fsync: bool = True) -> Path:
    """Write ``strategy``'s state (indicators + its ``get_state``) to ``path`` atomically."""
    return write_atomic(path, dump_bytes(collect(strategy, inds, prints), FORMAT, VERSION),
                        fsync=fsync)


def load_state(path) -> StateFile:
    """Read a state file: ``StateError`` naming it if it is corrupt, truncated, of another
    format or malformed (``FileNotFoundError`` if missing)."""
    path = Path(path)
    version, body = load_bytes(read_bytes(path), path, FORMAT, versions=(VERSION,))
    ok = (isinstance(body, dict) and isinstance(body.get("indicators"), dict)
          and "saved_at" in body and "strategy" in body
          and (body["strategy"] is None or (isinstance(body["strategy"], dict)
                                            and {"class", "state"} <= set(body["strategy"])))
          and all(isinstance(e, dict) and all(k in e for k in _ENTRY_KEYS)
                  and isinstance(e["bar"], dict) and all(k in e["bar"] for k in ("num",
                                                                                  *_OHLCV))
                  for e in body["indicators"].values()))
    if not ok:
        raise StateError(f"{path}: a state file without the sections it needs")
    return StateFile(path, version, body)


def _check(where, what: str, saved, now) -> None:
    if saved != now:
        raise StateMismatch(f"{where}: saved with {what} {saved}, this run has {now}")


def restore_strategy(strategy, state, allow_gap: bool | None = None,
                     prints: dict | None = None) -> StateFile:
    """Restore ``state`` (a path or :class:`StateFile`) into ``strategy`` before its first
    bar: every check first (indicators, checkpoint fingerprints, data identities, indicator
    settings, strategy class), then each indicator's :meth:`S4Indicator.resume` and the
    strategy's ``set_state``. ``StateMismatch`` naming both sides on any difference.
    ``allow_gap``: passed to ``resume`` (None: each indicator's own ``allow_gap`` param)."""
    sf = state if isinstance(state, StateFile) else load_state(state)
    inds = s4_indicators(strategy)
    saved = sf.indicators
    if set(inds) != set(saved):
        raise StateMismatch(f"{sf.path}: saved for indicators {sorted(saved)}, this strategy "
                            f"has {sorted(inds)}")
    for name, ind in inds.items():
        e, where = saved[name], f"{sf.path} (indicator {name!r})"
        fp = (prints or {}).get(name) or fingerprint(ind.predictor)
        if e["fingerprint"] != fp:
            raise StateMismatch(f"{where}: saved with the checkpoint {e['fingerprint']}, this "
                                f"run's checkpoint ({ind.predictor.name}) is {fp}: a state "
                                "continues only the model that made it")
        _check(where, "the data", e["data"], data_identity(ind.data))
        _check(where, "the indicator settings", e["settings"], _settings(ind))
    get, put = getattr(strategy, "get_state", None), getattr(strategy, "set_state", None)
    strat = sf.strategy
    if strat is not None or callable(put):
        mine = type(strategy).__name__ if callable(get) and callable(put) else None
        _check(sf.path, "the strategy", None if strat is None else strat["class"], mine)
    if strat is not None:  # first: a strategy refusing its state leaves nothing moved
        try:
            put(strat["state"])
        except StateError:  # a refusal that names what does not fit (StateMismatch)
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{sf.path}: the strategy's saved state is unusable: "
                             f"{exc}") from exc
    for name, ind in inds.items():
        ind.resume(saved[name], allow_gap=allow_gap)
    broker = sf.body.get("broker")
    if broker is not None and callable(getattr(strategy.broker, "set_state", None)):
        strategy.broker.set_state(broker, strategy.datas)
    return sf


# -- the analyzer ----------------------------------------------------------------------
class StateSaver(bt.Analyzer):
    """Restore the strategy's state at start and save it after every closed bar.

    Params:
      - ``path``: the state file (required)
      - ``every``: save every this many bars (1); the last one is also saved at the end
      - ``resume``: ``"auto"`` (restore if ``path`` exists, else start fresh), ``True``
        (``path`` must exist) or ``False`` (start fresh, then overwrite it)
      - ``allow_gap``: accept, with a warning, a first bar after the saved one that comes
        later than one bar spacing (None: the indicator's ``allow_gap``, by default False:
        ``StateMismatch``)
      - ``fsync``: make each write durable before it replaces the file (True)

    ``get_analysis()``: ``path``, ``saves`` (files written), ``restored`` (the saved bar's
    time, or None for a fresh start).
    """

    params = dict(path=None, every=1, resume="auto", allow_gap=None, fsync=True)

    def start(self):
        if not self.p.path:
            raise ValueError("StateSaver needs path= (the state file)")
        if int(self.p.every) < 1:
            raise ValueError(f"StateSaver every= must be >= 1, got {self.p.every!r}")
        if self.p.resume not in ("auto", True, False):
            raise ValueError(f"StateSaver resume= must be 'auto', True or False, "
                             f"got {self.p.resume!r}")
        for d in self.strategy.datas:
            if getattr(d, "replaying", False):
                raise ValueError("StateSaver saves closed bars; replaydata delivers bars "
                                 "still forming")
        self._path = Path(self.p.path)
        self._inds = s4_indicators(self.strategy)
        self._prints = {n: fingerprint(i.predictor) for n, i in self._inds.items()}
        self._pending = 0
        self.saves = 0
        self.restored = None
        if self.p.resume is True or (self.p.resume == "auto" and self._path.exists()):
            sf = restore_strategy(self.strategy, self._path, allow_gap=self.p.allow_gap,
                                  prints=self._prints)
            self.restored = (sf.bar["time"] if sf.bar else
                             getattr(self.strategy, "resumed_from", None) or sf.saved_at)
            logger.info("restored the state saved after %s from %s", self.restored, self._path)
        elif self.p.resume == "auto":
            logger.info("no state at %s: starting fresh", self._path)

    def prenext(self):
        if self.restored is not None and self._inds and not any(
                i.resuming for i in self._inds.values()):
            raise StateMismatch(
                f"{self._path}: the strategy is still warming up at "
                f"{num_to_iso(self.strategy.data.datetime[0])}, after the saved bar "
                f"{self.restored}: backfill more bars before it (the strategy would pass "
                "over bars the state continues)")
        self.next()

    def next(self):
        if not _on_bar(self._inds) or not getattr(self.strategy, "state_ready", True):
            return
        self._pending += 1
        if self._pending >= int(self.p.every):
            self._write()

    def stop(self):
        if self._pending:
            self._write()

    def _write(self) -> None:
        save_state(self._path, self.strategy, self._inds, self._prints, fsync=self.p.fsync)
        self._pending = 0
        self.saves += 1

    def get_analysis(self):
        return {"path": str(self._path), "saves": self.saves, "restored": self.restored}
