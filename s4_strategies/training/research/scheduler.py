"""Which trials to run next: one Optuna study per (dataset, fold, model), asked and told as
trials finish, then the chosen hyperparameters again with the other seeds.

Inside a fold the search sees only validation numbers (``spec.objective``); Optuna's TPE
sampler proposes ``trials_per_fold`` settings of the model's ``space`` with the first seed,
at most ``concurrency`` of them in flight at once. When they have all finished, the best
setting is trained with every other seed. A model without a space has one setting; the
linear baseline has no seed either (it is fitted in closed form).

Resuming (``storage``: the run's Optuna storage, ``ResultStore.optuna_storage``). The study
lives in the storage, so a rerun continues the same sequence of proposals:

- a proposal is recorded in the storage as *running* when Optuna makes it, before its trial
  starts; one still running when a run starts was cut off (the driver died), and is run
  again with the same parameters (told to the study when it finishes; if its row had been
  stored before the driver died, the study is told from the row instead);
- the ``k``-th proposal of a study is drawn by a sampler seeded by the study's name and
  ``k``, so it is the same proposal whether or not the run was interrupted before it;
- a proposal cut off while Optuna was still writing it (parameters missing) is failed and
  does not count (it never ran);
- a trial that failed in an earlier run is proposed again once per run (its failure may
  have been the machine's): its parameters are queued in the study.

The search trial's ``index`` (its place in the study's sequence) is part of its trial id,
so two proposals with the same parameters are two trials, never one row written twice.
"""

from __future__ import annotations

import hashlib
import json
import math

from .spec import OBJECTIVES, ModelSpec, ResearchSpec
from .trial import Task
from .walkforward import Fold

RETRY_OF = "retry_of"


def objective_value(row: dict, objective: str, column: str | None = None) -> float:
    """The row's validation objective (in ``column``, default the objective's own), with
    NaN as the worst possible value."""
    v = row.get(column or objective)
    v = float("nan") if v is None else float(v)
    if not math.isfinite(v):
        return math.inf if OBJECTIVES[objective] == "minimize" else -math.inf
    return v


def search_index(row: dict) -> int:
    v = row.get("index", -1)
    return -1 if v is None or v != v else int(v)


def best_row(rows: list[dict], objective: str, column: str | None = None) -> dict | None:
    """The search row with the best validation objective (read from ``column``, default the
    objective's own; ties: the earliest parameters in sorted order, then the earliest
    proposal, so the choice never depends on finishing order)."""
    if not rows:
        return None
    sign = 1.0 if OBJECTIVES[objective] == "minimize" else -1.0
    return min(rows, key=lambda r: (sign * objective_value(r, objective, column), r["params"],
                                    search_index(r)))


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


def _seed(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


class Study:
    """The trials of one (dataset, fold, model); ``done``: the store's rows by trial id;
    ``storage``: where its Optuna study lives (None: in memory, nothing resumes)."""

    def __init__(self, spec: ResearchSpec, dataset: str, fold: Fold, model: ModelSpec,
                 done: dict[str, dict], storage=None, folds: tuple = ()):
        self.spec, self.dataset, self.fold, self.model = spec, dataset, fold, model
        self.folds = folds  # a multi-asset study: every dataset's fold (``Task.folds``)
        self.fingerprint = spec.fingerprint(model)
        self.name = f"{dataset}|fold {fold.number}|{model.name}|{self.fingerprint}"
        self.seeds = spec.seeds if model.network else spec.seeds[:1]
        self.budget = spec.trials_per_fold if model.space else 1
        self.search_rows: list[dict] = []  # finished ok search rows
        self.in_flight: dict[str, int | None] = {}  # search trial id -> Optuna trial number
        self.retry: list[tuple[int | None, Task]] = []  # (number to tell, task) to run again
        self.failed_now = 0  # search trials failed in this run (they use up the budget)
        self.failed = 0  # every trial failed in this run
        self.seed_rows: dict[tuple[str, int], dict] = {}  # (params, seed) -> ok seed row
        self.seed_issued: set[int] = set()
        self._study = None
        if model.space:
            self._open(storage)
            self._resume_search(done)
        else:
            row = done.get(self._task({}, self.seeds[0], "search").trial_id)
            if row is not None and row["status"] == "ok":
                self.search_rows.append(row)
        for row in done.values():
            if row["status"] == "ok" and row["phase"] == "seed" and self._mine(row):
                self.seed_rows[(row["params"], int(row["seed"]))] = row

    # -- the Optuna study -------------------------------------------------------------
    def _open(self, storage) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._dists = distributions(self.model.space)
        self._study = optuna.create_study(storage=storage, study_name=self.name,
                                          load_if_exists=True,
                                          direction=OBJECTIVES[self.spec.objective],
                                          sampler=self._sampler(0))

    def _sampler(self, k: int):
        """The sampler of the study's ``k``-th proposal: TPE seeded by the study and ``k``."""
        import optuna

        return optuna.samplers.TPESampler(seed=_seed(f"{self.name}|{k}"),
                                          n_startup_trials=max(2, min(10, self.budget // 2)))

    def _trials(self):
        return sorted(self._study.get_trials(deepcopy=False), key=lambda t: t.number)

    def _abandoned(self, t) -> bool:
        """A proposal cut off while Optuna wrote it: some parameters missing."""
        from optuna.trial import TrialState as S

        return t.state in (S.RUNNING, S.FAIL) and set(t.params) != set(self._dists)

    def _fail(self, number: int) -> None:
        import optuna

        self._study.tell(number, state=optuna.trial.TrialState.FAIL)

    def _tell(self, number: int, row: dict) -> None:
        value = objective_value(row, self.spec.objective) if row["status"] == "ok" \
            else math.nan
        if math.isfinite(value):
            self._study.tell(number, value)
        else:
            self._fail(number)

    def _resume_search(self, done: dict[str, dict]) -> None:
        from optuna.trial import TrialState as S

        trials = self._trials()
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        known: set[str] = set()
        k = 0
        for t in trials:
            if self._abandoned(t):  # it never ran: fail it (once) and leave it out
                if t.state == S.RUNNING:
                    self._fail(t.number)
                continue
            index, k = k, k + 1
            if t.state == S.WAITING:  # a queued retry: asked next
                continue
            task = self._task(dict(t.params), self.seeds[0], "search", index)
            known.add(task.trial_id)
            row = done.get(task.trial_id)
            ok = row is not None and row["status"] == "ok"
            if t.state == S.RUNNING:
                if row is None:
                    self.retry.append((t.number, task))  # cut off: run it again
                else:
                    self._tell(t.number, row)  # it finished; the study was not told
                    if ok:
                        self.search_rows.append(row)
                    elif t.number not in retried:
                        self._study.enqueue_trial(dict(t.params),
                                                  user_attrs={RETRY_OF: t.number})
            elif ok:
                self.search_rows.append(row)
            elif row is None and t.state == S.COMPLETE:
                self.retry.append((None, task))  # told, but its row is gone: run it again
            elif t.number not in retried:  # failed in an earlier run: propose it again
                self._study.enqueue_trial(dict(t.params), user_attrs={RETRY_OF: t.number})
        self._adopt([r for r in done.values() if r["trial_id"] not in known])

    def _adopt(self, rows: list[dict]) -> None:
        """Finished search rows the study does not hold (a study kept in memory, or a
        storage that was lost): added as completed trials in their order, so the sequence
        of proposals goes on after them."""
        import optuna

        mine = sorted((r for r in rows if r["status"] == "ok" and r["phase"] == "search"
                       and self._mine(r)), key=search_index)
        for row in mine:
            value = objective_value(row, self.spec.objective)
            finite = math.isfinite(value)
            self._study.add_trial(optuna.trial.create_trial(
                params=json.loads(row["params"]), distributions=self._dists,
                value=value if finite else None,
                state=optuna.trial.TrialState.COMPLETE if finite
                else optuna.trial.TrialState.FAIL))
            self.search_rows.append(row)

    def _ask(self) -> tuple[int, dict, int]:
        """The next proposal: ``(trial number, params, index)``."""
        before = [t for t in self._trials() if not self._abandoned(t)]
        self._study.sampler = self._sampler(len(before))
        trial = self._study.ask(self._dists)
        index = sum(1 for t in before if t.number < trial.number)
        return trial.number, dict(trial.params), index

    # -- tasks -------------------------------------------------------------------------
    def _task(self, params: dict, seed: int, phase: str, index: int | None = None) -> Task:
        return Task(self.dataset, self.fold, self.model, params, seed, phase,
                    self.fingerprint, index, self.folds)

    def _mine(self, row: dict) -> bool:
        """A row of this study and spec version (its id is the one its fields give)."""
        if (row["dataset"], int(row["fold"]), row["model"]) != (
                self.dataset, self.fold.number, self.model.name):
            return False
        index = search_index(row)
        task = self._task(json.loads(row["params"]), int(row["seed"]), "",
                          None if index < 0 else index)
        return task.trial_id == row["trial_id"]

    @property
    def search_done(self) -> bool:
        return (len(self.search_rows) + self.failed_now >= self.budget and not self.in_flight
                and not self.retry)

    def best(self) -> dict | None:
        """The chosen search row (once the search is over)."""
        return best_row(self.search_rows, self.spec.objective) if self.search_done else None

    def _seeds_done(self) -> set[int]:
        best = self.best()
        if best is None:
            return set()
        return {s for s in self.seeds[1:] if (best["params"], s) in self.seed_rows}

    @property
    def total(self) -> int:
        """Trials the spec asks of this study."""
        return self.budget + len(self.seeds) - 1

    @property
    def done(self) -> int:
        """Of them, finished ``ok``."""
        return min(len(self.search_rows), self.budget) + len(self._seeds_done())

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def next_task(self) -> Task | None:
        """The next trial to run now, or None (waiting for results, or finished)."""
        if len(self.search_rows) + self.failed_now < self.budget or self.retry:
            if len(self.in_flight) >= self.spec.concurrency:
                return None
            if self.retry:
                number, task = self.retry.pop(0)
                self.in_flight[task.trial_id] = number
                return task
            used = len(self.search_rows) + self.failed_now + len(self.in_flight)
            if used >= self.budget:
                return None
            if self._study is not None:
                number, params, index = self._ask()
                task = self._task(params, self.seeds[0], "search", index)
            else:
                number, task = None, self._task({}, self.seeds[0], "search")
            self.in_flight[task.trial_id] = number
            return task
        best = self.best()
        if best is None:
            return None
        params = json.loads(best["params"])
        for seed in self.seeds[1:]:
            if seed not in self.seed_issued and (best["params"], seed) not in self.seed_rows:
                self.seed_issued.add(seed)
                return self._task(params, seed, "seed")
        return None

    def tell(self, task: Task, row: dict) -> None:
        """A finished trial of this study (``row["status"]`` ok or failed)."""
        ok = row["status"] == "ok"
        if not ok:
            self.failed += 1
        if task.phase == "search":
            number = self.in_flight.pop(task.trial_id, None)
            if self._study is not None and number is not None:
                self._tell(number, row)
            if ok:
                self.search_rows.append(row)
            else:
                self.failed_now += 1  # it used up its place in the budget: the study ends
        elif ok:
            self.seed_rows[(row["params"], int(row["seed"]))] = row


def studies(spec: ResearchSpec, folds: dict[str, list[Fold]], done: dict[str, dict],
            storage=None):
    """Every study of the spec, in the order trials are handed out: the multi-asset models'
    (one per fold: their trials train on every dataset, the longest first), then (dataset,
    fold, model)."""
    from .multi_trial import group_name, group_studies_folds

    shared = [m for m in spec.models if m.multi_asset]
    plan = [Study(spec, group_name(spec.datasets), fold, m, done, storage, pairs)
            for fold, pairs in (group_studies_folds(spec, folds) if shared else [])
            for m in shared]
    return plan + [Study(spec, ds, fold, model, done, storage)
                   for ds in spec.datasets for fold in folds[ds] for model in spec.models
                   if not model.multi_asset]
