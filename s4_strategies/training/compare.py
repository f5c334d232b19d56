"""``s4trade compare``: S4, S4D, selective SSM, LSTM, GRU, Transformer and buy-and-hold on the
same data, features, fees and position rule; plus ablations of the S4 design choices.

Train 2021–2022 (validation = its last 15 %, purged), test 2023–2024 by default. Test-period
predictions come from running each model over the whole history from its first bar, as the
indicator would in a live run, and are scored only inside the test period. Nothing is tuned
on the test period.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..features import FeatureSpec, LabelSpec
from .evaluation import TAKER_FEE, evaluate_positions, positions_from_signal, time_per_bar
from .fit import TrainConfig, train_model
from .splits import date_split

# (name, layer, layer options, config overrides). The selective SSM uses Mamba's own
# default d_state 16; the Transformer attends to the last 512 bars (half its training
# window, so inference positions stay inside the trained range).
MODELS = [
    ("S4", "s4", {}, {}),
    ("S4D", "s4d", {}, {}),
    ("Selective SSM", "mamba", {}, {"d_state": 16}),
    ("LSTM", "lstm", {}, {}),
    ("GRU", "gru", {}, {}),
    ("Transformer", "transformer", {"window": 512}, {}),
]
ABLATIONS = [
    ("S4D (HiPPO-LegS, d_state 64)", "s4d", {}, {}),
    ("S4D no HiPPO (random A)", "s4d", {"init": "random"}, {}),
    ("S4D fixed Δ", "s4d", {"learn_dt": False}, {}),
    ("S4D d_state 32", "s4d", {}, {"d_state": 32}),
    ("S4D d_state 128", "s4d", {}, {"d_state": 128}),
    ("S4 (DPLR)", "s4", {}, {}),
]

COLUMNS = [
    ("model", "model", "{}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("Sharpe 95% CI", "sharpe_ci", "[{:.2f}, {:.2f}]"),
    ("Sortino", "sortino", "{:.2f}"),
    ("max DD", "max_drawdown", "{:.1%}"),
    ("Calmar", "calmar", "{:.2f}"),
    ("annual return", "annual_return", "{:.1%}"),
    ("win rate", "win_rate", "{:.1%}"),
    ("profit factor", "profit_factor", "{:.2f}"),
    ("trades", "trades", "{:d}"),
    ("train s", "train_seconds", "{:.0f}"),
    ("µs/bar", "us_per_bar", "{:.0f}"),
]


def quick_config(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, d_model=16, d_state=16, n_layers=2, epochs=1, seq_len=256, burn_in=64,
                   batch_size=8, max_steps_per_epoch=3, progress=False)


def _fmt(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (list, tuple)):
        if any(v is None or not np.isfinite(v) for v in value):
            return "–"
        return fmt.format(*value)
    return fmt.format(value)


def markdown_table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(f, r.get(k)) for _, k, f in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def run_one(name, layer, df, split, cfg, fspec, lspec, ppy, data_name, layer_options=None,
            overrides=None, log=print) -> dict:
    cfg = replace(cfg, layer=layer, layer_options=dict(layer_options or {}), **(overrides or {}))
    log(f"training {name} ...")
    res = train_model(df, split, cfg, fspec, lspec, data_name=data_name)
    pred = res.predictor.predict(df)
    t0, t1 = split.test
    test = df.iloc[t0:t1]
    pos = positions_from_signal(pred["signal"].to_numpy()[t0:t1], lspec.n_classes)
    row = {"model": name, **evaluate_positions(test.index, test["close"].to_numpy(), pos, ppy)}
    row["train_seconds"] = res.train_seconds
    row["us_per_bar"] = time_per_bar(res.predictor, df.iloc[t0:t1])
    row["best_epoch"] = res.best_epoch
    row["val_loss"] = res.meta["best_val_loss"]
    log(f"  {name}: Sharpe {row['sharpe']}, trades {row['trades']}, {res.train_seconds:.0f}s")
    return row


def run_comparison(data: str = "bybit:BTCUSDT:60", train=("2021-01-01", "2022-12-31"),
                   test=("2023-01-01", "2024-12-31"), quick: bool = False,
                   ablations: bool = True, models=None, out=None, seed: int = 0,
                   log=print) -> dict:
    import feeds
    from analyzers.metrics import infer_periods_per_year

    t_start = time.perf_counter()
    df = feeds.load_embedded(data, todate=test[1] + " 23:59")
    fspec, lspec = FeatureSpec(), LabelSpec()
    cfg = TrainConfig(seed=seed, progress=not quick)
    if quick:
        cfg = quick_config(cfg)
        ablations = False
    split = date_split(df.index, train[0], train[1], purge=lspec.max_horizon,
                       test_from=test[0], test_to=test[1])
    ppy = infer_periods_per_year(df.index)
    t0, t1 = split.test
    test_df = df.iloc[t0:t1]
    rows = []
    bh = np.ones(len(test_df))
    rows.append({"model": "Buy & hold", **evaluate_positions(
        test_df.index, test_df["close"].to_numpy(), bh, ppy), "train_seconds": None,
        "us_per_bar": None})
    chosen = [m for m in MODELS if models is None or m[1] in models]
    for name, layer, opts, over in chosen:
        if quick and "window" in opts:
            opts = {**opts, "window": cfg.seq_len // 2}
        rows.append(run_one(name, layer, df, split, cfg, fspec, lspec, ppy, data, opts, over,
                            log=log))
    ablation_rows = []
    if ablations:
        for name, layer, opts, over in ABLATIONS:
            ablation_rows.append(run_one(name, layer, df, split, cfg, fspec, lspec, ppy, data,
                                         opts, over, log=log))
    result = {
        "data": data,
        "periods": split.dates(df.index),
        "fee_per_side": TAKER_FEE,
        "periods_per_year": ppy,
        "quick": quick,
        "config": cfg.to_dict(),
        "rows": rows,
        "ablations": ablation_rows,
        "wall_seconds": time.perf_counter() - t_start,
    }
    result["table"] = markdown_table(rows)
    result["ablation_table"] = markdown_table(ablation_rows) if ablation_rows else ""
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        from analyzers.metrics import json_safe

        (out / "compare.json").write_text(json.dumps(json_safe(result), indent=2))
        (out / "compare.md").write_text(result["table"] + "\n\n" + result["ablation_table"] + "\n")
    return result
