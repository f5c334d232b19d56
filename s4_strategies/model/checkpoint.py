"""Checkpoints: everything needed to rebuild a trained model and its features.

A checkpoint is a ``torch.save`` of plain containers (no pickled classes), so it loads with
``torch.load(..., weights_only=True)``:

- ``format``: ``"s4-trading/1"``
- ``model_config``: the model's ``config`` (with ``kind``) and ``state_dict``: its weights
- ``feature_spec``, ``feature_names``, ``normalizer``: the causal features and the
  standardisation fitted on the training period
- ``label_spec`` and ``targets``: how outputs map back to returns and volatility
- ``data``: dataset name, bar spacing, train/validation periods; ``versions``; ``metrics``

``load_model(path)`` returns a :class:`Predictor`, the object the indicator, the strategies
and the comparison use.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pandas as pd

from ..features import FeatureSpec, LabelSpec, Normalizer
from .errors import CheckpointError
from .predictor import Predictor, Targets

FORMAT = "s4-trading/1"


def library_versions() -> dict:
    import backtrader
    import torch

    import s4_strategies

    return {
        "s4_strategies": s4_strategies.__version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "backtrader": getattr(backtrader, "__version__", "?"),
        "python": platform.python_version(),
    }


# -- save / load -----------------------------------------------------------------------
def save_model(path, model, feature_spec: FeatureSpec, normalizer: Normalizer,
               label_spec: LabelSpec, targets: Targets, meta: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_config": dict(model.config),
        "state_dict": {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()},
        "feature_spec": feature_spec.to_dict(),
        "feature_names": list(feature_spec.names),
        "normalizer": normalizer.to_dict(),
        "label_spec": label_spec.to_dict(),
        "targets": targets.to_dict(),
        "meta": dict(meta or {}),
        "versions": library_versions(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_model(path, map_location="cpu") -> Predictor:
    """Load a checkpoint (``weights_only=True``) and rebuild the model and its features."""
    import torch

    from ..ssm import model_from_config

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to users
        raise CheckpointError(f"{path} is not a loadable s4-trading checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an s4-trading checkpoint (format {FORMAT})")
    spec = FeatureSpec.from_dict(payload["feature_spec"])
    if list(payload["feature_names"]) != spec.names:
        raise CheckpointError(
            f"{path}: the features it was trained on {payload['feature_names']} are not what "
            f"this version computes from its spec {spec.names}"
        )
    model = model_from_config(dict(payload["model_config"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config: {exc}") from exc
    meta = dict(payload.get("meta", {}))
    meta["versions"] = payload.get("versions", {})
    return Predictor(
        model,
        spec,
        Normalizer.from_dict(payload["normalizer"]),
        LabelSpec.from_dict(payload["label_spec"]),
        Targets.from_dict(payload["targets"]),
        meta,
    )
