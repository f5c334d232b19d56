"""The bridge from backtrader strategies to the multi-asset model (``MultiAssetS4``).

Strategies may not import the model package directly; this module hands them a loaded
:class:`~s4_strategies.model.multi.MultiPredictor` and :class:`SharedStream`: the model's
one recurrent state fed from several backtrader datas, a bar time at a time, that saves
and resumes like ``S4Indicator`` does.

Bar times. The model steps once per bar time with every asset's bar of that time (an asset
without one goes as ``None``: a zero input, as in training). A backtest delivers all the
bars of a time together, so each call of :meth:`SharedStream.update` steps at once. Live
feeds deliver them one by one (each symbol's candle comes on its own message): a time is
stepped when every data that has started has shown its bar, or when a later bar arrives
(the missing ones then go as ``None``, as a gap would). A bar that arrives after its time
was stepped is not fed (it is counted in ``late`` and logged).

Restarts. :meth:`SharedStream.get_state` is the state after the last stepped time T (the
bars of a time not yet stepped are not in it: the backfill brings them again);
:meth:`SharedStream.resume` continues from one, with the checks of the single-asset
indicator: the same checkpoint (:func:`~.identity.fingerprint`), the same assets and feeds
(:func:`~.identity.data_identity`), the feed's bars at T equal to the saved ones, and the
first bar after T one bar spacing later (``allow_gap``: a later one only warns). Each
refusal is a ``StateMismatch`` naming both sides.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from feeds.bartime import SECONDS_PER_DAY, bar_open, num_to_index

from ..model.guards import bad_bar
from ..model.multi import MultiPredictor, MultiStream, load_multi
from .identity import data_identity, fingerprint
from .s4 import StateError, StateMismatch

__all__ = ["MultiPredictor", "MultiStream", "SharedStream", "as_multi_predictor", "bar_tuple"]

logger = logging.getLogger(__name__)
_SAME_TIME = 0.5 / SECONDS_PER_DAY  # bar times within half a second are the same bar
_REL_TOL = 1e-9
_INF = math.inf


def as_multi_predictor(model) -> MultiPredictor:
    """``model``: a :class:`MultiPredictor` or the path of an "s4-multi/1" checkpoint."""
    if isinstance(model, MultiPredictor):
        return model
    if model is None:
        raise ValueError("the multi-asset strategy needs model= (a checkpoint path or a "
                         "MultiPredictor)")
    return load_multi(model)


def bar_tuple(data) -> tuple:
    """The current bar of a backtrader data as ``MultiStream.step`` takes it:
    (open, high, low, close, volume, UTC hour, weekday) of the bar's open, as trained."""
    onum = bar_open(data, data.datetime[0])  # a resampled bar's bin open (feeds.resample)
    frac = onum - math.floor(onum)
    return (data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0],
            frac * 24.0, float((int(math.floor(onum)) - 1) % 7))


def _when(num: float) -> str:
    return num_to_index(np.array([num]))[0].strftime("%Y-%m-%d %H:%M:%S") + " UTC"


class SharedStream:
    """One :class:`MultiStream` over backtrader datas ``{asset: data}`` (module doc).

    Call :meth:`update` on every strategy step (``prenext`` too); it returns True when a
    bar time was stepped, whose time is ``time`` (a backtrader date number), whose bars are
    ``bars`` ``{asset: (o, h, l, c, v, hour, dow)}`` (assets without a bar are absent) and
    whose outputs are ``latest`` (``MultiStream.step``: the warm assets). ``steps`` counts
    the times stepped."""

    def __init__(self, predictor: MultiPredictor, datas: dict):
        self.predictor = predictor
        self.datas = dict(datas)
        missing = [a for a in predictor.assets if a not in self.datas]
        if missing:
            raise ValueError(f"the model trades {predictor.assets}; no data for {missing}")
        self.stream = predictor.stream()
        self.time = None
        self.bars: dict = {}
        self.latest: dict = {}
        self.steps = 0
        self.late = 0
        self._seen = {a: 0 for a in self.datas}  # each data's length when last read
        self._ptime, self._pending = None, {}
        self._saved_bars: dict = {}
        self._resume = None
        self._fingerprint = None

    # -- bars ----------------------------------------------------------------------------
    def update(self) -> bool:
        """Read every data's new bar; step each bar time that is complete (module doc)."""
        new = []
        for a, d in self.datas.items():
            n = len(d)
            if n > self._seen[a]:
                self._seen[a] = n
                new.append((float(d.datetime[0]), a))
        stepped = False
        for num, a in sorted(new):
            d = self.datas[a]
            values = (d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0])
            if not all(0.0 < x < _INF for x in values[:4]) or not 0.0 <= values[4] < _INF:
                raise bad_bar(num_to_index(np.array([num]))[0], *values)
            if self._resume is not None and self._held(a, num, values):
                continue
            if self._ptime is not None and num > self._ptime + _SAME_TIME:
                stepped |= self._flush()
            if (self.time is not None and num <= self.time + _SAME_TIME) or \
                    (self._ptime is not None and num < self._ptime - _SAME_TIME):
                self.late += 1
                logger.warning("%s: its bar of %s came after that time was stepped; not fed "
                               "to the model", a, _when(num))
                continue
            self._ptime = num if self._ptime is None else self._ptime
            self._pending[a] = (num, *values, *bar_tuple(d)[5:])
        if self._pending and (not self._is_live() or self._complete()):
            stepped |= self._flush()
        return stepped

    def _is_live(self) -> bool:
        return any(d.islive() for d in self.datas.values())

    def _complete(self) -> bool:
        return all(a in self._pending for a, d in self.datas.items() if len(d))

    def _flush(self) -> bool:
        bars = {a: b[1:] for a, b in self._pending.items()}  # (o, h, l, c, v, hour, dow)
        self.latest = self.stream.step(bars)
        self.time, self.bars = self._ptime, bars
        self._saved_bars = {a: list(b[:6]) for a, b in self._pending.items()}
        self._ptime, self._pending = None, {}
        self.steps += 1
        return True

    # -- state ---------------------------------------------------------------------------
    def _identity(self) -> dict:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.predictor)
        return {"fingerprint": self._fingerprint, "assets": list(self.predictor.assets),
                "datas": {a: data_identity(d) for a, d in self.datas.items()}}

    def get_state(self) -> dict:
        """The state after the last stepped time (plain data; ``StateError`` before one)."""
        if self.time is None:
            raise StateError("the shared stream has stepped no bar yet: nothing to save")
        spacing = self.predictor.meta.get("bar_spacing_s")
        return {**self._identity(), "stream": self.stream.get_state(), "time": self.time,
                "bars": dict(self._saved_bars), "steps": self.steps,
                "spacing_s": None if spacing is None else float(spacing)}

    def resume(self, saved: dict, allow_gap: bool = False) -> None:
        """Continue from ``saved`` (a :meth:`get_state`), before the first bar: the checks of
        the module doc, ``StateMismatch`` naming both sides; nothing moves on a refusal."""
        if any(self._seen.values()):
            raise RuntimeError("SharedStream.resume() must come before the first bar")
        try:
            t, bars, steps = float(saved["time"]), dict(saved["bars"]), int(saved["steps"])
            ident = {k: saved[k] for k in ("fingerprint", "assets", "datas")}
            stream = saved["stream"]
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"not a saved shared-stream state: it lacks {exc}") from exc
        mine = self._identity()
        if ident["fingerprint"] != mine["fingerprint"]:
            raise StateMismatch(f"saved with the checkpoint {ident['fingerprint']}, this run's "
                                f"is {mine['fingerprint']}: a state continues only the model "
                                "that made it")
        for key, what in (("assets", "the assets"), ("datas", "the datas")):
            if ident[key] != mine[key]:
                raise StateMismatch(f"saved with {what} {ident[key]}, this run has {mine[key]}")
        try:
            self.stream.set_state(stream)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            self.stream = self.predictor.stream()
            raise StateMismatch(f"the saved state does not fit this model ({exc!r})") from exc
        spacing = saved.get("spacing_s") or self.predictor.meta.get("bar_spacing_s")
        self.time, self.steps, self._saved_bars = t, steps, bars
        self._resume = (t, bars, spacing / SECONDS_PER_DAY if spacing else None, allow_gap,
                        set())

    @property
    def resuming(self) -> bool:
        """True while bars up to the saved time are being passed over."""
        return self._resume is not None

    def _held(self, asset: str, num: float, values: tuple) -> bool:
        """Resuming: True for a bar the restored state already holds; at the saved time and
        the first bar after it, the checks of :meth:`resume`."""
        t, saved, spacing, allow_gap, shown = self._resume
        if num <= t + _SAME_TIME:
            if num >= t - _SAME_TIME:
                if asset in saved:
                    old = tuple(float(x) for x in saved[asset][1:6])
                    if not all(abs(a - b) <= _REL_TOL * max(abs(a), abs(b))
                               for a, b in zip(old, values)):
                        raise StateMismatch(f"{asset}: the feed's bar at {_when(t)} {values} "
                                            f"differs from the saved one {old}: the state "
                                            "does not continue this data")
                shown.add(asset)
            return True
        unseen = sorted(set(saved) - shown)
        if unseen:
            raise StateMismatch(f"the feed never showed the saved bar of {unseen} at "
                                f"{_when(t)}: backfill history back to it (the state would "
                                "skip the bars in between)")
        if spacing is not None and abs(num - t - spacing) > 1e-3 * spacing:
            msg = (f"{asset}: the first bar after the saved time {_when(t)} is at "
                   f"{_when(num)}, not one bar spacing ({spacing * SECONDS_PER_DAY:g} s) later")
            if not (allow_gap and num > t + spacing):
                raise StateMismatch(msg + ": the recurrent state would skip bars (allow_gap="
                                    "True to accept a gap)")
            warnings.warn(msg + "; continuing across the gap (allow_gap=True)", stacklevel=3)
        self._resume = None
        return False
