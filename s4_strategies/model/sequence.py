"""Running a trained network over a long series of bars in the parallel view."""

from __future__ import annotations


def predict_sequence(model, x, chunk: int = 8192, hidden: bool = False) -> dict:
    """Outputs for every step of ``x`` (B, L, F), as the model would give them bar by bar;
    with ``hidden``, also ``"hidden"`` (B, L, H): the vector the heads read at every step.

    Recurrent models (S4, S4D, selective SSM, LSTM, GRU) run in chunks whose final state
    seeds the next chunk, so the result is exact for any length. A Transformer with an
    attention ``window`` W runs over overlapping pieces of 2W bars from an empty cache and
    keeps the last W outputs of each: every step attends to at most W past bars at
    positions 0 … 2W−1, the range it was trained on when its training windows are ≥ 2W.
    """
    import torch

    if hidden:
        model = _with_hidden(model)
    L = x.shape[1]
    window = getattr(model, "window", None) if getattr(model, "kind", "") == "transformer" else None
    outs = []
    if window:
        start = 0
        while start < L:
            lo = max(0, start - window)
            hi = min(L, start + window)
            y = model(x[:, lo:hi])
            outs.append({k: v[:, start - lo :] for k, v in y.items()})
            start = hi
    else:
        state = None
        for start in range(0, L, chunk):
            y, state = model(x[:, start : start + chunk], state=state, return_state=True)
            outs.append(y)
    return {k: torch.cat([o[k] for o in outs], dim=1) for k in outs[0]}


def _with_hidden(model):
    """``model`` whose output dict also has ``"hidden"``, the input of its heads."""
    from ..ssm.torch_stepper import recording_hidden

    def call(x, **kwargs):
        with recording_hidden(model) as seen:
            y = model(x, **kwargs)
        out, state = y if isinstance(y, tuple) else (y, None)
        out = {**out, "hidden": seen[-1]}
        return (out, state) if isinstance(y, tuple) else out

    return call
