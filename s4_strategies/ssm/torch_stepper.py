"""``TorchStepper``: the per-bar stepper of models without a numpy kernel (baselines,
multi-asset), and :func:`recording_hidden`, which reads the vector a model's heads see."""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def recording_hidden(model):
    """Inside the block, each call of ``model.heads`` appends its input, the hidden vector
    (..., H) every head reads at each step (the backbone's final normalised output), to the
    list it yields. A model without one ``heads`` module (multi-asset) raises ``TypeError``."""
    heads = getattr(model, "heads", None)
    if not isinstance(heads, torch.nn.Module):
        raise TypeError(f"{type(model).__name__} has no single heads module: no hidden "
                        "vector per bar")
    seen = []
    handle = heads.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        yield seen
    finally:
        handle.remove()


def _to_numpy(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(o) for o in obj)
    return obj


def _to_torch(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(o) for o in obj)
    return obj


class TorchStepper:
    """Fallback stepper for models without a numpy kernel (baselines, multi-asset): a
    snapshot of the model in eval mode, stepped with batch 1 under no_grad. Same API."""

    def __init__(self, model, hidden: bool = False, **_ignored):
        self.model = copy.deepcopy(model).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.hidden = hidden
        self.reset()

    def reset(self) -> None:
        self.state = self.model.default_state(1)

    def step(self, x_t) -> dict:
        x = torch.as_tensor(np.asarray(x_t), dtype=self.dtype).unsqueeze(0)  # (1, ...)
        with torch.no_grad(), recording_hidden(self.model) if self.hidden else _none() as seen:
            out, self.state = self.model.step(x, self.state)
        if self.hidden:  # (1, H), also where step runs the forward on a length-1 window
            out["hidden"] = seen[-1].reshape(*out["log_vol"].shape, -1)
        return {k: v[0].numpy() for k, v in out.items()}

    def run(self, X) -> dict:
        """Every row of ``X`` (L, input_dim) from the current state, through the model's
        parallel view with state carry (the same outputs as stepping); leading L axis."""
        x = torch.as_tensor(np.asarray(X), dtype=self.dtype).unsqueeze(0)  # (1, L, ...)
        with torch.no_grad(), recording_hidden(self.model) if self.hidden else _none() as seen:
            out, self.state = self.model(x, state=self.state, return_state=True)
        if self.hidden:
            out["hidden"] = seen[-1]
        return {k: v[0].numpy() for k, v in out.items()}

    def get_state(self) -> dict:
        return {"state": _to_numpy(self.state)}  # nested numpy arrays (and ints): picklable

    def set_state(self, state: dict) -> None:
        self.state = _to_torch(state["state"])


@contextmanager
def _none():
    yield None
