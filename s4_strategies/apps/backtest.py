"""``s4trade backtest``: one strategy over embedded data, with metrics and a tear sheet."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..model import default_checkpoint

STRATEGIES = ("directional", "portfolio", "market-making")


def _date(value):
    if value is None or isinstance(value, _dt.datetime):
        return value
    return _dt.datetime.fromisoformat(str(value))


def build_cerebro(strategy: str, data: list[str], model=None, fromdate=None, todate=None,
                  cash: float = 100_000.0, runonce: bool = True, params: dict | None = None):
    """A ready Cerebro: datas, strategy with its model, Bybit fees, cash."""
    import backtrader as bt

    import feeds

    from ..strategies.directional import S4DirectionalStrategy
    from ..strategies.portfolio import S4PortfolioStrategy

    params = dict(params or {})
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.broker.setcash(cash)
    for name in data:
        cerebro.adddata(feeds.EmbeddedData(name=name, fromdate=_date(fromdate),
                                           todate=_date(todate)), name=name.split(":")[1])
    model = model or default_checkpoint()
    if strategy == "directional":
        if len(data) != 1:
            raise ValueError("the directional strategy trades one data; pass one --data")
        cerebro.addstrategy(S4DirectionalStrategy, model=model, **params)
    elif strategy == "portfolio":
        cerebro.addstrategy(S4PortfolioStrategy, model=model, **params)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    return cerebro


def run_backtest(strategy: str, data, model=None, fromdate=None, todate=None,
                 out="runs/backtest", cash: float = 100_000.0, runonce: bool = True,
                 fill_model=None, params: dict | None = None) -> dict:
    """Run, print nothing, write ``metrics.json``, ``tearsheet.html`` and pictures to ``out``."""
    import analyzers

    data = [data] if isinstance(data, str) else list(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if strategy == "market-making":
        import feeds

        from .market_making import run_market_making

        name = data[0]
        if name in feeds.list_embedded("bars"):
            source, dataset = "bars", name
        else:
            source, dataset = "ticks", name.removesuffix(":trades").removesuffix(":bbo")
        res = run_market_making(source=source, fill_model=fill_model or "auto", out=str(out),
                                dataset=dataset, fromdate=fromdate, todate=todate,
                                **(params or {}))
        summary = {"strategy": strategy, "data": data, "metrics": res, "out": str(out)}
        (out / "metrics.json").write_text(
            json.dumps(analyzers.json_safe(summary), indent=2, default=str))
        return summary
    cerebro = build_cerebro(strategy, data, model, fromdate, todate, cash, runonce, params)
    analyzers.add_all(cerebro, output=str(out / "tearsheet.html"), benchmark="buyhold",
                      title=f"S4 {strategy} on {', '.join(data)}")
    strat = cerebro.run()[0]
    report = analyzers.write_report(strat, out)
    summary = {
        "strategy": strategy,
        "data": data,
        "model": str(model or default_checkpoint()),
        "from": str(fromdate) if fromdate else None,
        "to": str(todate) if todate else None,
        "final_value": cerebro.broker.getvalue(),
        "metrics": report.get("metrics", {}),
        "trades": report.get("trades", {}),
        "files": report.get("files", {}),
        "out": str(out),
    }
    path = out / "metrics.json"
    full = json.loads(path.read_text()) if path.exists() else {}
    full.update(analyzers.json_safe(summary))
    path.write_text(json.dumps(full, indent=2))
    return summary


KEYS = [
    ("final value", "final_value", "{:,.2f}"),
    ("CAGR", "cagr", "{:.2%}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("Sortino", "sortino", "{:.2f}"),
    ("max drawdown", "max_drawdown", "{:.2%}"),
    ("Calmar", "calmar", "{:.2f}"),
    ("volatility", "volatility", "{:.2%}"),
    ("win rate", "win_rate", "{:.2%}"),
    ("profit factor", "profit_factor", "{:.2f}"),
]


def print_metrics(res: dict) -> None:
    if res.get("strategy") == "market-making":
        print(f"\nmarket making on {', '.join(res['data'])} "
              f"(fill model: {res['metrics'].get('fill_model')})")
        print(res["metrics"].get("table", ""))
        print(f"  written to {res['out']}")
        return
    m = dict(res.get("metrics") or {})
    m["final_value"] = res.get("final_value")
    print(f"\n{res['strategy']} on {', '.join(res['data'])}")
    for label, key, fmt in KEYS:
        v = m.get(key)
        print(f"  {label:<14} {fmt.format(v) if isinstance(v, (int, float)) else '–'}")
    t = res.get("trades") or {}
    if t:
        print(f"  {'trades':<14} {t.get('closed_trades', t.get('trades', '–'))}")
        if t.get("fees_paid") is not None:
            print(f"  {'fees paid':<14} {t['fees_paid']:,.2f}")
    print(f"  written to {res['out']}")
