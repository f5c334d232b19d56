"""Per-instrument parameters for the market maker, and their validation. No backtrader.

A strategy quoting several instruments takes one set of params (``self.p`` in backtrader)
and per-instrument overrides (``instruments={"PERP": dict(tick=0.1, gamma=1e-3)}``, keyed by
the feed's name). :func:`instrument_params` gives the object to read for one instrument:
``self.p`` itself when it has no overrides, else a frozen :class:`InstrumentParams` that
answers the overridden keys and falls back to ``self.p`` for the others. Both are checked by
:func:`validate_params`: a bad value raises ``ValueError`` naming the parameter and the feed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

from .session import parse_session_close

__all__ = ["InstrumentParams", "instrument_params", "param_keys", "validate_params"]

_POSITIVE = ("gamma", "lot", "tick", "horizon", "sigma_window", "calib_window", "trend_fast",
             "trend_slow")
_POSITIVE_OR_NONE = ("sigma", "A", "kappa", "bar_seconds", "trend_horizon", "half_spread",
                     "size_step")
_NON_NEGATIVE = ("max_inventory", "eta", "recalibrate", "close_window", "flatten_before",
                 "min_spread", "min_spread_bps", "close_skew", "trend_cap", "inventory_nudge",
                 "requote_threshold", "skew")
_NON_NEGATIVE_OR_NONE = ()
_FINITE = ("trend_weight",)  # any sign: a negative weight leans against the trend
_COUNTS = ("min_trades", "min_bars")  # integers >= 1
_FLAGS = ("post_only", "stamp_at_open", "flatten_at_close")
# may be inf (no limit / no horizon / never again / the whole day); every other number must
# be finite
_MAY_BE_INF = frozenset({"horizon", "max_inventory", "recalibrate", "sigma_window",
                         "calib_window", "close_window", "flatten_before"})
_CHOICES = {"model": ("as", "glft", "linear"), "sigma_source": ("mid", "trade"),
            "requote": ("live", "aggressive")}


def param_keys(params) -> tuple[str, ...]:
    """The parameter names of a backtrader params object (``_getkeys()``), a mapping or any
    object with attributes."""
    if hasattr(params, "_getkeys"):
        return tuple(params._getkeys())
    if isinstance(params, Mapping):
        return tuple(params)
    return tuple(k for k in vars(params) if not k.startswith("_"))


def _get(params, key: str):
    return params[key] if isinstance(params, Mapping) else getattr(params, key)


class InstrumentParams:
    """Read-only parameters of one instrument: ``overrides`` over ``base``.

    ``ip.gamma`` is ``overrides["gamma"]`` when overridden, else ``base.gamma`` (``base`` is
    the strategy's ``self.p``, a mapping or any object with attributes). Unknown keys in
    ``overrides`` (not among ``keys``, by default all of ``base``'s but ``skip``) raise
    ``ValueError`` naming them and the instrument. Values are not checked here; see
    :func:`instrument_params`.
    """

    __slots__ = ("name", "_base", "_overrides", "_keys")

    def __init__(self, base, overrides: Mapping | None = None, name: str = "", *,
                 keys: Iterable[str] | None = None, skip: Iterable[str] = ("instruments",)):
        skip = set(skip)
        keys = tuple(k for k in (param_keys(base) if keys is None else keys) if k not in skip)
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(keys)
        if unknown:
            raise ValueError(f"unknown parameter(s) for {name}: {sorted(unknown)}")
        for attr, value in (("name", name), ("_base", base),
                            ("_overrides", MappingProxyType(overrides)), ("_keys", keys)):
            object.__setattr__(self, attr, value)

    def __getattr__(self, key: str):  # only called for names that are not slots
        if key.startswith("_"):
            raise AttributeError(key)
        if key in self._overrides:
            return self._overrides[key]
        if key in self._keys:
            return _get(self._base, key)
        raise AttributeError(f"{type(self).__name__} has no parameter {key!r}")

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, key):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _getkeys(self) -> tuple[str, ...]:
        return self._keys

    @property
    def overrides(self) -> Mapping:
        """The overridden keys and their values (read-only)."""
        return self._overrides

    def as_dict(self) -> dict:
        """Every parameter and its value for this instrument."""
        return {k: getattr(self, k) for k in self._keys}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {dict(self._overrides)!r})"


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _fail(name: str, key: str, requirement: str, value):
    where = f" for {name}" if name else ""
    raise ValueError(f"{key}{where} must be {requirement}, got {value!r}")


def _check(params, name, present, keys, requirement, ok, allow_none=False):
    for key in keys:
        if key not in present:
            continue
        value = _get(params, key)
        if value is None and allow_none:
            continue
        finite = key in _MAY_BE_INF or (_is_number(value) and math.isfinite(value))
        if not (_is_number(value) and finite and ok(value)):
            what = requirement if key in _MAY_BE_INF else requirement.replace("a ", "a finite ")
            _fail(name, key, what + (" or None" if allow_none else ""), value)


def _is_flag(x) -> bool:
    return isinstance(x, (bool, np.bool_))


def _session_close_ok(value) -> bool:
    if _is_number(value):
        return 0 <= value < 86_400  # not taken modulo a day: 90000 s is a mistake
    try:
        parse_session_close(value)  # None, "HH:MM[:SS]" or a datetime.time
    except (TypeError, ValueError):
        return False
    return True


def _check_other(params, name, present):
    """Counts, flags, choices and the session close."""
    for key in _COUNTS:
        value = _get(params, key) if key in present else 1
        if not (isinstance(value, numbers.Integral) and not _is_flag(value) and value >= 1):
            _fail(name, key, "an integer >= 1", value)
    for key in _FLAGS:
        if key in present and not _is_flag(_get(params, key)):
            _fail(name, key, "True or False", _get(params, key))
    for key, choices in _CHOICES.items():
        if key in present and _get(params, key) not in choices:
            _fail(name, key, " or ".join(map(repr, choices)), _get(params, key))
    if "model" in present and _get(params, "model") == "linear" and \
            ("half_spread" not in present or _get(params, "half_spread") is None):
        _fail(name, "half_spread", "a number > 0 for model='linear'", None)
    if "session_close" in present:
        value = _get(params, "session_close")
        if not _session_close_ok(value):
            _fail(name, "session_close", "None, 'HH:MM' (UTC) or seconds in [0, 86400)", value)


def check_size_steps(steps) -> None:
    """A broker's ``size_step``: None, a number > 0, or ``{feed name: None | number > 0}``."""
    for name, step in (steps.items() if isinstance(steps, Mapping) else [("", steps)]):
        if step is not None and not (_is_number(step) and math.isfinite(step) and step > 0):
            raise ValueError(f"size_step{f' for {name}' if name else ''} must be a number > 0 "
                             f"or None (no step), got {step!r}")


def validate_params(params, name: str = ""):
    """Check the market maker's parameter values (those present in ``params``); returns
    ``params``. Raises ``ValueError`` naming the parameter and the instrument ``name``:
    ``gamma, lot, tick, horizon`` and the windows / EMA time constants must be > 0;
    ``sigma, A, kappa, bar_seconds, trend_horizon`` > 0 when given; ``max_inventory, eta,
    recalibrate, close_window, flatten_before, min_spread, min_spread_bps, close_skew,
    trend_cap, inventory_nudge, requote_threshold, skew`` ≥ 0; ``size_step`` > 0 or None (no
    step; 0 used to mean that and is refused); ``half_spread`` > 0 when given (and given
    for ``model="linear"``);
    ``trend_weight`` any number; every number finite except ``horizon, max_inventory,
    recalibrate`` and the windows, which may be ``inf``; ``min_trades, min_bars`` integers
    ≥ 1; ``post_only, stamp_at_open, flatten_at_close`` booleans; ``model`` in
    ``("as", "glft", "linear")``, ``sigma_source`` in ``("mid", "trade")``, ``requote`` in
    ``("live", "aggressive")``; ``session_close`` None,
    ``"HH:MM"`` or seconds in [0, 86400). ``trend`` is checked by the strategy (it needs the
    feed).
    """
    present = set(param_keys(params))
    positive, non_negative = (lambda v: v > 0), (lambda v: v >= 0)
    _check(params, name, present, _POSITIVE, "a number > 0", positive)
    _check(params, name, present, _POSITIVE_OR_NONE, "a number > 0", positive, allow_none=True)
    _check(params, name, present, _NON_NEGATIVE, "a number >= 0", non_negative)
    _check(params, name, present, _NON_NEGATIVE_OR_NONE, "a number >= 0", non_negative,
           allow_none=True)
    _check(params, name, present, _FINITE, "a number", lambda v: True)
    _check_other(params, name, present)
    return params


def instrument_params(base, overrides: Mapping | None = None, name: str = "", *,
                      skip: Iterable[str] = ("instruments",)):
    """The parameters to read for one instrument, validated: ``base`` itself without
    ``overrides``, else an :class:`InstrumentParams` of ``overrides`` over ``base``."""
    params = InstrumentParams(base, overrides, name, skip=skip) if overrides else base
    return validate_params(params, name)
