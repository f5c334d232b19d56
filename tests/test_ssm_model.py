"""The trading models (SSM and baselines): contract, equivalence, causality, config."""

import json

import pytest
import torch

from s4_strategies.ssm import (
    KINDS,
    GRUModel,
    LSTMModel,
    ModelConfig,
    MultiAssetS4,
    S4TradingModel,
    TransformerModel,
    build_model,
    model_from_config,
)

N_IN = 5
SMALL = dict(d_model=8, d_state=4, n_layers=2)


def small(kind, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(kind, N_IN, **{**SMALL, **kw}).to(dtype).eval()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def run_steps(model, x, state=None):
    state = model.default_state(x.shape[0]) if state is None else state
    outs = []
    for t in range(x.shape[1]):
        o, state = model.step(x[:, t], state)
        outs.append(o)
    return {k: torch.stack([o[k] for o in outs], 1) for k in outs[0]}, state


def test_kinds_and_classes():
    assert set(KINDS) == {"s4", "s4d", "mamba", "s5", "dss", "lstm", "gru", "transformer"}
    assert isinstance(small("s4"), S4TradingModel) and small("s4d").config["layer"] == "s4d"
    assert isinstance(small("lstm"), LSTMModel) and isinstance(small("gru"), GRUModel)
    assert isinstance(small("transformer"), TransformerModel)
    with pytest.raises(ValueError):
        build_model("nope", N_IN)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_classes,horizons", [(3, (1, 5, 20)), (5, (1, 2))])
def test_output_shapes(kind, n_classes, horizons):
    m = small(kind, n_classes=n_classes, horizons=horizons)
    x = torch.randn(2, 11, N_IN, dtype=torch.float64)
    with torch.no_grad():
        out = m(x)
        o, _ = m.step(x[:, 0], m.default_state(2))
    assert set(out) == {"logits", "returns", "log_vol"}
    assert out["logits"].shape == (2, 11, n_classes)
    assert out["returns"].shape == (2, 11, len(horizons))
    assert out["log_vol"].shape == (2, 11)
    assert {k: v.shape for k, v in o.items()} == {k: v[:, 0].shape for k, v in out.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_step_and_continues_from_state(kind):
    m = small(kind, seed=1)
    x = torch.randn(2, 120, N_IN, dtype=torch.float64)
    with torch.no_grad():
        out, state = m(x, return_state=True)
        stepped, _ = run_steps(m, x)
        a, s_a = m(x[:, :70], return_state=True)
        b = m(x[:, 70:], state=s_a)
        c, _ = run_steps(m, x[:, 70:], s_a)
    for k in out:
        assert rel(stepped[k], out[k]) < 1e-10, k
        assert rel(torch.cat([a[k], b[k]], 1), out[k]) < 1e-10, k
        assert rel(c[k], out[k][:, 70:]) < 1e-10, k


# S5 and DSS: the same float32 check at 4096 runs per layer in test_ssm_layers.py (the
# whole-model loop of 4096 torch steps is the suite's cost, not the check's).
@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba"])
def test_whole_model_float32_step_equals_forward_at_4096(kind):
    m = small(kind, torch.float32, seed=2)
    x = torch.randn(1, 4096, N_IN)
    with torch.no_grad():
        out = m(x)
        stepped, _ = run_steps(m, x)
    for k in out:
        assert rel(stepped[k], out[k]) < 1e-4, k


@pytest.mark.parametrize("kind", KINDS)
def test_causal(kind):
    m = small(kind, seed=3)
    x = torch.randn(2, 64, N_IN, dtype=torch.float64)
    x2 = x.clone()
    t = 30
    x2[:, t + 1:] = torch.randn_like(x2[:, t + 1:]) * 5
    with torch.no_grad():
        o1, o2 = m(x), m(x2)
    for k in o1:
        assert (o1[k][:, : t + 1] - o2[k][:, : t + 1]).abs().max() < 1e-12, k
        assert (o1[k][:, t + 1:] - o2[k][:, t + 1:]).abs().max() > 1e-6, k


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind):
    m = small(kind, seed=4, n_classes=5, horizons=(1, 3))
    cfg = json.loads(json.dumps(m.config))
    assert cfg["kind"] == kind
    rebuilds = (model_from_config(cfg), type(m)(ModelConfig.from_dict(cfg)), build_model(**cfg))
    for rebuilt in rebuilds:
        rebuilt = rebuilt.double().eval()
        rebuilt.load_state_dict(m.state_dict())
        x = torch.randn(1, 9, N_IN, dtype=torch.float64)
        with torch.no_grad():
            assert torch.equal(rebuilt(x)["logits"], m(x)["logits"])


@pytest.mark.parametrize("kind,opts", [
    *((k, o) for k in ("s4", "s4d", "mamba") for o in (dict(init="random"), dict(learn_dt=False))),
    ("s5", dict(learn_dt=False, blocks=2)), ("s5", dict(disc="bilinear")),
    ("dss", dict(init="lin", learn_dt=False)), ("dss", dict(kernel="softmax", l_max=32))])
def test_ablation_options_pass_through(kind, opts):
    m = small(kind, seed=5, **opts)
    assert all(m.config[k] == v for k, v in opts.items())
    x = torch.randn(1, 40, N_IN, dtype=torch.float64)
    with torch.no_grad():
        stepped, _ = run_steps(m, x)
        assert rel(stepped["logits"], m(x)["logits"]) < 1e-10


@pytest.mark.parametrize("kind", ["s4", "s4d", "mamba", "s5", "dss"])
def test_bidirectional_model(kind):
    m = small(kind, seed=6, bidirectional=True)
    x = torch.randn(1, 20, N_IN, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 15:] += 1
    with torch.no_grad():
        assert (m(x)["logits"][:, :5] - m(x2)["logits"][:, :5]).abs().max() > 1e-8
    with pytest.raises(RuntimeError):
        m.stepper()


def test_s4d_init_choices():
    for init in ("legs", "lin", "inv", "real", "random"):
        assert small("s4d", init=init).config["init"] == init


def test_dropout_only_in_training():
    m = small("s4", seed=7, dropout=0.5).train()
    x = torch.randn(1, 16, N_IN, dtype=torch.float64)
    assert not torch.equal(m(x)["logits"], m(x)["logits"])
    m.eval()
    assert torch.equal(m(x)["logits"], m(x)["logits"])


def test_float32_training_step_is_finite():
    m = small("s4", torch.float32, seed=8).train()
    x = torch.randn(4, 32, N_IN)
    out = m(x)
    target = torch.randint(0, 3, (128,))
    ce = torch.nn.functional.cross_entropy(out["logits"].reshape(-1, 3), target)
    loss = ce + out["returns"].square().mean() + out["log_vol"].square().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_transformer_window_matches_cache():
    torch.manual_seed(9)
    cfg = ModelConfig("transformer", N_IN, d_model=8, n_layers=2, n_heads=2, window=6)
    m = TransformerModel(cfg).double().eval()
    x = torch.randn(2, 25, N_IN, dtype=torch.float64)
    with torch.no_grad():
        out, state = m(x, return_state=True)
        stepped, s = run_steps(m, x)
    assert rel(stepped["logits"], out["logits"]) < 1e-10
    assert state[1][0][0].shape[2] == 6 and s[1][0][0].shape[2] == 6  # bounded cache
    x2 = x.clone()
    x2[:, :10] += 3  # beyond n_layers * (window - 1) bars back: no influence
    with torch.no_grad():
        d = (m(x2)["logits"] - out["logits"]).abs()
    assert d[:, 20:].max() < 1e-12 and d[:, 19].max() > 1e-8


def test_multi_asset():
    torch.manual_seed(10)
    m = MultiAssetS4(ModelConfig("multi", N_IN, n_assets=3, **SMALL)).double().eval()
    x = torch.randn(2, 30, 3, N_IN, dtype=torch.float64)
    with torch.no_grad():
        out, state = m(x, return_state=True)
        stepped, _ = run_steps(m, x)
    assert out["logits"].shape == (2, 30, 3, 3) and out["returns"].shape == (2, 30, 3, 3)
    assert out["log_vol"].shape == (2, 30, 3) and out["weights"].shape == (2, 30, 3)
    w = out["weights"]
    assert (w >= 0).all() and (w.sum(-1) <= 1 + 1e-12).all()
    for k in out:
        assert rel(stepped[k], out[k]) < 1e-10, k
    # shared encoder, asset-specific heads: the same input gives different per-asset logits
    same = x[:, :, :1].expand(-1, -1, 3, -1)
    with torch.no_grad():
        lg = m(same)["logits"]
    assert (lg[:, :, 0] - lg[:, :, 1]).abs().max() > 1e-6
    cfg = json.loads(json.dumps(m.config))
    assert model_from_config(cfg).config == m.config
    sp = m.stepper()
    o = sp.step(x[0, 0].numpy())
    assert o["weights"].shape == (3,)
