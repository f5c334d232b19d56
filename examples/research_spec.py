"""A research spec: walk-forward folds x models x seeds, run here in this process.

    python examples/research_spec.py

The same spec runs as `s4trade research --spec runs/examples/research/spec.yaml --out ...`
on a local Ray, or on a cluster with --address. This one is tiny (one asset, two folds, a
small S4D against the linear baseline, one seed, the serial engine): seconds, not a study.
A rerun with the same out folder resumes: finished trials are not run again.
"""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import yaml

from s4_strategies.apps.research import run_research

OUT = Path("runs/examples/research")
SPEC = {
    "name": "example-spy",
    "datasets": ["yahoo:SPY:1d"],  # embedded names, CSV/parquet files, bybit:/yahoo: sources
    "to": "2020-12-31",
    # daily bars: feature and label windows in days instead of the hourly defaults
    "features": {"return_windows": [1, 5, 20], "vol_windows": [20, 60], "volume_window": 60,
                 "ma_windows": [20, 60]},
    "labels": {"horizons": [1, 5, 20], "signal_horizon": 5, "vol_window": 20,
               "vol_horizon": 20},
    "walk_forward": {"scheme": "expanding", "test_start": "2020-01-01",
                     "test_end": "2020-12-31", "test_length": "6M", "val_fraction": 0.2,
                     "purge": 20, "embargo": 5, "min_train_bars": 80},
    "models": [{"name": "S4D", "layer": "s4d",
                "space": {"lr": {"log_uniform": [1.0e-3, 1.0e-2]}}},  # Optuna searches lr
               {"name": "Linear", "layer": "linear"}],
    "seeds": 1,
    "search": {"trials_per_fold": 1},
    "train": {"d_model": 8, "d_state": 8, "n_layers": 1, "seq_len": 64, "burn_in": 16,
              "epochs": 1, "steps_per_epoch": 4, "batch_size": 8},
    "decision": {"min_trades": 5},
    "fees": {"per_side": 0.0005},
    "funding": {"rate_per_8h": 0.0},
}

OUT.mkdir(parents=True, exist_ok=True)
spec_path = OUT / "spec.yaml"
spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
result = run_research(spec_path, OUT, serial=True)  # serial: no Ray, one trial after another
print(result["markdown"])
print("report:", OUT / "report.md")
