"""``s4trade data``: download bars and funding rates into the cache the feeds read, list it.

::

    s4trade data download bybit:BTCUSDT:1 --from 2024-01-01 --to 2024-03-31
    s4trade data download yahoo:AAPL:1d bybit:BTCUSDT:funding --from 2021-01-01
    s4trade data list

A download fills the same parquet files that ``--data bybit:…``/``yahoo:…`` (and the
feeds, given the same ``cache_dir``) read, chunk by chunk with a progress bar; run it again
and it fetches only what is missing (see :mod:`feeds.download`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .cli_args import _date_arg, _formatter
from .sources import DEFAULT_CACHE, SourceError, check_period, end_of, parse_source

DOWNLOAD_FORMS = ("bybit:SYMBOL:INTERVAL[:linear|spot|inverse], bybit:SYMBOL:funding"
                  "[:linear|inverse] or yahoo:TICKER:INTERVAL")
#: what ``--data`` should say to read a download whose short name is an embedded sample's
EMBEDDED_NOTE = "{short} is the embedded sample: read the download as --data {full}"


@dataclass(frozen=True)
class Target:
    """One thing to download: ``kind`` is ``klines``, ``funding`` or ``yahoo``."""

    spec: str
    kind: str
    symbol: str
    interval: str | None
    category: str


def parse_target(spec: str) -> Target:
    """A ``data download`` argument; :class:`SourceError` says what is accepted."""
    text = str(spec).strip()
    parts = text.split(":")
    if len(parts) in (3, 4) and parts[0] == "bybit" and parts[2].lower() == "funding":
        from feeds.funding import check_funding_category

        try:
            category = check_funding_category(parts[3] if len(parts) == 4 else "linear")
        except ValueError as exc:
            raise SourceError(f"{text}: {exc}") from None
        return Target(text, "funding", parts[1].upper(), None, category)
    import feeds

    src = parse_source(text)
    if src.kind == "embedded" and not feeds.is_tick_dataset(text):  # the same series, fetched
        full = text + (":linear" if text.startswith("bybit:") else ":adjusted")
        src = parse_source(full)
    if src.kind in ("embedded", "file"):
        raise SourceError(f"{text} is {'tick data' if src.kind == 'embedded' else 'a file'}"
                          f": nothing to download; use {DOWNLOAD_FORMS}")
    if src.kind == "bybit":
        return Target(text, "klines", src.symbol, src.interval, src.category)
    return Target(text, "yahoo", src.symbol, src.interval, "")


def make_session(testnet: bool = False):
    """pybit's REST client (public endpoints: no keys needed)."""
    from pybit.unified_trading import HTTP

    return HTTP(testnet=testnet)


def _progress_bar(quiet: bool):
    from functools import partial

    from tqdm import tqdm

    return partial(tqdm, file=sys.stderr, disable=quiet, dynamic_ncols=True)


def download(specs, fromdate, todate=None, *, cache_dir=DEFAULT_CACHE, testnet: bool = False,
             session=None, downloader=None, progress=None, now=None) -> list:
    """Download each of ``specs`` (:func:`parse_target` forms) for ``[fromdate, todate]``
    (a bare ``todate`` date includes its day; None: up to now) into ``cache_dir``; returns
    a :class:`feeds.download.Download` per spec. ``session`` (pybit ``HTTP``),
    ``downloader`` (``yfinance.download``) and ``now`` are for tests."""
    from feeds import download as dl

    targets = [parse_target(s) for s in specs]  # every argument checked before any fetch
    check_period(fromdate, todate)
    end = end_of(todate)
    if session is None and any(t.kind != "yahoo" for t in targets):
        session = make_session(testnet)
    results = []
    for t in targets:
        try:
            if t.kind == "klines":
                res = dl.download_klines(session, t.category, t.symbol, t.interval, fromdate,
                                         end, cache_dir=cache_dir, now=now, progress=progress)
            elif t.kind == "funding":
                res = dl.download_funding(session, t.category, t.symbol, fromdate, end,
                                          cache_dir=cache_dir, now=now, progress=progress)
            else:
                res = dl.download_yahoo(t.symbol, t.interval, fromdate, end,
                                        cache_dir=cache_dir, downloader=downloader, now=now,
                                        progress=progress)
        except Exception as exc:
            import feeds

            if isinstance(exc, (feeds.FeedError, feeds.DataError, ValueError, OSError)):
                raise
            raise feeds.FeedError(f"{t.spec}: could not fetch ({type(exc).__name__}: {exc})"
                                  ) from None
        results.append(res)
    return results


def _when(ts) -> str:
    return "–" if ts is None else ts.strftime("%Y-%m-%d %H:%M")


def _gaps(gaps, missing) -> str:
    if gaps is None:
        return "not counted"
    return "none" if gaps == 0 else f"{gaps} ({missing:,} bars missing)"


def describe(res) -> str:
    """One line per download: what the cache holds now and what this run added."""
    what = "rates" if ":funding" in res.source else "bars"
    if not res.rows:
        return f"{res.source}: nothing in the range (not listed yet?); {res.path}"
    return (f"{res.source}: {res.rows:,} {what} cached, {_when(res.first)} .. {_when(res.last)}"
            f" UTC ({res.new:,} new), gaps: {_gaps(res.gaps, res.missing)}; {res.path}")


def _cmd_download(args) -> int:
    try:
        results = download(args.sources, args.from_, args.to, cache_dir=args.cache_dir,
                           testnet=args.testnet, progress=_progress_bar(args.quiet))
    except KeyboardInterrupt:
        print("s4trade data download: interrupted; the chunks already fetched are kept: "
              "run the same command to fetch the rest", file=sys.stderr)
        return 130
    for spec, res in zip(args.sources, results):
        print(describe(res))
        if spec.strip() != res.source and res.source.startswith(spec.strip() + ":"):
            print("  " + EMBEDDED_NOTE.format(short=spec.strip(), full=res.source))
    return 0


def format_listing(entries, aside, cache_dir) -> str:
    """The table ``s4trade data list`` prints."""
    lines = [f"cache: {cache_dir}"]
    if not entries:
        lines.append("(empty: fill it with s4trade data download, or run with --data "
                     "bybit:…/yahoo:…)")
    else:
        rows = [("source", "network", "first (UTC)", "last (UTC)", "rows", "gaps", "file")]
        for e in entries:
            gaps = _gaps(e.gaps, e.missing) if e.rows else "–"
            rows.append((e.source, e.network or "–", _when(e.first), _when(e.last),
                         f"{e.rows:,}", gaps, e.path.name + (f"  ({e.note})" if e.note else "")))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if aside:
        lines.append(f"{len(aside)} file(s) moved aside (unreadable or another series; never "
                     "read, kept to inspect): " + ", ".join(p.name for p in aside))
    return "\n".join(lines)


def _cmd_list(args) -> int:
    from pathlib import Path

    from feeds.download import list_cache

    entries, aside = list_cache(args.cache_dir)
    print(format_listing(entries, aside, Path(args.cache_dir).expanduser()))
    return 0


def add_data(sub) -> None:
    data = sub.add_parser("data", help="download bars and funding rates; list the cache",
                          formatter_class=_formatter,
                          description="Fill the download cache that --data bybit:…/yahoo:… "
                                      "and the feeds read, or list what it holds.")
    cmds = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dl = cmds.add_parser("download", formatter_class=_formatter,
                         help="fetch a range into the cache (resumes; a progress bar)",
                         description="Fetch a range of bars or funding rates into the cache, "
                                     "chunk by chunk; a second call fetches only what is "
                                     "missing, so an interrupted download resumes.")
    dl.add_argument("sources", nargs="+", metavar="SOURCE", help=DOWNLOAD_FORMS)
    dl.add_argument("--from", dest="from_", required=True, type=_date_arg, metavar="DATE",
                    help="first bar (UTC; required)")
    dl.add_argument("--to", default=None, type=_date_arg, metavar="DATE",
                    help="last bar, a date includes its day (default: now)")
    dl.add_argument("--testnet", action="store_true", help="Bybit's testnet (its own files)")
    dl.add_argument("--cache-dir", default=DEFAULT_CACHE, help="the cache folder")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_cmd_download)
    ls = cmds.add_parser("list", formatter_class=_formatter,
                         help="what is cached: source, range, rows, gaps",
                         description="Every file of the cache folder: the series it holds, "
                                     "its first and last bar, its rows and its gaps (runs of "
                                     "missing bars; not counted for Yahoo, whose markets "
                                     "close).")
    ls.add_argument("--cache-dir", default=DEFAULT_CACHE, help="the cache folder")
    ls.set_defaults(func=_cmd_list)
