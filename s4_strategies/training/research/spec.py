"""The research spec: what ``s4trade research`` runs, read from YAML or JSON.

    name: crypto-hourly-quick
    datasets: [bybit:BTCUSDT:60, bybit:ETHUSDT:60]   # embedded names, files, bybit:/yahoo:
    from: 2021-01-01                                   # optional trim of every dataset
    to: 2022-12-31
    walk_forward: {scheme: expanding, test_start: 2022-01-01, test_end: 2022-12-31,
                   test_length: 6M, val_fraction: 0.15, purge: 24, embargo: 24}
    models:
      - {name: S4D, layer: s4d, params: {d_model: 16},
         space: {lr: {log_uniform: [5.0e-4, 5.0e-3]}, dropout: {uniform: [0.0, 0.3]}}}
      - {name: Shared S4D, layer: s4d, multi_asset: true}   # one encoder, every dataset
      - {name: Linear, layer: linear}
    seeds: 3                                  # or a list
    search: {trials_per_fold: 4, concurrency: 2, objective: val_log_loss}
    train: {epochs: 4, steps_per_epoch: 20, seq_len: 256, burn_in: 64}
    decision: {min_trades: 20}                # the band is chosen on validation
    fees: {per_side: 0.00055}
    funding: {rate_per_8h: 0.0001}            # 0 for equities

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...fees import BYBIT_TAKER
from ..fit import TrainConfig
from ..funding import DEFAULT_FUNDING_RATE
from .schema import (  # noqa: F401 (re-exported)
    BASELINES,
    DISTRIBUTIONS,
    NETWORKS,
    OBJECTIVES,
    TRAIN_FIELDS,
)
from .walkforward import Layout

#: the column every row of a multi-asset trial carries: the spec's validation objective
#: averaged over the assets (what its search and each fold's choice of setting use)
GROUP_OBJECTIVE = "val_objective_assets"


class SpecError(ValueError):
    """A research spec that cannot run; the message names the key."""


def check_space(model: str, space: dict) -> dict:
    """A search space (``{name: {log_uniform|uniform|int|choice: [...]}}``), checked;
    ``SpecError`` naming ``models.<model>.space.<name>``."""
    from .schema import _distribution

    try:
        return {k: _distribution(f"models.{model}.space.{k}", d) for k, d in space.items()}
    except ValueError as exc:
        raise SpecError(str(exc)) from None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    layer: str
    params: dict = field(default_factory=dict)  # fixed TrainConfig fields / layer options
    space: dict = field(default_factory=dict)  # searched by Optuna inside each fold
    multi_asset: bool = False  # one shared encoder on every dataset (``multi_trial``)

    @property
    def network(self) -> bool:
        return self.layer in NETWORKS


@dataclass(frozen=True)
class ResearchSpec:
    name: str
    datasets: tuple[str, ...]
    layout: Layout
    models: tuple[ModelSpec, ...]
    seeds: tuple[int, ...] = (0,)
    trials_per_fold: int = 1
    concurrency: int = 2
    objective: str = "val_log_loss"
    train: dict = field(default_factory=dict)
    min_trades: int = 20
    fee: float = BYBIT_TAKER
    funding_rate: float = DEFAULT_FUNDING_RATE
    date_from: str | None = None
    date_to: str | None = None
    features: dict = field(default_factory=dict)  # FeatureSpec fields (default: hourly)
    labels: dict = field(default_factory=dict)  # LabelSpec fields

    @property
    def feature_spec(self):
        from ...features import FeatureSpec

        return FeatureSpec.from_dict(self.features)

    @property
    def label_spec(self):
        from ...features import LabelSpec

        return LabelSpec.from_dict(self.labels)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = self.layout.to_dict()
        return d

    def fingerprint(self, model: ModelSpec) -> str:
        """What a trial's result depends on besides its own key: a changed spec part means
        fresh trials rather than stale ones resumed."""
        spec_of_model = asdict(model)
        if model.multi_asset:  # it trains on every dataset: another list, another model
            spec_of_model["datasets"] = list(self.datasets)
        else:  # the fingerprints of runs made before the field existed
            del spec_of_model["multi_asset"]
        parts = {"layout": self.layout.to_dict(), "train": self.train, "model": spec_of_model,
                 "objective": self.objective, "min_trades": self.min_trades, "fee": self.fee,
                 "funding": self.funding_rate, "from": self.date_from, "to": self.date_to,
                 "features": self.features, "labels": self.labels}
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def train_config(self, model: ModelSpec, params: dict, seed: int) -> TrainConfig:
        """The TrainConfig of one network trial: spec ``train``, then the model's fixed
        ``params``, then the searched ``params``; unknown names go to ``layer_options``."""
        merged = {**self.train, **model.params, **params}
        base = {k: v for k, v in merged.items() if k in TRAIN_FIELDS}
        options = {**base.pop("layer_options", {}),
                   **{k: v for k, v in merged.items() if k not in TRAIN_FIELDS}}
        return TrainConfig(layer=model.layer, seed=seed, progress=False, device="cpu",
                           layer_options=options, **base)


def _feature_label_specs(raw: dict):
    """The spec's FeatureSpec and LabelSpec (defaults: the hourly ones of the package)."""
    from ...features import FeatureSpec, LabelSpec
    from ..skill_report import IC_HORIZONS

    try:
        features = FeatureSpec.from_dict(dict(raw.get("features") or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"features: {exc}") from None
    try:
        labels = LabelSpec.from_dict(dict(raw.get("labels") or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"labels: {exc}") from None
    if not set(IC_HORIZONS) <= set(labels.horizons):
        raise SpecError(f"labels.horizons must include {IC_HORIZONS} (the skill table's IC)")
    if labels.signal_horizon not in labels.horizons:  # the decoder reads its return output
        raise SpecError(f"labels.signal_horizon: {labels.signal_horizon} must be one of the "
                        f"label horizons {list(labels.horizons)}")
    return features, labels


def _check_train(spec: ResearchSpec) -> None:
    """Every network's TrainConfig and model config build, at the ends of every searched
    range too (a bad field surfaces now, not in a worker an hour later)."""
    from ...ssm.config import SSM_KINDS, ModelConfig

    for m in spec.models:
        if not m.network:
            continue
        trials = [{}]
        for name, dist in m.space.items():
            kind, values = next(iter(dist.items()))
            trials += [{name: v} for v in (values if kind == "choice" else values[:2])]
        for params in trials:
            try:
                cfg = spec.train_config(m, params, 0)
                shared = {"layer": m.layer, "n_assets": len(spec.datasets)} \
                    if m.multi_asset else {}
                ModelConfig("multi" if m.multi_asset else m.layer, input_dim=1,
                            d_model=cfg.d_model, n_layers=cfg.n_layers, dropout=cfg.dropout,
                            **cfg.layer_options, **shared,
                            **({"d_state": cfg.state_size} if m.layer in SSM_KINDS else {}))
            except (TypeError, ValueError) as exc:
                where = f"models.{m.name}" + (f".space.{next(iter(params))}" if params else "")
                raise SpecError(f"{where}: {exc}") from None


def parse_spec(raw: dict) -> ResearchSpec:
    """A checked :class:`ResearchSpec` from a mapping; :class:`SpecError` names the key
    (``schema.SpecSchema``: types, ranges, unknown keys)."""
    from pydantic import ValidationError

    from .schema import SpecSchema, first_problem

    if not isinstance(raw, dict):
        raise SpecError("a research spec is a mapping (YAML or JSON object)")
    try:
        s = SpecSchema.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(first_problem(exc)) from None
    features, labels = _feature_label_specs(raw)
    wf = s.walk_forward.model_dump()
    try:
        layout = Layout(**wf)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"walk_forward: {exc}") from None
    if layout.purge < labels.max_horizon:
        raise SpecError(f"walk_forward.purge: {layout.purge} bars is less than the labels' "
                        f"longest horizon ({labels.max_horizon} bars)")
    models = tuple(ModelSpec(m.name or m.layer, m.layer, dict(m.params), dict(m.space),
                             m.multi_asset) for m in s.models)
    spec = ResearchSpec(
        name=s.name, datasets=tuple(s.datasets), layout=layout, models=models,
        seeds=tuple(s.seeds), trials_per_fold=s.search.trials_per_fold,
        concurrency=s.search.concurrency, objective=s.search.objective, train=dict(s.train),
        min_trades=s.decision.min_trades, fee=s.fees.per_side,
        funding_rate=s.funding.rate_per_8h, date_from=s.date_from, date_to=s.date_to,
        features=features.to_dict(), labels=labels.to_dict())
    _check_train(spec)
    return spec


def load_spec(path) -> ResearchSpec:
    """Read a ``.yaml``/``.yml`` or ``.json`` research spec."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SpecError(f"no such spec file: {path}")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML ({exc})") from None
    else:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    return parse_spec(raw)
