"""Per-bar inference for one stream of bars, with no torch in the hot path.

``SSMStepper`` takes a snapshot of the model's weights at creation (eval mode, dropout
off), discretises every layer once in the model's dtype, and then runs one bar at a time,
in the model's dtype by default (``dtype=np.float64`` for a float32 model is also fine;
both stay within ~2e-6 of ``model.step`` over thousands of bars):

    step(x_t)   x_t (input_dim,) numpy -> {"logits" (C,), "returns" (R,), "log_vol" ()}
    reset()     back to the zero state
    get_state() / set_state(s)   a dict of numpy arrays (copy, pickle, restore)

Recurrences per layer (same maths as the torch ``step``):
    S4D, DSS:  x = Ab x + Bb u with the exact ZOH (or bilinear) Ab, Bb of the diagonal.
    S5:   one state of P/2 modes for all channels: x = Λ̄ x + B̄ u (B̄ (P/2, H)),
          y = Re(2C̃ x) + D u (2C̃ (H, P/2)).
    S4:   the DPLR bilinear step of :mod:`s4` (two rank-1 corrections, O(N) per channel),
          rearranged so that one pass over the modes does it. The torch step is
              w = alpha x - beta s(x) + gamma u,   x' = w - rho s(w),   s(v) = 2 Re(conj(P) v).
          Keep (w, s) with s = s(w) instead of x = w - rho s. Then s(x) = (1 - tau) s with
          tau = s(rho), and
              w' = alpha w - mu s + gamma u,   mu = alpha rho + beta (1 - tau)
              s' = s(w'),   y = Re(2C w') - sigma s' + D u,   sigma = Re sum 2C rho
          (load_model_state converts a torch state x: s = s(x) / (1 - tau), w = x + rho s).
          Not an equivalent diagonal system: the eigenvectors of HiPPO-LegS are too
          ill-conditioned (cond ~1e20 at N = 64) for a float64 diagonalisation.
    mamba: conv window + selective scan step of :mod:`selective`.

Backends: "numba" (one fused compiled call per bar; the default when numba is
importable) and "numpy" (vectorised per layer; a fallback, ~10x slower because of the
per-call overhead of numpy on tiny arrays). The state never grows with the history.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

try:
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf)

from .torch_stepper import TorchStepper  # noqa: F401  (the fallback stepper, re-exported)

try:  # pragma: no cover - exercised when numba is installed
    from . import _stepper_numba as _nb
except ImportError:  # pragma: no cover
    _nb = None


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().resolve_conj().resolve_neg().cpu()
    return t.numpy().astype(np.complex128 if t.is_complex() else np.float64)


def _planes(*zs) -> np.ndarray:
    """Complex (H, N2) arrays -> real planes (2 * len(zs), H, N2)."""
    return np.stack([p for z in zs for p in (_np(z.real), _np(z.imag))])


class SSMStepper:
    def __init__(self, model, backend: str = "auto", dtype=None, hidden: bool = False):
        if backend == "auto":
            backend = "numba" if _nb is not None else "numpy"
        if backend == "numba" and _nb is None:
            raise ImportError("backend='numba' needs numba installed")
        if dtype is None:  # follow the model: float32 weights -> float32 recurrence
            dtype = np.float64 if next(model.parameters()).dtype == torch.float64 else np.float32
        self.backend, self.dtype = backend, np.dtype(dtype)
        # Discretise in the model's own dtype, so that the stepper's poles are exactly the
        # ones model.step uses (a float32 pole rounded differently drifts over ~1/(dt Re A)
        # bars); derived coefficients are then formed in float64 and stored in self.dtype.
        m = copy.deepcopy(model).eval()
        cfg = m.cfg
        self.kind, self.n_classes, self.horizons = cfg.layer, cfg.n_classes, cfg.horizons
        bb = m.backbone
        with torch.no_grad():
            w = {"We": bb.embed.weight, "be": bb.embed.bias,
                 "Wo": torch.stack([b.out.weight for b in bb.blocks]),
                 "bo": torch.stack([b.out.bias for b in bb.blocks]),
                 "Wh": torch.cat([m.heads.logits.weight, m.heads.returns.weight,
                                  m.heads.log_vol.weight]),
                 "bh": torch.cat([m.heads.logits.bias, m.heads.returns.bias, m.heads.log_vol.bias])}
            w = {k: _np(v) for k, v in w.items()}
            norms = [b.norm for b in bb.blocks] + [bb.norm_f]
            w["norms"] = np.stack([[_np(n.weight), _np(n.bias)] for n in norms])
            self.eps = float(bb.norm_f.eps)
            ssms = [b.ssm for b in bb.blocks]
            weights = {"mamba": self._mamba_weights, "s5": self._s5_weights}
            w.update(weights.get(self.kind, self._s4_weights)(ssms))
        self._n_heads = w["bh"].shape[0]
        if hidden:  # identity rows after the heads: the vector the heads read comes out too
            H = w["Wh"].shape[1]
            w["Wh"] = np.concatenate([w["Wh"], np.eye(H)])
            w["bh"] = np.concatenate([w["bh"], np.zeros(H)])
        self.hidden = hidden
        self.w = {k: np.ascontiguousarray(v, dtype=self.dtype) for k, v in w.items()}
        self._n_out = self.w["bh"].shape[0]
        self.reset()

    # -- weights -----------------------------------------------------------------------------
    def _s4_weights(self, ssms) -> dict:
        planes, D, self._rho, self._tau = [], [], [], []
        for s in ssms:
            if self.kind == "s4":
                C2 = 2 * torch.view_as_complex(s.C)[0].to(torch.complex128)  # (H, N2)
                # DPLR on the state (w, s): x = w - rho s, s = 2 Re(conj(P) w), so that one
                # pass over the modes does the step (derivation in the module docstring)
                alpha, beta, gamma, rho, Pc = (c.to(torch.complex128) for c in s.recurrence())
                tau = 2 * (Pc * rho).sum(-1, keepdim=True).real  # (H, 1)
                mu = alpha * rho + beta * (1 - tau)  # (H, N2)
                sigma = (C2 * rho).sum(-1).real  # (H,)
                planes.append(_planes(alpha, mu, gamma, Pc, C2))
                self._rho.append(_np(rho))
                self._tau.append(_np(tau[:, 0]))
            else:  # s4d, dss
                _, Ab, Bb, C = s.discrete()
                planes.append(_planes(Ab, Bb, 2 * C[0]))
                sigma = torch.zeros_like(s.D)
            D.append(np.stack([_np(s.D), _np(sigma)]))
        ssm = np.stack(planes)  # (nl, P, H, N2)
        self._state_shape = (ssm.shape[0], 2, ssm.shape[2], ssm.shape[3])
        return {"ssm": ssm, "D": np.stack(D)}

    def _s5_weights(self, ssms) -> dict:
        """Planes (real, imaginary): lam (nl, 2, P2), Bm (nl, 2, P2, H), Cm (nl, 2, H, P2)."""
        dis = [s.discrete() for s in ssms]  # Λ̄ (P2,), B̄ (P2, H), C̃ (c, H, P2)
        st = lambda f: np.stack([_planes(f(*d)) for d in dis])  # noqa: E731
        w = {"lam": st(lambda Ab, Bb, C: Ab), "Bm": st(lambda Ab, Bb, C: Bb),
             "Cm": st(lambda Ab, Bb, C: 2 * C[0]),
             "D": np.stack([np.stack([_np(s.D), np.zeros(s.d_model)]) for s in ssms])}
        self._state_shape = (len(ssms), 2, w["lam"].shape[2])
        return w

    def _mamba_weights(self, ssms) -> dict:
        c0 = ssms[0].config
        E, N, K = c0.d_inner, c0.d_state, c0.d_conv
        R = c0.dt_rank if c0.learn_dt else 0
        zeros_E = torch.zeros(E)
        st = lambda f: np.stack([_np(f(s)) for s in ssms])  # noqa: E731
        self._state_shape = ((len(ssms), E, K - 1), (len(ssms), E, N))
        return {
            "Win": st(lambda s: s.in_proj.weight),
            "bin": st(lambda s: s.in_proj.bias if s.in_proj.bias is not None
                      else torch.zeros(2 * E)),
            "convw": st(lambda s: s.conv1d.weight[:, 0]),
            "convb": st(lambda s: s.conv1d.bias if s.conv1d.bias is not None else zeros_E),
            "Wx": st(lambda s: s.x_proj.weight),
            "Wdt": st(lambda s: s.dt_proj.weight if R else torch.zeros(E, 0)),
            "bdt": st(lambda s: s.dt_proj.bias if R else zeros_E),
            "dt_fixed": st(lambda s: zeros_E if R else torch.exp(s.log_dt)),
            "A": st(lambda s: -torch.exp(s.A_log)), "Dm": st(lambda s: s.D),
            "Wout": st(lambda s: s.out_proj.weight),
            "bout": st(lambda s: s.out_proj.bias if s.out_proj.bias is not None
                       else torch.zeros(s.out_proj.weight.shape[0])),
        }

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        if self.kind == "mamba":
            self.state = {"conv": np.zeros(self._state_shape[0], self.dtype),
                          "h": np.zeros(self._state_shape[1], self.dtype)}
        elif self.kind == "s5":
            self.state = {"x": np.zeros(self._state_shape, self.dtype)}
        else:
            self.state = {"x": np.zeros(self._state_shape, self.dtype),
                          "s": np.zeros(self._state_shape[:1] + self._state_shape[2:3], self.dtype)}
        self._bind()

    def _bind(self) -> None:
        """Pre-bind the kernel arguments (saves dict look-ups in the hot path)."""
        w, st = self.w, self.state
        if self.kind == "mamba":
            keys = ("We", "be", "norms", "Win", "bin", "convw", "convb", "Wx", "Wdt", "bdt",
                    "dt_fixed", "A", "Dm", "Wout", "bout", "Wo", "bo", "Wh", "bh")
            self._args = tuple(w[k] for k in keys) + (st["conv"], st["h"])
        elif self.kind == "s5":
            keys = ("We", "be", "norms", "lam", "Bm", "Cm", "D", "Wo", "bo", "Wh", "bh")
            self._args = tuple(w[k] for k in keys) + (st["x"],)
        else:
            self._args = tuple(w[k] for k in ("We", "be", "norms", "ssm", "D", "Wo", "bo", "Wh",
                                              "bh")) + (st["x"], st["s"])

    def get_state(self) -> dict:
        """A copy of the state: numpy arrays, picklable. For S4 "x" holds (w, s) with
        x = w - rho s (see load_model_state for the conversion)."""
        return {k: v.copy() for k, v in self.state.items()}

    def set_state(self, state: dict) -> None:
        for k, v in self.state.items():
            v[...] = state[k]

    def load_model_state(self, state, index: int = 0) -> None:
        """Continue from a torch model state (``model(x, return_state=True)``), batch ``index``:
        consume a long history in one parallel call, then step bar by bar."""
        if self.kind == "mamba":
            for li, (conv, h) in enumerate(state):
                self.state["conv"][li] = _np(conv[index])
                self.state["h"][li] = _np(h[index])
            return
        for li, x in enumerate(state):
            x = _np(x[index]).astype(np.complex128)  # (H, N2); s5: (P2,)
            if self.kind == "s4":  # s = 2 Re(conj(P) x) / (1 - tau),  w = x + rho s
                Pc = self.w["ssm"][li, 6] + 1j * self.w["ssm"][li, 7]
                s = 2 * (Pc * x).real.sum(-1) / (1 - self._tau[li])  # (H,)
                x = x + self._rho[li] * s[:, None]
                self.state["s"][li] = s
            self.state["x"][li] = np.stack([x.real, x.imag])

    @property
    def state_nbytes(self) -> int:
        return sum(v.nbytes for v in self.state.values())

    # -- the hot path ------------------------------------------------------------------------
    def step(self, x_t) -> dict:
        """One bar: x_t (input_dim,) -> {"logits", "returns", "log_vol"} (and "hidden" (H,),
        the vector the heads read, for a stepper made with ``hidden=True``)."""
        x = np.ascontiguousarray(x_t, dtype=self.dtype)
        out = np.empty(self._n_out, self.dtype)
        if self.backend == "numba":
            if self.kind == "mamba":
                _nb.mamba_model_step(x, *self._args, out, self.eps)
            elif self.kind == "s5":
                _nb.s5_model_step(x, *self._args, out, self.eps)
            else:
                _nb.s4_model_step(x, *self._args, out, self.eps, self.kind == "s4")
        else:
            out[:] = self._step_numpy(x)
        return self._split(out)

    def _split(self, out: np.ndarray) -> dict:
        """The heads' outputs (and the hidden vector) from a last axis of outputs."""
        C, R, O = self.n_classes, len(self.horizons), self._n_heads
        res = {"logits": out[..., :C], "returns": out[..., C:C + R], "log_vol": out[..., C + R]}
        if self.hidden:
            res["hidden"] = out[..., O:]
        return res

    def run(self, X) -> dict:
        """Step through every row of ``X`` (L, input_dim) from the current state, in one
        compiled loop; returns the outputs of every bar as arrays with a leading L axis.
        Same arithmetic as calling ``step`` L times."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        OUT = np.empty((X.shape[0], self._n_out), self.dtype)
        if self.backend == "numba":
            if self.kind == "mamba":
                _nb.mamba_model_run(X, *self._args, OUT, self.eps)
            elif self.kind == "s5":
                _nb.s5_model_run(X, *self._args, OUT, self.eps)
            else:
                _nb.s4_model_run(X, *self._args, OUT, self.eps, self.kind == "s4")
        else:
            for t in range(X.shape[0]):
                OUT[t] = self._step_numpy(X[t])
        return self._split(OUT)

    def _ln(self, h, i):
        g, b = self.w["norms"][i]
        mu = h.mean()
        return (h - mu) / np.sqrt(((h - mu) ** 2).mean() + self.eps) * g + b

    @staticmethod
    def _gelu(v):
        return 0.5 * v * (1.0 + _erf(v * (1 / math.sqrt(2.0))))

    def _step_numpy(self, x):
        w = self.w
        h = w["We"] @ x + w["be"]  # (H,)
        H = h.shape[0]
        for li in range(w["Wo"].shape[0]):
            z = self._ln(h, li)  # (H,)
            step = {"mamba": self._mamba_numpy, "s5": self._s5_numpy}.get(self.kind,
                                                                          self._s4_numpy)
            y = step(li, z)
            y = self._gelu(y)
            g = w["Wo"][li] @ y + w["bo"][li]  # (2H,)
            h = h + g[:H] / (1 + np.exp(-g[H:]))
        return w["Wh"] @ self._ln(h, -1) + w["bh"]

    def _s4_numpy(self, li, z):
        S, D = self.w["ssm"][li], self.w["D"][li]
        cp = [S[2 * k] + 1j * S[2 * k + 1] for k in range(S.shape[0] // 2)]  # complex planes
        xs = self.state["x"][li]
        x = xs[0] + 1j * xs[1]  # (H, N2)  (S4: w)
        if self.kind == "s4":
            alpha, mu, gamma, Pc, C2 = cp
            x = alpha * x - mu * self.state["s"][li][:, None] + gamma * z[:, None]  # (H, N2)
            s = self.state["s"][li] = 2 * (Pc * x).real.sum(-1)  # (H,)
            y = (C2 * x).real.sum(-1) - D[1] * s
        else:
            Ab, Bb, C2 = cp
            x = Ab * x + Bb * z[:, None]  # (H, N2)
            y = (C2 * x).real.sum(-1)
        xs[0], xs[1] = x.real, x.imag
        return y + D[0] * z  # (H,)

    def _s5_numpy(self, li, z):
        w, xs = self.w, self.state["x"][li]
        lam, Bm, Cm = (w[k][li][0] + 1j * w[k][li][1] for k in ("lam", "Bm", "Cm"))
        x = lam * (xs[0] + 1j * xs[1]) + Bm @ z  # (P2,)
        xs[0], xs[1] = x.real, x.imag
        return (Cm @ x).real + w["D"][li][0] * z  # (H,)

    def _mamba_numpy(self, li, z):
        w, conv, hs = self.w, self.state["conv"][li], self.state["h"][li]
        E, N = w["A"].shape[1:]
        R = w["Wdt"].shape[2]
        xz = w["Win"][li] @ z + w["bin"][li]  # (2E,)
        win = np.concatenate([conv, xz[:E, None]], -1)  # (E, K)
        conv[...] = win[:, 1:]
        a = (win * w["convw"][li]).sum(-1) + w["convb"][li]  # (E,)
        xc = a / (1 + np.exp(-a))
        dbc = w["Wx"][li] @ xc  # (R + 2N,)
        if R:
            d = w["Wdt"][li] @ dbc[:R] + w["bdt"][li]
            dt = np.where(d > 20, d, np.log1p(np.exp(np.minimum(d, 20))))  # (E,)
        else:
            dt = w["dt_fixed"][li]
        hs[...] = np.exp(dt[:, None] * w["A"][li]) * hs + (dt * xc)[:, None] * dbc[R:R + N]
        g = xz[E:]
        ye = (hs @ dbc[R + N:] + w["Dm"][li] * xc) * g / (1 + np.exp(-g))
        return w["Wout"][li] @ ye + w["bout"][li]

