"""ModelConfig: round trip, validation, the stored keys, checkpoints and parameter shapes."""

import dataclasses
import hashlib
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
SSM_OPTS = ["init", "learn_dt", "bidirectional", "dt_min", "dt_max", "disc", "d_conv", "expand",
            "dt_rank", "scan", "chunk_size"]
BASE = ["kind", "input_dim", "d_model", "n_layers", "dropout", "n_classes", "horizons"]
# The keys model.config had before ModelConfig (checkpoints hold exactly these), in order.
STORED_KEYS = {
    "s4": ["kind", "input_dim", "d_model", "d_state", "n_layers", "layer", "dropout",
           "n_classes", "horizons", *SSM_OPTS],
    "lstm": BASE,
    "transformer": [*BASE, "n_heads", "window"],
    "multi": ["kind", "input_dim", "n_assets", "d_model", "d_state", "n_layers", "layer",
              "dropout", "n_classes", "horizons", *SSM_OPTS],
}
STORED_KEYS.update(s4d=STORED_KEYS["s4"], mamba=STORED_KEYS["s4"], gru=BASE,
                   s5=[*STORED_KEYS["s4"], "blocks"], dss=[*STORED_KEYS["s4"], "kernel", "l_max"])
ALL = [*KINDS, "multi"]


def config(kind, **kw):
    extra = {"n_assets": 3} if kind == "multi" else {}
    return ModelConfig(kind, N_IN, **{**SMALL, **extra, **kw})


@pytest.mark.parametrize("kind", ALL)
def test_round_trip_through_json(kind):
    cfg = config(kind, n_classes=5, horizons=[1, 3], dropout=0.2)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert list(d) == STORED_KEYS[kind]
    assert d["kind"] == kind and d["horizons"] == [1, 3]
    back = ModelConfig.from_dict(d)
    assert back == cfg and back.horizons == (1, 3)
    model = model_from_config(cfg)
    assert model.cfg == cfg and model.config == d and model.kind == kind
    assert model_from_config(model.config).cfg == cfg
    options = {k: v for k, v in d.items() if k not in ("kind", "input_dim")}
    assert build_model(kind, N_IN, **options).cfg == cfg


def test_model_classes_and_defaults():
    cfg = ModelConfig("s4", 16)
    assert (cfg.d_model, cfg.d_state, cfg.n_layers, cfg.layer) == (64, 64, 4, "s4")
    assert cfg.horizons == (1, 5, 20) and cfg.init is None and cfg.n_assets is None
    assert ModelConfig("multi", 16, n_assets=2).layer == "s4"
    assert ModelConfig("multi", 16, n_assets=2, layer="mamba").to_dict()["layer"] == "mamba"
    for kind, cls in [("s4", S4TradingModel), ("s4d", S4TradingModel), ("mamba", S4TradingModel),
                      ("lstm", LSTMModel), ("gru", GRUModel), ("transformer", TransformerModel),
                      ("multi", MultiAssetS4)]:
        assert type(model_from_config(config(kind))) is cls
        assert type(cls(config(kind))) is cls
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 8


def test_fields_a_kind_does_not_use_are_ignored_and_not_stored():
    # build_model keeps accepting the SSM options for every kind (training and scripts pass them)
    m = build_model("lstm", N_IN, d_state=3, init="whatever", n_heads=7, **{"d_model": 8})
    assert "d_state" not in m.config and "n_heads" not in m.config
    assert m.cfg == ModelConfig("lstm", N_IN, d_model=8)
    assert "n_assets" not in ModelConfig("s4", N_IN, n_assets=4).to_dict()


def test_unknown_keys_are_rejected_by_name():
    d = config("s4").to_dict()
    with pytest.raises(ValueError, match=r"d_modle.*n_layer\b|n_layer.*d_modle"):
        ModelConfig.from_dict({**d, "d_modle": 8, "n_layer": 2})
    with pytest.raises(ValueError, match="hidden"):
        build_model("gru", N_IN, hidden=8)
    with pytest.raises(ValueError, match="hidden"):
        model_from_config({**config("gru").to_dict(), "hidden": 8})
    with pytest.raises(ValueError, match="input_dim"):
        ModelConfig.from_dict({"kind": "s4"})


@pytest.mark.parametrize("kind,kw,match", [
    ("nope", {}, "unknown model kind"),
    ("s4", {"d_model": 0}, "d_model"),
    ("s4", {"d_model": 2.5}, "d_model"),
    ("gru", {"n_layers": -1}, "n_layers"),
    ("s4", {"d_model": True}, "d_model"),
    ("s4", {"n_classes": 4}, "n_classes"),
    ("lstm", {"dropout": 1.0}, "dropout"),
    ("lstm", {"dropout": "0.1"}, "dropout"),
    ("s4", {"horizons": ()}, "horizons"),
    ("s4", {"horizons": (1, 0)}, "horizons"),
    ("s4", {"horizons": 5}, "horizons"),
    ("s4", {"d_state": 5}, "d_state"),
    ("s4d", {"d_state": 0}, "d_state"),
    ("s4", {"layer": "s4d"}, "contradicts"),
    ("multi", {"layer": "lstm"}, "layer"),
    ("mamba", {"init": "legs"}, "init"),
    ("s4d", {"init": "hippo"}, "init"),
    ("s4d", {"disc": "euler"}, "disc"),
    ("mamba", {"scan": "fast"}, "scan"),
    ("s4", {"dt_min": 0.2, "dt_max": 0.1}, "dt_min"),
    ("s4", {"dt_min": 0.0}, "dt_min"),
    ("s4", {"learn_dt": "yes"}, "learn_dt"),
    ("mamba", {"expand": 0}, "expand"),
    ("mamba", {"dt_rank": 0}, "dt_rank"),
    ("mamba", {"chunk_size": -4}, "chunk_size"),
    ("multi", {"n_assets": None}, "n_assets"),
    ("transformer", {"n_heads": 3}, "n_heads"),
    ("transformer", {"window": 0}, "window"),
])
def test_invalid_values_are_rejected(kind, kw, match):
    with pytest.raises(ValueError, match=match):
        config(kind, **kw)
    if kind != "nope":
        with pytest.raises(ValueError, match=match):
            extra = {"n_assets": 3} if kind == "multi" else {}
            build_model(kind, N_IN, **{**SMALL, **extra, **kw})


def test_constructors_take_a_matching_model_config():
    with pytest.raises(TypeError, match="ModelConfig"):
        S4TradingModel(N_IN)
    with pytest.raises(ValueError, match="kinds"):
        S4TradingModel(config("lstm"))
    with pytest.raises(ValueError, match="kinds"):
        GRUModel(config("lstm"))


def test_shipped_checkpoint_config_still_rebuilds():
    from s4_strategies.model import default_checkpoint

    payload = torch.load(default_checkpoint(), map_location="cpu", weights_only=True)
    stored = dict(payload["model_config"])
    cfg = ModelConfig.from_dict(stored)
    assert cfg.to_dict() == stored and list(cfg.to_dict()) == list(stored)
    model = model_from_config(stored)
    model.load_state_dict(payload["state_dict"])  # strict: every name and shape fits
    x = torch.randn(1, 32, cfg.input_dim)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(x)["logits"]).all()


# (kind, options) -> (number of parameters, sha1 of the state_dict's [(name, shape)]), as
# recorded from the keyword constructors before ModelConfig replaced them.
SHAPES = [
    ("s4", {}, 100807, "4841c0a486d3"),
    ("s4d", {}, 84423, "fee86ddbc436"),
    ("mamba", {}, 239047, "0e5a82c48b89"),
    ("lstm", {}, 134087, "fb716bb2927a"),
    ("gru", {}, 100807, "0e8f53eaff59"),
    ("transformer", {}, 200903, "3e947cb21a0a"),
    ("multi", {"n_assets": 2}, 101330, "e93666b51f3c"),
    ("s4", dict(SMALL, bidirectional=True, n_classes=5, horizons=(1, 2)), 808, "34f68b6ddbe8"),
    ("s4d", dict(SMALL, learn_dt=False), 655, "3f4dee9b13b1"),
    ("mamba", dict(SMALL, learn_dt=False, expand=3, d_conv=2, dt_rank=3), 2367, "69d57e2ddb07"),
    ("mamba", dict(SMALL, d_state=5, bidirectional=True), 3519, "cb6abff385e2"),
    ("transformer", dict(d_model=8, n_layers=2, n_heads=2, window=6), 1871, "c4e69d6d0c45"),
    ("multi", dict(SMALL, n_assets=3, layer="mamba"), 2026, "03793b27b42f"),
]


@pytest.mark.parametrize("kind,kw,n_params,digest", SHAPES)
def test_parameter_shapes_as_before(kind, kw, n_params, digest):
    model = model_from_config(ModelConfig(kind, N_IN, **kw))
    shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert hashlib.sha1(json.dumps(shapes).encode()).hexdigest()[:12] == digest
    state = build_model(kind, N_IN, **kw).state_dict()
    assert [(k, list(v.shape)) for k, v in state.items()] == shapes
