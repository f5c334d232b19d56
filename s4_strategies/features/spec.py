"""``FeatureSpec``: which causal features to compute (saved with every checkpoint).

The formulas are listed in ``s4_strategies.features`` (the package doc).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

REQUIRED_COLUMNS = ("open", "high", "low", "close", "volume")
EPS = 1e-8


@dataclass(frozen=True)
class FeatureSpec:
    """What features to compute. Saved with every checkpoint (``to_dict``/``from_dict``)."""

    return_windows: tuple[int, ...] = (1, 4, 24)
    vol_windows: tuple[int, ...] = (24, 168)
    volume_window: int = 168
    rsi_period: int = 14
    atr_period: int = 14
    ma_windows: tuple[int, ...] = (24, 168)
    time_features: bool = True
    version: int = 1

    def __post_init__(self):
        for name in ("return_windows", "vol_windows", "ma_windows"):
            values = tuple(int(x) for x in getattr(self, name))
            if not values or min(values) < 1:
                raise ValueError(f"FeatureSpec.{name} needs positive windows, got {values}")
            object.__setattr__(self, name, values)
        for name in ("volume_window", "rsi_period", "atr_period"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"FeatureSpec.{name} must be >= 1")

    @property
    def names(self) -> list[str]:
        out = [f"ret_{k}" for k in self.return_windows]
        out += ["log_range", "body", "close_pos"]
        out += [f"rv_{w}" for w in self.vol_windows]
        out += ["volume_z", "rsi", "atr"]
        out += [f"ma_gap_{n}" for n in self.ma_windows]
        if self.time_features:
            out += ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
        return out

    @property
    def warmup(self) -> int:
        """Bars before every feature is defined and the Wilder averages have settled."""
        return max(
            max(self.return_windows),
            max(self.vol_windows),
            self.volume_window,
            max(self.ma_windows),
            4 * self.rsi_period,
            4 * self.atr_period,
        ) + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown feature spec fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})


def check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"features need columns {list(REQUIRED_COLUMNS)}; missing {missing}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError("features need a DatetimeIndex (bar open times)")
