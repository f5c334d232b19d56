"""The cost-aware decision rule, shared by the evaluation and the strategies (pure: numpy).

The score is the model's expected log return over its holding horizon, after the close of
bar ``t``; the rule turns it into the position held over bar ``t+1``: -1, 0 or +1.

:class:`BandRule` has a no-trade band and hysteresis (``exit <= enter``)::

    flat  -> long   when score >  enter        flat  -> short  when score < -enter
    long  stays     while score >  exit        short stays     while score < -exit
    long  -> short  when score < -enter        short -> long   when score >  enter
    long  -> flat   otherwise (score <= exit)  short -> flat   otherwise (score >= -exit)
    NaN score (warm-up) -> flat, whatever the position.

Entering the other side takes precedence over staying (it matters only when
``exit < -enter``). ``long_only`` replaces every short by flat. ``exit < 0`` holds a
position through a weak opposite signal (more hysteresis, fewer trades).
:func:`band_from_cost` scales the band by the round-trip cost (``2 * fee``); the training
side (``training.decision.select_rule``) picks that scaling on validation data.

The multi-asset strategy's decision is how often to rebalance to its portfolio weights and
the smallest change worth a trade (``training.allocation`` chooses both on validation);
:data:`REBALANCE_FALLBACK` is what it trades with a checkpoint that carries no choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["REBALANCE_FALLBACK", "BandRule", "band_from_cost"]

#: the multi-asset strategy's rebalancing without a decision in its checkpoint: every 24
#: bars, skipping weight changes under 0.02
REBALANCE_FALLBACK = {"rebalance": 24, "min_trade": 0.02}


@dataclass(frozen=True)
class BandRule:
    """Score -> position in {-1, 0, +1} with a no-trade band (see the module docstring).

    ``enter >= 0`` (``inf``: never trades), ``exit <= enter`` (may be negative).
    """

    enter: float
    exit: float
    long_only: bool = False

    def __post_init__(self):
        enter, exit_ = float(self.enter), float(self.exit)
        if math.isnan(enter) or enter < 0:
            raise ValueError(f"enter must be >= 0 (inf: never trade), not {self.enter!r}")
        if math.isnan(exit_) or exit_ > enter:
            raise ValueError(f"exit must be <= enter ({enter}), not {self.exit!r}")
        object.__setattr__(self, "enter", enter)
        object.__setattr__(self, "exit", exit_)
        object.__setattr__(self, "long_only", bool(self.long_only))

    @property
    def never_trades(self) -> bool:
        return math.isinf(self.enter)

    def step(self, score, pos) -> int:
        """The position after this bar's ``score`` given the current ``pos`` (its sign is
        what counts). The per-bar path; ``None`` and NaN scores mean warm-up: flat."""
        if score is None or score != score:
            return 0
        if score > self.enter:
            return 1
        if score < -self.enter:
            return 0 if self.long_only else -1
        if pos > 0:
            return 1 if score > self.exit else 0
        if pos < 0:
            return -1 if score < -self.exit else 0
        return 0

    def positions(self, scores) -> np.ndarray:
        """Positions (float64) for a whole score series, starting flat; equals iterating
        :meth:`step`, vectorised.

        Each bar either sets the position (above ``enter``, below ``-enter``, NaN, or in the
        band where neither side survives: flat) or keeps it, killing a long (``score <=
        exit``) or a short (``score >= -exit``). So the position is the value set at the
        last setting bar, unless a kill of its side came after it.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1:
            raise ValueError(f"scores must be 1-D, not of shape {s.shape}")
        n = len(s)
        with np.errstate(invalid="ignore"):
            nan, up, down = np.isnan(s), s > self.enter, s < -self.enter
            band = ~(nan | up | down)
            kill_long, kill_short = band & ~(s > self.exit), band & ~(s < -self.exit)
        sets = nan | up | down | (kill_long & kill_short)
        value = np.where(up, 1.0, np.where(down, 0.0 if self.long_only else -1.0, 0.0))
        last = np.maximum.accumulate(np.where(sets, np.arange(n), -1))
        seen = last >= 0
        at = np.maximum(last, 0)
        held = np.where(seen, value[at], 0.0)
        cl, cs = np.cumsum(kill_long), np.cumsum(kill_short)
        long_killed = cl - np.where(seen, cl[at], 0) > 0
        short_killed = cs - np.where(seen, cs[at], 0) > 0
        held[((held > 0) & long_killed) | ((held < 0) & short_killed)] = 0.0
        return held


def band_from_cost(fee_per_side: float, k_enter: float, k_exit: float,
                   long_only: bool = False) -> BandRule:
    """``BandRule(k_enter * 2 * fee, k_exit * 2 * fee)``: the band in round-trip costs."""
    if not fee_per_side >= 0:
        raise ValueError(f"fee_per_side must be >= 0, not {fee_per_side!r}")
    round_trip = 2.0 * float(fee_per_side)
    return BandRule(k_enter * round_trip, k_exit * round_trip, long_only)
