"""``s4trade compare``: S4, S4D, selective SSM, S5, DSS, LSTM, GRU and Transformer against the
baselines, skill first (``skill_report``), then trading (``trading_report``); plus ablations
of the S4D design choices. Every network is trained with several seeds (mean ± sd).

Train 2021–2022 (validation = its last 15 %, purged), test 2023–2024 by default. Test-period
forecasts come from running each model over the whole history from its first bar, as the
indicator would in a live run, and are scored only inside the test period. The trading
rule's band is chosen on the validation period; nothing is tuned on the test period.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..features import FeatureSpec, LabelSpec, bar_spacing, make_labels, signal_values
from . import skill_report, trading_report, verdicts
from .evaluation import TAKER_FEE, time_per_bar
from .fit import TrainConfig, prepare_arrays, train_model
from .funding import DEFAULT_FUNDING_RATE, funding_per_bar
from .splits import date_split
from .tuned_baselines import LGBM_GRID, LIGHTGBM, LINEAR
from .vol_baselines import har_windows

# (name, layer, layer options, config overrides). The selective SSM uses Mamba's own
# default d_state 16; the Transformer attends to the last 256 bars (half its training
# window, so inference positions stay inside the trained range).
MODELS = [
    ("S4", "s4", {}, {}),
    ("S4D", "s4d", {}, {}),
    ("Selective SSM", "mamba", {}, {"d_state": 16}),
    ("S5", "s5", {}, {}),
    ("DSS", "dss", {}, {}),
    ("LSTM", "lstm", {}, {}),
    ("GRU", "gru", {}, {}),
    ("Transformer", "transformer", {"window": 256}, {}),
]
# Variants of the main S4D row (HiPPO-LegS init, learned Δ, d_state as the main row); the
# main row itself is not repeated here.
ABLATIONS = [
    ("S4D-Lin init", "s4d", {"init": "lin"}, {}),
    ("S4D random frequencies (Lin-like)", "s4d", {"init": "random"}, {}),
    ("S4D unstructured A (Ginibre)", "s4d", {"init": "unstructured"}, {}),
    ("S4D fixed Δ", "s4d", {"learn_dt": False}, {}),
    ("S4D half d_state", "s4d", {}, {"d_state": 16}),
]
#: The comparison's model size: every network the same width and depth, so that five seeds
#: of eight models and five ablations fit in about an hour on two CPU cores (the default
#: recipe on windows of 256 bars, at most 8 epochs, patience 3).
COMPARE_SIZE = dict(d_model=32, d_state=32, n_layers=2, seq_len=256, burn_in=64, epochs=8,
                    patience=3)

SKILL_COLUMNS = [
    ("model", "model", "{}"),
    ("seeds", "seeds", "{:d}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("log-loss", "log_loss", "{:.4f}"),
    ("IC 1 bar", "ic_1", "{:+.3f}"),
    ("IC 1 95% CI", "ic_1_ci", "[{:+.3f}, {:+.3f}]"),
    ("IC 5 bars", "ic_5", "{:+.3f}"),
    ("IC 5 95% CI", "ic_5_ci", "[{:+.3f}, {:+.3f}]"),
    ("vol corr", "vol_corr", "{:.3f}"),
    ("vol MSE", "vol_mse", "{:.3f}"),
]
TRADING_COLUMNS = [
    ("model", "model", "{}"),
    ("rule", "rule", "{}"),
    ("net Sharpe", "net_sharpe", "{:+.2f}"),
    ("gross Sharpe", "gross_sharpe", "{:+.2f}"),
    ("max DD", "max_drawdown", "{:.1%}"),
    ("annual return", "annual_return", "{:+.1%}"),
    ("turnover/yr", "turnover_per_year", "{:.0f}"),
    ("trades", "trades", "{:.0f}"),
    ("break-even fee", "break_even_fee", "{:+.3%}"),
    ("funding paid", "funding_paid", "{:+.2%}"),
]


#: ``--quick``'s bootstrap replicates (a smoke run: the mechanics, not the last decimal)
QUICK_REPS = 200


def quick_config(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, d_model=16, d_state=16, n_layers=2, epochs=1, seq_len=256, burn_in=64,
                   batch_size=8, steps_per_epoch=3, progress=False)


def _fmt(fmt: str, value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (list, tuple)):
        if any(v is None or not np.isfinite(v) for v in value):
            return "–"
        return fmt.format(*value)
    return fmt.format(value)


def _cell(row: dict, key: str, fmt: str) -> str:
    text = _fmt(fmt, row.get(key))
    sd = row.get(f"{key}_sd")
    if text != "–" and sd is not None and np.isfinite(sd) and row.get("seeds", 1) > 1:
        text += " ± " + _fmt(fmt.replace("+", ""), sd)
    return text


def markdown_table(rows: list[dict], columns=SKILL_COLUMNS) -> str:
    """Rows as a markdown table; mean ± sd over seeds where a row has several."""
    head = "| " + " | ".join(c[0] for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(r, k, f) for _, k, f in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


class _Context:
    """Data, split, targets, baseline inputs and funding shared by every row."""

    def __init__(self, data: str, train, test, reps: int | None = None):
        import feeds
        from analyzers.metrics import infer_periods_per_year

        self.data, self.reps = data, reps  # bootstrap replicates (None: the defaults)
        self.df = df = feeds.load_embedded(data, todate=test[1] + " 23:59")
        self.fspec, self.lspec = FeatureSpec(), LabelSpec()
        self.split = date_split(df.index, train[0], train[1], purge=self.lspec.max_horizon,
                                test_from=test[0], test_to=test[1])
        self.ppy = infer_periods_per_year(df.index)
        self.val, self.test = slice(*self.split.val), slice(*self.split.test)
        self.y = skill_report.targets(make_labels(df, self.lspec), self.lspec)
        self.x = prepare_arrays(df, self.fspec, self.lspec, self.split)[0]
        logc = np.log(df["close"].to_numpy())
        self.r1 = np.concatenate([[np.nan], np.diff(logc)])
        self.funding = funding_per_bar(df.index, DEFAULT_FUNDING_RATE)
        self.train_rows = slice(max(self.split.train[0], self.fspec.warmup), self.split.train[1])


def run_model(name, layer, ctx: _Context, cfg: TrainConfig, seeds, layer_options=None,
              overrides=None, log=print) -> dict:
    """Train ``name`` once per seed; its forecasts, trading runs and timings."""
    forecasts, trades, info = [], [], []
    lspec = ctx.lspec
    values = signal_values(lspec.n_classes)
    for seed in seeds:
        c = replace(cfg, layer=layer, layer_options=dict(layer_options or {}), seed=seed,
                    **(overrides or {}))
        res = train_model(ctx.df, ctx.split, c, ctx.fspec, lspec, data_name=ctx.data)
        f = skill_report.model_forecast(res.predictor.forecasts(ctx.df), lspec.horizons)
        signal = values[np.argmax(f["probs"], axis=1)]
        score = f[f"ret_{lspec.signal_horizon}"]
        trades.append(trading_report.trade_forecast(score, signal, ctx.df, ctx.val, ctx.test,
                                                    TAKER_FEE, ctx.funding, ctx.ppy,
                                                    lspec.n_classes, seed))
        forecasts.append(f)
        recipe = res.meta["recipe"]
        info.append({"seed": seed, "train_seconds": res.train_seconds,
                     "best_epoch": res.best_epoch, "steps": recipe["steps_taken"],
                     "criterion": recipe["criterion"], "best_val_loss": res.meta["best_val_loss"]})
        log(f"  {name} seed {seed}: {recipe['criterion']} {res.meta['best_val_loss']:.4f}, "
            f"{recipe['steps_taken']} steps, {res.train_seconds:.0f}s; test net "
            f"Sharpe {_fmt('{:+.2f}', trades[-1]['band']['net_sharpe'])}")
    us = time_per_bar(res.predictor, ctx.df.iloc[ctx.test])
    return {"name": name, "forecasts": forecasts, "trades": trades, "runs": info,
            "us_per_bar": us}


def _baselines(ctx: _Context, log) -> tuple[dict, dict]:
    """Every baseline's forecasts (tuned on validation) and the trading runs of the two that
    forecast returns (``tuned_baselines``; ``--quick``: one LightGBM setting)."""
    lspec = ctx.lspec
    horizons = sorted({*skill_report.IC_HORIZONS, lspec.signal_horizon})
    fc = skill_report.baseline_forecasts(
        ctx.x, ctx.y, ctx.df, ctx.train_rows, ctx.val, lspec.n_classes, lspec.vol_window,
        har_windows(bar_spacing(ctx.df.index).total_seconds()), horizons, lightgbm=True,
        lgbm_grid=LGBM_GRID[:1] if ctx.reps else LGBM_GRID)
    values = signal_values(lspec.n_classes)
    trades = {}
    for name in (LINEAR, LIGHTGBM):
        signal = values[np.argmax(np.nan_to_num(fc[name]["probs"], nan=-1.0), axis=1)]
        trades[name] = [trading_report.trade_forecast(
            fc[name][f"ret_{lspec.signal_horizon}"], signal, ctx.df, ctx.val, ctx.test,
            TAKER_FEE, ctx.funding, ctx.ppy, lspec.n_classes)]
    log("baselines fitted")
    return fc, trades


def _skill_rows(results: list[dict], fc: dict, ctx: _Context) -> dict:
    rows = {name: skill_report.score(name, [f], ctx.y, ctx.test, reps=ctx.reps)
            for name, f in fc.items()}
    for r in results:
        rows[r["name"]] = skill_report.score(r["name"], r["forecasts"], ctx.y, ctx.test,
                                             reps=ctx.reps)
        rows[r["name"]]["us_per_bar"] = r["us_per_bar"]
        rows[r["name"]]["runs"] = r["runs"]
    return rows


def _trading_rows(results: list[dict], ctx: _Context, extra=()) -> list[dict]:
    rows = []
    for name, runs in [*extra, *((r["name"], r["trades"]) for r in results)]:
        rows.append({**trading_report.summarise(name, runs, "band"), "rule": "cost band"})
        rows.append({**trading_report.summarise(name, runs, "argmax"), "rule": "argmax (ref.)"})
    return rows


def _verdicts(results: list[dict], fc: dict, ctx: _Context, against, extra=None,
              trades=None) -> dict:
    """``verdicts.verdicts`` over the baselines ``fc`` and the networks ``results``."""
    forecasts = {name: [f] for name, f in fc.items() if name != "Majority class"}
    forecasts.update({r["name"]: r["forecasts"] for r in results})
    returns = None
    if trades is not None:
        returns = {name: np.stack([t["band"]["net_returns"] for t in runs])
                   for name, runs in trades.items()}
        returns.update({r["name"]: np.stack([t["band"]["net_returns"] for t in r["trades"]])
                        for r in results})
        if extra is not None:
            returns["Buy & hold"] = extra[None, :]
    return verdicts.verdicts(forecasts, ctx.y, ctx.test, ctx.lspec, benchmark=LINEAR,
                             networks=[r["name"] for r in results], against=against,
                             returns=returns, reps=ctx.reps)


def run_comparison(data: str = "bybit:BTCUSDT:60", train=("2021-01-01", "2022-12-31"),
                   test=("2023-01-01", "2024-12-31"), quick: bool = False,
                   ablations: bool = True, models=None, out=None, seed: int = 0,
                   seeds: int = 5, log=print) -> dict:
    """Skill and trading tables of every model (``seeds`` seeds each) and the baselines."""
    t_start = time.perf_counter()
    ctx = _Context(data, train, test, reps=QUICK_REPS if quick else None)
    cfg = replace(TrainConfig(progress=False), **COMPARE_SIZE)
    if quick:
        cfg = quick_config(cfg)
        ablations = False
    seed_list = list(range(seed, seed + seeds))
    fc, baseline_trades = _baselines(ctx, log)
    chosen = [m for m in MODELS if models is None or m[1] in models]
    results = []
    for name, layer, opts, over in chosen:
        if quick and "window" in opts:
            opts = {**opts, "window": cfg.seq_len // 2}
        log(f"training {name} ({len(seed_list)} seeds) ...")
        results.append(run_model(name, layer, ctx, cfg, seed_list, opts, over, log=log))
    skill_rows = _skill_rows(results, fc, ctx)
    networks = [r["name"] for r in results]
    ablation_results = []
    for name, layer, opts, over in (ABLATIONS if ablations else []):
        log(f"ablation {name} ({len(seed_list)} seeds) ...")
        ablation_results.append(run_model(name, layer, ctx, cfg, seed_list, opts, over,
                                          log=log))
    abl = _skill_rows(ablation_results, {}, ctx)
    bh = trading_report.buy_and_hold(ctx.df, ctx.test, TAKER_FEE, ctx.funding, ctx.ppy)
    main_s4d = [r for r in results if r["name"] == "S4D"]
    bh_returns = bh.pop("net_returns")
    result = {
        "data": data,
        "periods": ctx.split.dates(ctx.df.index),
        "fee_per_side": TAKER_FEE,
        "funding_rate_per_8h": DEFAULT_FUNDING_RATE,
        "periods_per_year": ctx.ppy,
        "quick": quick,
        "seeds": seed_list,
        "config": cfg.to_dict(),
        "skill": list(skill_rows.values()),
        "baseline_settings": {n: f["chosen"] for n, f in fc.items() if "chosen" in f},
        "verdicts": _verdicts(results, fc, ctx, [LINEAR, "GRU"] if "GRU" in networks
                              else [LINEAR], extra=bh_returns,
                              trades=baseline_trades),
        "trading": [{"model": "Buy & hold", "rule": "always long", "seeds": 1, **bh},
                    *_trading_rows(results, ctx, list(baseline_trades.items()))],
        "ablation_skill": list(abl.values()),
        "ablation_trading": _trading_rows(ablation_results, ctx),
        "ablation_verdicts": (_verdicts(main_s4d + ablation_results, {}, ctx, ["S4D"])
                              if main_s4d and ablation_results else None),
    }
    result["wall_seconds"] = time.perf_counter() - t_start
    result["tables"] = tables(result)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        from analyzers.metrics import json_safe

        (out / "compare.json").write_text(json.dumps(json_safe(result), indent=2))
        (out / "compare.md").write_text(result["tables"] + "\n")
    return result


def tables(result: dict) -> str:
    """Every table of a comparison result, in markdown, skill first."""
    v = result["verdicts"]
    parts = ["### Skill (test period)", markdown_table(result["skill"]),
             "### Which models can be told apart", verdicts.markdown(v),
             "\n".join(f"- {s}" for s in verdicts.sentences(v)),
             "### Trading (test period, fees and funding)",
             markdown_table(result["trading"], TRADING_COLUMNS)]
    main = {r["model"] for r in result["skill"]}
    ablation = [r for r in result["ablation_skill"] if r["model"] not in main]  # no repeats
    if ablation:
        parts += ["### Ablations of S4D (compare with its row above): skill",
                  markdown_table(ablation)]
        av = result.get("ablation_verdicts")
        if av:
            parts += [verdicts.markdown(av), "\n".join(f"- {s}" for s in verdicts.sentences(av))]
        parts += ["### Ablations: trading",
                  markdown_table(result["ablation_trading"], TRADING_COLUMNS)]
    return "\n\n".join(parts)
