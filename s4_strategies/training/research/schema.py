"""The research spec's schema (pydantic): types, ranges and known keys of every section, and
one message naming the key of the first thing wrong.

``spec.parse_spec`` validates a raw mapping here, then builds the runtime
``ResearchSpec``. Every mapping forbids unknown keys (a typo must not fall back to a
default); every number has its range; dates are dates; a model's ``params`` and ``space``
name ``TrainConfig`` fields or options its layer has (``ssm.config.STORED``).
"""

from __future__ import annotations

import datetime as _dt
import difflib
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ...fees import BYBIT_TAKER
from ..fit import TrainConfig
from ..funding import DEFAULT_FUNDING_RATE

NETWORKS = ("s4", "s4d", "mamba", "s5", "dss", "lstm", "gru", "transformer")
BASELINES = ("linear", "lightgbm")
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
#: the validation objectives a search may optimise: columns every trial row carries
#: (``trial.run_trial``: ``val_`` + the score's name; the ICs at the skill table's horizons)
OBJECTIVES = {"val_log_loss": "minimize", "val_ic_1": "maximize", "val_ic_5": "maximize",
              "val_net_sharpe": "maximize"}
#: fees and funding beyond these are typing mistakes, not markets
MAX_FEE, MAX_FUNDING = 0.05, 0.05
#: what a spec's ``train`` and a model's ``params``/``space`` may set of ``TrainConfig``
TRAIN_FIELDS = frozenset({f.name for f in fields(TrainConfig)}
                         - {"layer", "seed", "progress", "device"})


def _date_text(value):
    """A date or date-time (YAML may already have made it one) as the text the spec keeps."""
    if value is None:
        return None
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else \
            value.isoformat()
    if not isinstance(value, str):
        raise ValueError(f"a date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM', UTC), got {value!r}")
    try:
        _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"a date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM', UTC), got {value!r}"
                         ) from None
    return value.strip()


def _span(value):
    """Bars (int) or a calendar span ('90D', '3M', '1Y')."""
    from .walkforward import parse_span

    if value is None:
        return None
    parse_span(value)  # ValueError says what is accepted
    return value


def _seeds(value):
    """A count (3: seeds 0, 1, 2) or a list of distinct integers >= 0."""
    if isinstance(value, bool):
        raise ValueError(f"a count (3) or a list of distinct integers ([0, 7]), got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a count of at least 1, got {value}")
        return tuple(range(value))
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            dup = sorted({s for s in value if list(value).count(s) > 1})
            raise ValueError(f"must be distinct, {dup} repeated (the same seed twice would "
                             "count one run as two)")
        return tuple(value)
    raise ValueError(f"a count (3) or a list of distinct integers >= 0 ([0, 7]), got {value!r}")


def _one_or_list(value):
    return [value] if isinstance(value, str) else value


Date = Annotated[str | None, BeforeValidator(_date_text)]
Span = Annotated[int | str | None, BeforeValidator(_span)]
Seeds = Annotated[tuple[int, ...], BeforeValidator(_seeds)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Search(_Section):
    trials_per_fold: int = Field(1, ge=1)
    concurrency: int = Field(2, ge=1)
    objective: Literal[tuple(OBJECTIVES)] = "val_log_loss"

    @field_validator("objective", mode="before")
    @classmethod
    def _a_column_rows_carry(cls, v):
        if isinstance(v, str) and v not in OBJECTIVES and v.startswith("val_ic"):
            raise ValueError(f"{v!r} is not a column the trials carry: the IC is scored at "
                             "1 and 5 bars, use val_ic_1 or val_ic_5")
        return v


class Fees(_Section):
    per_side: float = Field(BYBIT_TAKER, ge=0.0, lt=MAX_FEE)


class Funding(_Section):
    rate_per_8h: float = Field(DEFAULT_FUNDING_RATE, gt=-MAX_FUNDING, lt=MAX_FUNDING)


class Decision(_Section):
    min_trades: int = Field(20, ge=0)


class WalkForward(_Section):
    test_start: Annotated[str, BeforeValidator(_date_text)]
    test_end: Date = None
    test_length: Span = "3M"
    scheme: Literal["expanding", "rolling"] = "expanding"
    train_length: Span = None
    val_length: Span = None
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    purge: int = Field(24, ge=0)
    embargo: int = Field(0, ge=0)
    min_train_bars: int = Field(500, ge=1)

    @model_validator(mode="after")
    def _rolling_needs_a_length(self):
        if self.scheme == "rolling" and self.train_length is None:
            raise ValueError("a rolling layout needs train_length")
        return self


def _distribution(name: str, dist) -> dict:
    if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise ValueError(f"{name}: one of {DISTRIBUTIONS} with its values, e.g. "
                         f"{{log_uniform: [0.0005, 0.005]}}; got {dist!r}")
    kind, values = next(iter(dist.items()))
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name}: {kind} takes a list, got {values!r}")
    if kind == "choice":
        if not values:
            raise ValueError(f"{name}: choice needs values")
        return {kind: list(values)}
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{name}: {kind} needs [low, high] numbers, got {values!r}")
    if kind == "int" and not all(float(v).is_integer() for v in values):
        raise ValueError(f"{name}: int needs whole numbers, got {values!r}")
    if not values[0] < values[1]:
        raise ValueError(f"{name}: {kind} needs [low, high], low < high")
    if kind == "log_uniform" and values[0] <= 0:
        raise ValueError(f"{name}: log_uniform needs low > 0")
    return {kind: list(values)}


def layer_options(layer: str) -> set[str]:
    """Options a layer takes besides ``TrainConfig``'s fields (``ssm.config.STORED`` and
    ``LAYER_STORED``: S5's blocks, DSS's kernel and l_max)."""
    from ...ssm.config import LAYER_STORED, STORED

    return (set(STORED.get(layer, ())) | set(LAYER_STORED.get(layer, ()))) - {
        "kind", "input_dim", "layer", "n_classes", "horizons"}


#: names people write for the fields they mean
_MEANT = {"learning_rate": "lr", "ssm_learning_rate": "ssm_lr", "layers": "n_layers",
          "num_layers": "n_layers", "hidden_size": "d_model", "state_size": "d_state",
          "batch": "batch_size", "window_length": "seq_len"}


def _unknown(where: str, name: str, allowed, what: str) -> ValueError:
    near = [_MEANT[name]] if _MEANT.get(name) in allowed else difflib.get_close_matches(
        name, sorted(allowed), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return ValueError(f"{where}.{name}: not {what}{hint}; allowed: {sorted(allowed)}")


#: the layers a multi-asset model's shared encoder may be (``ssm.config.SSM_KINDS``)
SHARED_ENCODERS = ("s4", "s4d", "mamba", "s5", "dss")


class Model(_Section):
    name: str | None = None
    layer: Literal[NETWORKS + BASELINES]
    multi_asset: bool = False  # one shared-encoder model (MultiAssetS4) on every dataset
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)

    @field_validator("layer", mode="before")
    @classmethod
    def _lower(cls, v):
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _known_keys(self):
        label = self.name or self.layer
        if self.multi_asset and self.layer not in SHARED_ENCODERS:
            raise ValueError(f"models.{label}: a multi-asset model's shared encoder is one of "
                             f"{list(SHARED_ENCODERS)}, got layer {self.layer!r}")
        if self.layer == "linear":
            if self.params or self.space:
                raise ValueError(f"models.{label}: the linear baseline takes no params or "
                                 "space (its penalty is tuned on validation)")
            return self
        if self.layer == "lightgbm":
            from ..tuned_baselines import LGBM_PARAMS

            allowed, what = LGBM_PARAMS, "a LightGBM setting this layer takes"
        else:
            allowed = TRAIN_FIELDS | layer_options(self.layer)
            what = f"a TrainConfig field or an option of the {self.layer} layer"
        for part in ("params", "space"):
            for key in getattr(self, part):
                if key not in allowed:
                    raise _unknown(f"models.{label}.{part}", key, allowed, what)
        object.__setattr__(self, "space", {k: _distribution(f"models.{label}.space.{k}", d)
                                           for k, d in self.space.items()})
        return self


class SpecSchema(_Section):
    name: str = "research"
    datasets: Annotated[list[str], BeforeValidator(_one_or_list), Field(min_length=1)]
    date_from: Date = Field(None, alias="from")
    date_to: Date = Field(None, alias="to")
    walk_forward: WalkForward
    models: list[Model] = Field(min_length=1)
    seeds: Seeds = (0,)
    search: Search = Field(default_factory=Search)
    train: dict[str, Any] = Field(default_factory=dict)
    decision: Decision = Field(default_factory=Decision)
    fees: Fees = Field(default_factory=Fees)
    funding: Funding = Field(default_factory=Funding)
    features: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train_fields(cls, train):
        for key in train:
            if key not in TRAIN_FIELDS:
                raise _unknown("train", key, TRAIN_FIELDS, "a TrainConfig field") from None
        return train

    @model_validator(mode="after")
    def _period(self):
        if self.date_from and self.date_to:
            import pandas as pd

            if pd.Timestamp(self.date_from) > pd.Timestamp(self.date_to):
                raise ValueError(f"from: {self.date_from} is after to: {self.date_to}")
        names = [m.name or m.layer for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {names}")
        for m in self.models:
            if m.multi_asset:
                _shared_fits(m.name or m.layer, self.datasets, self.walk_forward)
        return self


def _shared_fits(label: str, datasets: list[str], wf: WalkForward) -> None:
    """A multi-asset model trains on every dataset at once: it needs two or more, and test
    blocks that are calendar spans (fold k must cover the same dates on every dataset;
    ``multi_trial.align_folds`` checks the bars once they are loaded)."""
    if len(set(datasets)) < 2:
        raise ValueError(f"models.{label}: a multi-asset model trains one shared encoder on "
                         f"several datasets; the spec lists {len(set(datasets))} "
                         f"({datasets}): list two or more, or drop multi_asset")
    if not isinstance(wf.test_length, str) or wf.test_length.strip().isdigit():
        raise ValueError(f"models.{label}: a multi-asset model needs test blocks that are "
                         f"calendar spans (walk_forward.test_length like '3M'), got "
                         f"{wf.test_length!r} bars: a block of bars covers different dates "
                         "on datasets with different bars, so the folds cannot be aligned")


def _where(loc) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _allowed_at(loc) -> list[str]:
    """The keys the section at ``loc`` takes."""
    model = SpecSchema
    for p in loc:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p) or next(
            (f for f in model.model_fields.values() if f.alias == p), None)
        if field is None:
            break
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)),
                     None)
        if model is None:
            return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
           "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
_KINDS = {"int_parsing": "a whole number", "int_type": "a whole number",
          "int_from_float": "a whole number", "float_parsing": "a number",
          "float_type": "a number", "string_type": "text", "dict_type": "a mapping",
          "list_type": "a list", "bool_parsing": "true or false", "bool_type": "true or false",
          "model_type": "a mapping", "too_short": "non-empty"}


def first_problem(exc: ValidationError) -> str:
    """One line naming the key of the first error (and how many more there are)."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not str(p).startswith(("function-", "list[")))
    where = _where(loc) or "spec"
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        text = f"{where}: required"
    elif kind == "extra_forbidden":
        text = f"{where}: unknown key; allowed: {_allowed_at(loc[:-1])}"
    elif kind == "literal_error":
        text = f"{where}: must be {err['ctx']['expected']}, got {err.get('input')!r}"
    elif kind == "value_error":
        text = msg.removeprefix("Value error, ")
        text = text if text.startswith(("models.", "train.", "from:")) else f"{where}: {text}"
    elif kind == "too_short":
        text = f"{where}: required (at least one), got {err.get('input')!r}"
    elif kind in _BOUNDS:
        op, bound = _BOUNDS[kind]
        text = f"{where}: must be {op} {err['ctx'][bound]}, got {err.get('input')!r}"
    elif kind in _KINDS:
        text = f"{where}: must be {_KINDS[kind]}, got {err.get('input')!r}"
    else:
        text = f"{where}: {msg[0].lower() + msg[1:]} (got {err.get('input')!r})"
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
