"""Training and judging models offline: splits, fitting, evaluation and the comparison.

    from s4_strategies.training import TrainConfig, date_split, train_model
    split = date_split(df.index, "2021-01-01", "2022-12-31", purge=24,
                       test_from="2023-01-01", test_to="2024-12-31")
    result = train_model(df, split, TrainConfig(layer="s4d"))
"""

from __future__ import annotations

from .fit import TrainConfig, TrainResult, prepare_arrays, save_result, seed_everything, train_model
from .splits import Split, date_split, walk_forward_splits

__all__ = [
    "Split", "TrainConfig", "TrainResult", "date_split", "prepare_arrays", "save_result",
    "seed_everything", "train_model", "walk_forward_splits",
]
