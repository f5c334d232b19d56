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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ...fees import BYBIT_TAKER
from ..fit import TrainConfig
from ..funding import DEFAULT_FUNDING_RATE
from .walkforward import Layout

NETWORKS = ("s4", "s4d", "mamba", "s5", "dss", "lstm", "gru", "transformer")
BASELINES = ("linear",)
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
OBJECTIVES = {"val_log_loss": "minimize", "val_ic": "maximize", "val_net_sharpe": "maximize"}
_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"layer", "seed", "progress", "device"}


class SpecError(ValueError):
    """A research spec that cannot run; the message names the key."""


def _check_keys(where: str, got: dict, allowed) -> None:
    extra = sorted(set(got) - set(allowed))
    if extra:
        raise SpecError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def check_space(model: str, space: dict) -> dict:
    out = {}
    for name, dist in space.items():
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise SpecError(f"models.{model}.space.{name}: one of {DISTRIBUTIONS} with its "
                            f"values, e.g. {{log_uniform: [0.0005, 0.005]}}; got {dist!r}")
        kind, values = next(iter(dist.items()))
        if kind != "choice" and (len(values) != 2 or not values[0] < values[1]):
            raise SpecError(f"models.{model}.space.{name}: {kind} needs [low, high], low < high")
        if kind == "log_uniform" and values[0] <= 0:
            raise SpecError(f"models.{model}.space.{name}: log_uniform needs low > 0")
        if kind == "choice" and not values:
            raise SpecError(f"models.{model}.space.{name}: choice needs values")
        out[name] = {kind: list(values)}
    return out


@dataclass(frozen=True)
class ModelSpec:
    name: str
    layer: str
    params: dict = field(default_factory=dict)  # fixed TrainConfig fields / layer options
    space: dict = field(default_factory=dict)  # searched by Optuna inside each fold

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
        parts = {"layout": self.layout.to_dict(), "train": self.train, "model": asdict(model),
                 "objective": self.objective, "min_trades": self.min_trades, "fee": self.fee,
                 "funding": self.funding_rate, "from": self.date_from, "to": self.date_to,
                 "features": self.features, "labels": self.labels}
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def train_config(self, model: ModelSpec, params: dict, seed: int) -> TrainConfig:
        """The TrainConfig of one network trial: spec ``train``, then the model's fixed
        ``params``, then the searched ``params``; unknown names go to ``layer_options``."""
        merged = {**self.train, **model.params, **params}
        base = {k: v for k, v in merged.items() if k in _TRAIN_FIELDS}
        options = {**base.pop("layer_options", {}),
                   **{k: v for k, v in merged.items() if k not in _TRAIN_FIELDS}}
        return TrainConfig(layer=model.layer, seed=seed, progress=False, device="cpu",
                           layer_options=options, **base)


def _model(i: int, m) -> ModelSpec:
    if not isinstance(m, dict) or "layer" not in m:
        raise SpecError(f"models[{i}]: a mapping with at least 'layer' ({NETWORKS + BASELINES})")
    _check_keys(f"models[{i}]", m, ("name", "layer", "params", "space"))
    layer = str(m["layer"]).lower()
    if layer not in NETWORKS + BASELINES:
        raise SpecError(f"models[{i}].layer: {layer!r} is not one of {NETWORKS + BASELINES}")
    name = str(m.get("name", layer))
    space = check_space(name, dict(m.get("space") or {}))
    if layer in BASELINES and (space or m.get("params")):
        raise SpecError(f"models.{name}: the linear baseline takes no params or space")
    return ModelSpec(name, layer, dict(m.get("params") or {}), space)


def _layout(raw, horizon: int) -> Layout:
    """The walk-forward layout; dates as YAML reads them become strings, and the purge must
    cover the labels' longest ``horizon``."""
    if not isinstance(raw, dict):
        raise SpecError("walk_forward: a mapping (test_start, test_length, purge, ...)")
    raw = {k: str(v) if k in ("test_start", "test_end") and v is not None else v
           for k, v in raw.items()}
    try:
        layout = Layout(**raw)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"walk_forward: {exc}") from None
    if layout.purge < horizon:
        raise SpecError(f"walk_forward.purge: {layout.purge} bars is less than the labels' "
                        f"longest horizon ({horizon} bars)")
    return layout


def _feature_label_specs(raw: dict):
    """The spec's FeatureSpec and LabelSpec (defaults: the hourly ones of the package)."""
    from ...features import FeatureSpec, LabelSpec
    from ..skill_report import IC_HORIZONS

    try:
        features = FeatureSpec.from_dict(dict(raw.get("features") or {}))
        labels = LabelSpec.from_dict(dict(raw.get("labels") or {}))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"features/labels: {exc}") from None
    if not set(IC_HORIZONS) <= set(labels.horizons):
        raise SpecError(f"labels.horizons must include {IC_HORIZONS} (the skill table's IC)")
    return features, labels


def _sections(raw: dict) -> tuple[dict, ...]:
    """The optional sections, each checked for unknown keys."""
    search = dict(raw.get("search") or {})
    _check_keys("search", search, ("trials_per_fold", "concurrency", "objective"))
    if search.get("objective", "val_log_loss") not in OBJECTIVES:
        raise SpecError(f"search.objective: one of {sorted(OBJECTIVES)}, "
                        f"got {search['objective']!r}")
    train = dict(raw.get("train") or {})
    bad = sorted(set(train) - _TRAIN_FIELDS)
    if bad:
        raise SpecError(f"train: unknown TrainConfig field(s) {bad}")
    decision, fees = dict(raw.get("decision") or {}), dict(raw.get("fees") or {})
    funding = dict(raw.get("funding") or {})
    _check_keys("decision", decision, ("min_trades",))
    _check_keys("fees", fees, ("per_side",))
    _check_keys("funding", funding, ("rate_per_8h",))
    return search, train, decision, fees, funding


def parse_spec(raw: dict) -> ResearchSpec:
    """A checked :class:`ResearchSpec` from a mapping; :class:`SpecError` names the key."""
    if not isinstance(raw, dict):
        raise SpecError("a research spec is a mapping (YAML or JSON object)")
    _check_keys("spec", raw, ("name", "datasets", "from", "to", "walk_forward", "models",
                              "seeds", "search", "train", "decision", "fees", "funding",
                              "features", "labels"))
    for key in ("datasets", "walk_forward", "models"):
        if not raw.get(key):
            raise SpecError(f"spec: '{key}' is required")
    datasets = raw["datasets"]
    datasets = (datasets,) if isinstance(datasets, str) else tuple(str(d) for d in datasets)
    features, labels = _feature_label_specs(raw)
    layout = _layout(raw["walk_forward"], labels.max_horizon)
    models = tuple(_model(i, m) for i, m in enumerate(raw["models"]))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise SpecError(f"models: names must be unique, got {names}")
    seeds = raw.get("seeds", 1)
    seeds = tuple(range(int(seeds))) if isinstance(seeds, int) else tuple(int(s) for s in seeds)
    if not seeds:
        raise SpecError("seeds: at least one")
    search, train, decision, fees, funding = _sections(raw)
    spec = ResearchSpec(
        name=str(raw.get("name", "research")), datasets=datasets, layout=layout, models=models,
        seeds=seeds, trials_per_fold=int(search.get("trials_per_fold", 1)),
        concurrency=int(search.get("concurrency", 2)),
        objective=search.get("objective", "val_log_loss"), train=train,
        min_trades=int(decision.get("min_trades", 20)),
        fee=float(fees.get("per_side", BYBIT_TAKER)),
        funding_rate=float(funding.get("rate_per_8h", DEFAULT_FUNDING_RATE)),
        date_from=None if raw.get("from") is None else str(raw["from"]),
        date_to=None if raw.get("to") is None else str(raw["to"]),
        features=features.to_dict(), labels=labels.to_dict())
    if spec.trials_per_fold < 1 or spec.concurrency < 1:
        raise SpecError("search: trials_per_fold and concurrency must be >= 1")
    for m in models:  # a bad field surfaces now, not in a worker an hour later
        if m.network:
            try:
                spec.train_config(m, {}, 0)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"models.{m.name}: {exc}") from None
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
