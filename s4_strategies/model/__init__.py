"""The trained unit that trades: ``Predictor`` (batch), ``PredictorStream`` (per bar),
checkpoints (``save_model``/``load_model``, ``weights_only=True``), the multi-asset
``MultiPredictor`` (``load_multi``) and the shipped checkpoints.

    from s4_strategies.model import default_checkpoint, load_model
    predictor = load_model(default_checkpoint())
    frame = predictor.predict(df)            # parallel view over a whole frame
    stream = predictor.stream()              # recurrent view, one bar per call
    out = stream.step(o, h, l, c, v, hour, dow)

    multi = load_multi(default_multi_checkpoint())   # one encoder over several assets
    frames = multi.predict({"BTCUSDT": btc, "ETHUSDT": eth, "SOLUSDT": sol})
"""

from __future__ import annotations

from .checkpoint import FORMAT, load_model, save_model, seal_checkpoint
from .errors import CheckpointError, CheckpointWarning
from .multi import MultiPredictor, load_multi
from .predictor import Predictor, Targets
from .pretrained import default_checkpoint, default_multi_checkpoint
from .sequence import predict_sequence
from .stream import PredictorStream

__all__ = [
    "FORMAT", "CheckpointError", "CheckpointWarning", "MultiPredictor", "Predictor",
    "PredictorStream", "Targets", "default_checkpoint", "default_multi_checkpoint",
    "load_model", "load_multi", "predict_sequence", "save_model", "seal_checkpoint",
]
