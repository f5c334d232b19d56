"""One shared S4D encoder over BTC, ETH and SOL against one S4D per asset, by skill.

    python scripts/compare_multi.py [--seeds 5] [--quick] [--out runs/compare_multi]
    python scripts/compare_multi.py --write runs/compare_multi   # its tables into the page

Both are trained with the default recipe at the comparison's size (``COMPARE_SIZE``) on
2021–2022 (validation = the last 15 %, purged) and scored on each asset's 2023–2024 bars
with the skill table's metrics (``training.skill_report``), mean ± sd over seeds. The
multi-asset model reads every asset through one recurrent state (``MultiAssetS4``); ETH and
SOL start later and join once warmed up. ``--write`` puts a finished run's tables between
the ``compare-multi`` markers of docs/results/compare.md (``--readme``, its old name, still
works).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ASSETS = ("bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60")
TRAIN, TEST = ("2021-01-01", "2022-12-31"), ("2023-01-01", "2024-12-31")


def _multi_forecast(frame, df, n_classes: int) -> dict:
    f = frame.reindex(df.index)
    return {"probs": f[[f"p{i}" for i in range(n_classes)]].to_numpy(),
            "ret_1": f["pred_return"].to_numpy(), "ret_5": f["pred_move"].to_numpy(),
            "log_vol": np.log(f["pred_vol"].to_numpy())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny models, a few steps")
    ap.add_argument("--out", default="runs/compare_multi")
    args = ap.parse_args(argv)

    from analyzers.metrics import json_safe
    from s4_strategies.features import FeatureSpec, LabelSpec, make_labels
    from s4_strategies.training import TrainConfig, date_split, skill_report, train_model
    from s4_strategies.training import compare as C
    from s4_strategies.training.multi_asset import frames_from, train_multi

    cfg = replace(TrainConfig(progress=False), **C.COMPARE_SIZE)
    if args.quick:
        cfg = C.quick_config(cfg)
    fspec, lspec = FeatureSpec(), LabelSpec()
    frames = frames_from(ASSETS, todate=TEST[1] + " 23:59")
    forecasts = {a: {"multi": [], "single": []} for a in ASSETS}
    for seed in range(args.seeds):
        c = replace(cfg, layer="s4d", seed=seed)
        multi = train_multi(frames, TRAIN, c, fspec, lspec)
        pred = multi.predictor.predict(frames)
        print(f"multi-asset seed {seed}: {multi.train_seconds:.0f}s", flush=True)
        for a, df in frames.items():
            split = date_split(df.index, TRAIN[0], TRAIN[1], purge=lspec.max_horizon,
                               test_from=TEST[0], test_to=TEST[1])
            res = train_model(df, split, c, fspec, lspec, data_name=a, decide=False)
            forecasts[a]["single"].append(
                skill_report.model_forecast(res.predictor.forecasts(df), lspec.horizons))
            forecasts[a]["multi"].append(_multi_forecast(pred[a], df, lspec.n_classes))
            print(f"  {a} seed {seed}: per-asset model {res.train_seconds:.0f}s", flush=True)
    rows, text = {}, []
    for a, df in frames.items():
        split = date_split(df.index, TRAIN[0], TRAIN[1], purge=lspec.max_horizon,
                           test_from=TEST[0], test_to=TEST[1])
        y = skill_report.targets(make_labels(df, lspec), lspec)
        test = slice(*split.test)
        rows[a] = [skill_report.score(name, forecasts[a][key], y, test)
                   for name, key in (("S4D per asset", "single"),
                                     ("Multi-asset S4D (shared encoder)", "multi"))]
        text += [f"#### {a}", C.markdown_table(rows[a])]
    table = "\n\n".join(text)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_multi.json").write_text(json.dumps(json_safe(
        {"assets": ASSETS, "seeds": list(range(args.seeds)), "config": cfg.to_dict(),
         "rows": rows}), indent=2))
    (out / "compare_multi.md").write_text(table + "\n")
    return 0


def write_block(out: str, command: str, page: Path | None = None) -> Path:
    """The tables of a finished run (``compare_multi.md``) between the ``compare-multi``
    markers of ``page`` (docs/results/compare.md by default)."""
    from page_block import replace_block

    table = (Path(out) / "compare_multi.md").read_text().strip()
    return replace_block("compare-multi", "\n".join([f"`{command}` printed:", "", table]), page)


if __name__ == "__main__":
    if sys.argv[1:2] in (["--write"], ["--readme"]):
        print(write_block(sys.argv[2], "python scripts/compare_multi.py --seeds 3"))
        sys.exit(0)
    sys.exit(main())
