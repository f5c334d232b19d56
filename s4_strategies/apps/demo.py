"""``make demo``: the main job, end to end, on the embedded data.

1. The model: the S4D checkpoint shipped in the package (trained on Bybit BTCUSDT hourly
   2021–2022 by ``scripts/make_pretrained.py``), or with ``--retrain`` a fresh small one.
2. The directional strategy on BTCUSDT, 2023–2024, Bybit taker fees: out of sample, from the
   first bar the checkpoint has not seen (its validation ends 2022-12-31 23:00, and its
   labels read 24 bars further) to the end of 2024.
3. The portfolio strategy on BTCUSDT, ETHUSDT and SOLUSDT, over the same period.
4. The multi-asset strategy: the shipped multi-asset checkpoint (one S4D encoder shared by
   BTCUSDT, ETHUSDT and SOLUSDT, trained 2021–2022 by ``scripts/make_pretrained_multi.py``;
   with ``--retrain`` a fresh small one) trading its portfolio head, over the same period.
5. The Avellaneda–Stoikov market maker on the BTCUSDT tick sample and on hourly bars.

Everything is written under ``runs/demo/`` (metrics JSON, quantstats tear sheets, pictures).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

TEST_TO = "2024-12-31 23:00"  # from: the first bar the checkpoint has not seen


def _train_demo_model(path: Path) -> Path:
    import feeds

    from ..features import FeatureSpec, LabelSpec
    from ..training import TrainConfig, date_split, save_result, train_model

    df = feeds.load_embedded("bybit:BTCUSDT:60", todate="2022-12-31 23:00")
    lspec = LabelSpec()
    split = date_split(df.index, "2021-01-01", "2022-12-31", purge=lspec.max_horizon)
    cfg = TrainConfig(layer="s4d", d_model=32, d_state=32, n_layers=2, epochs=4, seq_len=512,
                      burn_in=64, batch_size=16)
    res = train_model(df, split, cfg, FeatureSpec(), lspec, data_name="bybit:BTCUSDT:60")
    save_result(res, path)
    return path


def _train_demo_multi(path: Path) -> Path:
    import feeds

    from ..features import FeatureSpec, LabelSpec
    from ..training import TrainConfig
    from ..training.multi_asset import save_multi, train_multi

    frames = {a.split(":")[1]: feeds.load_embedded(a, todate="2022-12-31 23:00") for a in ASSETS}
    cfg = TrainConfig(layer="s4d", d_model=16, d_state=16, n_layers=2, epochs=4, progress=False)
    res = train_multi(frames, ("2021-01-01", "2022-12-31"), cfg, FeatureSpec(), LabelSpec(),
                      data_names={a.split(":")[1]: a for a in ASSETS})
    save_multi(res, path)
    return path


ASSETS = ["bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60"]


def run_demo(out: str = "runs/demo", retrain: bool = False) -> int:
    import logging

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    from ..model import default_checkpoint, default_multi_checkpoint
    from .backtest import run_backtest

    t0 = time.perf_counter()
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    if retrain:
        print("training a small S4D on BTCUSDT 2021–2022 ...")
        model = _train_demo_model(outdir / "model.pt")
        print("training a small multi-asset S4D on BTCUSDT, ETHUSDT, SOLUSDT 2021–2022 ...")
        multi = _train_demo_multi(outdir / "multi.pt")
    else:
        model, multi = default_checkpoint(), default_multi_checkpoint()
    print(f"model: {model}\nmulti-asset model: {multi}")
    results = {}
    print("directional strategy, BTCUSDT 2023–2024 ...")
    results["directional"] = run_backtest(
        "directional", ["bybit:BTCUSDT:60"], model=model, fromdate=None, todate=TEST_TO,
        out=outdir / "directional")
    print("portfolio strategy, BTCUSDT + ETHUSDT + SOLUSDT 2023–2024 ...")
    results["portfolio"] = run_backtest(
        "portfolio", ASSETS, model=model, fromdate=None, todate=TEST_TO,
        out=outdir / "portfolio")
    print("multi-asset strategy (one encoder, a portfolio head), BTCUSDT + ETHUSDT + SOLUSDT "
          "2023–2024 ...")
    results["multi-asset"] = run_backtest(
        "multi-asset", ASSETS, model=multi, fromdate=None, todate=TEST_TO,
        out=outdir / "multi_asset")
    mm = {}
    try:
        from .market_making import run_market_making
    except ImportError:  # pragma: no cover - market making not installed in this build
        run_market_making = None
    if run_market_making is not None:
        print("Avellaneda–Stoikov market making, BTCUSDT ticks and hourly bars ...")
        mm["ticks"] = run_market_making(source="ticks", out=str(outdir / "mm_ticks"))
        mm["bars"] = run_market_making(source="bars", out=str(outdir / "mm_bars"))
    rows = []
    for name, res in results.items():
        m = res["metrics"]
        rows.append((name, res["final_value"], m.get("cagr"), m.get("sharpe"),
                     m.get("max_drawdown"), (res.get("trades") or {}).get("closed_trades")))
    for key, label in (("directional", "BTCUSDT buy & hold"),
                       ("multi-asset", "equal-weight buy & hold of the three")):
        m = results[key]["metrics"]  # the benchmark of that backtest, on its bars
        total = m.get("benchmark_total_return")
        rows.append((label, None if total is None else 100_000 * (1 + total),
                     m.get("benchmark_cagr"), m.get("benchmark_sharpe"),
                     m.get("benchmark_max_drawdown"), None))
    d = results["directional"]
    print(f"\nbacktest period {str(d['from'])[:16]} .. {str(d['to'])[:16]} UTC "
          f"({'IN-SAMPLE' if d.get('in_sample') else 'out of sample'})")
    print(
        "\n| strategy (2023–2024, out of sample) | final value | CAGR | Sharpe | max DD | trades |"
    )
    print("|---|---|---|---|---|---|")
    for name, fv, cagr, sh, dd, nt in rows:
        trades = nt if nt is not None else "–"
        value = f"{fv:,.0f}" if isinstance(fv, (int, float)) else "–"
        print(f"| {name} | {value} | {_pct(cagr)} | {_num(sh)} | {_pct(dd)} | {trades} |")
    for src, res in mm.items():
        print(f"\nmarket making on {src}: " + ", ".join(
            f"{k} {_num(res.get(k))}" for k in ("total_pnl", "spread_pnl", "inventory_pnl", "fees",
                                                  "fills_bid", "fills_ask") if k in res))
    summary = {
        "model": str(model),
        "directional": results["directional"]["metrics"],
        "portfolio": results["portfolio"]["metrics"],
        "multi_asset": results["multi-asset"]["metrics"],
        "multi_asset_model": str(multi),
        "market_making": mm,
        "seconds": time.perf_counter() - t0,
    }
    from analyzers.metrics import json_safe

    (outdir / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, default=str))
    print(f"\nwritten to {outdir}/ in {summary['seconds']:.0f} s")
    return 0


def _pct(v):
    return f"{v:.1%}" if isinstance(v, (int, float)) else "–"


def _num(v):
    return f"{v:,.2f}" if isinstance(v, (int, float)) else "–"
