"""A checkpoint that does not hang together is refused with ``CheckpointError`` naming the
problem, never loaded into a model whose numbers would be silently wrong."""

import math

import pytest
import torch

import s4_strategies
from s4_strategies.model import CheckpointError


@pytest.fixture
def payload(tiny_checkpoint):
    return torch.load(tiny_checkpoint, weights_only=True)


def refused(payload, tmp_path, match):
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=match):
        s4_strategies.load_model(path)


def test_the_fixture_loads(payload, tmp_path):
    path = tmp_path / "good.pt"
    torch.save(payload, path)
    assert s4_strategies.load_model(path).label_spec.n_classes == 3


def test_five_class_labels_on_a_three_class_head(payload, tmp_path):
    # a 5-class decoder on 3 logits would read class 2 (buy) as 0 (hold)
    payload["label_spec"].update(n_classes=5, thresholds=[0.5, 1.5])
    refused(payload, tmp_path, r"3 class logits .*label_spec.n_classes = 5")


def test_return_head_and_horizons_must_match(payload, tmp_path):
    payload["label_spec"]["horizons"] = [5, 20]
    refused(payload, tmp_path, r"3 return outputs .*horizons \(5, 20\)")


def test_return_scales_must_match_the_horizons(payload, tmp_path):
    payload["targets"]["return_scale"] = payload["targets"]["return_scale"][:1]
    refused(payload, tmp_path, r"1 return scales .*3 horizons")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_named(payload, tmp_path, value):
    key = "heads.logits.weight"
    payload["state_dict"][key] = payload["state_dict"][key].clone()
    payload["state_dict"][key][0, 0] = value
    refused(payload, tmp_path, rf"non-finite weights .*{key}")


@pytest.mark.parametrize("section,key,value", [
    ("normalizer", "std", 0.0), ("normalizer", "mean", math.nan),
    ("targets", "vol_std", -1.0), ("targets", "vol_mean", math.inf),
    ("targets", "return_scale", math.nan),
])
def test_unusable_scales_are_named(payload, tmp_path, section, key, value):
    if isinstance(payload[section][key], list):
        payload[section][key][0] = value
    else:
        payload[section][key] = value
    refused(payload, tmp_path, rf"{section}.{key}")


def test_missing_and_unknown_sections(payload, tmp_path):
    del payload["targets"]
    refused(payload, tmp_path, r"missing \['targets'\]")
    payload = torch.load(tmp_path / "bad.pt", weights_only=True)
    payload["targets"] = {"return_scale": [0.01] * 3, "vol_mean": 0.0, "vol_std": 1.0}
    payload["surprise"] = 1
    refused(payload, tmp_path, r"unknown \['surprise'\]")


def test_missing_and_unknown_weights(payload, tmp_path):
    del payload["state_dict"]["heads.log_vol.bias"]
    refused(payload, tmp_path, r"missing weights \['heads.log_vol.bias'\]")
    payload["state_dict"]["heads.log_vol.bias"] = torch.zeros(1)
    payload["state_dict"]["extra.weight"] = torch.zeros(2)
    refused(payload, tmp_path, r"unknown weights \['extra.weight'\]")


@pytest.mark.parametrize("section,edit,match", [
    ("targets", lambda d: d.pop("vol_std"), r"targets.*vol_std"),
    ("label_spec", lambda d: d.update(colour="red"), r"label_spec.*colour"),
    ("normalizer", lambda d: d.pop("mean"), r"normalizer.*mean"),
    ("model_config", lambda d: d.update(kind="nonsense"), r"model_config.*nonsense"),
])
def test_malformed_sections_are_named(payload, tmp_path, section, edit, match):
    edit(payload[section])
    refused(payload, tmp_path, match)
