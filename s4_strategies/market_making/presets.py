"""Per-instrument presets for the market maker: the real price tick and lot step of each
embedded dataset, price-grid helpers, and per-symbol parameters. No backtrader.

:data:`INSTRUMENTS` maps an embedded dataset name to ``AvellanedaStoikovStrategy``
overrides in its units (price, contracts of the base asset):

- ``tick``: the exchange's price increment (price);
- ``size_step``: the exchange's quantity step, the lot step (contracts);
- ``lot``: the base quote size (contracts), a multiple of ``size_step``, about 600 USDT at
  2024 prices for every instrument (0.01 BTC, 0.2 ETH, 4 SOL), so that ``max_inventory``
  (in lots) is about the same notional everywhere. ``gamma`` (1/(price·lot)) is not scaled
  per instrument: pass it per symbol.

Quoting with a tick finer than the exchange's puts orders on prices the exchange would
reject (with 0.01 on the USD-M BTCUSDT sample, whose tick is 0.1, 91 % of them).
:func:`instrument_preset` answers a dataset name; a dataset it does not know gets the tick
its own prices are quoted to (:func:`tick_from_prices`) when the caller passes them.

Per-symbol parameters (:func:`instrument_overrides`): ``{"BTCUSDT": {"gamma": 1e-3},
"*": {...}}`` or a flat dict, merged over the presets into the strategy's ``instruments``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["INSTRUMENTS", "feed_names", "instrument_overrides", "instrument_preset", "on_grid",
           "tick_from_prices"]

# Sources: the exchanges' instrument filters (Binance spot / USD-M exchangeInfo PRICE_FILTER
# tickSize and LOT_SIZE stepSize; Bybit v5 /market/instruments-info, linear, priceFilter
# tickSize and lotSizeFilter qtyStep), checked against the embedded data: every bid, ask and
# trade price of both tick samples is on the tick, every size on the lot step, and the
# 2023-2024 Bybit bars (the bars preset's period) are on these ticks, their volumes on these
# steps (tests/test_market_making_cli.py). Bybit's ticks were 5 times coarser in 2021-2022
# (0.5, 0.05, 0.005): there these ticks are finer than the exchange's.
INSTRUMENTS: dict[str, dict[str, float]] = {
    # Binance spot BTCUSDT: tickSize 0.01, stepSize 0.00001 BTC
    "binance:BTCUSDT": dict(tick=0.01, size_step=0.00001, lot=0.01),
    # Binance USD-M perpetual BTCUSDT: tickSize 0.10, stepSize 0.001 BTC
    "binance-usdm:BTCUSDT": dict(tick=0.1, size_step=0.001, lot=0.01),
    # Bybit linear BTCUSDT: tickSize 0.10, qtyStep 0.001 BTC
    "bybit:BTCUSDT:60": dict(tick=0.1, size_step=0.001, lot=0.01),
    # Bybit linear ETHUSDT: tickSize 0.01, qtyStep 0.01 ETH
    "bybit:ETHUSDT:60": dict(tick=0.01, size_step=0.01, lot=0.2),
    # Bybit linear SOLUSDT: qtyStep 0.1 SOL. Tick from the data: its 2023-2024 prices are
    # quoted to 0.001 (e.g. 148.055, 21.247), which a tick of 0.010 (Bybit's instrument info
    # as quoted to us, not checked here: no network) could not print.
    "bybit:SOLUSDT:60": dict(tick=0.001, size_step=0.1, lot=4.0),
}

_SUFFIXES = (":trades", ":bbo")  # the two halves of a tick dataset name the same instrument


def _base_name(dataset: str) -> str:
    for suffix in _SUFFIXES:
        dataset = dataset.removesuffix(suffix)
    return dataset


def _decimal_grid(p: np.ndarray, rel: float, max_decimals: int) -> float | None:
    """The coarsest ``10^-d`` grid (``d <= max_decimals``) every price is on, within 1/1000
    of a step or ``rel`` of its value, as the gcd of the prices in steps; ``None`` if none is
    (or a grid is finer than ``rel`` resolves)."""
    for decimals in range(max_decimals + 1):
        scaled = p * 10.0**decimals
        slack = np.maximum(1e-3, scaled * rel)
        if slack.max() > 0.25:
            return None
        steps = np.round(scaled)
        if np.all(np.abs(scaled - steps) <= slack):
            return float(np.gcd.reduce(steps.astype(np.int64))) / 10.0**decimals
    return None


def tick_from_prices(prices, max_decimals: int = 9) -> float:
    """The price grid ``prices`` are quoted on: the largest step (price) of which every
    finite price is an integer multiple, found with the fewest decimals that hold them all.

    That is the tick when the sample uses the finest steps (any real sample does), else a
    multiple of it (``[100.0, 100.5, 101.0]`` gives 0.5). Prices that went through float32
    (38.7225 read back as 38.72249985) are matched in a second pass, within 2^-23 of their
    value. ``ValueError`` when there are no finite prices, one is <= 0, or they are on no
    grid of ``10^-max_decimals`` or coarser (e.g. dividend-adjusted closes).
    """
    p = np.asarray(prices, dtype=float).ravel()
    p = p[np.isfinite(p)]
    if not len(p) or np.any(p <= 0):
        raise ValueError("tick_from_prices needs finite prices > 0")
    for rel in (2.0**-50, 2.0**-23):  # float64, then float32 rounding
        tick = _decimal_grid(p, rel, max_decimals)
        if tick is not None:
            return tick
    raise ValueError(f"prices are on no decimal grid of 1e-{max_decimals} or coarser; pass the "
                     "tick yourself")


def on_grid(price, tick: float, tol: float = 1e-6):
    """Whether ``price`` (a number or an array) is an integer multiple of ``tick``, within
    ``tol`` ticks; an array gives a boolean array."""
    steps = np.asarray(price, dtype=float) / tick
    ok = np.abs(steps - np.round(steps)) <= tol
    return bool(ok) if ok.ndim == 0 else ok


def instrument_preset(dataset: str, prices=None) -> dict:
    """Strategy overrides for ``dataset`` (an embedded name; a trailing ``:trades``/``:bbo``
    is ignored): ``{"tick", "size_step", "lot"}`` from :data:`INSTRUMENTS`; for a dataset not
    there, ``{"tick": tick_from_prices(prices)}`` when its ``prices`` are given (lot and
    size step stay the strategy's), else a ``ValueError`` listing the known names."""
    name = _base_name(dataset)
    if name in INSTRUMENTS:
        return dict(INSTRUMENTS[name])
    if prices is None:
        raise ValueError(f"no instrument preset for {dataset!r}; known: "
                         f"{', '.join(INSTRUMENTS)} (or pass the dataset's prices to derive "
                         "its tick)")
    try:
        return {"tick": tick_from_prices(prices)}
    except ValueError as exc:
        raise ValueError(f"{dataset}: {exc}") from None


def _symbol(dataset: str) -> str:
    parts = _base_name(dataset).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def feed_names(datasets: Iterable[str]) -> dict[str, str]:
    """``{feed name: dataset}``: each dataset's symbol (``"binance:BTCUSDT"`` →
    ``"BTCUSDT"``), or its full name (less ``:trades``/``:bbo``) when several share a symbol.
    A dataset given twice is a ``ValueError``."""
    bases = [_base_name(d) for d in datasets]
    twice = sorted({b for b in bases if bases.count(b) > 1})
    if twice:
        raise ValueError(f"dataset(s) given twice: {', '.join(twice)}")
    symbols = [_symbol(b) for b in bases]
    return {(s if symbols.count(s) == 1 else b): b for s, b in zip(symbols, bases)}


def _named_feeds(key: str, feeds: Mapping[str, str]) -> tuple[list[str], int]:
    """The feeds a per-symbol key names and its precedence: a feed or dataset name (2),
    else every feed of that symbol (1)."""
    exact = [n for n, d in feeds.items() if key in (n, d)]
    if exact:
        return exact, 2
    return [n for n, d in feeds.items() if _symbol(d) == key], 1


def _check_keys(params: Mapping, keys: frozenset, where: str) -> None:
    unknown = sorted(set(params) - keys)
    if unknown:
        raise ValueError(f"unknown strategy parameter(s) for {where}: {', '.join(unknown)}")


def instrument_overrides(feeds: Mapping[str, str], params: Mapping | None, keys: Iterable[str],
                         presets: Mapping[str, Mapping] | None = None) -> tuple[dict, dict]:
    """Split ``params`` into ``(common, instruments)`` for ``AvellanedaStoikovStrategy``.

    - ``feeds``: ``{feed name: dataset}`` (:func:`feed_names`); ``keys``: the strategy's
      parameter names; ``presets``: ``{feed name: overrides}`` (:func:`instrument_preset`).
    - ``params``: a flat dict (every key a strategy parameter: for every feed), a per-symbol
      mapping ``{"BTCUSDT": {...}, "*": {...}}`` (keys: ``"*"`` for every feed, a symbol for
      every feed of that symbol, a feed or dataset name for that feed), or both mixed; an
      ``"instruments"`` entry is read as per-feed. Anything else is a ``ValueError``.

    ``common`` (flat keys and ``"*"``) goes to the strategy's params; ``instruments[feed]``
    is the feed's preset less the keys ``common`` sets, then its symbol's entry, then its own
    (later wins). Feeds with no overrides are left out.
    """
    keys = frozenset(keys) - {"instruments"}
    params = dict(params or {})
    nested = dict(params.pop("instruments", None) or {})
    common = dict(params.pop("*", None) or {})
    for key in [k for k in params if k not in keys]:
        nested[key] = params.pop(key)
    _check_keys(common, keys, "'*'")
    common.update(params)
    ranked: dict[str, list] = {name: [] for name in feeds}
    for key, values in nested.items():
        names, rank = _named_feeds(key, feeds)
        if not names or not isinstance(values, Mapping):
            known = ", ".join(f"{n} ({d})" for n, d in feeds.items())
            raise ValueError(f"{key!r} is neither a strategy parameter nor a feed with a mapping "
                             f"of parameters; feeds: {known}")
        _check_keys(values, keys, key)
        for name in names:
            ranked[name].append((rank, dict(values)))
    instruments = {}
    for name in feeds:
        merged = {k: v for k, v in (presets or {}).get(name, {}).items() if k not in common}
        for _, values in sorted(ranked[name], key=lambda rv: rv[0]):
            merged.update(values)
        if merged:
            instruments[name] = merged
    return common, instruments
