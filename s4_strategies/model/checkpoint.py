"""Checkpoints: everything needed to rebuild a trained model and its features.

A checkpoint is a ``torch.save`` of plain containers (no pickled classes), so it loads with
``torch.load(..., weights_only=True)``:

- ``format``: ``"s4-trading/1"``
- ``model_config``: the model's ``config`` (with ``kind``) and ``state_dict``: its weights
- ``feature_spec``, ``feature_names``, ``normalizer``: the causal features and the
  standardisation fitted on the training period
- ``label_spec`` and ``targets``: how outputs map back to returns and volatility
- ``data``: dataset name, bar spacing, train/validation periods; ``versions``; ``metrics``
- ``sha256``: the hash of everything above (weights bit for bit, the rest as canonical JSON),
  checked on load: a checkpoint changed after it was saved (edited, damaged) is refused.
  One saved before hashes existed loads with a :class:`CheckpointWarning`;
  :func:`seal_checkpoint` adds the hash to a file you trust (or edited on purpose).

``load_model(path)`` returns a :class:`Predictor`, the object the indicator, the strategies
and the comparison use.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from feeds.atomic import write_atomically

from ..features import FeatureSpec, LabelSpec, Normalizer
from .errors import CheckpointError, CheckpointWarning
from .predictor import Predictor, Targets

FORMAT = "s4-trading/1"
HASH_KEY = "sha256"


def _plain(obj):
    if hasattr(obj, "tolist"):  # numpy and torch scalars and arrays
        return obj.tolist()
    return str(obj)


def payload_digest(payload: dict) -> str:
    """sha256 of a checkpoint's content: each weight's name, dtype, shape and bytes (in name
    order), then every other section but the hash as canonical JSON."""
    import torch

    h = hashlib.sha256()
    state = payload.get("state_dict") or {}
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    rest = {str(k): v for k, v in payload.items() if k not in ("state_dict", HASH_KEY)}
    h.update(json.dumps(rest, sort_keys=True, default=_plain, separators=(",", ":")).encode())
    return h.hexdigest()


def write_payload(path, payload: dict) -> Path:
    """``torch.save`` of ``payload`` with its :func:`payload_digest`, atomically (a
    temporary file beside ``path``, then renamed over it)."""
    import torch

    body = {k: v for k, v in payload.items() if k != HASH_KEY}
    body[HASH_KEY] = payload_digest(body)
    return write_atomically(Path(path), lambda f: torch.save(body, f), lock=False)


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
    return write_payload(path, payload)


_REQUIRED = ("format", "model_config", "state_dict", "feature_spec", "feature_names",
             "normalizer", "label_spec", "targets")
_OPTIONAL = ("meta", "versions")


def _section(path, name: str, build):
    """``build()``, with any error of a malformed section as a ``CheckpointError`` naming it."""
    try:
        return build()
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(f"{path}: its {name} lacks {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its {name} is unusable: {exc}") from exc


def _check_sections(path, payload: dict, fmt: str = FORMAT, required=_REQUIRED,
                    optional=_OPTIONAL) -> None:
    missing = [k for k in required if k not in payload]
    unknown = sorted(str(k) for k in payload if k not in (*required, *optional, HASH_KEY))
    if missing or unknown:
        raise CheckpointError(
            f"{path}: sections do not match format {fmt}: missing {missing}, unknown {unknown}"
        )


def read_payload(path, map_location="cpu", fmt: str = FORMAT, what: str = "s4-trading",
                 required=_REQUIRED, optional=_OPTIONAL) -> dict:
    """``torch.load(path, weights_only=True)`` of a checkpoint of format ``fmt`` with exactly
    the sections ``required`` (+ ``optional``); ``CheckpointError`` naming what is wrong."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path} is not a loadable {what} checkpoint: it holds Python objects besides "
            "tensors and plain containers (numbers, text, lists, dicts), and loading those "
            "could run code from the file; it was not loaded") from None
    except Exception as exc:  # noqa: BLE001 - not a file torch.save wrote
        raise CheckpointError(f"{path} is not a loadable {what} checkpoint: not a file "
                              f"torch.save wrote ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {what} checkpoint (format {fmt}, got {got})")
    _check_sections(path, payload, fmt, required, optional)
    return payload


def check_digest(path, payload: dict) -> None:
    """Refuse a checkpoint whose sha256 does not match its content (warn when it has none).
    The loaders call it last, so an edit that breaks a section is named by that section's
    check, and one that breaks nothing else (changed weights) by this one."""
    held = payload.get(HASH_KEY)
    if held is None:
        warnings.warn(f"{path} carries no sha256 of its weights and metadata (saved before "
                      "checkpoints had one): its integrity cannot be checked; "
                      "s4_strategies.model.seal_checkpoint(path) adds it", CheckpointWarning,
                      stacklevel=3)
        return
    try:
        ok = held == payload_digest(payload)
    except Exception as exc:  # noqa: BLE001 - weights that cannot even be hashed
        raise CheckpointError(f"{path}: its weights cannot be read ({exc})") from None
    if not ok:
        raise CheckpointError(f"{path}: its sha256 does not match its weights and metadata: "
                              "the file was changed after it was saved (edited or damaged); "
                              "not loaded")


def seal_checkpoint(path) -> str:
    """Add (or refresh) the sha256 of a checkpoint you trust, weights and metadata
    unchanged; returns it. For a checkpoint saved before hashes, or edited on purpose."""
    import torch

    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path} is not a checkpoint of this package")
    write_payload(path, payload)
    return payload_digest({k: v for k, v in payload.items() if k != HASH_KEY})


def _load_weights(path, model, state) -> None:
    """Load ``state`` into ``model``; refuse non-finite, missing, unknown or misfit weights."""
    import torch

    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: its state_dict is not a dict of tensors")
    bad = [k for k, v in state.items()
           if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {bad}")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config: {exc}") from exc
    if result.missing_keys:
        raise CheckpointError(f"{path}: missing weights {list(result.missing_keys)} "
                              "that the model config needs")
    if result.unexpected_keys:
        raise CheckpointError(f"{path}: unknown weights {list(result.unexpected_keys)} "
                              "that the model config does not have")


def load_model(path, map_location="cpu") -> Predictor:
    """Load a checkpoint (``weights_only=True``) and rebuild the model and its features.

    Everything is checked before a :class:`Predictor` comes back, each failure a
    ``CheckpointError`` naming it: the sections present (no missing, no unknown), each
    section well-formed, the feature names those the spec computes, the weights finite and
    exactly those of the model config, and (``Predictor``) the heads, label spec, targets and
    normalisation consistent with each other.
    """
    from ..ssm import model_from_config

    path = Path(path)
    payload = read_payload(path, map_location)
    spec = _section(path, "feature_spec", lambda: FeatureSpec.from_dict(payload["feature_spec"]))
    if list(payload["feature_names"]) != spec.names:
        raise CheckpointError(
            f"{path}: the features it was trained on {payload['feature_names']} are not what "
            f"this version computes from its spec {spec.names}"
        )
    model = _section(path, "model_config",
                     lambda: model_from_config(dict(payload["model_config"])))
    _load_weights(path, model, payload["state_dict"])
    normalizer = _section(path, "normalizer",
                          lambda: Normalizer.from_dict(payload["normalizer"]))
    label_spec = _section(path, "label_spec", lambda: LabelSpec.from_dict(payload["label_spec"]))
    targets = _section(path, "targets", lambda: Targets.from_dict(payload["targets"]))
    meta = dict(payload.get("meta") or {})
    meta["versions"] = payload.get("versions", {})
    try:
        predictor = Predictor(model, spec, normalizer, label_spec, targets, meta)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    check_digest(path, payload)
    return predictor
