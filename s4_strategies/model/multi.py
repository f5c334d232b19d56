"""``MultiPredictor``: a trained ``MultiAssetS4`` over several assets, batch and per bar.

One shared SSM encoder reads every asset's own features (each asset standardised with its
own training statistics) on the union of the assets' bar times:

- an asset with no bar at a time (not listed yet, or a gap) gets a zero input row and its
  feature state does not move;
- an asset is *warm* once it has seen ``feature_spec.warmup`` bars of its own; before that
  its input is zero too, its outputs are not reported (batch: NaN rows; stream: absent) and
  in training it is masked out of the loss.

``predict(frames)`` runs the parallel view over the union index; ``stream()`` gives a
:class:`MultiStream` whose ``step(bars)`` advances one recurrent state over all assets per
bar. A test holds the two equal.

Checkpoints (``save_multi_predictor``/``load_multi``) are a ``torch.save`` of plain
containers, loadable with ``torch.load(weights_only=True)``: ``format`` ("s4-multi/1"),
``model_config``, ``state_dict``, ``feature_spec``, ``feature_names``, ``assets``,
``normalizers`` and ``targets`` (one per asset, in ``assets`` order), ``label_spec``,
``meta`` and ``versions``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..features import FeatureSpec, FeatureStream, LabelSpec, Normalizer, make_features
from .checkpoint import (
    _load_weights,
    _section,
    check_digest,
    library_versions,
    read_payload,
    write_payload,
)
from .decode import Decoder
from .errors import CheckpointError
from .predictor import Targets

FORMAT = "s4-multi/1"
_OUT = ("signal", "confidence", "expected_signal", "pred_return", "pred_move", "pred_vol")
_REQUIRED = ("format", "model_config", "state_dict", "feature_spec", "feature_names", "assets",
             "normalizers", "targets", "label_spec")
_OPTIONAL = ("meta", "versions")


def panel(frames: dict) -> tuple[pd.DatetimeIndex, dict[str, pd.DataFrame]]:
    """The union of the frames' bar times and every frame reindexed onto it (NaN rows where
    an asset has no bar)."""
    if not frames:
        raise ValueError("panel needs at least one frame")
    index = None
    for df in frames.values():
        index = df.index if index is None else index.union(df.index)
    index = index.sort_values()
    return index, {name: df.reindex(index) for name, df in frames.items()}


def asset_features(df: pd.DataFrame, index: pd.DatetimeIndex, spec: FeatureSpec,
                   norm: Normalizer) -> tuple[np.ndarray, np.ndarray]:
    """Features of one asset's own bars, standardised, on ``index``: (x (L, F), warm (L,)).
    Rows where the asset has no bar or has not seen ``spec.warmup`` bars are zero and not
    warm."""
    z = np.nan_to_num(norm.transform(make_features(df, spec).to_numpy()), nan=0.0)  # (n, F)
    own_warm = np.arange(len(df)) >= spec.warmup  # (n,)
    z[~own_warm] = 0.0
    pos = index.get_indexer(df.index)
    if (pos < 0).any():
        raise ValueError("the union index lacks bars of an asset")
    x = np.zeros((len(index), z.shape[1]))
    warm = np.zeros(len(index), dtype=bool)
    x[pos], warm[pos] = z, own_warm
    return x, warm


def _decoder(lspec: LabelSpec, t: Targets) -> Decoder:
    hs = list(lspec.horizons)
    m = hs.index(lspec.signal_horizon) if lspec.signal_horizon in hs else 0
    return Decoder(lspec.n_classes, t.return_scale[0], t.vol_mean, t.vol_std, move_index=m,
                   move_scale=t.return_scale[m])


class MultiPredictor:
    """A trained multi-asset model with its features, per-asset normalisation and decoding.

    - ``predict(frames)``: ``{asset: DataFrame}`` on the union index with ``signal``,
      ``confidence``, ``expected_signal``, ``pred_return``, ``pred_move``, ``pred_vol`` and
      ``weight`` (the portfolio head), NaN where the asset is not warm.
    - ``stream()``: a :class:`MultiStream` (one recurrent state for all assets).
    """

    def __init__(self, model, feature_spec: FeatureSpec, normalizers: list[Normalizer],
                 label_spec: LabelSpec, targets: list[Targets], assets: list[str],
                 meta: dict | None = None):
        self.model = model.double().eval()
        self.feature_spec, self.label_spec = feature_spec, label_spec
        self.normalizers, self.targets = list(normalizers), list(targets)
        self.assets = [str(a) for a in assets]
        self.meta = dict(meta or {})
        cfg, n = model.config, len(self.assets)
        if cfg.get("kind") != "multi":
            raise CheckpointError(f"a MultiPredictor needs a 'multi' model, got {cfg.get('kind')}")
        if not (cfg.get("n_assets") == n == len(self.normalizers) == len(self.targets)):
            raise CheckpointError(
                f"the model has {cfg.get('n_assets')} assets, the checkpoint names {n} with "
                f"{len(self.normalizers)} normalizers and {len(self.targets)} targets")
        if len(set(self.assets)) != n:
            raise CheckpointError(f"asset names repeat: {self.assets}")
        F = len(feature_spec.names)
        if cfg.get("input_dim") != F or any(len(x.mean) != F for x in self.normalizers):
            raise CheckpointError(f"model inputs {cfg.get('input_dim')} / normalizers do not "
                                  f"match the feature spec's {F} features")
        if cfg.get("n_classes") != label_spec.n_classes or \
                len(cfg.get("horizons", ())) != len(label_spec.horizons):
            raise CheckpointError("the model's heads do not match the label spec")
        if any(len(t.return_scale) != len(label_spec.horizons) for t in self.targets):
            raise CheckpointError("targets give return scales for other horizons")
        self.decoders = [_decoder(label_spec, t) for t in self.targets]

    def __repr__(self) -> str:
        return f"MultiPredictor({', '.join(self.assets)})"

    def _frames(self, frames: dict) -> list[pd.DataFrame]:
        missing = [a for a in self.assets if a not in frames]
        if missing:
            raise CheckpointError(f"the model trades {self.assets}; frames lack {missing}")
        return [frames[a] for a in self.assets]

    def features(self, frames: dict) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
        """(union index, x (L, A, F), warm (L, A)) for ``frames`` ``{asset: DataFrame}``."""
        dfs = self._frames(frames)
        index, _ = panel(dict(zip(self.assets, dfs)))
        parts = [asset_features(df, index, self.feature_spec, norm)
                 for df, norm in zip(dfs, self.normalizers)]
        return (index, np.stack([p[0] for p in parts], axis=1),
                np.stack([p[1] for p in parts], axis=1))

    def _forward(self, frames: dict):
        """The model over the union index of ``frames`` from a zero state: the index, the
        warm mask (L, A) and every head's raw output {name: (L, A, ...)}."""
        import torch

        index, x, warm = self.features(frames)
        with torch.no_grad():
            raw = self.model(torch.as_tensor(x[None], dtype=torch.float64))
        return index, warm, {k: v[0].numpy() for k, v in raw.items()}  # (L, A, ...)

    def predict(self, frames: dict) -> dict[str, pd.DataFrame]:
        """Batch forward over the union index of ``frames`` (a zero state at its first bar)."""
        index, warm, raw = self._forward(frames)
        out = {}
        for a, (name, dec) in enumerate(zip(self.assets, self.decoders)):
            d = dec.decode(raw["logits"][:, a], raw["returns"][:, a], raw["log_vol"][:, a])
            cols = {k: d[k].astype(np.float64) for k in _OUT}
            cols["weight"] = raw["weights"][:, a].astype(np.float64)
            for i in range(d["probs"].shape[-1]):
                cols[f"p{i}"] = d["probs"][:, i]
            frame = pd.DataFrame(cols, index=index)
            frame[~warm[:, a]] = np.nan
            out[name] = frame
        return out

    def forecasts(self, frames: dict) -> dict[str, dict[str, np.ndarray]]:
        """Every head in the units of its target on each asset's OWN bars (as
        ``Predictor.forecasts``; the model run over the union index from a zero state):
        ``{asset: {"probs" (n, C), "returns" (n, R) forward log returns at the label
        horizons, "log_vol" (n,)}}``, NaN rows where the asset is not warm."""
        index, warm, raw = self._forward(frames)
        out = {}
        for a, (name, t) in enumerate(zip(self.assets, self.targets)):
            pos = index.get_indexer(frames[name].index)  # (n,) the asset's rows of the union
            logits = raw["logits"][pos, a]  # (n, C)
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (n, C)
            f = {"probs": z / z.sum(axis=-1, keepdims=True),
                 "returns": raw["returns"][pos, a] * np.asarray(t.return_scale),  # (n, R)
                 "log_vol": raw["log_vol"][pos, a] * t.vol_std + t.vol_mean}  # (n,)
            cold = ~warm[pos, a]
            for v in f.values():
                v[cold] = np.nan
            out[name] = f
        return out

    def stream(self) -> MultiStream:
        return MultiStream(self)


class MultiStream:
    """All assets through one recurrent state, one bar time per ``step``.

    ``step(bars)``: ``bars`` maps asset name to ``(o, h, l, c, v, hour, dow)`` or ``None``
    (no bar at this time); returns ``{asset: {signal, confidence, expected_signal,
    pred_return, pred_move, pred_vol, weight}}`` for the assets that are warm.
    """

    def __init__(self, predictor: MultiPredictor):
        self.p = predictor
        self.stepper = predictor.model.stepper()
        spec = predictor.feature_spec
        self.warmup = spec.warmup
        self.features = [FeatureStream(spec) for _ in predictor.assets]
        self._norm = [(np.asarray(n.mean, np.float64), np.asarray(n.std, np.float64), n.clip)
                      for n in predictor.normalizers]
        self.seen = [0] * len(predictor.assets)
        self._x = np.zeros((len(predictor.assets), len(spec.names)))

    def reset(self) -> None:
        for f in self.features:
            f.reset()
        self.stepper.reset()
        self.seen = [0] * len(self.seen)

    def get_state(self) -> dict:
        """Everything the stream carries between bars (plain data and numpy arrays): every
        asset's feature state and bar count, and the model's one recurrent state."""
        return {"features": [f.get_state() for f in self.features],
                "model": self.stepper.get_state(), "seen": list(self.seen)}

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` (``ValueError`` for another number of assets)."""
        feats, seen = list(state["features"]), [int(n) for n in state["seen"]]
        if len(feats) != len(self.features) or len(seen) != len(self.seen):
            raise ValueError(f"a state of {len(feats)} assets for a model of "
                             f"{len(self.features)}")
        for f, st in zip(self.features, feats):
            f.set_state(st)
        self.stepper.set_state(state["model"])
        self.seen = seen

    def warm(self, asset: str) -> bool:
        """Whether ``asset``'s last bar was past its warm-up (its outputs are reported)."""
        return self.seen[self.p.assets.index(asset)] > self.warmup

    def step(self, bars: dict) -> dict[str, dict]:
        x = self._x
        x[:] = 0.0
        warm = []
        for a, name in enumerate(self.p.assets):
            bar = bars.get(name)
            if bar is None:
                continue
            raw = self.features[a].update(*bar)
            self.seen[a] += 1
            if self.seen[a] > self.warmup:  # its own position >= warmup, as in training
                mean, std, clip = self._norm[a]
                x[a] = np.nan_to_num(np.clip((raw - mean) / std, -clip, clip), nan=0.0)
                warm.append(a)
        out = self.stepper.step(x)  # (A, ...)
        res = {}
        for a in warm:
            r = out["returns"][a]
            dec = self.p.decoders[a]
            d = dec.decode_bar(out["logits"][a].tolist(), float(r[0]),
                               float(r[dec.move_index]), float(out["log_vol"][a]))
            d["weight"] = float(out["weights"][a])
            res[self.p.assets[a]] = d
        return res


# -- checkpoints -----------------------------------------------------------------------------
def save_multi_predictor(path, p: MultiPredictor, meta: dict | None = None) -> Path:
    """Write ``p`` as an "s4-multi/1" checkpoint, atomically (temporary file, then rename)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_config": dict(p.model.config),
        "state_dict": {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
                       for k, v in p.model.state_dict().items()},  # trained in float32
        "feature_spec": p.feature_spec.to_dict(),
        "feature_names": list(p.feature_spec.names),
        "assets": list(p.assets),
        "normalizers": [n.to_dict() for n in p.normalizers],
        "targets": [t.to_dict() for t in p.targets],
        "label_spec": p.label_spec.to_dict(),
        "meta": dict(p.meta if meta is None else meta),
        "versions": library_versions(),
    }
    return write_payload(path, payload)


def load_multi(path, map_location="cpu") -> MultiPredictor:
    """Load an "s4-multi/1" checkpoint (``weights_only=True``); ``CheckpointError`` naming
    what does not fit (format, sections, features, weights, per-asset parts)."""
    from ..ssm import model_from_config

    path = Path(path)
    payload = read_payload(path, map_location, FORMAT, "multi-asset", _REQUIRED, _OPTIONAL)
    spec = _section(path, "feature_spec", lambda: FeatureSpec.from_dict(payload["feature_spec"]))
    if list(payload["feature_names"]) != spec.names:
        raise CheckpointError(f"{path}: it was trained on features {payload['feature_names']}, "
                              f"its spec now computes {spec.names}")
    model = _section(path, "model_config",
                     lambda: model_from_config(dict(payload["model_config"])))
    _load_weights(path, model, payload["state_dict"])
    norms = _section(path, "normalizers",
                     lambda: [Normalizer.from_dict(d) for d in payload["normalizers"]])
    targets = _section(path, "targets", lambda: [Targets.from_dict(d) for d in payload["targets"]])
    lspec = _section(path, "label_spec", lambda: LabelSpec.from_dict(payload["label_spec"]))
    meta = dict(payload.get("meta") or {})
    meta["versions"] = payload.get("versions", {})
    try:
        predictor = MultiPredictor(model, spec, norms, lspec, targets, list(payload["assets"]),
                                   meta)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    check_digest(path, payload)
    return predictor
