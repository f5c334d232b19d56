"""``Decoder``: the one map from a model's raw head outputs to trading quantities.

For logits ``l`` (one per class), the standardised return ``r`` of the shortest horizon and
the standardised return ``r_m`` of the signal horizon and the standardised log
volatility ``v``::

    p_k             = exp(l_k − max l) / Σ_j exp(l_j − max l)     (softmax)
    signal          = class value of argmax_k p_k                  (−1, 0, 1 or −2 … 2)
    confidence      = max_k p_k
    expected_signal = Σ_k p_k · class value_k
    pred_return     = r · return_scale[0]                          (log return, next horizon)
    pred_move       = r_m · return_scale[m]                        (log return over the
                      signal horizon m, the score the cost-aware rule trades on)
    pred_vol        = exp(v · vol_std + vol_mean)                  (realised vol per bar)

``decode`` applies it to arrays (the batch view: ``Predictor.predict``, the indicator's
``once()``); ``decode_bar`` to one bar with scalar arithmetic (the per-bar hot path of
``next()``: numpy's per-call overhead on three numbers would cost more than the model step).
A test holds the two equal.
"""

from __future__ import annotations

import math

import numpy as np

from ..features import signal_values

__all__ = ["Decoder"]


class Decoder:
    """The decoding constants of one trained model: class values and target scales."""

    def __init__(self, n_classes: int, return_scale: float, vol_mean: float, vol_std: float,
                 move_index: int = 0, move_scale: float | None = None):
        self.classes = signal_values(n_classes)  # (C,)
        self._class_list = [float(c) for c in self.classes]
        self.return_scale = float(return_scale)
        self.move_index = int(move_index)
        self.move_scale = float(return_scale if move_scale is None else move_scale)
        self.vol_mean = float(vol_mean)
        self.vol_std = float(vol_std)

    def decode(self, logits, returns, log_vol) -> dict[str, np.ndarray]:
        """Arrays (last axis = head) to trading quantities, plus the class ``probs``."""
        logits = np.asarray(logits, dtype=np.float64)  # (..., C)
        z = logits - logits.max(axis=-1, keepdims=True)  # (..., C)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)  # (..., C)
        cls = p.argmax(axis=-1)  # (...)
        returns = np.asarray(returns, dtype=np.float64)  # (..., R)
        ret = returns[..., 0] * self.return_scale  # (...)
        move = returns[..., self.move_index] * self.move_scale  # (...)
        vol = np.exp(np.asarray(log_vol, dtype=np.float64) * self.vol_std + self.vol_mean)
        return {
            "signal": self.classes[cls],
            "confidence": np.take_along_axis(p, cls[..., None], axis=-1)[..., 0],
            "expected_signal": p @ self.classes,
            "pred_return": ret,
            "pred_move": move,
            "pred_vol": vol,
            "probs": p,
        }

    def decode_bar(self, logits: list[float], ret: float, move: float,
                   log_vol: float) -> dict[str, float]:
        """One bar: ``logits`` a list of floats, ``ret`` the first return head, ``move`` the
        signal horizon's, scalars out."""
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        k = logits.index(top)
        classes = self._class_list
        return {
            "signal": classes[k],
            "confidence": exps[k] / total,
            "expected_signal": sum(e * c for e, c in zip(exps, classes)) / total,
            "pred_return": ret * self.return_scale,
            "pred_move": move * self.move_scale,
            "pred_vol": math.exp(log_vol * self.vol_std + self.vol_mean),
        }
