"""The bridge from backtrader strategies to the multi-asset model (``MultiAssetS4``).

Strategies may not import the model package directly; this module hands them a loaded
:class:`~s4_strategies.model.multi.MultiPredictor` and its per-bar stream.
"""

from __future__ import annotations

from ..model.multi import MultiPredictor, MultiStream, load_multi

__all__ = ["MultiPredictor", "MultiStream", "as_multi_predictor", "bar_tuple"]


def as_multi_predictor(model) -> MultiPredictor:
    """``model``: a :class:`MultiPredictor` or the path of an "s4-multi/1" checkpoint."""
    if isinstance(model, MultiPredictor):
        return model
    if model is None:
        raise ValueError("the multi-asset strategy needs model= (a checkpoint path or a "
                         "MultiPredictor)")
    return load_multi(model)


def bar_tuple(data) -> tuple:
    """The current bar of a backtrader data as ``MultiStream.step`` takes it:
    (open, high, low, close, volume, UTC hour, weekday)."""
    t = data.datetime.datetime(0)
    return (data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0],
            t.hour + t.minute / 60.0, float(t.weekday()))
