"""``ModelConfig``: the one description of a trading model, validated where it is made.

    cfg = ModelConfig("s4d", input_dim=16, d_state=32)   # ValueError on anything invalid
    model = S4TradingModel(cfg)                          # or model_from_config(cfg)
    model.cfg                                            # this dataclass (frozen)
    model.config == cfg.to_dict()                        # the JSON dict checkpoints store
    ModelConfig.from_dict(model.config) == cfg           # unknown keys are an error
    build_model(kind, input_dim, **fields)               # = model_from_config(ModelConfig(...))

Which fields each kind uses; the others keep their defaults and are not stored, so
``from_dict(to_dict())`` gives back an equal config:

    every kind          input_dim, d_model, n_layers, dropout, n_classes, horizons
    s4, s4d, mamba,     + d_state, layer (= kind) and the SSM options: init, learn_dt,
    s5, dss               bidirectional, dt_min, dt_max, disc (s4d, s5), d_conv, expand, dt_rank,
                          scan, chunk_size (mamba); blocks (s5); kernel, l_max (dss)
    multi               + n_assets, d_state, layer (the shared encoder's SSM) and the SSM options
    transformer         + n_heads, window
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Real

from .dss import DSS_KERNELS
from .hippo import S4D_INITS
from .s4d import DISCS
from .s5 import S5_INITS
from .selective import MAMBA_INITS, SCANS

SSM_KINDS = ("s4", "s4d", "mamba", "s5", "dss")
KINDS = (*SSM_KINDS, "lstm", "gru", "transformer")
MODEL_KINDS = (*KINDS, "multi")

SSM_OPTIONS = ("init", "learn_dt", "bidirectional", "dt_min", "dt_max", "disc", "d_conv",
               "expand", "dt_rank", "scan", "chunk_size")
_HEADS = ("dropout", "n_classes", "horizons")
_SSM = ("kind", "input_dim", "d_model", "d_state", "n_layers", "layer", *_HEADS, *SSM_OPTIONS)
_RNN = ("kind", "input_dim", "d_model", "n_layers", *_HEADS)
STORED = {  # kind -> the keys of to_dict(), in the order checkpoints have always had them
    **dict.fromkeys(SSM_KINDS, _SSM),
    "multi": ("kind", "input_dim", "n_assets", *_SSM[2:]),
    "lstm": _RNN,
    "gru": _RNN,
    "transformer": (*_RNN, "n_heads", "window"),
}
#: The options of one layer kind only, stored after the others when that layer is used
#: (by its kind, or as the shared encoder of "multi").
LAYER_STORED = {"s5": ("blocks",), "dss": ("kernel", "l_max")}


@dataclass(frozen=True)
class ModelConfig:
    kind: str  # one of MODEL_KINDS
    input_dim: int  # features per bar
    d_model: int = 64  # H
    d_state: int = 64  # N (s4, s4d: even, N/2 complex modes)
    n_layers: int = 4
    dropout: float = 0.1
    n_classes: int = 3  # sell/hold/buy, or 5 with the strong classes
    horizons: tuple[int, ...] = (1, 5, 20)  # bars ahead of the "returns" head
    # SSM layers (s4, s4d, mamba and multi)
    layer: str | None = None  # s4/s4d/mamba: the kind itself; multi: default "s4"
    init: str | None = None  # None: the layer's own ("legs" for s4/s4d, "real" for mamba)
    learn_dt: bool = True  # False: fixed step (ablation)
    bidirectional: bool = False  # no recurrent view
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    disc: str = "zoh"  # s4d: "zoh" or "bilinear"
    d_conv: int = 4  # mamba: causal conv width
    expand: int = 2  # mamba: E = expand * H
    dt_rank: int | None = None  # mamba: None = ceil(H / 16)
    scan: str = "auto"  # mamba: see selective.SCANS
    chunk_size: int | None = None  # mamba: None = ~sqrt(L)
    blocks: int = 1  # s5: J, A block-diagonal with J HiPPO-N blocks of size d_state / J
    kernel: str = "exp"  # dss: "exp" (DSS-exp) or "softmax" (DSS-softmax)
    l_max: int = 512  # dss softmax: the length its softmax normalises over (training window)
    # multi
    n_assets: int | None = None
    # transformer
    n_heads: int = 4  # must divide d_model
    window: int | None = None  # attend to at most this many bars (None: all)

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; expected one of {MODEL_KINDS}")
        used = self._stored()
        for f in fields(self):  # unused fields keep their defaults: equal models, equal configs
            if f.name not in used:
                self._set(f.name, f.default)
        for name in ("input_dim", "d_model", "n_layers", "n_classes"):
            self._integer(name)
        if self.n_classes not in (3, 5):
            raise ValueError(f"n_classes must be 3 or 5, got {self.n_classes}")
        self._real("dropout")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.horizons, (list, tuple)) or not self.horizons:
            raise ValueError(f"horizons must be a non-empty list of bar counts, "
                             f"got {self.horizons!r}")
        self._set("horizons", tuple(_positive_int("horizons", h) for h in self.horizons))
        if "layer" in used:
            self._check_ssm()
        if self.kind == "multi":
            self._integer("n_assets")
        if self.kind == "transformer":
            self._integer("n_heads")
            self._integer("window", optional=True)
            if self.d_model % self.n_heads:
                raise ValueError(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")

    def _check_ssm(self) -> None:
        if self.kind in SSM_KINDS and self.layer not in (None, self.kind):
            raise ValueError(f"layer {self.layer!r} contradicts kind {self.kind!r}")
        self._set("layer", self.kind if self.kind in SSM_KINDS else self.layer or "s4")
        if self.layer not in SSM_KINDS:
            raise ValueError(f"layer must be one of {SSM_KINDS}, got {self.layer!r}")
        self._integer("d_state")
        if self.layer != "mamba" and self.d_state % 2:
            raise ValueError(f"d_state must be even for {self.layer} (conjugate pairs), "
                             f"got {self.d_state}")
        inits = {"mamba": MAMBA_INITS, "s5": S5_INITS}.get(self.layer, S4D_INITS)
        if self.init is not None and self.init not in inits:
            raise ValueError(f"init for {self.layer} must be None or one of {inits}, "
                             f"got {self.init!r}")
        for name in ("learn_dt", "bidirectional"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self._real("dt_min")
        self._real("dt_max")
        if not 0.0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}")
        if self.disc not in DISCS:
            raise ValueError(f"disc must be one of {DISCS}, got {self.disc!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {self.scan!r}")
        for name in ("d_conv", "expand"):
            self._integer(name)
        for name in ("dt_rank", "chunk_size"):
            self._integer(name, optional=True)
        self._check_s5_dss()

    def _check_s5_dss(self) -> None:
        self._integer("blocks")
        self._integer("l_max")
        if self.layer == "s5" and self.d_state % (2 * self.blocks):
            raise ValueError(f"d_state ({self.d_state}) must split into blocks={self.blocks} "
                             "blocks of even size (conjugate pairs)")
        if self.layer == "dss" and self.disc != "zoh":
            raise ValueError(f"disc must be 'zoh' for dss (its kernels are the zero-order "
                             f"hold), got {self.disc!r}")
        if self.kernel not in DSS_KERNELS:
            raise ValueError(f"kernel must be one of {DSS_KERNELS}, got {self.kernel!r}")

    def _stored(self) -> tuple[str, ...]:
        """The fields this kind (and its SSM layer) uses: the keys of ``to_dict()``."""
        layer = self.kind if self.kind in SSM_KINDS else self.layer
        return (*STORED[self.kind], *LAYER_STORED.get(layer, ()))

    def _set(self, name: str, value) -> None:
        object.__setattr__(self, name, value)  # frozen: only __post_init__ normalises

    def _integer(self, name: str, optional: bool = False) -> None:
        value = getattr(self, name)
        if not (optional and value is None):
            self._set(name, _positive_int(name, value))

    def _real(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"{name} must be a number, got {value!r}")
        self._set(name, float(value))

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON dict of the fields this kind uses (``model.config``, a checkpoint's
        ``model_config``)."""
        d = {name: getattr(self, name) for name in self._stored()}
        d["horizons"] = list(self.horizons)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> ModelConfig:
        """Inverse of :meth:`to_dict`; also takes every field, used or not, by name. A key
        that is no field is an error (a typo would otherwise be a silent default)."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown}; known keys: {names}")
        missing = [k for k in ("kind", "input_dim") if k not in d]
        if missing:
            raise ValueError(f"model config needs {missing}")
        return cls(**d)


def _positive_int(name: str, value) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


__all__ = ["ModelConfig", "KINDS", "SSM_KINDS", "MODEL_KINDS", "SSM_OPTIONS"]
