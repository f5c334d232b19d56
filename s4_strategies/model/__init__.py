"""The trained unit that trades: ``Predictor`` (batch), ``PredictorStream`` (per bar),
checkpoints (``save_model``/``load_model``, ``weights_only=True``) and the shipped checkpoint.

    from s4_strategies.model import default_checkpoint, load_model
    predictor = load_model(default_checkpoint())
    frame = predictor.predict(df)            # parallel view over a whole frame
    stream = predictor.stream()              # recurrent view, one bar per call
    out = stream.step(o, h, l, c, v, hour, dow)
"""

from __future__ import annotations

from .checkpoint import FORMAT, load_model, save_model, seal_checkpoint
from .errors import CheckpointError, CheckpointWarning
from .predictor import Predictor, Targets
from .pretrained import default_checkpoint
from .sequence import predict_sequence
from .stream import PredictorStream

__all__ = [
    "FORMAT", "CheckpointError", "CheckpointWarning", "Predictor", "PredictorStream",
    "Targets", "default_checkpoint", "load_model", "predict_sequence", "save_model",
    "seal_checkpoint",
]
