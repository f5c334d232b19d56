"""The contract every sequence layer in this package keeps.

    forward(u, state=None, return_state=False)
        u: (batch, length, d_model) -> y: (batch, length, d_model)
        state given: continue from it (as if the sequence it summarises came first).
        return_state: also return the state after the last step, so a long history can be
        consumed in one parallel call and stepping goes on from there.
    default_state(batch)          the state before any input (zeros)
    step(u_t, state) -> (y_t, state)
        u_t: (batch, d_model) -> y_t: (batch, d_model)

Stepping through a sequence from ``default_state`` reproduces ``forward``. Layers are causal
unless built with ``bidirectional=True``; a bidirectional layer has no recurrent view
(``step``, ``state`` and ``return_state`` raise).
"""

from __future__ import annotations

import torch
from torch import nn


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def real_param(t: torch.Tensor) -> nn.Parameter:
    """A contiguous parameter of the default float dtype (complex ones are stored as
    ``view_as_real`` pairs so that ``model.double()`` converts them too)."""
    return nn.Parameter(t.detach().to(torch.get_default_dtype()).clone().contiguous())


class SequenceLayer(nn.Module):
    d_model: int
    bidirectional: bool = False
    #: Names of the state space parameters (A, B, Δ and their kin). Training gives them no
    #: weight decay and a lower learning rate, as in the S4/S4D and Mamba recipes.
    ssm_parameter_names: tuple[str, ...] = ()

    def default_state(self, batch: int):
        raise NotImplementedError

    def step(self, u_t: torch.Tensor, state):
        raise NotImplementedError

    def _check_recurrent(self) -> None:
        if self.bidirectional:
            raise RuntimeError("a bidirectional layer has no recurrent view (step / state)")

    def _cached(self, fn):
        """``fn()``, reused between calls while no gradient is being recorded and no parameter
        or buffer changed (so an inference ``step`` does not re-discretise every bar)."""
        if torch.is_grad_enabled():
            return fn()
        key = tuple((t.data_ptr(), t._version, t.dtype) for t in
                    (*self.parameters(recurse=False), *self.buffers(recurse=False)))
        if getattr(self, "_cache_key", None) != key:
            self._cache_val, self._cache_key = fn(), key
        return self._cache_val

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def forward_recurrent(self, u: torch.Tensor, state=None):
        """Slow sequential reference: step through ``u`` (B, L, H) -> (y (B, L, H), state)."""
        state = self.default_state(u.shape[0]) if state is None else state
        ys = []
        for u_t in u.unbind(1):
            y_t, state = self.step(u_t, state)  # (B, H)
            ys.append(y_t)
        return torch.stack(ys, dim=1), state  # (B, L, H)
