"""Causal microstructure features of a merged tick stream (``feeds.ticks.load_ticks``), on a
regular time grid, and the next-mid-move label. Plain numpy/pandas (no torch, no backtrader).

Why a grid. The events arrive at irregular times (hundreds a second in a fast market, none
for a second in a quiet one) and the label is a move over ``horizon_s`` *seconds*. Sampling
the book every ``grid_ms`` milliseconds (the state after the last event at or before each
grid time, flows summed over the step) makes one model step one fixed slice of time: the
S4D step size Δ, the EW time constants and the label horizon all become fixed numbers of
steps, and a whole sample fits one sequence of a few thousand steps. 100 ms keeps most of
the event-time detail (a step holds ~20 events on the USD-M sample) with the label 10 steps
ahead.

Grid. ``g_k = origin + k·grid`` with ``origin`` the first event's time rounded up to the
grid (integer nanoseconds since the epoch); step ``k`` holds the events with
``g_{k-1} < t <= g_k`` and its state is the book after the last of them. An empty step keeps
the previous state.

Per event ``i`` (Cont, Kukanov & Stoikov 2014, "The price impact of order book events")::

    e_i = 1{b_i >= b_{i-1}} B_i - 1{b_i <= b_{i-1}} B_{i-1}
        - 1{a_i <= a_{i-1}} A_i + 1{a_i >= a_{i-1}} A_{i-1}

``b, a`` best bid / ask, ``B, A`` their sizes (``e_0 = 0``; a trade event carries an unchanged
book, so its ``e`` is 0). Trades add their sign ``s = trade_side`` (+1 buyer-initiated) and
signed volume ``s·volume``.

Features at step ``k`` (all from events at or before ``g_k``; ``lam_tau = exp(-grid/tau)``,
``ews_tau(x)_k = x_k + lam_tau·ews_tau(x)_{k-1}``, ``ewm_tau(x) = ews_tau(x)/ews_tau(1)``)::

    ofi            z(OFI_k), OFI_k = sum of e_i over step k
    ofi_1s, ofi_5s z(ews_1(OFI)), z(ews_5(OFI))
    qimb           (B - A)/(B + A) at g_k            (queue imbalance; Gould & Bonart 2016)
    spread         log(max(spread / tick, 1))         (0 at one tick or less)
    ret_1s, ret_5s z(log m_k - log m_{k-n}), n = 1 s, 5 s of steps (from step 0 while k < n)
    vol_ratio      0.5 log((ewm_5(r^2) + 1e-16)/(ewm_60(r^2) + 1e-16)), r_k = log m_k/m_{k-1}
    trade_imb_1s   ews_1(s·v)/ews_1(v)                (0 before any volume)
    signed_vol_1s  z(ews_1(s·v))
    last_sign      sign of the last trade (0 before any)
    since_trade    log(1 + seconds since the last trade)  (since the first event before any)
    activity       log(1 + events in step k) - ewm_60(log(1 + events))_{k-1}   (0 at k = 0)
    last_move      sign of the last non-zero mid change (0 before any)

``z(x)_k = clip(x_k / sqrt(ewm_scale(x^2)_{k-1} + 1e-20), ±clip)``: scaled by its own EW
root mean square over the *previous* steps (``scale_tc`` seconds), 0 at ``k = 0``. No scale
is fitted on the sample, so the features need no normaliser and are the same in a backtest
and live.

Label (``tick_labels``): ``y_k = log m_{k+h} - log m_k``, ``h = horizon_s / grid`` steps, the
mid log return over the next ``horizon_s`` seconds (NaN for the last ``h`` steps), and its
class 0 down / 1 unchanged / 2 up. It reads events up to ``g_k + horizon_s``: a purge of at
least ``h`` steps must separate training rows from the rows scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

NS = 1_000_000_000
FLOOR = 1e-20  # keeps z() finite where a scale is still 0
VOL_EPS = 1e-16
EVENT_COLUMNS = ("bid", "ask", "bid_size", "ask_size", "mid", "trade_side", "volume")


@dataclass(frozen=True)
class TickFeatureSpec:
    """The grid, the time constants (seconds) and the label horizon (seconds)."""

    tick: float = 0.1  # price increment of the instrument (price units)
    grid_ms: int = 100
    horizon_s: float = 1.0
    scale_tc: float = 60.0  # EW time constant of the z() scales
    fast_tc: float = 1.0
    slow_tc: float = 5.0
    vol_fast_tc: float = 5.0
    vol_slow_tc: float = 60.0
    return_windows_s: tuple[float, ...] = (1.0, 5.0)
    clip: float = 5.0
    warmup_s: float = 20.0  # steps before this are not trained or scored on
    version: int = 1

    def __post_init__(self):
        object.__setattr__(self, "return_windows_s", tuple(float(w) for w in
                                                           self.return_windows_s))
        if not (self.tick > 0 and self.grid_ms >= 1 and self.horizon_s > 0):
            raise ValueError("need tick > 0, grid_ms >= 1 and horizon_s > 0")
        for w in (self.horizon_s, *self.return_windows_s):
            if abs(w * 1000 / self.grid_ms - round(w * 1000 / self.grid_ms)) > 1e-9:
                raise ValueError(f"{w} s is not a whole number of {self.grid_ms} ms steps")

    @property
    def grid_ns(self) -> int:
        return int(self.grid_ms) * 1_000_000

    @property
    def dt(self) -> float:
        """Grid step in seconds."""
        return self.grid_ms / 1000.0

    def steps(self, seconds: float) -> int:
        return int(round(seconds / self.dt))

    @property
    def horizon_steps(self) -> int:
        return self.steps(self.horizon_s)

    @property
    def warmup(self) -> int:
        return self.steps(self.warmup_s)

    def lam(self, tc: float) -> float:
        """Per-step decay ``exp(-grid/tc)`` of an EW with time constant ``tc`` seconds."""
        return math.exp(-self.dt / tc)

    @property
    def names(self) -> list[str]:
        rets = [f"ret_{w:g}s" for w in self.return_windows_s]
        return ["ofi", "ofi_1s", "ofi_5s", "qimb", "spread", *rets, "vol_ratio",
                "trade_imb_1s", "signed_vol_1s", "last_sign", "since_trade", "activity",
                "last_move"]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["return_windows_s"] = list(self.return_windows_s)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TickFeatureSpec:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tick feature spec fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# -- event level -------------------------------------------------------------------------
def event_ofi(bid, ask, bid_size, ask_size) -> np.ndarray:
    """Cont–Kukanov–Stoikov order-flow imbalance ``e_i`` of every event (size units); e_0 = 0."""
    b, a = np.asarray(bid, float), np.asarray(ask, float)
    B, A = np.asarray(bid_size, float), np.asarray(ask_size, float)
    e = np.zeros(len(b))
    if len(b) > 1:
        db, da = b[1:] - b[:-1], a[1:] - a[:-1]
        e[1:] = ((db >= 0) * B[1:] - (db <= 0) * B[:-1]
                 - (da <= 0) * A[1:] + (da >= 0) * A[:-1])
    return e


def _last_nonzero_sign(x: np.ndarray) -> np.ndarray:
    """Sign of the last non-zero finite entry of ``x`` up to each position (0 before any)."""
    s = pd.Series(np.where(np.isfinite(x) & (x != 0), np.sign(x), np.nan))
    return s.ffill().fillna(0.0).to_numpy()


def event_arrays(events: pd.DataFrame) -> dict[str, np.ndarray]:
    """The per-event numbers the features read (``EVENT_COLUMNS`` of a tick frame), with
    the time as integer nanoseconds since the epoch."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"tick features need columns {list(EVENT_COLUMNS)}; missing {missing}")
    if not isinstance(events.index, pd.DatetimeIndex):
        raise ValueError("tick features need a DatetimeIndex")
    out = {c: events[c].to_numpy(dtype=np.float64) for c in EVENT_COLUMNS}
    out["t_ns"] = events.index.as_unit("ns").asi8
    return out


# -- grid --------------------------------------------------------------------------------
def grid_steps(t_ns: np.ndarray, grid_ns: int) -> tuple[int, np.ndarray]:
    """``origin`` (the first time rounded up to the grid, ns) and each event's step
    ``k = ceil((t - origin)/grid)`` (step k holds ``g_{k-1} < t <= g_k``; the first event is
    in step 0)."""
    t = np.asarray(t_ns, dtype=np.int64)
    origin = int(-(-t[0] // grid_ns) * grid_ns)
    return origin, -((origin - t) // grid_ns)


def step_last_event(k: np.ndarray, n_steps: int) -> np.ndarray:
    """Index of the last event at or before each grid time (``k`` sorted, from
    ``grid_steps``; every step from the first event's on has one)."""
    ends = np.flatnonzero(np.append(k[1:] != k[:-1], True))  # last event of each busy step
    last = np.full(n_steps, -1)
    last[k[ends]] = ends
    return np.maximum.accumulate(last)  # (n_steps,)


def grid_aggregates(events: pd.DataFrame, spec: TickFeatureSpec) -> pd.DataFrame:
    """One row per grid step ``g_k`` (index: UTC grid times): the book at the end of the
    step (``bid, ask, bid_size, ask_size, mid``), flows summed over it (``ofi``, ``sv``
    signed volume, ``vol`` volume, ``n_events``), and the state carried from the events so
    far (``last_trade_s`` seconds since the last trade, ``last_sign``, ``last_move``)."""
    ev = event_arrays(events)
    n = len(ev["t_ns"])
    if n == 0:
        raise ValueError("no events")
    origin, k = grid_steps(ev["t_ns"], spec.grid_ns)
    n_steps = int(k[-1]) + 1
    side = np.nan_to_num(ev["trade_side"], nan=0.0)
    is_trade = np.isfinite(ev["trade_side"])
    vol = np.where(is_trade, ev["volume"], 0.0)
    flows = {"ofi": event_ofi(ev["bid"], ev["ask"], ev["bid_size"], ev["ask_size"]),
             "sv": side * vol, "vol": vol, "n_events": np.ones(n)}
    out = {name: np.bincount(k, weights=x, minlength=n_steps) for name, x in flows.items()}
    last = step_last_event(k, n_steps)  # (n_steps,) the event whose book each step holds
    seen = np.maximum.accumulate(np.where(is_trade, np.arange(n), -1))  # last trade so far
    last_trade = np.where(seen >= 0, ev["t_ns"][np.maximum(seen, 0)], ev["t_ns"][0])  # int64
    g_ns = origin + np.arange(n_steps, dtype=np.int64) * spec.grid_ns
    state = {c: ev[c][last] for c in ("bid", "ask", "bid_size", "ask_size", "mid")}
    state["last_trade_s"] = (g_ns - last_trade[last]) / NS
    state["last_sign"] = _last_nonzero_sign(np.where(is_trade, side, np.nan))[last]
    state["last_move"] = _last_nonzero_sign(np.concatenate([[0.0], np.diff(ev["mid"])]))[last]
    index = pd.DatetimeIndex(pd.to_datetime(g_ns, unit="ns", utc=True), name="grid")
    return pd.DataFrame({**state, **out}, index=index)


# -- grid features -----------------------------------------------------------------------
def ew_sum(x: np.ndarray, lam: float) -> np.ndarray:
    """``s_k = x_k + lam·s_{k-1}``, ``s_{-1} = 0``."""
    return lfilter([1.0], [1.0, -lam], np.asarray(x, dtype=np.float64))


def ew_mean(x: np.ndarray, lam: float) -> np.ndarray:
    """``ews(x)/ews(1)``: the EW mean of ``x`` over steps <= k (pandas ``adjust=True``)."""
    return ew_sum(x, lam) / ew_sum(np.ones(len(x)), lam)


def scaled(x: np.ndarray, lam: float, clip: float) -> np.ndarray:
    """``z(x)``: ``x_k`` over the EW root mean square of ``x`` over steps < k, clipped;
    0 at k = 0."""
    x = np.asarray(x, dtype=np.float64)
    ms = ew_mean(x * x, lam)
    out = np.zeros(len(x))
    out[1:] = np.clip(x[1:] / np.sqrt(ms[:-1] + FLOOR), -clip, clip)
    return out


def lagged_log_return(logm: np.ndarray, n: int) -> np.ndarray:
    """``log m_k - log m_{max(k-n, 0)}``."""
    lag = np.concatenate([np.full(min(n, len(logm)), logm[0]), logm[: max(len(logm) - n, 0)]])
    return logm - lag


def grid_features(agg: pd.DataFrame, spec: TickFeatureSpec) -> pd.DataFrame:
    """The features of the module doc from ``grid_aggregates`` rows (same index)."""
    lam_s, lam_f, lam_5 = spec.lam(spec.scale_tc), spec.lam(spec.fast_tc), spec.lam(spec.slow_tc)
    c = spec.clip
    ofi, sv, vol = (agg[k].to_numpy(float) for k in ("ofi", "sv", "vol"))
    B, A = agg["bid_size"].to_numpy(float), agg["ask_size"].to_numpy(float)
    logm = np.log(agg["mid"].to_numpy(float))
    r = lagged_log_return(logm, 1)
    tot = B + A
    e_sv, e_vol = ew_sum(sv, lam_f), ew_sum(vol, lam_f)
    la = np.log1p(agg["n_events"].to_numpy(float))
    act = np.zeros(len(la))
    act[1:] = la[1:] - ew_mean(la, lam_s)[:-1]
    cols = {
        "ofi": scaled(ofi, lam_s, c),
        "ofi_1s": scaled(ew_sum(ofi, lam_f), lam_s, c),
        "ofi_5s": scaled(ew_sum(ofi, lam_5), lam_s, c),
        "qimb": np.where(tot > 0, (B - A) / np.where(tot > 0, tot, 1.0), 0.0),
        "spread": np.log(np.maximum((agg["ask"].to_numpy(float) - agg["bid"].to_numpy(float))
                                    / spec.tick, 1.0)),
    }
    for w in spec.return_windows_s:
        cols[f"ret_{w:g}s"] = scaled(lagged_log_return(logm, spec.steps(w)), lam_s, c)
    cols["vol_ratio"] = 0.5 * np.log((ew_mean(r * r, spec.lam(spec.vol_fast_tc)) + VOL_EPS)
                                     / (ew_mean(r * r, spec.lam(spec.vol_slow_tc)) + VOL_EPS))
    cols["trade_imb_1s"] = np.where(e_vol > 0, e_sv / np.where(e_vol > 0, e_vol, 1.0), 0.0)
    cols["signed_vol_1s"] = scaled(e_sv, lam_s, c)
    cols["last_sign"] = agg["last_sign"].to_numpy(float)
    cols["since_trade"] = np.log1p(agg["last_trade_s"].to_numpy(float))
    cols["activity"] = act
    cols["last_move"] = agg["last_move"].to_numpy(float)
    return pd.DataFrame({k: cols[k] for k in spec.names}, index=agg.index)


def tick_features(events: pd.DataFrame, spec: TickFeatureSpec | None = None) -> pd.DataFrame:
    """Every feature of ``spec`` at every grid step of ``events`` (a ``load_ticks`` frame)."""
    spec = spec or TickFeatureSpec()
    return grid_features(grid_aggregates(events, spec), spec)


def tick_labels(agg: pd.DataFrame, spec: TickFeatureSpec) -> pd.DataFrame:
    """``y``: the mid log return over the next ``horizon_s`` seconds of every grid step
    (NaN where it runs past the data), ``cls``: 0 down, 1 unchanged, 2 up (NaN likewise)."""
    logm = np.log(agg["mid"].to_numpy(float))
    h = spec.horizon_steps
    y = np.full(len(logm), np.nan)
    if h < len(logm):
        y[: len(logm) - h] = logm[h:] - logm[: len(logm) - h]
    cls = np.where(np.isnan(y), np.nan, np.sign(y) + 1.0)
    return pd.DataFrame({"y": y, "cls": cls}, index=agg.index)
