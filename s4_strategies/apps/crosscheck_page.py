"""The results page of the hftbacktest cross-check (``docs/results/market_making.md``),
written by ``scripts/crosscheck_hftbacktest.py``: the band over samples, spreads, latencies
and queue models, and the measurements that say where the remaining difference comes from.
"""

from __future__ import annotations

import datetime as dt
import math
import time

from .crosscheck import (
    DATASETS,
    SPREADS,
    _markdown,
    compare,
    fills,
    instrument,
    load,
    ratio,
)

__all__ = ["DONE", "EXPERIMENTS", "explain_rows", "page"]

#: the issue's "done" band on the USD-M sample at 10 ms: |ours/hftbacktest − 1|
DONE = {"fills": 0.10, "total_pnl": 0.15}
#: one change at a time, on USD-M at 1 and 10 ms, prob queue: what moves the ratio
EXPERIMENTS = {
    "as run (each at its defaults, the recording's feed latency)": {},
    "ours without partial fills, as hftbacktest's NoPartialFillExchange": dict(partial=False),
    "both at a constant feed latency, the recording's median": dict(feed="median"),
    "both with no feed latency": dict(feed=0.0),
}


def explain_rows(dataset: str = DATASETS["usdm"], latencies_ms=(1.0, 10.0), queue="prob",
                 seconds: float | None = None, log=print) -> list[dict]:
    """The :data:`EXPERIMENTS` on ``dataset``: rows like ``band_table``'s plus ``label``."""
    from .crosscheck_hbt import recorded_events

    inst = instrument(dataset)
    frame, events, info = load(dataset, seconds)
    plain, _, _ = load(dataset, seconds, recorded_feed=False)
    rows = []
    for label, change in EXPERIMENTS.items():
        f, ev, inf, feed = frame, events, info, None
        if "feed" in change:  # both engines see every event a constant feed latency late
            feed = info["feed_latency"] if change["feed"] == "median" else change["feed"]
            f, (ev, inf) = plain, recorded_events(dataset, seconds, feed_latency=feed, **inst)
        for spread in SPREADS:
            for ms in latencies_ms:
                t0 = time.perf_counter()
                ours, ref = compare(f, ev, inf, latency_ms=ms, queue=queue, our_feed=feed,
                                    partial=change.get("partial", True), **inst,
                                    **SPREADS[spread])
                rows.append(dict(label=label, dataset=dataset, spread=spread, ms=ms, queue=queue,
                                 ours=ours, ref=ref, fills_ratio=ratio(fills(ours), fills(ref)),
                                 pnl_ratio=ratio(ours["total_pnl"], ref["total_pnl"])))
                log(f"  {label}: {spread} {ms:g} ms: fills {fills(ours)} / {fills(ref)}, PnL "
                    f"{ours['total_pnl']:.2f} / {ref['total_pnl']:.2f} "
                    f"({time.perf_counter() - t0:.0f} s)")
    return rows


def _span(rows, key) -> str:
    vals = [r[key] for r in rows if math.isfinite(r[key])]
    return f"{min(vals):.3f}–{max(vals):.3f}" if vals else "n/a"


def _band_lines(rows) -> list[str]:
    lines = ["| sample | latency | fills ours/hbt | total PnL ours/hbt |", "|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for ms in dict.fromkeys(r["ms"] for r in rows):
            sel = [r for r in rows if r["dataset"] == dataset and r["ms"] == ms]
            lines.append(f"| {dataset} | {ms:g} ms | {_span(sel, 'fills_ratio')} | "
                         f"{_span(sel, 'pnl_ratio')} |")
    return lines


def _done_lines(rows) -> list[str]:
    sel = [r for r in rows if r["dataset"] == DATASETS["usdm"] and r["ms"] == 10.0]
    out = []
    for r in sel:
        ok = (abs(r["fills_ratio"] - 1) <= DONE["fills"]
              and abs(r["pnl_ratio"] - 1) <= DONE["total_pnl"])
        out.append(f"- {r['spread']}, {r['queue']}: fills {fills(r['ours'])} / "
                   f"{fills(r['ref'])} ({r['fills_ratio'] - 1:+.1%}), total PnL "
                   f"{r['ours']['total_pnl']:.2f} / {r['ref']['total_pnl']:.2f} "
                   f"({r['pnl_ratio'] - 1:+.1%}): {'within' if ok else 'OUTSIDE'} the band")
    return out


def _explain_table(rows) -> list[str]:
    lines = ["| change | spread | latency | fills | ratio | volume | rejected | total PnL | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o, h = r["ours"], r["ref"]
        vol = [x["volume_bid"] + x["volume_ask"] for x in (o, h)]
        lines.append(
            f"| {r['label']} | {r['spread']} | {r['ms']:g} ms | {fills(o)} / {fills(h)} | "
            f"{r['fills_ratio']:.3f} | {vol[0]:.2f} / {vol[1]:.2f} | "
            f"{o['quotes_rejected']} / {h['quotes_rejected']} | {o['total_pnl']:.2f} / "
            f"{h['total_pnl']:.2f} | {r['pnl_ratio']:.3f} |")
    return lines


def _pick(rows, **kw) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def _why(grid: list[dict], explain: list[dict], feed_ms: float) -> list[str]:
    """The measured reasons, in words over the numbers of the two tables."""
    usdm = DATASETS["usdm"]
    labels = list(EXPERIMENTS)
    out = []
    one = _pick(grid, dataset=usdm, ms=1.0)
    slow = [r for r in _pick(grid, dataset=usdm) if r["ms"] > 1.0]
    nofeed = _pick(explain, label=labels[3], ms=1.0)
    t1 = _pick(grid, dataset=usdm, ms=1.0, spread="tight", queue="prob")
    if one and nofeed and t1:
        o, h = t1[0]["ours"], t1[0]["ref"]
        out += [
            f"**1 ms on USD-M** (fills {_span(one, 'fills_ratio')}, total PnL "
            f"{_span(one, 'pnl_ratio')} of hftbacktest's). The recording's feed latency "
            f"(median {feed_ms:.1f} ms) is longer than a 1 ms response. hftbacktest's exchange "
            "runs ahead of the market data its strategy has seen: a fill or a cancel at "
            "exchange time T reaches its strategy at T + 1 ms, before the market event stamped "
            "T does. Ours matches event by event, so the report of what the exchange did on "
            "the event stamped T reaches the strategy no sooner than that event. hftbacktest's "
            "quoter hears of confirmations sooner and requotes more, on a book it has not yet "
            f"seen move: tight, prob, it sends {h['quotes_bid'] + h['quotes_ask']:,} quotes to "
            f"our {o['quotes_bid'] + o['quotes_ask']:,}, {h['quotes_rejected']:,} rejected "
            f"post-only to our {o['quotes_rejected']:,}. With no feed latency in either engine "
            f"the 1 ms runs read fills {_span(nofeed, 'fills_ratio')} and total PnL "
            f"{_span(nofeed, 'pnl_ratio')}; at 10 and 50 ms, where the response is longer "
            f"than the feed, fills {_span(slow, 'fills_ratio')} and total PnL "
            f"{_span(slow, 'pnl_ratio')} with nothing changed.", ""]
    base = _pick(explain, label=labels[0], ms=10.0)
    whole = _pick(explain, label=labels[1], ms=10.0)
    flat = _pick(explain, label=labels[2], ms=10.0)
    if base and whole and flat:
        b, w = base[0], whole[0]  # tight
        vol = lambda r: r["volume_bid"] + r["volume_ask"]  # noqa: E731
        out += [
            "**Partial fills.** Ours fills a queue position in whole lot steps as trades reach "
            "it, hftbacktest's default exchange in one piece: tight at 10 ms, ours makes "
            f"{fills(b['ours'])} executions for {vol(b['ours']):.2f} BTC, and "
            f"{fills(w['ours'])} for {vol(w['ours']):.2f} BTC without partial fills "
            f"(hftbacktest {fills(b['ref'])} for {vol(b['ref']):.2f}).", "",
            "**The recording's own feed latency** moves both engines alike: with every event "
            "seen a constant median latency late instead, hftbacktest's tight run at 10 ms "
            f"makes {fills(flat[0]['ref'])} fills instead of {fills(b['ref'])}, ours "
            f"{fills(flat[0]['ours'])} instead of {fills(b['ours'])} (quotes rejected "
            f"post-only: hftbacktest {flat[0]['ref']['quotes_rejected']} instead of "
            f"{b['ref']['quotes_rejected']}, ours {flat[0]['ours']['quotes_rejected']} instead "
            f"of {b['ours']['quotes_rejected']}). That is why both engines here replay each "
            "event at its recorded receive time.", ""]
    worst = max(grid, key=lambda r: abs(r["pnl_ratio"] - 1), default=None)
    if worst is not None:
        o, h = worst["ours"], worst["ref"]
        out += [
            f"**The widest PnL gap** is {worst['dataset']}, {worst['spread']}, "
            f"{worst['ms']:g} ms ({worst['pnl_ratio']:.3f} on {fills(o)} / {fills(h)} fills): "
            f"spread PnL {o['spread_pnl']:.2f} / {h['spread_pnl']:.2f}, fees "
            f"{o['fees']:.2f} / {h['fees']:.2f}, inventory PnL {o['inventory_pnl']:.2f} / "
            f"{h['inventory_pnl']:.2f}: the position carried through the moves, which a few "
            "fills at other moments change, makes the difference.", ""]
    out += [
        "Other differences of convention remain, not measured one by one: hftbacktest's "
        "converter drops book tickers that change nothing (its "
        "strategy does not wake on them, ours does); a request reaching the book on an "
        "event's stamp goes before the event in ours and after it in hftbacktest; behind the "
        "best hftbacktest keeps the size last shown at a level, ours treats the place there as "
        "unknown until the level is the best again."]
    return out


def page(grid: list[dict], explain: list[dict], command: str, wall_s: float,
         feed_note: str) -> str:
    """The Markdown page (grid: ``band_table`` rows; explain: :func:`explain_rows`)."""
    import hftbacktest

    feed_ms = max((r["feed_ms"] for r in grid), default=0.0)
    today = dt.date.today().isoformat()
    version = getattr(hftbacktest, "__version__", "2.4")
    tight, wide = SPREADS["tight"], SPREADS["wide"]
    text = [
        "# Market making: our broker against hftbacktest", "",
        f"Written by `{command}` on {today} ({wall_s / 60:.0f} min on 2 shared cores); "
        "regenerate it, do not edit it.", "",
        "## What runs", "",
        "One quoting rule, written twice: a constant half-spread around the mid, skewed by "
        "inventory, `bid = mid − half_spread − skew·q`, `ask = mid + half_spread − skew·q` "
        "(`q` the position the fill reports add up to, in lots of 0.01 BTC), post-only a tick "
        "off the opposite best, the bid rounded down and the ask up to the tick; one working "
        "order per side, cancelled once acknowledged when its price moves a tick and replaced "
        "once the cancel is confirmed; at most 5 lots either way counting every working "
        f"order's fill. Tight: half-spread {tight['half_spread']}, skew {tight['skew']}; "
        f"wide: {wide['half_spread']}, {wide['skew']}. Bybit's maker fee (0.02 %).", "",
        "- **Ours**: `ConstantSpreadStrategy` (the user-facing `AvellanedaStoikovStrategy`, "
        "`model=\"linear\"`, `requote=\"live\"`) through `MarketMakingBroker` at its defaults "
        "(partial fills), on `load_ticks`'s merge of the recorded trades and bookTicker, each "
        "event seen at the time the recorder received it (a `recv` line).",
        f"- **hftbacktest {version}**: the recorded files converted by its own "
        "`tardis.convert_fuse` (book tickers fused into depth; nothing invented behind the "
        "best), its `NoPartialFillExchange`, the feed latency the recording has, "
        "`constant_order_latency(x, x)` (response = entry; a cancel travels like an entry), "
        "the rule re-written against its API (`s4_strategies/apps/crosscheck_hbt.py`).",
        "- Both: the latency x for entry, response and cancel; the same queue model "
        "(`risk_averse` = `risk_adverse_queue_model`, `prob` = `power_prob_queue_model(3)`); "
        "fills and PnL booked where the exchange made them (the last responses are let in "
        "at the end of the data).", "", feed_note, "",
        "## The band", "", *_band_lines(grid), "",
        "Done when, on the USD-M sample at 10 ms (fills within "
        f"{DONE['fills']:.0%}, total PnL within {DONE['total_pnl']:.0%}):", "",
        *_done_lines(grid), "",
        "Every run, ours / hftbacktest:", "", _markdown(grid), "",
        "## Where the rest comes from", "",
        "One change at a time on the USD-M sample, prob queue (ours / hftbacktest):", "",
        *_explain_table(explain), "",
        *_why(grid, explain, feed_ms),
    ]
    return "\n".join(text) + "\n"
