"""Research specs: the committed ones parse and fit their data; a wrong one fails at once
with the key named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import feeds
from s4_strategies.training.research import SpecError, load_spec, parse_spec
from s4_strategies.training.research.run import plan_folds

SPECS = sorted((Path(__file__).resolve().parents[1] / "scripts" / "research").glob("*.yaml"))

BASE = {
    "datasets": ["yahoo:AAPL:1d"],
    "walk_forward": {"test_start": "2022-01-01", "test_length": "6M", "purge": 24},
    "models": [{"name": "S4D", "layer": "s4d"}],
}


def _frames(spec):
    out = {}
    for ds in spec.datasets:
        df = feeds.load_embedded(ds)
        lo = df.index[0] if spec.date_from is None else pd.Timestamp(spec.date_from, tz="UTC")
        hi = df.index[-1] if spec.date_to is None else pd.Timestamp(spec.date_to, tz="UTC")
        out[ds] = df[(df.index >= lo) & (df.index <= hi + pd.Timedelta(days=1))]
    return out


def test_the_committed_specs_are_four():
    assert [p.name for p in SPECS] == ["crypto_hourly.yaml", "crypto_hourly_quick.yaml",
                                       "equities_daily.yaml", "equities_daily_quick.yaml"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_committed_specs_parse_and_their_folds_fit_the_data(path):
    spec = load_spec(path)
    folds = plan_folds(spec, _frames(spec))
    assert set(folds) == set(spec.datasets)
    assert spec.layout.purge >= spec.label_spec.max_horizon


def test_the_default_studies_cover_the_crises_they_name():
    def covered(path, dataset, *months):
        spec = load_spec(path)
        frames = _frames(spec)
        idx = frames[dataset].index
        tested = {idx[i].strftime("%Y-%m") for f in plan_folds(spec, frames)[dataset]
                  for i in range(*f.test)}
        return all(m in tested for m in months)

    crypto = [p for p in SPECS if p.stem.startswith("crypto")]
    equities = [p for p in SPECS if p.stem.startswith("equities")]
    for p in crypto:
        assert covered(p, "bybit:SOLUSDT:60", "2022-05", "2022-11"), p.name
    for p in equities:
        assert covered(p, "yahoo:SPY:1d", "2020-03"), p.name
    full = load_spec(crypto[0])
    assert {m.layer for m in full.models} == {"s4", "s4d", "mamba", "lstm", "gru",
                                              "transformer", "linear", "lightgbm"}
    assert len(full.seeds) >= 5


@pytest.mark.parametrize("change, match", [
    ({"colour": "red"}, "unknown key"),
    ({"models": [{"name": "X", "layer": "rnn"}]}, "layer"),
    ({"models": [{"layer": "s4d"}, {"layer": "s4d"}]}, "unique"),
    ({"models": [{"layer": "s4d", "space": {"lr": {"normal": [0, 1]}}}]}, "space.lr"),
    ({"models": [{"layer": "s4d", "space": {"lr": {"log_uniform": [0.0, 1]}}}]}, "low > 0"),
    ({"models": [{"layer": "s4d", "space": {"lr": {"uniform": [2, 1]}}}]}, "low < high"),
    ({"models": [{"layer": "linear", "space": {"lr": {"uniform": [1, 2]}}}]}, "linear"),
    ({"models": [{"layer": "lightgbm", "space": {"lr": {"uniform": [1, 2]}}}]},
     "models.lightgbm.space.lr: not a LightGBM setting"),
    ({"walk_forward": {"test_start": "2022-01-01", "purge": 5}}, "longest horizon"),
    ({"walk_forward": {"test_start": "2022-01-01", "bogus": 1}}, "walk_forward"),
    ({"train": {"epochz": 3}}, "TrainConfig"),
    ({"train": {"burn_in": 2000}}, "burn_in"),
    ({"search": {"objective": "test_sharpe"}}, "objective"),
    ({"search": {"trials_per_fold": 0}}, ">= 1"),
    ({"labels": {"horizons": [2, 10]}}, "horizons"),
    ({"features": {"vol_windows": []}}, "features"),
    ({"datasets": []}, "required"),
])
def test_a_wrong_spec_names_the_key(change, match):
    with pytest.raises(SpecError, match=match):
        parse_spec({**BASE, **change})


def test_spec_files(tmp_path):
    good = tmp_path / "s.json"
    good.write_text('{"datasets": "yahoo:AAPL:1d", "walk_forward": {"test_start": '
                    '"2022-01-01", "purge": 24}, "models": [{"layer": "linear"}]}')
    spec = load_spec(good)
    assert spec.datasets == ("yahoo:AAPL:1d",) and spec.seeds == (0,)
    bad = tmp_path / "s.yaml"
    bad.write_text("datasets: [a\n")
    with pytest.raises(SpecError, match="YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such"):
        load_spec(tmp_path / "missing.yaml")


def test_train_config_layers_spec_then_model_then_search():
    spec = parse_spec({**BASE, "train": {"d_model": 8, "lr": 1e-3},
                       "models": [{"name": "T", "layer": "transformer",
                                   "params": {"d_model": 12, "window": 32}}]})
    cfg = spec.train_config(spec.models[0], {"lr": 5e-3, "dropout": 0.2}, seed=3)
    assert (cfg.d_model, cfg.lr, cfg.dropout, cfg.seed) == (12, 5e-3, 0.2, 3)
    assert cfg.layer_options == {"window": 32} and cfg.progress is False
    # a changed spec part changes the fingerprint, so stale trials are not resumed
    other = parse_spec({**BASE, "train": {"d_model": 8, "lr": 2e-3},
                        "models": spec.to_dict()["models"]})
    assert other.fingerprint(other.models[0]) != spec.fingerprint(spec.models[0])


def test_the_command_reports_a_bad_spec_in_one_line(tmp_path, capsys):
    from s4_strategies.apps.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [yahoo:AAPL:1d]\nwalk_forward: {test_start: 2022-01-01, "
                   "purge: 3}\nmodels: [{layer: s4d}]\n")
    assert main(["research", "--spec", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s4trade research: error: walk_forward.purge") and "\n" not in err
    assert main(["research", "--spec", str(tmp_path / "none.yaml"), "--out", "o"]) == 2
    late = tmp_path / "late.yaml"  # folds that do not fit the data fail before Ray starts
    late.write_text("datasets: [yahoo:AAPL:1d]\nwalk_forward: {test_start: 2019-02-01, "
                    "purge: 24}\nmodels: [{layer: linear}]\n")
    assert main(["research", "--spec", str(late), "--out", str(tmp_path / "o")]) == 2
    assert "training bars" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"seeds": "two"}, "seeds: a count (3) or a list of distinct integers >= 0 ([0, 7]), got "
                       "'two'"),
    ({"seeds": [0, 0]}, "seeds: must be distinct, [0] repeated"),
    ({"walk_forward": {"purge": 24}}, "walk_forward.test_start: required"),
    ({"models": [{"name": "S4D", "layer": "s4d",
                  "space": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}}]},
     "models.S4D.space.learning_rate: not a TrainConfig field or an option of the s4d layer "
     "(did you mean 'lr'?)"),
    ({"models": [{"name": "S4D", "layer": "s4d",
                  "space": {"dropout": {"uniform": [0.0, 1.5]}}}]},
     "models.S4D.space.dropout: dropout must be in [0, 1), got 1.5"),
    ({"fees": {"per_side": -0.001}}, "fees.per_side: must be >= 0.0, got -0.001"),
    ({"fees": {"per_side": 5.0}}, "fees.per_side: must be < 0.05, got 5.0"),
    ({"funding": {"rate_per_8h": 1}}, "funding.rate_per_8h: must be < 0.05, got 1"),
    ({"labels": {"signal_horizon": 3}},
     "labels.signal_horizon: 3 must be one of the label horizons [1, 5, 20]"),
    ({"to": "yesterday"}, "to: a date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM', UTC), got 'yesterday'"),
    ({"from": "2023-01-01", "to": "2022-01-01"}, "from: 2023-01-01 is after to: 2022-01-01"),
    ({"search": {"trials_per_fold": "many"}},
     "search.trials_per_fold: must be a whole number, got 'many'"),
    ({"search": {"objective": "val_ic"}},  # rows carry val_ic_1 and val_ic_5 only
     "search.objective: 'val_ic' is not a column the trials carry: the IC is scored at 1 and "
     "5 bars, use val_ic_1 or val_ic_5"),
])
def test_what_was_accepted_or_unclear_is_one_line_naming_the_key(change, message):
    with pytest.raises(SpecError) as err:
        parse_spec({**BASE, **change})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
