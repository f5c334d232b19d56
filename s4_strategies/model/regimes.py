"""``RegimeModel``: market regimes read from a vector per bar, labelled causally.

A fitted regime model (``training.regimes.fit_regimes`` fits one on a training period) maps
the vector of each bar (the model's hidden state, ``Predictor.states``, or its normalised
input features) to the probability of each of K regimes:

    z_t = W ((v_t − mean) / scale)                    standardise, then the principal axes
    ll_t,k = log N(z_t; μ_k, Σ_k)                     one Gaussian per regime
    "gmm":  p_t = softmax_k(log w_k + ll_t,k)          the mixture's posterior, bar by bar
    "hmm":  p_t ∝ (p_{t-1} T) ⊙ exp(ll_t)              the HMM *filter* p(s_t | z_1..z_t),
                                                       p_{-1} T replaced by the start law

Both use bars <= t only: a bar's label never moves when later bars arrive (the smoothed
p(s_t | z_1..z_T) of forward-backward would). Regimes are numbered by the realised volatility
of the training bars they hold: regime 0 is the calmest. Pure numpy; JSON round trip.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

REGIME_KINDS = ("hmm", "gmm")
REGIME_SOURCES = ("state", "features")
_ARRAYS = ("mean", "scale", "components", "weights", "means", "covars", "transmat")


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))


@dataclass(eq=False)
class RegimeModel:
    """K Gaussian regimes on the projected vectors (see the module docstring).

    kind "hmm" or "gmm"; source "state" (``Predictor.states``) or "features" (its normalised
    inputs); mean, scale (D,); components (d, D); weights (K,) (mixture weights, or the HMM's
    start law); means (K, d); covars (K, d, d); transmat (K, K) (hmm; None for gmm); info: what
    the fit recorded (period, the training bars' volatility and share per regime, ...)."""

    kind: str
    source: str
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    transmat: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in REGIME_KINDS:
            raise ValueError(f"regime model kind must be one of {REGIME_KINDS}, got {self.kind!r}")
        if self.source not in REGIME_SOURCES:
            raise ValueError(f"source must be one of {REGIME_SOURCES}, got {self.source!r}")
        for name in _ARRAYS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))
        if self.kind == "hmm" and self.transmat is None:
            raise ValueError("an hmm regime model needs transmat (K, K)")
        K, d = self.means.shape
        shapes = {"weights": (K,), "covars": (K, d, d), "components": (d, len(self.mean)),
                  "scale": self.mean.shape, **({"transmat": (K, K)} if self.kind == "hmm" else {})}
        bad = {k: getattr(self, k).shape for k, s in shapes.items() if getattr(self, k).shape != s}
        if bad:
            raise ValueError(f"regime model arrays do not fit {K} regimes in {d} dimensions: "
                             f"{bad}")
        # log N(z; μ_k, Σ_k) = −½ |L_k⁻¹ (z − μ_k)|² − log det L_k − d/2 log 2π
        chol = np.linalg.cholesky(self.covars)  # (K, d, d)
        self._inv_chol = np.linalg.inv(chol)  # (K, d, d)
        self._log_norm = (-np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
                          - 0.5 * d * math.log(2 * math.pi))  # (K,)
        with np.errstate(divide="ignore"):
            self._log_w = np.log(self.weights)  # (K,)
            self._log_T = None if self.transmat is None else np.log(self.transmat)  # (K, K)

    @property
    def n_regimes(self) -> int:
        return len(self.weights)

    # -- maths ---------------------------------------------------------------------------
    def project(self, V) -> np.ndarray:
        """Vectors (..., D) -> projected (..., d)."""
        return ((np.asarray(V, dtype=np.float64) - self.mean) / self.scale) @ self.components.T

    def log_densities(self, Z) -> np.ndarray:
        """log N(z; μ_k, Σ_k) of projected rows Z (..., d) -> (..., K)."""
        diff = np.asarray(Z)[..., None, :] - self.means  # (..., K, d)
        w = np.einsum("kij,...kj->...ki", self._inv_chol, diff)  # (..., K, d)
        return self._log_norm - 0.5 * (w * w).sum(-1)  # (..., K)

    def step_log(self, log_prev: np.ndarray | None, ll: np.ndarray) -> np.ndarray:
        """One bar of the filter in log space: log p_t from log p_{t-1} (None: the first bar
        or a gmm, which has no memory) and this bar's log densities ll (K,)."""
        if self.kind == "gmm" or log_prev is None:
            a = self._log_w + ll  # (K,)
        else:
            a = _logsumexp(log_prev[:, None] + self._log_T, axis=0) + ll  # (K,)
        return a - _logsumexp(a)

    def filter(self, V) -> np.ndarray:
        """Regime probabilities of consecutive bars' vectors V (L, D) -> (L, K), from no
        history at the first row (as a fresh :class:`RegimeFilter`)."""
        ll = self.log_densities(self.project(V))  # (L, K)
        if self.kind == "gmm":
            a = self._log_w + ll
            return np.exp(a - _logsumexp(a)[:, None])
        out, log_p = np.empty_like(ll), None
        for t in range(len(ll)):
            log_p = self.step_log(log_p, ll[t])
            out[t] = np.exp(log_p)
        return out

    def labels(self, V) -> np.ndarray:
        """The most probable regime of every bar (L,) (causal, as ``filter``)."""
        return self.filter(V).argmax(1)

    # -- files -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> RegimeModel:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown regime model key(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path) -> RegimeModel:
        return cls.from_dict(json.loads(Path(path).read_text()))


class RegimeFilter:
    """The regime model bar by bar: ``step(v)`` -> probabilities (K,) of this bar's regime
    given the vectors so far; ``reset()``; ``get_state()``/``set_state()`` (plain data)."""

    def __init__(self, model: RegimeModel):
        self.model = model
        self.reset()

    def reset(self) -> None:
        self._log_p = None

    def step(self, v) -> np.ndarray:
        m = self.model
        self._log_p = m.step_log(self._log_p, m.log_densities(m.project(v)))
        return np.exp(self._log_p)

    def get_state(self) -> dict:
        return {"log_p": None if self._log_p is None else self._log_p.tolist()}

    def set_state(self, state: dict) -> None:
        lp = state["log_p"]
        self._log_p = None if lp is None else np.asarray(lp, dtype=np.float64)
