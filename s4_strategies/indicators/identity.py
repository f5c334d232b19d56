"""What makes a saved state belong to a run: the model it was computed with
(:func:`fingerprint`) and the feed it read (:func:`data_identity`, :func:`bar_spacing_s`).
The single-asset state file (``live.state``) and the multi-asset shared stream
(:class:`~s4_strategies.indicators.multi.SharedStream`) both check them on restore."""

from __future__ import annotations

import hashlib
import json

import backtrader as bt
import numpy as np

from feeds.bartime import SECONDS_PER_DAY

_DATA_KEYS = ("symbol", "category", "interval", "testnet")

__all__ = ["bar_spacing_s", "data_identity", "fingerprint"]


def fingerprint(predictor) -> str:
    """``"sha256:…"`` of what makes a predictor's state mean what it means: its model config
    and weights (the bytes of every ``state_dict`` tensor, with name, dtype and shape), the
    feature spec, normalisation, label spec and targets (a multi-asset predictor: its assets
    and their normalisations and targets). Two loads of one checkpoint agree; any changed
    weight does not."""
    h = hashlib.sha256()
    spec = {"model_config": dict(predictor.model.config),
            "feature_spec": predictor.feature_spec.to_dict(),
            "label_spec": predictor.label_spec.to_dict()}
    if hasattr(predictor, "normalizers"):  # a MultiPredictor
        spec.update(assets=list(predictor.assets),
                    normalizers=[n.to_dict() for n in predictor.normalizers],
                    targets=[t.to_dict() for t in predictor.targets])
    else:
        spec.update(normalizer=predictor.normalizer.to_dict(),
                    targets=predictor.targets.to_dict())
    h.update(json.dumps(spec, sort_keys=True, default=repr).encode())
    for name, tensor in sorted(predictor.model.state_dict().items()):
        arr = np.ascontiguousarray(tensor.detach().cpu().numpy())
        h.update(f"\0{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return "sha256:" + h.hexdigest()


def _plain(v):
    return v if v is None or isinstance(v, (str, bool, int, float)) else repr(v)


def data_identity(data) -> dict:
    """What names a feed: its name, timeframe and compression, and (where the feed has
    them, e.g. ``feeds.BybitData``) symbol, category, interval and testnet."""
    ident = {"name": str(getattr(data, "_name", "") or "")}
    tf, comp = getattr(data, "_timeframe", None), getattr(data, "_compression", None)
    if tf is not None:
        try:
            ident["timeframe"] = bt.TimeFrame.Names[tf]
        except (IndexError, TypeError):
            ident["timeframe"] = _plain(tf)
    if comp is not None:
        ident["compression"] = _plain(comp)
    params = getattr(data, "params", None)
    for key in _DATA_KEYS:
        if params is not None and hasattr(params, key):
            ident[key] = _plain(getattr(params, key))
    return ident


def bar_spacing_s(data, n: int = 64) -> float | None:
    """The median spacing (seconds, to the ms) of the last ``n`` bars of ``data``."""
    nums = []
    for ago in range(min(len(data), n)):
        try:
            nums.append(data.datetime[-ago])
        except IndexError:
            break
    gaps = sorted(a - b for a, b in zip(nums, nums[1:]) if a > b)
    return round(gaps[len(gaps) // 2] * SECONDS_PER_DAY, 3) if gaps else None
