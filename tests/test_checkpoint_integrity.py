"""Checkpoints carry a sha256 of their weights and metadata, checked on load: an edited or
damaged file is refused, a file that is no checkpoint at all says so (never torch's advice
to load it with ``weights_only=False``)."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch

import s4_strategies
from s4_strategies.model import CheckpointError, CheckpointWarning, seal_checkpoint


@pytest.fixture
def payload(tiny_checkpoint):
    return torch.load(tiny_checkpoint, weights_only=True)


def _saved(payload, tmp_path, name="edited.pt"):
    path = tmp_path / name
    torch.save(payload, path)
    return path


def test_a_saved_checkpoint_carries_its_hash_and_loads_quietly(tiny_checkpoint, payload):
    assert len(payload["sha256"]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s4_strategies.load_model(tiny_checkpoint)
        s4_strategies.load_model(s4_strategies.default_checkpoint())  # the shipped one too
    shipped = torch.load(s4_strategies.default_checkpoint(), weights_only=True)
    assert len(shipped["sha256"]) == 64


@pytest.mark.parametrize("edit", ["weight", "meta", "normalizer"])
def test_an_edited_checkpoint_is_refused(payload, tmp_path, edit):
    if edit == "weight":  # a change no other check can see
        w = payload["state_dict"]["heads.logits.weight"]
        payload["state_dict"]["heads.logits.weight"] = w + 1e-6
    elif edit == "meta":
        payload["meta"]["periods"]["val"][1] = "2030-01-01 00:00:00+00:00"
    else:
        payload["normalizer"]["mean"] = [m + 0.01 for m in payload["normalizer"]["mean"]]
    path = _saved(payload, tmp_path)
    with pytest.raises(CheckpointError, match="sha256 does not match .* changed after it was "
                                              "saved"):
        s4_strategies.load_model(path)
    seal_checkpoint(path)  # edited on purpose: sealed again, it loads
    s4_strategies.load_model(path)


def test_a_checkpoint_without_a_hash_loads_with_a_warning(payload, tmp_path):
    del payload["sha256"]
    path = _saved(payload, tmp_path, "old.pt")
    with pytest.warns(CheckpointWarning, match="no sha256"):
        s4_strategies.load_model(path)


class _Anything:
    pass


@pytest.mark.parametrize("write", ["text", "pickle", "object"])
def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path, write):
    path = tmp_path / "model.pt"
    if write == "text":
        path.write_text("hello")
    elif write == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    else:
        torch.save({"model": _Anything()}, path)
    with pytest.raises(CheckpointError, match="not a loadable s4-trading checkpoint") as err:
        s4_strategies.load_model(path)
    assert "weights_only" not in str(err.value)
