"""The per-bar numpy stepper: equals model.step, state save/restore, snapshot, flat memory."""

import pickle
import time
import tracemalloc

import numpy as np
import pytest
import torch

from s4_strategies.ssm import SSMStepper, TorchStepper, build_model
from s4_strategies.ssm import stepper as stepper_mod

N_IN = 6
BACKENDS = ["numpy"] + (["numba"] if stepper_mod._nb is not None else [])


def model(kind, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(d_model=16, d_state=8, n_layers=2)
    cfg.update(kw)
    return build_model(kind, N_IN, **cfg).to(dtype).eval()


def torch_steps(m, x):
    state, outs = m.default_state(1), []
    with torch.no_grad():
        for t in range(x.shape[0]):
            o, state = m.step(torch.as_tensor(x[t : t + 1]), state)
            outs.append({k: v[0].numpy() for k, v in o.items()})
    return outs


def max_err(a, b):
    return max(np.abs(np.asarray(o[k], np.float64) - p[k]).max() for o, p in zip(a, b) for k in p)


@pytest.mark.parametrize(
    "backend,dtype", [(b, None) for b in BACKENDS] + [(BACKENDS[-1], np.float64)]
)
@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba", "s5", "dss"])
def test_stepper_equals_model_step_float32_default_size(kind, backend, dtype):
    """Default model (d_model 64, d_state 64, 4 layers), float32, within 1e-5."""
    m = model(kind, d_model=64, d_state=64, n_layers=4)
    x = np.random.default_rng(0).normal(size=(300, N_IN)).astype(np.float32)
    sp = m.stepper(backend=backend, dtype=dtype)
    assert isinstance(sp, SSMStepper) and sp.dtype == (dtype or np.float32)
    outs = [sp.step(x[t]) for t in range(len(x))]
    assert max_err(outs, torch_steps(m, x)) < 1e-5
    assert outs[0]["logits"].shape == (3,) and outs[0]["returns"].shape == (3,)
    assert outs[0]["log_vol"].shape == ()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind,opts", [("s4", {}), ("s4", dict(init="random")), ("s4d", {}),
                                       ("s4d", dict(disc="bilinear", init="inv")),
                                       ("mamba", {}), ("mamba", dict(learn_dt=False)),
                                       ("s5", dict(blocks=2)), ("s5", dict(disc="bilinear")),
                                       ("dss", {}), ("dss", dict(kernel="softmax", l_max=64))])
def test_stepper_float64_exact(kind, opts, backend):
    m = model(kind, torch.float64, seed=1, **opts)
    x = np.random.default_rng(1).normal(size=(200, N_IN))
    sp = m.stepper(backend=backend)
    assert max_err([sp.step(x[t]) for t in range(len(x))], torch_steps(m, x)) < 1e-10


@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba", "s5", "dss"])
def test_stepper_continues_from_a_parallel_history(kind):
    """Consume a long history with one parallel forward, then step bar by bar."""
    m = model(kind, torch.float64, seed=2)
    x = np.random.default_rng(2).normal(size=(1200, N_IN))
    with torch.no_grad():
        full = m(torch.as_tensor(x[None]))
        _, state = m(torch.as_tensor(x[None, :1000]), return_state=True)
    sp = m.stepper()
    sp.load_model_state(state)
    for t in range(1000, 1200):
        o = sp.step(x[t])
        for k in o:
            np.testing.assert_allclose(o[k], full[k][0, t].numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba", "s5", "dss"])
def test_reset_and_state_save_restore(kind):
    m = model(kind, seed=3)
    x = np.random.default_rng(3).normal(size=(60, N_IN))
    sp = m.stepper()
    first = [sp.step(x[t]) for t in range(30)]
    saved = pickle.loads(pickle.dumps(sp.get_state()))
    rest = [sp.step(x[t]) for t in range(30, 60)]
    sp.set_state(saved)
    again = [sp.step(x[t]) for t in range(30, 60)]
    assert max_err(again, rest) == 0
    sp.reset()
    assert max_err([sp.step(x[t]) for t in range(30)], first) == 0


def test_stepper_is_a_snapshot_in_eval_mode():
    m = model("s4", seed=4, dropout=0.5).train()
    x = np.random.default_rng(4).normal(size=(20, N_IN)).astype(np.float32)
    sp = m.stepper()
    ref = torch_steps(m.eval(), x)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)  # later training does not reach the stepper
    assert max_err([sp.step(x[t]) for t in range(20)], ref) < 1e-5


@pytest.mark.parametrize("kind", ["lstm", "gru", "transformer"])
def test_baseline_steppers(kind):
    m = model(kind, torch.float64, seed=5)
    x = np.random.default_rng(5).normal(size=(40, N_IN))
    sp = m.stepper()
    assert isinstance(sp, TorchStepper)
    outs = [sp.step(x[t]) for t in range(20)]
    saved = pickle.loads(pickle.dumps(sp.get_state()))
    outs += [sp.step(x[t]) for t in range(20, 40)]
    assert max_err(outs, torch_steps(m, x)) < 1e-10
    sp.set_state(saved)
    assert max_err([sp.step(x[t]) for t in range(20, 40)], outs[20:]) == 0
    sp.reset()
    assert max_err([sp.step(x[0])], outs[:1]) == 0


def test_stepper_memory_stays_flat():
    m = model("s4", seed=6)
    sp = m.stepper()
    x = np.random.default_rng(6).normal(size=(N_IN,))
    nbytes = sp.state_nbytes
    sp.step(x)
    peaks = []
    for _ in range(3):
        tracemalloc.start()
        for _ in range(500):
            sp.step(x)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert sp.state_nbytes == nbytes
    assert max(peaks) < 20_000 and max(peaks) - min(peaks) < 2_000


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not installed")
def test_stepper_is_much_faster_than_torch_step():
    """Loose smoke check (the benchmark reports the real numbers)."""
    m = model("s4", d_model=64, d_state=64, n_layers=4)
    sp = m.stepper()
    x = np.random.default_rng(7).normal(size=(N_IN,)).astype(np.float32)
    sp.step(x)
    t0 = time.perf_counter()
    for _ in range(400):
        sp.step(x)
    t_sp = (time.perf_counter() - t0) / 400
    state, xt = m.default_state(1), torch.as_tensor(x[None])
    with torch.no_grad():
        m.step(xt, state)
        t0 = time.perf_counter()
        for _ in range(40):
            _, state = m.step(xt, state)
    t_torch = (time.perf_counter() - t0) / 40
    assert t_torch / t_sp > 3


@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba", "s5", "dss", "gru"])
def test_run_equals_stepping_bar_by_bar(kind):
    """``stepper.run`` (one compiled loop, the indicator's once()) equals L calls of step."""
    from s4_strategies.ssm import build_model

    torch.manual_seed(0)
    model = build_model(kind, input_dim=5, d_model=8, d_state=8, n_layers=2, dropout=0.0).double()
    X = np.random.default_rng(0).normal(size=(300, 5))
    a, b = model.stepper(), model.stepper()
    a.step(X[0])
    b.step(X[0])  # both start from the same non-zero state
    ran = a.run(X[1:])
    stepped = [b.step(x) for x in X[1:]]
    for key in ("logits", "returns", "log_vol"):
        np.testing.assert_allclose(ran[key], np.stack([s[key] for s in stepped]), rtol=1e-9,
                                   atol=1e-9)
    np.testing.assert_allclose(a.step(X[0])["logits"], b.step(X[0])["logits"], atol=1e-9)


def test_vectorised_float32_exp_equals_math_exp():
    """The selective stepper's exp (Cody-Waite reduction, degree-6 polynomial, 2^k in the
    exponent bits) against numpy's over its whole domain: within 5e-7 relative (four float32
    ulps; measured 3.7e-7), clamped to exp(-87) below and 1 above."""
    from s4_strategies.ssm._stepper_numba import exp_nonpos_f32

    x = np.concatenate([-np.logspace(-8, np.log10(87), 20_000), [0.0, -1e-30, -87.0]])
    x = x.astype(np.float32)
    out, bits = np.empty_like(x), np.empty(len(x), dtype=np.int32)
    exp_nonpos_f32(x, out, bits)
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(out / ref - 1)) < 5e-7
    clamp = np.array([-200.0, -88.0, 1e-3, 5.0], dtype=np.float32)
    exp_nonpos_f32(clamp, out[:4], bits[:4])
    np.testing.assert_allclose(out[:4], np.exp([-87.0, -87.0, 0.0, 0.0]), rtol=5e-7)
