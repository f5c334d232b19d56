"""The market maker's cross-check against hftbacktest (dev tooling for
``scripts/crosscheck_hftbacktest.py`` and the tests): one quoting rule, a constant
half-spread around the mid skewed linearly by inventory, run by each engine from the
recorded files, each at its own defaults.

- **Ours**: ``feeds.ticks.load_ticks`` (our merge of the recorded trades and bookTicker),
  ``MarketMakingBroker`` (its default partial fills; latency feed = the data's median feed
  latency as hftbacktest measures it, entry = response = cancel = the latency compared),
  ``MakerTakerCommInfo`` and the user-facing quoter, ``AvellanedaStoikovStrategy`` with
  ``model="linear"`` (``ConstantSpreadStrategy``) requoting ``"live"``, PnL split by
  ``MarketMakingAnalyzer``.
- **hftbacktest**: :mod:`.crosscheck_hbt` (its own converter on the same files, its
  ``NoPartialFillExchange`` and the data's own feed latency, ``constant_order_latency(x, x)``,
  the rule written again there).

Both use the same queue model (``risk_averse`` = ``risk_adverse_queue_model``, ``prob`` =
``power_prob_queue_model(3)``) and Bybit's maker fee. :func:`compare` runs one pair,
:func:`band_table` the grid the results page shows.
"""

from __future__ import annotations

import math
import time

import numpy as np

from s4_strategies.fees import BYBIT_MAKER, BYBIT_TAKER

DATASETS = {"usdm": "binance-usdm:BTCUSDT", "spot": "binance:BTCUSDT"}
#: the two spreads of the results page: (half_spread, skew per lot), max_inventory 5 lots
SPREADS = {"tight": dict(half_spread=0.05, skew=0.1), "wide": dict(half_spread=5.0, skew=2.0)}
RULE = dict(lot=0.01, max_inventory=5.0)
ROWS = ("fills_bid", "fills_ask", "volume_bid", "volume_ask", "quotes_bid", "quotes_ask",
        "quotes_rejected", "fill_ratio", "spread_pnl", "inventory_pnl", "fees", "total_pnl",
        "final_position")


def instrument(dataset: str) -> dict:
    """``tick`` and ``lot_size`` (the lot step) of an embedded tick dataset."""
    from s4_strategies.market_making.presets import instrument_preset

    p = instrument_preset(dataset)
    return {"tick": p["tick"], "lot_size": p["size_step"]}


def _recorded_feed():
    from feeds.ticks import TickData

    class RecordedTickData(TickData):
        """``TickData`` with each event's receive time (``recv``, epoch seconds): the broker
        gives each event its own feed latency (``MarketMakingBroker.feed_delay``)."""

        lines = ("recv",)

    return RecordedTickData


def run_ours(frame, *, latency, queue: str = "prob", queue_power: float = 3.0,
             partial: bool = True, maker: float = BYBIT_MAKER, taker: float = BYBIT_TAKER,
             requote: str = "live", tick: float = 0.1, lot_size: float = 0.001,
             cash: float = 1_000_000.0, **rule) -> dict:
    """``ConstantSpreadStrategy`` (the linear ``AvellanedaStoikovStrategy``) on ``frame``
    through ``MarketMakingBroker``: the ``MarketMakingAnalyzer`` total plus
    ``final_position``, ``max_abs_inventory``, the broker's ``fill_log`` and
    ``cancel_rejects``. ``rule``: ``half_spread, skew, lot, max_inventory``."""
    import backtrader as bt

    from analyzers.market_making import MarketMakingAnalyzer
    from feeds.ticks import TickData
    from s4_strategies.fees import MakerTakerCommInfo
    from s4_strategies.market_making.broker import MarketMakingBroker
    from s4_strategies.strategies.constant_spread import ConstantSpreadStrategy

    RecordedTickData = _recorded_feed()
    cerebro = bt.Cerebro(stdstats=False)
    broker = MarketMakingBroker(fill_model="trade_through", queue=queue, queue_power=queue_power,
                                latency=latency, partial=partial, size_step=lot_size)
    broker.setcash(cash)
    broker.addcommissioninfo(MakerTakerCommInfo(maker=maker, taker=taker))
    cerebro.broker = broker
    feed = RecordedTickData if "recv" in frame else TickData
    cerebro.adddata(feed(dataname=frame), name="ticks")
    cerebro.addstrategy(ConstantSpreadStrategy, requote=requote, tick=tick, size_step=lot_size,
                        **{**RULE, **rule})
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    strat = cerebro.run()[0]
    analysis = strat.analyzers.mm.get_analysis()
    out = dict(analysis["total"])
    out["final_position"] = strat.getposition(strat.data0).size
    out["max_abs_inventory"] = analysis["ticks"]["max_abs_inventory"]
    out["fill_log"] = list(broker.fill_log)
    out["cancel_rejects"] = broker.cancel_rejects
    return out


def _stamps_ns(raw, exchange: bool) -> np.ndarray:
    if exchange:
        return raw["exch_time_ms"].to_numpy("int64") * 1_000_000
    return raw["local_time_ns"].to_numpy("int64")


def frame_from_recording(trades, bbo, recv: bool = True):
    """Our event frame of a recording in ``feeds/data``'s layout (what ``load_ticks`` does
    for an embedded dataset: ``merge_ticks`` on the exchange clock when the BBO has exchange
    times, else on the receive clock), with a ``recv`` column (:func:`receive_times`)."""
    import pandas as pd

    from feeds.ticks import merge_ticks

    exchange = bool(bbo["exch_time_ms"].notna().all())

    def index(raw):
        return pd.DatetimeIndex(pd.to_datetime(_stamps_ns(raw, exchange), unit="ns", utc=True))

    t = pd.DataFrame({"price": trades["price"].to_numpy(float),
                      "size": trades["size"].to_numpy(float), "side": trades["side"].to_numpy(),
                      "match_id": trades["exch_time_ms"].to_numpy()}, index=index(trades))
    b = pd.DataFrame({c: bbo[c].to_numpy(float) for c in ("bid", "ask", "bid_size", "ask_size")},
                     index=index(bbo))
    frame = merge_ticks(t, b)
    return frame.assign(recv=receive_times(trades, bbo, frame)) if recv else frame


def receive_times(trades, bbo, frame) -> np.ndarray:
    """Each event of ``frame`` (:func:`frame_from_recording`) as the recorder received it,
    epoch seconds: a BBO row its own receive time, a run of prints the last print's. The
    recorder's clock is moved as hftbacktest's ``correct_local_timestamp`` moves it (so that
    the smallest feed latency is 0). Rebuilt in ``merge_ticks``'s order and checked against
    the frame row by row (``ValueError`` when they part)."""
    exchange = bool(bbo["exch_time_ms"].notna().all())
    t_ns, b_ns = _stamps_ns(trades, exchange), _stamps_ns(bbo, exchange)
    t_recv = trades["local_time_ns"].to_numpy("int64")
    b_recv = bbo["local_time_ns"].to_numpy("int64")
    shift = max(0, -int(min((t_recv - t_ns).min(), (b_recv - b_ns).min())))
    order = np.argsort(t_ns, kind="stable")
    t_ns, t_recv = t_ns[order], t_recv[order]
    key = trades["exch_time_ms"].to_numpy()[order]
    sign = np.where(trades["side"].astype(str).str.lower().to_numpy()[order] == "buy", 1, -1)
    new = np.r_[True, (key[1:] != key[:-1]) | (sign[1:] != sign[:-1])] if len(key) else \
        np.zeros(0, bool)
    run_recv = np.maximum.reduceat(t_recv, np.flatnonzero(new)) if len(key) else t_recv
    b_order = np.argsort(b_ns, kind="stable")
    stamp = np.r_[t_ns[new], b_ns[b_order]]
    recv = np.r_[run_recv, b_recv[b_order]]
    kind = np.r_[np.zeros(int(new.sum())), np.ones(len(b_ns))]
    idx = np.lexsort((kind, stamp))  # merge_ticks: by stamp, prints first, stably
    keep = ~((kind[idx] == 0) & (stamp[idx] < b_ns.min()))  # prints before any BBO: dropped
    stamp, recv = stamp[idx][keep], recv[idx][keep]
    if len(stamp) != len(frame) or not np.array_equal(stamp, frame.index.as_unit("ns").asi8):
        raise ValueError(f"receive_times: the rebuilt events do not line up with the frame "
                         f"({len(stamp)} vs {len(frame)} rows)")
    return (recv + shift) / 1e9


def cut_recording(trades, bbo, seconds: float | None):
    """The first ``seconds`` of a recording (both streams cut at the same time on its
    clock); all of it for ``None``."""
    if seconds is None:
        return trades, bbo
    exchange = bool(bbo["exch_time_ms"].notna().all())
    t_ns, b_ns = _stamps_ns(trades, exchange), _stamps_ns(bbo, exchange)
    stop = min(t_ns.min(), b_ns.min()) + int(seconds * 1e9)
    return trades[t_ns < stop], bbo[b_ns < stop]


def load(dataset: str, seconds: float | None = None, recorded_feed: bool = True):
    """``(frame, events, info)``: our event frame and hftbacktest's events of ``dataset``
    from its files (the first ``seconds`` only when given). With ``recorded_feed`` the frame
    has a ``recv`` column: our broker then gives each event the feed latency the recording
    has, as hftbacktest does."""
    from feeds import embedded

    from .crosscheck_hbt import events_from_recording

    trades, bbo = cut_recording(embedded.read_raw(f"{dataset}:trades"),
                                embedded.read_raw(f"{dataset}:bbo"), seconds)
    events, info = events_from_recording(trades, bbo, None, **instrument(dataset))
    return frame_from_recording(trades, bbo, recv=recorded_feed), events, info


def compare(frame, events, info, *, latency_ms: float, queue: str = "prob",
            queue_power: float = 3.0, tick: float = 0.1, lot_size: float = 0.001,
            maker: float = BYBIT_MAKER, our_feed: float | None = None, partial: bool = True,
            **rule) -> tuple:
    """Both engines on one sample (:func:`load`) at ``latency_ms`` (entry = response =
    cancel): ``(ours, hftbacktest)`` dicts with the keys of :data:`ROWS`. Our feed latency
    is each event's recorded one when the frame has ``recv``, else ``our_feed`` seconds
    (``None``: the data's median, ``info["feed_latency"]``); ``partial``: our broker's
    partial fills (its default)."""
    from s4_strategies.market_making.latency import Latency

    from .crosscheck_hbt import run_reference

    x = latency_ms / 1e3
    feed = info["feed_latency"] if our_feed is None else our_feed
    rule = {**RULE, **rule}
    ours = run_ours(frame, latency=Latency(feed, x, x, x), queue=queue, queue_power=queue_power,
                    maker=maker, tick=tick, lot_size=lot_size, partial=partial, **rule)
    ref = run_reference(events, info, latency=x, queue=queue, queue_power=queue_power,
                        maker=maker, tick=tick, lot_size=lot_size, **rule)
    return ours, ref


def fills(r: dict) -> int:
    return r["fills_bid"] + r["fills_ask"]


def ratio(a: float, b: float) -> float:
    return a / b if b not in (0, 0.0) and math.isfinite(b) else math.nan


def band_table(datasets=("usdm", "spot"), spreads=("tight", "wide"),
               latencies_ms=(1.0, 10.0, 50.0), queues=("risk_averse", "prob"),
               seconds: float | None = None, log=print) -> tuple[str, list[dict]]:
    """Every pair of the grid: a markdown table (one row per sample, spread, latency and
    queue model: fills, quotes, rejections and the PnL parts as ours / hftbacktest) and the
    rows as dicts (``fills_ratio``, ``pnl_ratio``, ...)."""
    rows = []
    for key in datasets:
        dataset = DATASETS.get(key, key)
        inst = instrument(dataset)
        frame, events, info = load(dataset, seconds)
        log(f"{dataset}: {len(frame):,} events ours, {len(events):,} hftbacktest's; clock "
            f"{info['clock']}, median feed latency {1e3 * info['feed_latency']:.2f} ms")
        for spread in spreads:
            for ms in latencies_ms:
                for queue in queues:
                    t0 = time.perf_counter()
                    ours, ref = compare(frame, events, info, latency_ms=ms, queue=queue,
                                        **inst, **SPREADS[spread])
                    row = dict(dataset=dataset, spread=spread, ms=ms, queue=queue,
                               feed_ms=1e3 * info["feed_latency"], ours=ours, ref=ref,
                               fills_ratio=ratio(fills(ours), fills(ref)),
                               pnl_ratio=ratio(ours["total_pnl"], ref["total_pnl"]))
                    rows.append(row)
                    log(f"  {spread} {ms:g} ms {queue}: fills {fills(ours)} / {fills(ref)}, "
                        f"PnL {ours['total_pnl']:.2f} / {ref['total_pnl']:.2f} "
                        f"({time.perf_counter() - t0:.0f} s)")
    return _markdown(rows), rows


def _markdown(rows: list[dict]) -> str:
    head = ("| sample | spread | latency | queue | fills | ratio | volume | quotes | "
            "rejected | spread PnL | inventory PnL | fees | total PnL | ratio |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        o, h = r["ours"], r["ref"]
        vol = [x["volume_bid"] + x["volume_ask"] for x in (o, h)]
        quotes = [x["quotes_bid"] + x["quotes_ask"] for x in (o, h)]
        cells = [r["dataset"], r["spread"], f"{r['ms']:g} ms", r["queue"],
                 f"{fills(o)} / {fills(h)}", f"{r['fills_ratio']:.3f}",
                 f"{vol[0]:.3f} / {vol[1]:.3f}", f"{quotes[0]} / {quotes[1]}",
                 f"{o['quotes_rejected']} / {h['quotes_rejected']}"]
        cells += [f"{o[k]:,.2f} / {h[k]:,.2f}" for k in ("spread_pnl", "inventory_pnl", "fees",
                                                        "total_pnl")]
        cells.append(f"{r['pnl_ratio']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
