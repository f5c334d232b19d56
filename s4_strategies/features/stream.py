"""``FeatureStream``: the features of ``make_features``, one bar at a time, O(1) per bar."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from feeds.errors import DataError

from .spec import EPS, FeatureSpec

_INF = math.inf


def refused_bar(o, h, l, c, v, hour=0.0, dow=0.0) -> DataError:
    """The error for a bar a stream cannot take (NaN, inf, non-positive price...)."""
    values = " ".join(f"{k}={float(x):g}" for k, x in zip(
        ("open", "high", "low", "close", "volume", "hour", "dow"), (o, h, l, c, v, hour, dow)))
    return DataError(f"a bar with {values} was refused: prices must be finite and positive, "
                     "volume finite and non-negative, hour and dow finite (one NaN would stay "
                     "in the running windows, the moving averages and the RSI for good); "
                     "nothing was updated")


class FeatureStream:
    """The features of ``make_features``, one bar at a time, O(1) per bar.

    ``update(o, h, l, c, v, hour, dow)`` returns the raw feature vector of that bar (NaN
    where a window is not yet full); a bar with a NaN, an infinity, a non-positive price
    or a negative volume is refused (``feeds.DataError``) before any window moves.
    ``get_state``/``set_state`` save and restore it.
    """

    def __init__(self, spec: FeatureSpec | None = None):
        self.spec = spec or FeatureSpec()
        self.names = self.spec.names
        self.reset()

    def reset(self) -> None:
        spec = self.spec
        keep = max(max(spec.return_windows), 1) + 1
        self._closes: deque = deque(maxlen=keep)
        self._r2 = {w: (deque(maxlen=w), [0.0]) for w in spec.vol_windows}
        self._lv = (deque(maxlen=spec.volume_window), [0.0])
        self._ma = {w: (deque(maxlen=w), [0.0]) for w in spec.ma_windows}
        self._gain = self._loss = self._atr = None
        self._out = np.empty(len(self.names))

    @staticmethod
    def _push(window: tuple, x: float) -> float:
        buf, acc = window
        if len(buf) == buf.maxlen:
            acc[0] -= buf[0]
        buf.append(x)
        acc[0] += x
        return acc[0] / len(buf) if len(buf) == buf.maxlen else math.nan

    def update(self, o, h, l, c, v, hour=0.0, dow=0.0) -> np.ndarray:
        if not (0.0 < o < _INF and 0.0 < h < _INF and 0.0 < l < _INF and 0.0 < c < _INF
                and 0.0 <= v < _INF and -_INF < hour < _INF and -_INF < dow < _INF):
            raise refused_bar(o, h, l, c, v, hour, dow)  # false for NaN too
        spec = self.spec
        closes = self._closes
        prev = closes[-1] if closes else math.nan
        closes.append(c)
        out = self._out
        i = 0
        for k in spec.return_windows:
            out[i] = math.log(c / closes[-1 - k]) if len(closes) > k else math.nan
            i += 1
        rng = h - l
        out[i] = math.log(h / l)
        out[i + 1] = (c - o) / rng if rng > 0 else 0.0
        out[i + 2] = 2.0 * (c - l) / rng - 1.0 if rng > 0 else 0.0
        i += 3
        first = prev != prev  # NaN: no previous close yet
        r = math.nan if first else math.log(c / prev)
        for w in spec.vol_windows:
            if first:
                out[i] = math.nan
            else:
                m = self._push(self._r2[w], r * r)
                out[i] = math.log(math.sqrt(max(m, 0.0)) + EPS) if m == m else math.nan
            i += 1
        lv = math.log1p(v)
        m = self._push(self._lv, lv)
        out[i] = lv - m
        i += 1
        if first:
            out[i] = math.nan
            tr = math.nan
        else:
            d = c - prev
            g, lo = max(d, 0.0), max(-d, 0.0)
            n = spec.rsi_period
            if self._gain is None:
                self._gain, self._loss = g, lo
            else:
                self._gain += (g - self._gain) / n
                self._loss += (lo - self._loss) / n
            tot = self._gain + self._loss
            out[i] = (self._gain - self._loss) / tot if tot > 0 else 0.0
            tr = max(h - l, abs(h - prev), abs(l - prev))
        i += 1
        if tr == tr:
            if self._atr is None:
                self._atr = tr
            else:
                self._atr += (tr - self._atr) / spec.atr_period
        out[i] = math.log(self._atr / c + EPS) if self._atr is not None else math.nan
        i += 1
        for w in spec.ma_windows:
            m = self._push(self._ma[w], c)
            out[i] = math.log(c / m) if m == m else math.nan
            i += 1
        if spec.time_features:
            out[i] = math.sin(2 * math.pi * hour / 24.0)
            out[i + 1] = math.cos(2 * math.pi * hour / 24.0)
            out[i + 2] = math.sin(2 * math.pi * dow / 7.0)
            out[i + 3] = math.cos(2 * math.pi * dow / 7.0)
        return out

    def get_state(self) -> dict:
        return {
            "closes": list(self._closes),
            "r2": {w: (list(b), a[0]) for w, (b, a) in self._r2.items()},
            "lv": (list(self._lv[0]), self._lv[1][0]),
            "ma": {w: (list(b), a[0]) for w, (b, a) in self._ma.items()},
            "wilder": (self._gain, self._loss, self._atr),
        }

    def set_state(self, state: dict) -> None:
        self.reset()
        self._closes.extend(state["closes"])
        for w, (vals, acc) in state["r2"].items():
            self._r2[w][0].extend(vals)
            self._r2[w][1][0] = acc
        self._lv[0].extend(state["lv"][0])
        self._lv[1][0] = state["lv"][1]
        for w, (vals, acc) in state["ma"].items():
            self._ma[w][0].extend(vals)
            self._ma[w][1][0] = acc
        self._gain, self._loss, self._atr = state["wilder"]
