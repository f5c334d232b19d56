"""Fill quality of a market maker: markouts, fills by kind, placement→fill times, fills in
flight and inventory-limit breaches. Plain functions (arrays, lists and DataFrames in,
numbers out), no backtrader; ``analyzers.market_making.MarketMakingAnalyzer`` reports them.

Units: times in epoch seconds (UTC) and durations in seconds, prices in the feed's quote
currency, sizes and positions in contracts; ``sign`` is +1 for a buy (a bid filled), −1 for
a sell (an ask filled). A fill log is a list of dicts, or a DataFrame, with the fields of
``MarketMakingBroker.fill_log`` (one entry per execution, in execution order): ``ref, data,
t, sign, price, size, kind, taker, placed, arrived, cancel_sent`` (``cancel_sent`` is not
``None`` for a fill "in flight": one that landed after a cancel was sent).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["HORIZONS", "KINDS", "fill_log_keys", "fills_by_kind", "fills_in_flight",
           "inventory_breaches", "markout_keys", "markouts", "placement_to_fill",
           "pool_breaches", "pool_markouts", "table_rows"]

HORIZONS = (1.0, 10.0, 60.0)
KINDS = ("through", "queue", "book", "taker", "market", "intensity", "touch")
LOG_FIELDS = ("ref", "data", "t", "sign", "price", "size", "kind", "taker", "placed",
              "arrived", "cancel_sent")


def _frame(log) -> pd.DataFrame:
    if isinstance(log, pd.DataFrame):
        return log
    return pd.DataFrame(list(log), columns=list(LOG_FIELDS))


def _side_stats(mk, bps, w, sel, left_out) -> dict:
    vol = float(w[sel].sum())
    ok = vol > 0
    return {"price": float(np.average(mk[sel], weights=w[sel])) if ok else None,
            "bps": float(np.average(bps[sel], weights=w[sel])) if ok else None,
            "n": int(sel.sum()), "volume": vol, "left_out": int(left_out)}


def markouts(fill_t, fill_sign, fill_price, fill_size, mid_t, mid, horizons=HORIZONS,
             tol=0.0) -> dict:
    """Size-weighted mean markout of fills ``h`` seconds after them, per side.

    markout = sign·(mid(t + h) − price) in price (positive: the fill made money ``h`` seconds
    later), and 1e4·markout/price in bps; mid(t + h) is the last mid at or before t + h
    (``mid_t`` ascending; times within ``tol`` seconds count as equal). A fill whose t + h is
    past the last mid (or before the first) is left out and counted in ``left_out``.

    Returns ``{h: {side: {"price", "bps", "n", "volume", "left_out"}}}`` with side ``"bid"``
    (buys), ``"ask"`` (sells) and ``"all"``; ``n`` and ``volume`` are the fills used and
    their size; ``price`` and ``bps`` are ``None`` when no fill is used.
    """
    t = np.asarray(fill_t, dtype=float)
    sign = np.asarray(fill_sign, dtype=float)
    price = np.asarray(fill_price, dtype=float)
    size = np.asarray(fill_size, dtype=float)
    mt, m = np.asarray(mid_t, dtype=float), np.asarray(mid, dtype=float)
    last = mt[-1] if len(mt) else -math.inf
    sides = {"bid": sign > 0, "ask": sign < 0, "all": np.ones(len(t), dtype=bool)}
    out = {}
    for h in horizons:
        idx = np.searchsorted(mt, t + h + tol, side="right") - 1
        ok = (idx >= 0) & (t + h <= last + tol)
        mk = sign[ok] * (m[idx[ok]] - price[ok])
        bps = 1e4 * mk / price[ok]
        out[h] = {side: _side_stats(mk, bps, size[ok], mask[ok], (mask & ~ok).sum())
                  for side, mask in sides.items()}
    return out


def pool_markouts(results, horizons=HORIZONS) -> dict:
    """``markouts`` of several feeds combined as one set of fills: ``n``, ``volume`` and
    ``left_out`` add up, ``price`` and ``bps`` are volume-weighted means (price markouts
    pooled across feeds mean something only when the feeds quote the same underlying)."""
    out = {}
    for h in horizons:
        out[h] = {}
        for side in ("bid", "ask", "all"):
            parts = [r[h][side] for r in results]
            vol = sum(p["volume"] for p in parts)
            used = [p for p in parts if p["volume"] > 0]
            out[h][side] = {
                "price": sum(p["price"] * p["volume"] for p in used) / vol if used else None,
                "bps": sum(p["bps"] * p["volume"] for p in used) / vol if used else None,
                "n": sum(p["n"] for p in parts), "volume": vol,
                "left_out": sum(p["left_out"] for p in parts)}
    return out


def markout_keys(result: dict) -> dict:
    """Flat analyzer keys of a ``markouts`` result: ``markout_{h}s`` (price, all fills),
    ``markout_{h}s_bps``, ``markout_{h}s_bid``/``_ask`` (and ``_bps``), ``markout_{h}s_n``
    (fills used) and ``markout_{h}s_left_out`` (fills too close to the end of the data)."""
    keys = {}
    for h, sides in result.items():
        tag = f"markout_{h:g}s"
        for side, st in sides.items():
            key = tag if side == "all" else f"{tag}_{side}"
            keys[key], keys[f"{key}_bps"] = st["price"], st["bps"]
        keys[f"{tag}_n"], keys[f"{tag}_left_out"] = sides["all"]["n"], sides["all"]["left_out"]
    return keys


def fills_by_kind(log) -> dict:
    """``{"fills_by_kind": {kind: executions}, "volume_by_kind": {kind: contracts}}``, every
    kind of :data:`KINDS` present (0 when none) plus any other kind the log holds."""
    frame = _frame(log)
    counts, volume = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0.0)
    for kind, size in zip(frame["kind"], frame["size"]):
        counts[kind] = counts.get(kind, 0) + 1
        volume[kind] = volume.get(kind, 0.0) + float(size)
    return {"fills_by_kind": counts, "volume_by_kind": volume}


def _time_stats(dt: np.ndarray) -> dict:
    if not len(dt):
        return {"median": None, "mean": None, "p10": None, "p90": None, "n": 0}
    p10, median, p90 = (float(x) for x in np.percentile(dt, [10, 50, 90]))
    return {"median": median, "mean": float(dt.mean()), "p10": p10, "p90": p90, "n": len(dt)}


def placement_to_fill(log) -> dict:
    """Seconds from an order's placement (``placed``) and from its arrival at the book
    (``arrived``) to each of its executions (``t``), one sample per execution:
    ``{"placed": stats, "arrived": stats}``, stats ``median, mean, p10, p90`` (linearly
    interpolated percentiles) and ``n``; ``None`` values when the log is empty."""
    frame = _frame(log)
    t = frame["t"].to_numpy(dtype=float)
    return {k: _time_stats(t - frame[k].to_numpy(dtype=float)) for k in ("placed", "arrived")}


def fills_in_flight(log) -> dict:
    """Executions on orders a cancel had already been sent for (``cancel_sent`` set):
    ``{"fills_in_flight": count, "volume_in_flight": contracts}``."""
    frame = _frame(log)
    flight = frame["cancel_sent"].notna().to_numpy()
    return {"fills_in_flight": int(flight.sum()),
            "volume_in_flight": float(frame["size"].to_numpy(dtype=float)[flight].sum())}


def fill_log_keys(log, data: str | None = None) -> dict:
    """The analyzer's fill-log keys for feed ``data`` (``None``: all feeds): ``fills_by_kind``,
    ``volume_by_kind``, ``fill_latency_median``/``_p90`` (s, placed → fill),
    ``arrival_to_fill_median`` (s), ``fills_in_flight``, ``volume_in_flight``. ``log``
    ``None`` (a broker without a fill log): by-kind dicts and times ``None``, counts 0."""
    if log is None:
        return {"fills_by_kind": None, "volume_by_kind": None, "fill_latency_median": None,
                "fill_latency_p90": None, "arrival_to_fill_median": None,
                "fills_in_flight": 0, "volume_in_flight": 0.0}
    frame = _frame(log)
    if data is not None:
        frame = frame[frame["data"] == data]
    lat = placement_to_fill(frame)
    return {**fills_by_kind(frame), "fill_latency_median": lat["placed"]["median"],
            "fill_latency_p90": lat["placed"]["p90"],
            "arrival_to_fill_median": lat["arrived"]["median"], **fills_in_flight(frame)}


def inventory_breaches(position_t, position, limit: float) -> dict:
    """Events where |position| exceeds ``limit`` (contracts; ``inf``: none), by more than a
    tolerance of 1e-12·max(1, limit). ``position[i]`` is the position after event ``i``'s
    fills, held until ``position_t[i + 1]`` (the last one for no time).

    Returns ``inventory_breaches`` (events over the limit), ``breach_episodes`` (runs of
    consecutive such events), ``max_breach`` (largest |position| − limit, contracts, 0 when
    none) and ``time_over_limit`` (seconds held over the limit).
    """
    t = np.asarray(position_t, dtype=float)
    over = np.abs(np.asarray(position, dtype=float)) - limit
    breach = over > 1e-12 * max(1.0, limit)
    starts = breach & ~np.r_[False, breach[:-1]]
    return {"inventory_breaches": int(breach.sum()), "breach_episodes": int(starts.sum()),
            "max_breach": float(over[breach].max()) if breach.any() else 0.0,
            "time_over_limit": float(np.diff(t)[breach[:-1]].sum())}


def pool_breaches(results) -> dict:
    """``inventory_breaches`` of several feeds: counts and time over the limit add up (time
    is summed over feeds), ``max_breach`` is the largest."""
    keys = ("inventory_breaches", "breach_episodes", "time_over_limit")
    out = {k: sum(r[k] for r in results) for k in keys}
    out["max_breach"] = max((r["max_breach"] for r in results), default=0.0)
    return out


def _num(v, scale=1.0, fmt="{:.2f}") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(
        scale * v)


def table_rows(s: dict) -> list[tuple[str, str]]:
    """``(label, value)`` rows for ``format_table`` from one analysis entry: markouts per
    side (bps), fills by kind, median placement → fill (ms), fills in flight, breaches."""
    rows = []
    for key in [k for k in s if k.startswith("markout_") and k.endswith("_bid_bps")]:
        tag = key[: -len("_bid_bps")]
        rows.append((f"markout {tag[8:]} bid / ask (bps)",
                     f"{_num(s[key])} / {_num(s.get(tag + '_ask_bps'))}"))
    kinds = s.get("fills_by_kind")
    rows.append(("fills by kind", "n/a" if kinds is None else str(sum(kinds.values()))))
    rows += [(f"  {kind}", str(n)) for kind, n in (kinds or {}).items() if n]
    rows.append(("placement→fill median (ms)",
                 _num(s.get("fill_latency_median"), 1e3, "{:.1f}")))
    rows.append(("fills in flight", str(s.get("fills_in_flight", 0))))
    rows.append(("inventory breaches / episodes",
                 f"{s.get('inventory_breaches', 0)} / {s.get('breach_episodes', 0)}"))
    rows.append(("time over limit (s)", _num(s.get("time_over_limit"), fmt="{:.1f}")))
    return rows
