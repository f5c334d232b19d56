import json

import numpy as np
import pandas as pd
import pytest
import torch

import feeds
import s4_strategies
from s4_strategies.features import LabelSpec
from s4_strategies.model import CheckpointError
from s4_strategies.training import date_split, walk_forward_splits


def test_date_split_never_overlaps_and_purges():
    idx = feeds.load_embedded("bybit:BTCUSDT:60").index
    purge = LabelSpec().max_horizon
    s = date_split(idx, "2021-01-01", "2022-12-31", purge=purge, test_from="2023-01-01",
                   test_to="2024-12-31")
    assert s.train[0] < s.train[1] <= s.val[0] - purge
    assert s.val[1] + purge <= s.test[0]
    d = s.dates(idx)
    assert d["val"][1] <= "2022-12-31 23:00:00+00:00" and d["test"][0] >= "2023-01-01"
    assert pd.Timestamp(d["test"][1]) == pd.Timestamp("2024-12-31 23:00", tz="UTC")
    folds = list(walk_forward_splits(idx, n_folds=3, test_bars=2000, purge=purge))
    assert len(folds) == 3
    for f in folds:
        assert f.train[1] + purge <= f.val[0] and f.val[1] + purge <= f.test[0]
    assert folds[0].test[1] <= folds[1].test[0]


def test_training_lowers_the_validation_loss_and_records_its_provenance(tiny_result):
    meta = tiny_result.meta
    assert meta["bar_spacing_s"] == 3600
    assert meta["periods"]["train"][0].startswith("2021-01-01")
    # four optimiser steps (on inputs with the default noise) already beat the untrained
    # weights on held-out bars (2.746 vs 2.757)
    initial = meta["recipe"]["initial_val_losses"]
    assert min(h["val_total"] for h in tiny_result.history) < 0.998 * initial["total"]
    assert meta["initial_val_loss"] == -initial["next_bar_ic"]
    assert meta["best_val_loss"] == min(h["val_loss"] for h in tiny_result.history)
    assert meta["best_epoch"] == int(np.argmin([h["val_loss"] for h in tiny_result.history]))
    # the criterion is the next-bar forecast's validation rank IC (the trunk's target): the
    # score kept is -IC; the epoch kept has the highest IC of the curve
    recipe = meta["recipe"]
    assert recipe["criterion"].startswith("validation next-bar rank IC")
    assert recipe["val_next_bar_ic"] == -meta["best_val_loss"]
    assert meta["best_epoch"] == int(np.argmax([h["val_next_bar_ic"] for h in tiny_result.history]))
    assert "next_bar" in recipe["val_losses"] and "next_bar_ic" not in recipe["val_losses"]
    assert {"signal", "returns", "vol", "total"} <= set(recipe["val_losses"])
    # the whole curve is in the checkpoint's metadata: train and validation loss per head
    assert meta["history"] == tiny_result.history and len(meta["history"]) == 2
    for h in meta["history"]:
        assert {f"{s}_{k}" for s in ("train", "val") for k in ("signal", "returns", "vol",
                                                                "next_bar")} <= set(h)
    assert recipe["steps_taken"] == 4 and recipe["steps_to_best"] in (2, 4)
    groups = {g["name"]: g for g in recipe["param_groups"]}
    assert groups["ssm"]["weight_decay"] == 0.0 and groups["ssm"]["lr"] == 1e-3
    assert groups["decay"]["weight_decay"] == 0.05 and groups["decay"]["lr"] == 2e-3
    assert groups["no_decay"]["weight_decay"] == 0.0
    # S4D: log -Re A, Im A, B, log dt per layer, each (H, N/2) or (H, N/2, 2) / (H,)
    assert groups["ssm"]["n_params"] == 2 * (16 * 8 * 2 + 16 * 8 * 2 + 16)


def test_checkpoint_round_trip(tiny_result, tiny_checkpoint):
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2021-07-01", todate="2021-07-20")
    loaded = s4_strategies.load_model(tiny_checkpoint)
    a = tiny_result.predictor.predict(df)
    b = loaded.predict(df)
    pd.testing.assert_frame_equal(a, b)
    payload = torch.load(tiny_checkpoint, weights_only=True)
    assert payload["feature_names"] == loaded.feature_spec.names
    assert payload["versions"]["torch"] == str(torch.__version__)
    assert payload["meta"]["periods"]["train"]
    # the training curve and the epoch kept travel with the checkpoint
    assert loaded.meta["history"] == tiny_result.history
    assert loaded.meta["best_epoch"] == tiny_result.best_epoch


def test_checkpoint_that_does_not_match_the_data(tiny_checkpoint):
    loaded = s4_strategies.load_model(tiny_checkpoint)
    daily = feeds.load_embedded("yahoo:SPY:1d")
    with pytest.raises(CheckpointError, match="3600 s apart"):
        loaded.predict(daily)
    no_volume = feeds.load_embedded("bybit:BTCUSDT:60").iloc[:500].drop(columns="volume")
    with pytest.raises(CheckpointError, match="volume"):
        loaded.predict(no_volume)


def test_checkpoint_with_other_features_is_refused(tiny_checkpoint, tmp_path):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["feature_names"] = payload["feature_names"][:-1] + ["something_else"]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="features it was trained on"):
        s4_strategies.load_model(bad)
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["feature_spec"]["ma_windows"] = [24]
    payload["feature_names"] = [n for n in payload["feature_names"] if n != "ma_gap_168"]
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="expects"):
        s4_strategies.load_model(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable"):
        s4_strategies.load_model(junk)


@pytest.mark.slow
def test_train_command(tmp_path, capsys):
    from s4_strategies.apps.cli import main

    out = tmp_path / "m.pt"
    rc = main(["train", "--data", "bybit:BTCUSDT:60", "--from", "2021-01-01", "--to",
               "2021-04-30", "--layer", "gru", "--epochs", "1", "--d-model", "8",
               "--n-layers", "1", "--seq-len", "128", "--batch-size", "4", "--quiet",
               "--out", str(out)])
    assert rc == 0 and out.exists()
    assert '"best_epoch": 0' in capsys.readouterr().out
    rc = main(["train", "--data", "bybit:BTCUSDT:60", "--from", "2021-01-01", "--to",
               "2021-04-30", "--layer", "gru", "--epochs", "2", "--steps-per-epoch", "2",
               "--d-model", "8", "--n-layers", "1", "--seq-len", "128", "--batch-size", "4",
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and json.loads(captured.out)["best_epoch"] in (0, 1)  # stdout: JSON only
    # stderr: the per-epoch curve of every head, the epoch kept marked
    lines = captured.err.strip().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("training curve"))
    head, rows = lines[i + 1].split(), lines[i + 2:i + 4]
    assert head[:2] == ["epoch", "steps"] and "next_bar" in head and "vol" in head
    assert [r.split()[0] for r in rows].count(f"{json.loads(captured.out)['best_epoch']}*") == 1
    assert s4_strategies.load_model(out).model.config["kind"] == "gru"


@pytest.mark.parametrize("kind,ssm", [
    ("s4", {"log_A_real", "A_imag", "P", "B", "log_dt"}),
    ("s4d", {"log_A_real", "A_imag", "B", "log_dt"}),
    ("mamba", {"A_log", "dt_proj.bias"}),
    ("gru", set()),
])
def test_ssm_parameters_get_their_own_group(kind, ssm):
    from s4_strategies.ssm import build_model
    from s4_strategies.training.recipe import param_groups

    kw = {"d_state": 4} if kind != "gru" else {}
    model = build_model(kind, input_dim=5, d_model=8, n_layers=2, **kw)
    groups = {g["name"]: g for g in param_groups(model, lr=2e-3, ssm_lr=1e-3, weight_decay=0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)].split("ssm.", 1)[1] for p in groups.get("ssm", {"params": []})["params"]}
    assert got == ssm
    if ssm:
        assert groups["ssm"]["lr"] == 1e-3 and groups["ssm"]["weight_decay"] == 0.0
    # every parameter in exactly one group; matrices decay, vectors (biases, norms, D) do not
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(ids) == sorted(names) and len(ids) == len(set(ids))
    assert all(p.dim() >= 2 for p in groups["decay"]["params"])
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0


def test_windows_are_sampled_at_every_offset():
    from s4_strategies.training.recipe import sample_starts

    starts = sample_starts(np.random.default_rng(0), 100, 400, 256, 5000)
    assert starts.min() == 100 and starts.max() == 144  # every admissible start, inclusive
    with pytest.raises(ValueError, match="fewer than one window"):
        sample_starts(np.random.default_rng(0), 0, 100, 256, 1)


def test_the_ic_criterion_scores_minus_the_rank_ic_over_the_masked_bars():
    from scipy import stats

    from s4_strategies.training.fit import next_bar_ic
    from s4_strategies.training.recipe import criterion_score

    rng = np.random.default_rng(0)
    f, t = rng.normal(size=200), rng.normal(size=200)
    t[:50] += 3 * f[:50]  # skill only on the first 50 bars
    t[7] = np.nan
    mask = np.zeros(200, dtype=bool)
    mask[:60] = True
    got = next_bar_ic(torch.tensor(f), torch.tensor(t), torch.tensor(mask))
    keep = mask & np.isfinite(t)
    assert got == pytest.approx(stats.spearmanr(f[keep], t[keep])[0], abs=1e-12)
    assert got > 0.5 > next_bar_ic(torch.tensor(f), torch.tensor(t), torch.tensor(~mask))
    assert criterion_score({"next_bar_ic": got}, "next_bar_ic") == -got
    # a constant forecast has no IC: no skill, not a divergence
    assert criterion_score({"next_bar_ic": float("nan")}, "next_bar_ic") == 0.0
    assert criterion_score({"next_bar": 0.4}, "next_bar") == 0.4
