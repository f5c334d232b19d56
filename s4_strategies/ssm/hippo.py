"""HiPPO matrices, their normal-plus-low-rank form, the S4D initialisations and discretisation.

Plain functions: numbers in, numbers out. Matrices are built in float64 numpy (they are
diagonalised here, once, and the eigen-decomposition is only trustworthy in float64);
the discretisation rules are written in torch so the layers can differentiate through
them, and they work on any dtype.

Conventions (used by every layer in this package)
-------------------------------------------------
* A state of size ``N`` is stored as ``N // 2`` complex modes, one per conjugate pair:
  the full state is ``(x, conj(x))`` and every real output is ``2 * Re(sum_n C_n x_n)``.
* Continuous system ``x'(t) = A x(t) + B u(t)``, ``y = C x + D u``.
* Discrete system ``x_k = Ab x_{k-1} + Bb u_k``, ``y_k = C x_k + D u_k``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "hippo_legs",
    "nplr_legs",
    "s4d_init",
    "dplr_init",
    "init_log_dt",
    "discretize_zoh",
    "discretize_bilinear",
    "S4D_INITS",
]

S4D_INITS = ("legs", "lin", "inv", "real", "random", "unstructured")


def hippo_legs(N: int) -> tuple[np.ndarray, np.ndarray]:
    """HiPPO-LegS: ``A[n,k] = -sqrt(2n+1) sqrt(2k+1)`` (n > k), ``-(n+1)`` (n = k), 0 (n < k);
    ``B[n] = sqrt(2n+1)``. Returns float64 ``A`` (N, N) and ``B`` (N,)."""
    r = np.sqrt(2.0 * np.arange(N) + 1.0)  # (N,)
    A = -np.tril(np.outer(r, r), -1) - np.diag(np.arange(N) + 1.0)  # (N, N)
    return A, r.copy()


def nplr_legs(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normal plus low-rank form of HiPPO-LegS, diagonalised in float64.

    ``A = S - p p^T`` with ``p[n] = sqrt(n + 1/2)`` and ``S = -I/2 + (skew-symmetric)``, so
    ``S = V diag(Lambda) V^H`` with ``V`` unitary, and

        A = V (Lambda - P P^H) V^H,   P = V^H p   (rank 1, Q = P).

    Only one mode of each conjugate pair is returned; the full ``V`` is ``[V, conj(V)]``.
    Returns ``Lambda`` (N/2,), ``P`` (N/2,), ``B`` = ``V^H B_hippo`` (N/2,), ``V`` (N, N/2).
    """
    if N % 2:
        raise ValueError(f"d_state must be even (conjugate pairs), got {N}")
    A, B = hippo_legs(N)
    p = np.sqrt(np.arange(N) + 0.5)  # (N,)
    S = A + np.outer(p, p)  # (N, N) = -I/2 + skew
    S_skew = 0.5 * (S - S.T)  # (N, N)
    w, V = np.linalg.eigh(-1j * S_skew)  # Hermitian: eigenvalues -omega, S_skew = V (i w) V^H
    keep = np.argsort(w)[N // 2:]  # one of each pair: imaginary part i*w > 0
    V = V[:, keep]  # (N, N/2)
    Lambda = np.diagonal(S).mean() + 1j * w[keep]  # (N/2,)  real part is exactly -1/2
    return Lambda, V.conj().T @ p, V.conj().T @ B, V


def s4d_init(kind: str, N: int, generator: torch.Generator | None = None) -> np.ndarray:
    """Diagonal ``A`` (N/2 complex modes) of the S4D initialisations.

    legs:   the diagonal of the NPLR form of HiPPO-LegS (S4D-LegS)
    lin:    A_n = -1/2 + i pi n                              (S4D-Lin)
    inv:    A_n = -1/2 + i N/pi (N/(2n+1) - 1)               (S4D-Inv)
    real:   A_n = -(n+1)                                     (S4D-Real)
    random: random frequencies, A_n = -u_n + i v_n, u ~ U(0.05, 1), v ~ U(0, pi N / 2):
            S4D-Lin's spread of frequencies drawn at random (ablation; not "no structure")
    unstructured: the eigenvalues of a random complex Gaussian (Ginibre) matrix of size N/2,
            G_ij ~ CN(0, 1/(N/2)) (near-uniform in the unit disk), shifted left until every
            real part is <= -0.05: no frequency structure at all (ablation)
    """
    if N % 2:
        raise ValueError(f"d_state must be even (conjugate pairs), got {N}")
    n = np.arange(N // 2)
    if kind == "legs":
        return nplr_legs(N)[0]
    if kind == "lin":
        return -0.5 + 1j * math.pi * n
    if kind == "inv":
        return -0.5 + 1j * N / math.pi * (N / (2 * n + 1) - 1)
    if kind == "real":
        return -(n + 1.0) + 0j
    if kind == "random":
        g = torch.rand(2, N // 2, generator=generator, dtype=torch.float64).numpy()
        return -(0.05 + 0.95 * g[0]) + 1j * math.pi * N / 2 * g[1]
    if kind == "unstructured":
        n2 = N // 2
        g = torch.randn(2, n2, n2, generator=generator, dtype=torch.float64).numpy()
        G = (g[0] + 1j * g[1]) / math.sqrt(2 * n2)  # (N/2, N/2)  circular law: unit disk
        lam = np.sort_complex(np.linalg.eigvals(G))  # (N/2,)
        return lam - (lam.real.max() + 0.05)  # every real part <= -0.05: stable
    raise ValueError(f"unknown init {kind!r}; expected one of {S4D_INITS}")


def dplr_init(kind: str, N: int, generator: torch.Generator | None = None):
    """``(Lambda, P, B)`` half-mode arrays for the DPLR S4 layer, ``A = Lambda - P P^H``.

    legs: NPLR HiPPO-LegS. random: random stable Lambda, small random P, random B (ablation).
    Other S4D kinds: their diagonal with ``P = 0`` start and ``B = 1``."""
    if kind == "legs":
        Lambda, P, B, _ = nplr_legs(N)
        return Lambda, P, B
    Lambda = s4d_init(kind, N, generator)
    if kind == "random":
        r = torch.randn(4, N // 2, generator=generator, dtype=torch.float64).numpy()
        return Lambda, (r[0] + 1j * r[1]) / math.sqrt(N), r[2] + 1j * r[3]
    return Lambda, np.zeros(N // 2, complex), np.ones(N // 2, complex)


def init_log_dt(H: int, dt_min: float = 1e-3, dt_max: float = 1e-1,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One step size per channel, log-uniform in [dt_min, dt_max]: returns log(dt) (H,)."""
    r = torch.rand(H, generator=generator, dtype=torch.float64)  # (H,)
    return r * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H,)


def discretize_zoh(A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, diagonal: bool = True):
    """Zero-order hold: ``Ab = exp(dt A)``, ``Bb = A^{-1} (exp(dt A) - I) B``.

    diagonal: A (..., N), B (..., N), dt broadcastable to (..., 1).
    dense:    A (..., N, N), B (..., N), dt a tensor broadcastable to (...)."""
    if diagonal:
        dtA = dt * A  # (..., N)
        Ab = torch.exp(dtA)  # (..., N)
        return Ab, (Ab - 1) / A * B  # (..., N), (..., N)
    Ab = torch.linalg.matrix_exp(dt[..., None, None] * A)  # (..., N, N)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    Bb = torch.linalg.solve(A, ((Ab - eye) @ B.unsqueeze(-1))).squeeze(-1)  # (..., N)
    return Ab, Bb


def discretize_bilinear(A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, diagonal: bool = True):
    """Bilinear (Tustin): ``Ab = (I - dt/2 A)^{-1} (I + dt/2 A)``, ``Bb = (I - dt/2 A)^{-1} dt B``.

    Shapes as in :func:`discretize_zoh`."""
    if diagonal:
        E = 1 - dt / 2 * A  # (..., N)
        return (1 + dt / 2 * A) / E, dt * B / E  # (..., N), (..., N)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    dtm = dt[..., None, None]  # (..., 1, 1)
    E = eye - dtm / 2 * A  # (..., N, N)
    Ab = torch.linalg.solve(E, eye + dtm / 2 * A)  # (..., N, N)
    Bb = torch.linalg.solve(E, (dt[..., None] * B).unsqueeze(-1)).squeeze(-1)  # (..., N)
    return Ab, Bb
