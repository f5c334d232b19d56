"""The compiled (numba) selective scan against the sequential reference: values, every
gradient (gradcheck in float64, allclose in float32), threads, and the memory it keeps."""

import pytest
import torch

from s4_strategies.ssm import SelectiveSSM, selective_scan_compiled, selective_scan_ref
from s4_strategies.ssm.selective import auto_scan


def inputs(B, L, E, N, dtype, seed=0, h0=True):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_()

    x = rnd(B, L, E)
    dt = (torch.rand(B, L, E, generator=g, dtype=dtype) * 0.5).requires_grad_()
    A = (-torch.rand(E, N, generator=g, dtype=dtype) * 8 - 0.1).requires_grad_()
    Bm, Cm, D = rnd(B, L, N), rnd(B, L, N), rnd(E)
    return (x, dt, A, Bm, Cm, D) + ((rnd(B, E, N),) if h0 else ())


def test_gradcheck_float64():
    args = inputs(2, 11, 3, 4, torch.float64, seed=1)
    assert torch.autograd.gradcheck(lambda *a: selective_scan_compiled(*a, chunk_size=4), args)


@pytest.mark.parametrize("h0", [True, False])
def test_float32_medium_equals_the_reference(h0):
    """L = 300 with chunks of 17 (300 = 17 * 17 + 11) and with the default chunk (~sqrt L)."""
    args = inputs(3, 300, 24, 16, torch.float32, seed=2, h0=h0)
    g = torch.Generator().manual_seed(3)
    gy = torch.randn(3, 300, 24, generator=g)
    gh = torch.randn(3, 24, 16, generator=g)
    results = []
    for fn in (selective_scan_ref, lambda *a: selective_scan_compiled(*a, chunk_size=17),
               selective_scan_compiled):
        y, h = fn(*args)
        grads = torch.autograd.grad((y * gy).sum() + (h * gh).sum(), args)
        results.append((y, h, grads))
    (y_ref, h_ref, g_ref) = results[0]
    for y, h, grads in results[1:]:
        torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(h, h_ref, rtol=1e-4, atol=1e-4)
        for name, a, b in zip(["x", "dt", "A", "B", "C", "D", "h0"], grads, g_ref):
            scale = b.abs().max()
            assert (a - b).abs().max() <= 1e-4 * scale, name


def test_the_result_does_not_depend_on_the_threads():
    """Odd batch on 2 threads: the channels are split into groups, the partial sums of dA,
    dB and dC added; the same numbers as one thread."""
    args = inputs(3, 40, 10, 6, torch.float64, seed=4)
    threads = torch.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            y, h = selective_scan_compiled(*args, chunk_size=7)
            out.append((y, h) + torch.autograd.grad(y.square().sum() + h.sum(), args))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_memory_kept_for_the_backward_does_not_grow_with_every_state():
    """What autograd keeps is the inputs plus the state every T steps, B E N ceil(L / T)
    values: not the B L E N states the reference keeps."""
    B, L, E, N, T = 2, 400, 8, 4, 20
    args = inputs(B, L, E, N, torch.float32, seed=5)
    inputs_bytes = sum(a.numel() * a.element_size() for a in args)

    def kept(fn):
        packed = []

        def pack(t):
            packed.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*args)
        return sum(packed)

    assert kept(lambda *a: selective_scan_compiled(*a, chunk_size=T)) <= (
        inputs_bytes + B * E * N * (L // T) * 4)
    assert kept(selective_scan_ref) > B * L * E * N * 4  # the reference keeps every state


def test_rejects_what_it_cannot_run():
    x, dt, A, Bm, Cm, D = inputs(1, 5, 2, 3, torch.float32, h0=False)
    with pytest.raises(ValueError, match="float16"):
        selective_scan_compiled(x.half(), dt, A, Bm, Cm, D)


def test_auto_uses_the_compiled_scan_on_the_cpu():
    x, A = torch.zeros(8, 16, 128), torch.zeros(128, 16)
    assert auto_scan(x, A) == "compiled"
    assert auto_scan(x.half(), A) == "recompute"  # float16: the older rule
    layer = SelectiveSSM(d_model=8, d_state=4)
    assert layer.config.scan == "auto"
    u = torch.randn(2, 30, 8)
    ref = SelectiveSSM(d_model=8, d_state=4, scan="sequential")
    ref.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(u), ref(u), rtol=1e-5, atol=1e-6)
