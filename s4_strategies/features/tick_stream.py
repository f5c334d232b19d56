"""``TickFeatureStream``: the features of ``features.tick.tick_features``, event by event.

O(1) per event: an event adds its order-flow imbalance, signed volume and count to the open
grid step; when an event arrives after a grid time ``g_k`` the steps up to it are complete
(no later event can fall at or before ``g_k``) and their feature rows come back, in order.
The recursions are those of the batch functions (``ew_sum``, ``ew_mean``, ``scaled``); a
test holds the two equal.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from feeds.errors import DataError

from .tick import FLOOR, NS, VOL_EPS, TickFeatureSpec

_INF = math.inf


class _Scale:
    """``z(x)``: x over the EW RMS of the previous x (``features.tick.scaled``)."""

    __slots__ = ("lam", "clip", "s2", "w", "k")

    def __init__(self, lam: float, clip: float):
        self.lam, self.clip = lam, clip
        self.s2 = self.w = 0.0
        self.k = 0

    def __call__(self, x: float) -> float:
        z = 0.0
        if self.k:
            z = min(self.clip, max(-self.clip, x / math.sqrt(self.s2 / self.w + FLOOR)))
        self.s2 = x * x + self.lam * self.s2
        self.w = 1.0 + self.lam * self.w
        self.k += 1
        return z


class TickFeatureStream:
    """Grid features of a tick stream, one event at a time.

    ``update(t_ns, bid, ask, bid_size, ask_size, mid, trade_side, volume)`` (time in integer
    nanoseconds since the epoch, ``trade_side`` NaN on a book update) returns the feature
    rows (``(F,)`` arrays, ``spec.names`` order) of the grid steps this event closed: none,
    usually, or several after a quiet spell. ``flush()`` closes the open step (end of data).
    ``steps`` counts the rows given so far (the next row is grid step ``steps``). An event
    with a NaN or infinite price or size (bid, ask, mid positive; sizes and volume
    non-negative; ``trade_side`` NaN or finite) is refused (``feeds.DataError``) before any
    state moves.
    """

    def __init__(self, spec: TickFeatureSpec | None = None):
        self.spec = spec or TickFeatureSpec()
        self.names = self.spec.names
        self.reset()

    def reset(self) -> None:
        sp = self.spec
        self.origin = None
        self.k = 0  # the open step
        self.steps = 0
        self.book = None  # (bid, ask, bid_size, ask_size, mid) after the last event
        self.flow = [0.0, 0.0, 0.0, 0.0]  # ofi, signed volume, volume, events in the open step
        self.last_trade_ns = None
        self.last_sign = self.last_move = 0.0
        lam_s, c = sp.lam(sp.scale_tc), sp.clip
        self._lam = (sp.lam(sp.fast_tc), sp.lam(sp.slow_tc), lam_s, sp.lam(sp.vol_fast_tc),
                     sp.lam(sp.vol_slow_tc))
        self._z = {name: _Scale(lam_s, c) for name in
                   ("ofi", "ofi_1s", "ofi_5s", "signed_vol_1s",
                    *(f"ret_{w:g}s" for w in sp.return_windows_s))}
        # ews: ofi 1 s, ofi 5 s, sv 1 s, vol 1 s, r^2 fast, 1 fast, r^2 slow, 1 slow,
        # log(1 + events) scale, 1 scale
        self._ews = np.zeros(10)
        self._lags = [sp.steps(w) for w in sp.return_windows_s]
        self._logm: deque = deque(maxlen=max(self._lags) + 1)

    # -- events ------------------------------------------------------------------------
    def update(self, t_ns: int, bid: float, ask: float, bid_size: float, ask_size: float,
               mid: float, trade_side: float = math.nan, volume: float = 0.0) -> list:
        if not (0.0 < bid < _INF and 0.0 < ask < _INF and 0.0 < mid < _INF
                and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF and 0.0 <= volume < _INF
                and (trade_side != trade_side or -_INF < trade_side < _INF)):
            raise DataError(
                f"an event at {t_ns} ns with bid={bid!r} ask={ask!r} bid_size={bid_size!r} "
                f"ask_size={ask_size!r} mid={mid!r} trade_side={trade_side!r} volume="
                f"{volume!r} was refused: prices must be finite and positive, sizes finite and "
                "non-negative (a NaN would stay in the running features); nothing was updated")
        g = self.spec.grid_ns
        rows = []
        if self.origin is None:
            self.origin = -(-int(t_ns) // g) * g
            self.last_trade_ns = int(t_ns)
        else:
            k = -((self.origin - int(t_ns)) // g)
            while self.k < k:
                rows.append(self._close())
        flow = self.flow
        if self.book is not None:
            b0, a0, B0, A0, m0 = self.book
            flow[0] += ((bid >= b0) * bid_size - (bid <= b0) * B0
                        - (ask <= a0) * ask_size + (ask >= a0) * A0)
            if mid != m0:
                self.last_move = 1.0 if mid > m0 else -1.0
        flow[3] += 1.0
        if trade_side == trade_side:  # a trade (not NaN)
            flow[1] += trade_side * volume
            flow[2] += volume
            self.last_trade_ns = int(t_ns)
            if trade_side != 0:
                self.last_sign = 1.0 if trade_side > 0 else -1.0
        self.book = (bid, ask, bid_size, ask_size, mid)
        return rows

    def flush(self) -> list:
        """The row of the open step, if any event fell in it (the end of the data)."""
        return [self._close()] if self.book is not None and self.flow[3] > 0 else []

    # -- grid steps --------------------------------------------------------------------
    def _close(self) -> np.ndarray:
        """Feature row of the open step; the next step opens with no flow."""
        sp, e, z = self.spec, self._ews, self._z
        lf, l5, ls, lvf, lvs = self._lam
        ofi, sv, vol, n_ev = self.flow
        bid, ask, B, A, mid = self.book
        logm = math.log(mid)
        r = logm - self._logm[-1] if self._logm else 0.0
        self._logm.append(logm)
        rets = [logm - self._logm[max(len(self._logm) - 1 - n, 0)] for n in self._lags]
        e[0] = ofi + lf * e[0]
        e[1] = ofi + l5 * e[1]
        e[2] = sv + lf * e[2]
        e[3] = vol + lf * e[3]
        e[4], e[5] = r * r + lvf * e[4], 1.0 + lvf * e[5]
        e[6], e[7] = r * r + lvs * e[6], 1.0 + lvs * e[7]
        la = math.log1p(n_ev)
        act = la - e[8] / e[9] if self.steps else 0.0
        e[8], e[9] = la + ls * e[8], 1.0 + ls * e[9]
        g_ns = self.origin + self.k * sp.grid_ns
        tot = B + A
        row = [z["ofi"](ofi), z["ofi_1s"](e[0]), z["ofi_5s"](e[1]),
               (B - A) / tot if tot > 0 else 0.0,
               math.log(max((ask - bid) / sp.tick, 1.0))]
        row += [z[f"ret_{w:g}s"](x) for w, x in zip(sp.return_windows_s, rets)]
        row += [0.5 * math.log((e[4] / e[5] + VOL_EPS) / (e[6] / e[7] + VOL_EPS)),
                e[2] / e[3] if e[3] > 0 else 0.0,
                z["signed_vol_1s"](e[2]),
                self.last_sign,
                math.log1p((g_ns - self.last_trade_ns) / NS),
                act,
                self.last_move]
        self.k += 1
        self.steps += 1
        self.flow = [0.0, 0.0, 0.0, 0.0]
        return np.asarray(row)

    # -- state -------------------------------------------------------------------------
    def get_state(self) -> dict:
        """A copy of everything carried between events."""
        return {"origin": self.origin, "k": self.k, "steps": self.steps, "book": self.book,
                "flow": list(self.flow), "last_trade_ns": self.last_trade_ns,
                "last_sign": self.last_sign, "last_move": self.last_move,
                "ews": self._ews.copy(), "logm": list(self._logm),
                "z": {k: (s.s2, s.w, s.k) for k, s in self._z.items()}}

    def set_state(self, state: dict) -> None:
        for key in ("origin", "k", "steps", "book", "last_trade_ns", "last_sign", "last_move"):
            setattr(self, key, state[key])
        self.flow = list(state["flow"])
        self._ews[:] = state["ews"]
        self._logm.clear()
        self._logm.extend(state["logm"])
        for k, (s2, w, n) in state["z"].items():
            self._z[k].s2, self._z[k].w, self._z[k].k = s2, w, n
