"""Strategy parameter sweeps on Ray: what ``cerebro.optstrategy`` does, as Ray tasks.

    from s4_strategies import sweep
    table = sweep(SmaCross, datas=[df], grid={"fast": [5, 10], "slow": [30, 50]},
                  analyzers={"sharpe": bt.analyzers.SharpeRatio})
    table = sweep(cerebro_factory=make_cerebro, space={"band": {"uniform": [0.0, 0.01]}},
                  n_trials=20, objective="sharpe.sharperatio")

Every backtest is one Ray task in a worker process of its own (Ray starts workers, it does
not fork the driver), so strategies with torch models are safe after torch has run in the
driver, where ``optstrategy``'s fork-based pool can deadlock. The table has one row per
parameter set, in the order the sets were proposed, whatever order they finished in: the
parameters, the final broker value and every analyzer's ``get_analysis()`` flattened to
``name.key.subkey`` columns (a dict keyed by dates stays one column). ``serial=True`` runs
the same tasks in this process, one after another, with the same numbers.

A grid is the cartesian product of its lists; a ``space`` (the research spec's format:
``{name: {log_uniform|uniform|int|choice: [...]}}``) is searched by Optuna's TPE sampler
for ``n_trials`` trials, told the ``objective`` (an analyzer path such as
``"sharpe.sharperatio"`` or a function of the row) as each backtest finishes.

Fees: ``fees="bybit"`` (the default) charges Bybit's taker fee to every data still on
backtrader's zero default commission, inside each task's own cerebro (so it reaches every
worker); a commission the strategy or the ``cerebro_factory`` set is kept. ``fees=None``
leaves the broker as backtrader builds it.
"""

from __future__ import annotations

import itertools
import math
import time

import pandas as pd

from ..fees import apply_fees
from ..training.research.engine import RayExecutor, SerialExecutor
from ..training.research.scheduler import distributions
from ..training.research.spec import check_space


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = dict(value) if isinstance(value, dict) else value


def _plain(value):
    """backtrader's AutoOrderedDict (and nested ones) as plain dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build(strategy, datas, analyzers, cash, params):
    import backtrader as bt

    cerebro = bt.Cerebro(stdstats=False)
    for d in datas:
        cerebro.adddata(d() if callable(d) else bt.feeds.PandasData(dataname=d))
    cerebro.addstrategy(strategy, **params)
    for name, (cls, kwargs) in analyzers.items():
        cerebro.addanalyzer(cls, _name=name, **kwargs)
    cerebro.broker.setcash(cash)
    return cerebro


def run_backtest_task(params: dict, factory, strategy, datas, analyzers, cash,
                      fees="bybit") -> dict:
    """One backtest of ``params``: its final value and analyzers, flattened."""
    t0 = time.perf_counter()
    row = dict(params)
    try:
        cerebro = factory(dict(params)) if factory is not None else _build(
            strategy, datas, analyzers, cash, params)
        apply_fees(cerebro.broker, cerebro.datas, fees)
        strat = cerebro.run(maxcpus=1)[0]
        row["value"] = float(cerebro.broker.getvalue())
        for name in strat.analyzers.getnames():
            _flatten(name, _plain(strat.analyzers.getbyname(name).get_analysis()), row)
        row["error"] = ""
    except Exception as exc:  # one bad parameter set is a row, not the end of the sweep
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["seconds"] = time.perf_counter() - t0
    return row


def _objective(row: dict, objective) -> float:
    v = objective(row) if callable(objective) else row.get(objective)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


def _grid_sets(grid: dict) -> list[dict]:
    names = list(grid)
    for n in names:
        if isinstance(grid[n], (str, bytes)) or not hasattr(grid[n], "__iter__"):
            raise ValueError(f"grid[{n!r}] must be a list of values, got {grid[n]!r}")
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def sweep(strategy=None, *, datas=(), analyzers=None, cerebro_factory=None, grid=None,
          space=None, n_trials=None, objective=None, direction="maximize",
          cash: float = 100_000.0, address=None, workers=None, serial=False, seed: int = 0,
          fees="bybit", log=None) -> pd.DataFrame:
    """Backtest every parameter set of ``grid`` (or ``n_trials`` Optuna proposals in
    ``space``) as Ray tasks; a DataFrame of parameters and results, in proposal order.

    Either ``strategy`` (a ``bt.Strategy`` class) with ``datas`` (DataFrames for
    ``bt.feeds.PandasData``, or functions returning a feed) and ``analyzers`` (``{name:
    AnalyzerClass}`` or ``{name: (AnalyzerClass, kwargs)}``), or ``cerebro_factory(params)``
    returning a ready ``bt.Cerebro`` with the strategy added with those params. ``fees``:
    ``"bybit"`` or ``None`` (see the module docstring)."""
    if (strategy is None) == (cerebro_factory is None):
        raise ValueError("pass either a strategy class (with datas) or a cerebro_factory")
    if (grid is None) == (space is None):
        raise ValueError("pass either a grid or an Optuna space (with n_trials and objective)")
    if strategy is not None and not datas:
        raise ValueError("a strategy class needs datas (DataFrames or feed factories)")
    analyzers = {k: v if isinstance(v, tuple) else (v, {}) for k, v in (analyzers or {}).items()}
    log = log or (lambda s: None)
    apply_fees(None, [], fees)  # a wrong value fails here, not in every task
    args = (cerebro_factory, strategy, list(datas), analyzers, cash, fees)
    if grid is not None:
        sets = _grid_sets(grid)
        study = None
    else:
        if not n_trials or objective is None:
            raise ValueError("a space needs n_trials and an objective")
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = distributions(check_space("sweep", space))
        study = optuna.create_study(direction=direction,
                                    sampler=optuna.samplers.TPESampler(seed=seed))
        sets = []
    runner = SerialExecutor(run_backtest_task) if serial else RayExecutor(
        address, workers, fn=run_backtest_task)
    refs = [runner.put(a) for a in args]
    rows, trials, total = {}, {}, len(sets) if study is None else int(n_trials)
    pending = {}  # handle -> index of the parameter set
    try:
        issued = 0
        while len(rows) < total:
            while issued < total and len(pending) < runner.capacity:
                if study is not None:
                    trials[issued] = study.ask(dists)
                    sets.append(dict(trials[issued].params))
                pending[runner.submit(sets[issued], *refs)] = issued
                issued += 1
            handle, row = runner.wait(list(pending))
            key = pending.pop(handle)
            rows[key] = row
            if study is not None:
                value = _objective(row, objective)
                if math.isfinite(value):
                    study.tell(trials[key], value)
                else:
                    study.tell(trials[key], state=optuna.trial.TrialState.FAIL)
            log(f"[{len(rows)}/{total}] {sets[key]} value {row.get('value', float('nan')):,.2f}"
                f"{' ERROR ' + row['error'] if row['error'] else ''}")
    finally:
        runner.close()
    return pd.DataFrame([rows[k] for k in range(total)])
