"""What identifies a research trial: its dataset, fold, model, settings, seed and phase
(``Task.trial_id`` hashes them with the spec's fingerprint)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .spec import ModelSpec
from .walkforward import Fold


@dataclass(frozen=True)
class Task:
    """What identifies a trial (``trial_id`` hashes it with the spec's fingerprint)."""

    dataset: str
    fold: Fold
    model: ModelSpec
    params: dict = field(default_factory=dict)
    seed: int = 0
    phase: str = "search"  # "search": Optuna's proposals; "seed": the chosen params, more seeds
    fingerprint: str = ""
    index: int | None = None  # a proposal's place in its Optuna study (None: no search)
    #: a multi-asset trial's ``(dataset, fold)`` pairs, fold ``fold.number`` of every dataset
    #: (``dataset`` is then the group's name, ``multi_trial.group_name``); not in the id
    folds: tuple = ()

    @property
    def trial_id(self) -> str:
        parts = [self.dataset, self.fold.number, self.model.name, self.params, self.seed,
                 self.fingerprint]
        if self.index is not None:
            parts.append(self.index)
        key = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"trial_id": self.trial_id, "dataset": self.dataset, "fold": self.fold.number,
                "model": self.model.name, "layer": self.model.layer, "seed": self.seed,
                "phase": self.phase, "params": json.dumps(self.params, sort_keys=True),
                "index": -1 if self.index is None else int(self.index)}
