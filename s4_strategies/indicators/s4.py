"""``S4Indicator``: a trained state space model advancing one bar at a time inside backtrader.

It computes the checkpoint's features from the data's lines (the same definition training
used) and advances the model's recurrent state by one bar in every ``next()``, so a backtest
and a live feed compute exactly what was trained. In runonce mode ``once()`` computes the
whole series in one pass: batch features and the recurrent view in one compiled loop; tests
hold ``next()``, ``once()`` and the model's batch (parallel, FFT) forward equal.

Lines: ``signal`` (the most likely class as a position: -1/0/1, or -2..2 with five classes),
``confidence`` (its probability), ``expected_signal`` (probability-weighted class value),
``pred_return`` (predicted log return over the shortest label horizon) and ``pred_vol``
(predicted realised volatility per bar). All are NaN until ``warmup`` bars have been seen
since the start or the last state reset.

Warm-up: the indicator calls ``addminperiod(warmup)``, so a strategy's ``next()`` starts only
once every S4 line is defined (``prenext()`` runs before that; the indicator keeps advancing
its state there). A state reset (``reset_time``/``reset_gap``) starts a new warm-up inside
the run, and backtrader has no way to raise a minimum period mid-run: the lines are NaN for
``warmup`` bars after each reset, which strategies that use resets must allow for.

Restarts: ``resume=`` (or :meth:`S4Indicator.resume` before the first bar) continues from a
state saved after bar T (``s4_strategies.live.StateSaver`` writes them). The feed replays
history up to and past T: bars up to T are already in the state, so they are not stepped
again (their lines are NaN); the feed's bar at T must be the saved one, and the first bar
after T must follow it by one bar spacing; otherwise ``StateMismatch``.
"""

from __future__ import annotations

import math
import warnings
from array import array

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import SECONDS_PER_DAY, bar_open, num_to_index, parse_hhmm

from ..model import Predictor, load_model
from ..model.guards import bad_bar

_INF = math.inf
_OUT = ("signal", "confidence", "expected_signal", "pred_return", "pred_move", "pred_vol")
_OHLCV = ("open", "high", "low", "close", "volume")
_SAME_TIME = 0.5 / SECONDS_PER_DAY  # bar times within half a second are the same bar
_REL_TOL = 1e-9  # the saved bar's prices and volume against the feed's


class StateError(ValueError):
    """A saved state that cannot be used: unreadable, corrupt or malformed."""


class StateMismatch(StateError):
    """A saved state that does not belong here: another checkpoint, other data, a different
    bar at the saved time, or a gap after it."""


def _bar_text(num: float, values) -> str:
    when = num_to_index(np.array([num]))[0].strftime("%Y-%m-%d %H:%M:%S")
    return f"{when} UTC (" + " ".join(f"{k}={v!r}" for k, v in zip(_OHLCV, values)) + ")"


def _as_predictor(model) -> Predictor:
    if isinstance(model, Predictor):
        return model
    if model is None:
        raise ValueError("S4Indicator needs model= (a checkpoint path or a loaded model)")
    return load_model(model)


class S4Indicator(bt.Indicator):
    """Per-bar predictions of a trained S4/S4D/selective-SSM (or baseline) model.

    Params:
      - ``model``: checkpoint path or a :class:`~s4_strategies.model.Predictor`
        (``s4_strategies.load_model(path)``)
      - ``warmup``: bars to see before the lines count (default: the feature warm-up)
      - ``reset_time``: ``"HH:MM"`` (UTC) session start; the model state resets on the first
        bar at or after it each day (``None``: never)
      - ``reset_gap``: reset when the time since the previous bar exceeds this many bar
        spacings (``None``: never)
      - ``strict``: refuse data whose bar spacing differs from the training data's
        (``CheckpointError``): ``once()`` checks the whole series, ``next()`` (also
        ``resampledata``/``replaydata`` and live feeds) the first completed bars
        (``model.guards.SpacingWatch``); ``False`` turns the check off

    A bar with a non-finite or non-positive price, or a non-finite or negative volume (from a
    feed that does not validate, such as ``bt.feeds.PandasData``), raises ``feeds.DataError``
    naming the bar, in ``next()`` and ``once()`` alike, before any running state has moved:
    ``get_state()`` is then the state after the bar before it.
      - ``state``: a state from ``get_state()`` to start from; the bars fed must then be
        those after it (no checks)
      - ``resume``: a saved entry ``{"state", "bar", "spacing_s"}`` (one of
        ``s4_strategies.live.load_state(path).indicators``) to continue from, with the checks
        of :meth:`resume`; ``allow_gap``: accept (with a warning) a first bar after the
        saved one that comes later than one spacing after it (default: refuse)
    """

    lines = _OUT
    params = dict(model=None, warmup=None, reset_time=None, reset_gap=None, strict=True,
                  state=None, resume=None, allow_gap=False)
    plotinfo = dict(subplot=True, plotname="S4", plotymargin=0.1)
    plotlines = dict(
        signal=dict(_method="bar", alpha=0.5, width=1.0),
        confidence=dict(ls="--"),
        expected_signal=dict(_plotskip=True),
        pred_return=dict(_plotskip=True),
        pred_move=dict(_plotskip=True),
        pred_vol=dict(_plotskip=True),
    )

    def __init__(self):
        self.predictor = _as_predictor(self.p.model)
        spec = self.predictor.feature_spec
        self._warmup = int(self.p.warmup if self.p.warmup is not None else spec.warmup)
        self._reset_time = parse_hhmm(self.p.reset_time)
        self._stream = self._new_stream()
        self._since_reset = 0
        self._last_len = -1
        self._last_num = None
        self._snapshot = None
        self._once_done = False
        self._spacing_days = (self.predictor.meta.get("bar_spacing_s") or 0) / SECONDS_PER_DAY
        self._watch = self.predictor.spacing_watch(strict=self.p.strict)
        self._resuming = False
        if self.p.state is not None:
            self.set_state(self.p.state)
        if self.p.resume is not None:
            self.resume(self.p.resume)
        self.addminperiod(self._warmup)
        self.plotinfo.plotname = f"S4 {self.predictor.name}"

    def _plotlabel(self):
        # backtrader labels a plot with every param value: the model is an object, whose repr
        # says nothing; the name is already in ``plotname``, the reset rules are what is left.
        return [f"{k}={v}" for k, v in (("reset_time", self.p.reset_time),
                                         ("reset_gap", self.p.reset_gap)) if v is not None]

    def _new_stream(self):
        """The per-bar stream this indicator runs (a subclass may ask for more of it)."""
        return self.predictor.stream()

    def _after_step(self, out: dict) -> None:
        """Called after every bar stepped into the state (``_since_reset`` counts it): a
        subclass writes its own lines here."""

    def _series_segment(self, result: dict, seg: dict, x, keep) -> None:
        """``compute_series``, per segment between resets: ``seg`` the stream's ``run`` of
        the segment's normalised features ``x``, ``keep`` its bars past the warm-up; a
        subclass fills its own lines' slices of ``result`` (views of the segment)."""

    @property
    def features(self):
        """This bar's raw (un-normalised) features, in ``predictor.feature_spec.names``
        order, after a ``next()``; ``None`` before the first bar and in runonce mode. A buffer
        the next bar overwrites: copy it to keep it."""
        return self._stream.raw

    # -- state ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        """A copy of everything the indicator carries between bars."""
        return {"stream": self._stream.get_state(), "since_reset": self._since_reset,
                "last_num": self._last_num}

    def set_state(self, state: dict) -> None:
        self._stream.set_state(state["stream"])
        self._since_reset = state["since_reset"]
        self._last_num = state["last_num"]

    def resume(self, saved: dict, allow_gap: bool | None = None) -> None:
        """Continue from ``saved`` = ``{"state": get_state(), "bar": {"num", "open", ...,
        "volume"}, "spacing_s": seconds or None}``, the state after bar T = ``bar``.

        Call before the first bar. Bars up to T then leave the state alone (lines NaN); the
        feed's bar at T must equal ``bar`` (relative 1e-9), else ``StateMismatch``; so must
        the feed show T, and its first bar after T come one spacing (``spacing_s``, else the
        checkpoint's) after it, else ``StateMismatch`` (``allow_gap``: a later bar only
        warns); and that bar must find the indicator past its minimum period (a backfill of
        at least ``warmup`` bars up to T), or the strategy would skip it.
        """
        if self._last_len != -1:
            raise RuntimeError("S4Indicator.resume() must come before the first bar")
        try:
            bar = saved["bar"]
            t = float(bar["num"])
            values = tuple(float(bar[k]) for k in _OHLCV)
            state = saved["state"]
            last = state["last_num"]
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"not a saved indicator state: it lacks {exc}") from exc
        if last is None or abs(last - t) > _SAME_TIME:
            raise StateError(f"the saved state is not the state after its bar "
                             f"{_bar_text(t, values)}")
        try:
            self.set_state(state)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise StateMismatch(f"the saved state does not fit this model ({exc!r})") from exc
        spacing = saved.get("spacing_s") or self.predictor.meta.get("bar_spacing_s")
        self._resume = (t, values, spacing / SECONDS_PER_DAY if spacing else None,
                        self.p.allow_gap if allow_gap is None else allow_gap)
        self._resume_seen = False
        self._resuming = True

    @property
    def last_num(self) -> float | None:
        """The backtrader date number of the last bar stepped into the state."""
        return self._last_num

    @property
    def resuming(self) -> bool:
        """True while bars up to the resumed state's last bar are being passed over."""
        return self._resuming

    def _held(self, num: float, values: tuple) -> bool:
        """Resuming: True for a bar the restored state already holds (lines NaN, state
        untouched); at the saved bar and the first one after it, the checks of ``resume``."""
        t, saved, spacing, allow_gap = self._resume
        if num <= t + _SAME_TIME:
            if num >= t - _SAME_TIME:
                if not all(abs(a - b) <= _REL_TOL * max(abs(a), abs(b))
                           for a, b in zip(saved, values)):
                    raise StateMismatch(
                        f"the feed's bar at {_bar_text(t, values)} differs from the saved one "
                        f"{_bar_text(t, saved)}: the state does not continue this data")
                self._resume_seen = True
            for name in self.lines.getlinealiases():
                getattr(self.lines, name)[0] = math.nan
            return True
        if not self._resume_seen:
            raise StateMismatch(
                f"the feed never showed the saved bar {_bar_text(t, saved)}: its first bar "
                f"after it is {_bar_text(num, values)}; backfill history back to the saved "
                "bar (the state would skip the bars in between)")
        if spacing is not None and abs(num - t - spacing) > 1e-3 * spacing:
            msg = (f"the first bar after the saved one ({_bar_text(t, saved)}) is "
                   f"{_bar_text(num, values)}, not one bar spacing "
                   f"({spacing * SECONDS_PER_DAY:g} s) later")
            if not (allow_gap and num > t + spacing):
                raise StateMismatch(msg + ": the recurrent state would skip bars (allow_gap="
                                    "True to accept a gap)")
            warnings.warn(msg + "; continuing across the gap (allow_gap=True)", stacklevel=2)
        if len(self) < self._minperiod:
            raise StateMismatch(
                f"only {len(self) - 1} bars of backfill up to the saved bar; the indicator "
                f"needs {self._minperiod - 1} (its warm-up) before the bar after it, or the "
                "strategy would pass over bars after the saved one")
        self._resuming = False
        return False

    def reset_state(self) -> None:
        """Zero the model's recurrent state (features keep their history)."""
        self._stream.stepper.reset()
        self._since_reset = 0

    def _is_boundary(self, num: float, prev: float | None) -> bool:
        if prev is None:
            return False
        if self.p.reset_gap is not None and self._spacing_days > 0:
            if num - prev > self.p.reset_gap * self._spacing_days * (1 + 1e-3):
                return True
        if self._reset_time is not None:
            t = self._reset_time.hour / 24.0 + self._reset_time.minute / 1440.0
            # A session start t (days after midnight UTC) lies in (prev, num].
            if math.floor(num - t + 1e-9) > math.floor(prev - t + 1e-9):
                return True
        return False

    # -- next(): one bar ---------------------------------------------------------------
    def prenext(self):
        self.next()

    def next(self):
        d = self.data
        o, h, l, c, v = d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]
        num = d.datetime[0]
        if not (0.0 < o < _INF and 0.0 < h < _INF and 0.0 < l < _INF and 0.0 < c < _INF
                and 0.0 <= v < _INF):  # also false for NaN: refused before any state moves
            raise bad_bar(num_to_index(np.array([num]))[0], o, h, l, c, v)
        if self._resuming and self._held(num, (o, h, l, c, v)):
            return
        n = len(self)
        if n == self._last_len:
            if self._snapshot is not None:
                # The same bar again (replaydata / a live bar update): redo it from before.
                self.set_state(self._snapshot)
        else:
            if not self._watch.done and self._last_num is not None:
                # A new bar: the one before it is complete, its time final.
                self._watch.closed(self._last_num * SECONDS_PER_DAY)
            if getattr(d, "replaying", False) or d.islive():
                self._snapshot = self.get_state()
        self._last_len = n
        if self._is_boundary(num, self._last_num):
            self.reset_state()
        self._last_num = num
        onum = bar_open(d, num)  # a resampled bar's bin open (feeds.resample), as trained
        frac = onum - math.floor(onum)
        hour = frac * 24.0
        dow = float((int(math.floor(onum)) - 1) % 7)
        out = self._stream.step(o, h, l, c, v, hour, dow)
        self._since_reset += 1
        self._after_step(out)
        if self._since_reset < self._warmup:
            for name in _OUT:
                getattr(self.lines, name)[0] = math.nan
            return
        self.lines.signal[0] = float(out["signal"])
        self.lines.confidence[0] = float(out["confidence"])
        self.lines.expected_signal[0] = float(out["expected_signal"])
        self.lines.pred_return[0] = float(out["pred_return"])
        self.lines.pred_move[0] = float(out["pred_move"])
        self.lines.pred_vol[0] = float(out["pred_vol"])

    # -- once(): the whole series in the parallel view ------------------------------------
    def preonce(self, start, end):
        pass

    def oncestart(self, start, end):
        self.once(start, end)

    def once(self, start, end):
        if self._once_done:
            return
        if self._resuming:
            raise StateError("resume steps bar by bar: run cerebro with runonce=False "
                             "(live feeds do)")
        self._once_done = True
        d = self.data
        n = d.buflen()
        nums = np.frombuffer(d.datetime.array, dtype=np.float64)[:n] if n else np.empty(0)
        frame = pd.DataFrame(
            {k: np.asarray(getattr(d, k).array[:n], dtype=np.float64)
             for k in ("open", "high", "low", "close", "volume")},
            index=num_to_index(nums),
        )
        out = self.compute_series(frame, nums)
        for name in self.lines.getlinealiases():
            getattr(self.lines, name).array[:n] = array("d", out[name])

    def compute_series(self, frame: pd.DataFrame, nums: np.ndarray | None = None) -> dict:
        """Lines for every bar of ``frame`` in the batch view, honouring resets and warm-up."""
        n = len(frame)
        x = self.predictor.features(frame, strict=self.p.strict)
        bounds = [0]
        if nums is not None and (self.p.reset_gap is not None or self._reset_time is not None):
            bounds += [i for i in range(1, n) if self._is_boundary(nums[i], nums[i - 1])]
        bounds.append(n)
        result = {name: np.full(n, np.nan) for name in self.lines.getlinealiases()}
        stream = self._new_stream()
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b <= a:
                continue
            stream.stepper.reset()
            seg = stream.run(x[a:b])
            keep = np.arange(b - a) >= self._warmup - 1
            for name in _OUT:
                result[name][a:b] = np.where(keep, seg[name], np.nan)
            self._series_segment({k: v[a:b] for k, v in result.items()}, seg, x[a:b], keep)
        return result
