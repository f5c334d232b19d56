"""Which trials to run next: one Optuna study per (dataset, fold, model), asked and told as
trials finish, then the chosen hyperparameters again with the other seeds.

Inside a fold the search sees only validation numbers (``spec.objective``); Optuna's TPE
sampler proposes ``trials_per_fold`` settings of the model's ``space`` with the first seed,
at most ``concurrency`` of them in flight at once. When they have all finished, the best
setting is trained with every other seed. A model without a space has one setting; the
linear baseline has no seed either (it is fitted in closed form).

Resuming: settings that finished in an earlier run (the store's rows) are added to the
study as completed trials; a failed one is proposed again first.
"""

from __future__ import annotations

import hashlib
import json
import math

from .spec import OBJECTIVES, ModelSpec, ResearchSpec
from .trial import Task
from .walkforward import Fold


def objective_value(row: dict, objective: str) -> float:
    """The row's validation objective, with NaN as the worst possible value."""
    v = row.get(objective)
    v = float("nan") if v is None else float(v)
    if not math.isfinite(v):
        return math.inf if OBJECTIVES[objective] == "minimize" else -math.inf
    return v


def best_row(rows: list[dict], objective: str) -> dict | None:
    """The search row with the best validation objective (ties: the earliest parameters in
    sorted order, so the choice never depends on finishing order)."""
    if not rows:
        return None
    sign = 1.0 if OBJECTIVES[objective] == "minimize" else -1.0
    return min(rows, key=lambda r: (sign * objective_value(r, objective), r["params"]))


def distributions(space: dict):
    import optuna.distributions as d

    out = {}
    for name, dist in space.items():
        kind, v = next(iter(dist.items()))
        if kind == "log_uniform":
            out[name] = d.FloatDistribution(float(v[0]), float(v[1]), log=True)
        elif kind == "uniform":
            out[name] = d.FloatDistribution(float(v[0]), float(v[1]))
        elif kind == "int":
            out[name] = d.IntDistribution(int(v[0]), int(v[1]))
        else:
            out[name] = d.CategoricalDistribution(list(v))
    return out


class Study:
    """The trials of one (dataset, fold, model)."""

    def __init__(self, spec: ResearchSpec, dataset: str, fold: Fold, model: ModelSpec,
                 done: dict[str, dict]):
        """``done``: the store's rows by trial id (ok ones are kept, failed ones retried)."""
        self.spec, self.dataset, self.fold, self.model = spec, dataset, fold, model
        self.fingerprint = spec.fingerprint(model)
        self.seeds = spec.seeds if model.network else spec.seeds[:1]
        self.budget = spec.trials_per_fold if model.space else 1
        self.search_rows: list[dict] = []  # finished ok search rows
        self.in_flight: dict[str, object] = {}  # trial id -> optuna trial (or None)
        self.retry: list[dict] = []  # params of earlier failed proposals
        self.failed = 0
        self.seed_done: set[int] = set()
        self.seed_issued: set[int] = set()
        self._study = None
        if model.space:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            key = f"{dataset}|{fold.number}|{model.name}|{self.fingerprint}"
            seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
            self._dists = distributions(model.space)
            self._study = optuna.create_study(
                direction=OBJECTIVES[spec.objective],
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(
                    2, min(10, self.budget // 2))))
        self._resume(done)

    # -- tasks -------------------------------------------------------------------------
    def _task(self, params: dict, seed: int, phase: str) -> Task:
        return Task(self.dataset, self.fold, self.model, params, seed, phase, self.fingerprint)

    def _resume(self, done: dict[str, dict]) -> None:
        for row in done.values():
            if (row["dataset"], int(row["fold"]), row["model"]) != (
                    self.dataset, self.fold.number, self.model.name):
                continue
            if self._task(json.loads(row["params"]), int(row["seed"]), "").trial_id != \
                    row["trial_id"]:
                continue  # a row of another spec version
            if row["status"] != "ok":
                if row["phase"] == "search":
                    self.retry.append(json.loads(row["params"]))
                continue
            if row["phase"] == "search":
                self._record_search(row)
            else:
                self.seed_done.add(int(row["seed"]))
                self.seed_issued.add(int(row["seed"]))

    def _record_search(self, row: dict) -> None:
        self.search_rows.append(row)
        if self._study is not None:
            import optuna

            value = objective_value(row, self.spec.objective)
            self._study.add_trial(optuna.trial.create_trial(
                params=json.loads(row["params"]), distributions=self._dists,
                value=value if math.isfinite(value) else None,
                state=optuna.trial.TrialState.COMPLETE if math.isfinite(value)
                else optuna.trial.TrialState.FAIL))

    @property
    def search_done(self) -> bool:
        return len(self.search_rows) >= self.budget

    @property
    def total(self) -> int:
        return self.budget + len(self.seeds) - 1

    @property
    def done(self) -> int:
        return len(self.search_rows) + len(self.seed_done - {self.seeds[0]})

    def next_task(self) -> Task | None:
        """The next trial to run now, or None (waiting for results, or finished)."""
        if not self.search_done:
            issued = len(self.search_rows) + len(self.in_flight)
            if issued >= self.budget or len(self.in_flight) >= self.spec.concurrency:
                return None
            if self.retry:
                params = self.retry.pop(0)
                trial = None
            elif self._study is not None:
                trial = self._study.ask(self._dists)
                params = dict(trial.params)
            else:
                params, trial = {}, None
            task = self._task(params, self.seeds[0], "search")
            self.in_flight[task.trial_id] = trial
            return task
        best = best_row([r for r in self.search_rows if r.get("status") == "ok"],
                        self.spec.objective)
        if self.in_flight or best is None:
            return None
        params = json.loads(best["params"])
        for seed in self.seeds[1:]:
            if seed not in self.seed_issued:
                self.seed_issued.add(seed)
                return self._task(params, seed, "seed")
        return None

    def tell(self, task: Task, row: dict) -> None:
        """A finished trial of this study (``row["status"]`` ok or failed)."""
        ok = row["status"] == "ok"
        if task.phase == "search":
            trial = self.in_flight.pop(task.trial_id, None)
            if self._study is not None and trial is not None:
                import optuna

                value = objective_value(row, self.spec.objective) if ok else math.nan
                if math.isfinite(value):
                    self._study.tell(trial, value)
                else:
                    self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if ok:
                self.search_rows.append(row)
            else:
                self.failed += 1
                # a failed setting counts against the budget: record it as a search row
                # with the worst objective, so the study still ends
                self.search_rows.append({**row, self.spec.objective: math.nan})
        else:
            if ok:
                self.seed_done.add(task.seed)
            else:
                self.failed += 1


def studies(spec: ResearchSpec, folds: dict[str, list[Fold]], done: dict[str, dict]):
    """Every study of the spec, in the order trials are handed out (dataset, fold, model)."""
    return [Study(spec, ds, fold, model, done)
            for ds in spec.datasets for fold in folds[ds] for model in spec.models]
