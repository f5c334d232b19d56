"""``Normalizer``: per-feature standardisation fitted on the training period only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Normalizer:
    """Per-feature standardisation fitted on the training period only; z clipped to ±clip."""

    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    clip: float = 8.0

    @classmethod
    def fit(cls, features: pd.DataFrame, clip: float = 8.0) -> Normalizer:
        x = features.to_numpy(dtype=np.float64)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        if np.isnan(mean).any():
            bad = [c for c, m in zip(features.columns, mean) if np.isnan(m)]
            raise ValueError(f"cannot fit normalisation: features {bad} have no finite values")
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean.tolist(), std=std.tolist(), clip=clip)

    def transform(self, x):
        """Standardise a DataFrame/array (last axis = features); NaN stays NaN."""
        arr = np.asarray(x, dtype=np.float64)
        z = (arr - np.asarray(self.mean)) / np.asarray(self.std)
        z = np.clip(z, -self.clip, self.clip)
        if isinstance(x, pd.DataFrame):
            return pd.DataFrame(z, index=x.index, columns=x.columns)
        return z

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(mean=list(d["mean"]), std=list(d["std"]), clip=float(d.get("clip", 8.0)))
