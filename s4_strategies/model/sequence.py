"""Running a trained network over a long series of bars in the parallel view."""

from __future__ import annotations


def predict_sequence(model, x, chunk: int = 8192) -> dict:
    """Outputs for every step of ``x`` (B, L, F), as the model would give them bar by bar.

    Recurrent models (S4, S4D, selective SSM, LSTM, GRU) run in chunks whose final state
    seeds the next chunk, so the result is exact for any length. A Transformer with an
    attention ``window`` W runs over overlapping pieces of 2W bars from an empty cache and
    keeps the last W outputs of each: every step attends to at most W past bars at
    positions 0 … 2W−1, the range it was trained on when its training windows are ≥ 2W.
    """
    import torch

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
