"""``roarm-gateway analyze EVENTS.jsonl [--png OUT]``: latency over time, deadline misses and hash drift of a run.

The gateway's event log (``eventlog.py``: one JSON object a line, ``ts`` and ``event``) holds what this needs:
``latency`` records (every ``latency_event_s``: count, misses and a histogram of the replies since the last),
``deadline_miss`` events (one per watchdog answer, rate-limited), ``hello`` (a session's label and name),
``client_hash`` (a session's first config hash and each change), ``hash_mismatch``, and ``start``/``reload``
(the served hash). The file is read line by line within fixed bounds (line length, lines, bytes, clients,
windows), so a huge or hostile log costs bounded memory; a line that is not such an object is skipped and
counted. Only ``json.loads`` reads it: nothing in a log can run code. Rotated ``.gz`` files are read too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from roarm_lab.utils.figures import save_png
from roarm_lab.gateway.forensics import utc_text
from roarm_lab.gateway.stats import HIST_BINS, histogram_percentiles

MAX_LINE_BYTES = 1 << 20
"""A longer line is skipped (counted as too long): no record of the gateway comes near it."""
MAX_LINES = 5_000_000
MAX_BYTES = 1 << 30
"""Reading stops after this many lines or (uncompressed) bytes, and says so."""
MAX_WINDOWS = 10_000
"""Latency windows kept; later ones are counted as dropped (pass a longer ``--window-s``)."""
MAX_CLIENTS = 1000
MAX_EVENT_NAMES = 64
MAX_HASHES_PER_CLIENT = 16
MAX_CHANGES = 1000
MAX_MISSES_KEPT = 10_000


@dataclass
class Window:
    """The latency records whose ``ts`` falls in one window: counts, misses and their merged histogram."""

    start: float
    requests: int = 0
    misses: int = 0
    max_us: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, np.int64))

    def summary(self) -> dict[str, Any]:
        nonzero = np.flatnonzero(self.hist)
        pct = {} if not nonzero.size else histogram_percentiles(
            int(nonzero[0]), self.hist[nonzero[0]: nonzero[-1] + 1].tolist())
        return {"start": self.start, "time": utc_text(self.start), "requests": self.requests, "misses": self.misses,
                **{f"{k}_us": v for k, v in pct.items()}, "max_us": self.max_us}


@dataclass
class ClientHashes:
    """The config hashes one session (label) sent: first and last seen, mismatch events, whether it matched."""

    label: str
    name: str = ""
    hashes: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None
    other_hashes: int = 0


@dataclass
class Report:
    path: str
    window_s: float
    lines: int = 0
    events: Counter = field(default_factory=Counter)
    malformed: Counter = field(default_factory=Counter)
    stopped: str | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    windows: dict[int, Window] = field(default_factory=dict)
    windows_dropped: int = 0
    latency_records: int = 0
    miss_events: list[dict[str, Any]] = field(default_factory=list)
    miss_events_not_kept: int = 0
    events_suppressed: int = 0
    names: dict[str, str] = field(default_factory=dict)
    clients: dict[str, ClientHashes] = field(default_factory=dict)
    clients_dropped: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    changes_not_kept: int = 0
    last_by_name: dict[str, tuple[str, str]] = field(default_factory=dict)
    policy_hashes: list[dict[str, Any]] = field(default_factory=list)
    stop_infers: int = 0

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.windows.values())

    @property
    def misses(self) -> int:
        return sum(w.misses for w in self.windows.values())

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain data (``--json``)."""
        return {
            "path": self.path, "window_s": self.window_s, "lines": self.lines, "events": dict(self.events),
            "malformed_lines": sum(self.malformed.values()), "malformed": dict(self.malformed), "stopped": self.stopped,
            "first": self.first_ts, "last": self.last_ts, "latency_records": self.latency_records,
            "requests": self.requests, "deadline_misses": self.misses, "stop_infers": self.stop_infers,
            "windows": [self.windows[k].summary() for k in sorted(self.windows)], "windows_dropped": self.windows_dropped,
            "deadline_miss_events": self.miss_events, "deadline_miss_events_not_kept": self.miss_events_not_kept,
            "events_suppressed": self.events_suppressed,
            "clients": {label: {"name": c.name, "hashes": c.hashes, "other_hashes": c.other_hashes}
                        for label, c in self.clients.items()},
            "clients_dropped": self.clients_dropped, "hash_changes": self.changes,
            "hash_changes_not_kept": self.changes_not_kept, "policy_hashes": self.policy_hashes,
        }


class _Malformed(ValueError):
    """A line that is JSON but not a record this reader understands (its reason is the count's key)."""


# ---------------------------------------------------------------------------- reading
def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(handle: BinaryIO, report: Report) -> Iterator[bytes]:
    """Lines of at most ``MAX_LINE_BYTES`` (longer ones skipped whole and counted), within the line and byte caps."""
    total = 0
    while report.lines < MAX_LINES and total < MAX_BYTES:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        total += len(line)
        report.lines += 1
        if len(line) <= MAX_LINE_BYTES:
            yield line
            continue
        while line and not line.endswith(b"\n"):  # the rest of it, a bounded chunk at a time
            line = handle.readline(MAX_LINE_BYTES)
            total += len(line)
        report.malformed["too_long"] += 1
    if handle.readline(1):
        report.stopped = f"stopped after {report.lines} lines ({total} bytes): the reading limit; the rest is not read"


def _record(line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _Malformed("not_json") from None
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        raise _Malformed("not_an_event")
    ts = record.get("ts")
    if not _number(ts) or ts < 0:
        raise _Malformed("bad_ts")
    return record


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> str:
    return value[:64] if isinstance(value, str) else ""


# ---------------------------------------------------------------------------- events
def _on_latency(report: Report, ts: float, record: dict[str, Any]) -> None:
    hist = record.get("hist")
    requests, misses = record.get("requests"), record.get("misses", 0)
    if not (_count(requests) and _count(misses) and isinstance(hist, dict)):
        raise _Malformed("bad_latency_record")
    first, counts = hist.get("first"), hist.get("counts")
    if not (_count(first) and isinstance(counts, list) and first + len(counts) <= HIST_BINS
            and all(_count(c) for c in counts)):
        raise _Malformed("bad_latency_record")
    key = math.floor(ts / report.window_s)
    window = report.windows.get(key)
    if window is None:
        if len(report.windows) >= MAX_WINDOWS:
            report.windows_dropped += 1
            return
        window = report.windows[key] = Window(key * report.window_s)
    window.requests += requests
    window.misses += misses
    max_us = record.get("max_us")
    window.max_us = max(window.max_us, float(max_us) if _number(max_us) else 0.0)
    window.hist[first: first + len(counts)] += np.asarray(counts, np.int64)
    report.latency_records += 1


def _on_deadline_miss(report: Report, ts: float, record: dict[str, Any]) -> None:
    if len(report.miss_events) >= MAX_MISSES_KEPT:
        report.miss_events_not_kept += 1
        return
    waited = record.get("waited_us")
    client = _text(record.get("client"))
    report.miss_events.append({"ts": ts, "time": utc_text(ts), "client": client, "name": report.names.get(client, ""),
                               "seq": record.get("seq") if _count(record.get("seq")) else None,
                               "waited_us": float(waited) if _number(waited) else None})


def _on_hello(report: Report, ts: float, record: dict[str, Any]) -> None:
    label = _text(record.get("client"))
    if label and (label in report.names or len(report.names) < MAX_CLIENTS):
        report.names[label] = _text(record.get("name"))


def _on_client_hash(report: Report, ts: float, record: dict[str, Any]) -> None:
    matches = record.get("matches")
    _saw_hash(report, ts, _text(record.get("client")), _text(record.get("hash")),
              matches if isinstance(matches, bool) else None, mismatch_event=False)


def _on_hash_mismatch(report: Report, ts: float, record: dict[str, Any]) -> None:
    _saw_hash(report, ts, _text(record.get("client")), _text(record.get("client_hash")), False, mismatch_event=True)


def _on_policy_hash(report: Report, ts: float, record: dict[str, Any]) -> None:
    if len(report.policy_hashes) < MAX_CHANGES:
        report.policy_hashes.append({"ts": ts, "time": utc_text(ts), "event": record["event"],
                                     "hash": _text(record.get("config_hash"))})


def _on_suppressed(report: Report, ts: float, record: dict[str, Any]) -> None:
    if _count(record.get("count")):
        report.events_suppressed += record["count"]


def _on_stop(report: Report, ts: float, record: dict[str, Any]) -> None:
    stats = record.get("stats")
    if isinstance(stats, dict) and _count(stats.get("infers")):
        report.stop_infers += stats["infers"]


_HANDLERS = {"latency": _on_latency, "deadline_miss": _on_deadline_miss, "hello": _on_hello,
             "client_hash": _on_client_hash, "hash_mismatch": _on_hash_mismatch, "start": _on_policy_hash,
             "reload": _on_policy_hash, "events_suppressed": _on_suppressed, "stop": _on_stop}
"""What each event of the log adds to the report; other events are only counted."""


def _saw_hash(report: Report, ts: float, label: str, value: str, matches: bool | None, mismatch_event: bool) -> None:
    """One hash from one session: its history, and a change if it differs from the session's (or, for a session's
    first hash, from the last hash of the previous session of the same client name: a restart with a new config)."""
    if not label or not value:
        raise _Malformed("bad_hash_record")
    client = report.clients.get(label)
    if client is None:
        if len(report.clients) >= MAX_CLIENTS:
            report.clients_dropped += 1
            return
        client = report.clients[label] = ClientHashes(label, report.names.get(label, ""))
    entry = client.hashes.get(value)
    if entry is None:
        if len(client.hashes) >= MAX_HASHES_PER_CLIENT:
            client.other_hashes += 1
            return
        entry = client.hashes[value] = {"first": ts, "last": ts, "matches": matches, "mismatch_events": 0}
    entry["last"] = ts
    entry["mismatch_events"] += mismatch_event
    if matches is not None:
        entry["matches"] = matches
    if client.current is not None:
        previous = (label, client.current)
    else:  # a session's first hash: against the last one sent under the same client name, if it has one
        previous = report.last_by_name.get(client.name) if client.name else None
    if previous is not None and previous[1] != value:
        _change(report, ts, client, previous, value)
    client.current = value
    if client.name and (client.name in report.last_by_name or len(report.last_by_name) < MAX_CLIENTS):
        report.last_by_name[client.name] = (label, value)


def _change(report: Report, ts: float, client: ClientHashes, previous: tuple[str, str], value: str) -> None:
    if len(report.changes) >= MAX_CHANGES:
        report.changes_not_kept += 1
        return
    report.changes.append({"ts": ts, "time": utc_text(ts), "client": client.label, "name": client.name,
                           "from": previous[1], "to": value, "from_client": previous[0]})


def analyze(path: str | Path, window_s: float = 60.0) -> Report:
    """Read the event log at ``path`` (plain or .gz) into a report; raises OSError if it cannot be read."""
    path = Path(path)
    report = Report(str(path), window_s)
    with _open(path) as handle:
        for line in _lines(handle, report):
            if not line.strip():
                continue
            try:
                record = _record(line)
                ts = float(record["ts"])
                handler = _HANDLERS.get(record["event"])
                if handler is not None:
                    handler(report, ts, record)
            except _Malformed as err:
                report.malformed[str(err)] += 1
                continue
            name = record["event"][:40]
            report.events[name if name in report.events or len(report.events) < MAX_EVENT_NAMES else "(other)"] += 1
            report.first_ts = ts if report.first_ts is None else min(report.first_ts, ts)
            report.last_ts = ts if report.last_ts is None else max(report.last_ts, ts)
    return report


# ---------------------------------------------------------------------------- output
def _us(value: Any) -> str:
    return f"{value:,.0f}" if _number(value) else "-"


def format_report(report: Report, misses_listed: int = 20) -> str:
    """The report as text a person reads (``--json`` gives every number)."""
    out = [f"{report.path}: {report.lines} lines, {sum(report.events.values())} events, "
           f"{sum(report.malformed.values())} malformed lines skipped"
           + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(report.malformed.items()))})" if report.malformed else "")]
    if report.stopped:
        out.append(f"note: {report.stopped}")
    if report.first_ts is not None:
        out.append(f"from {utc_text(report.first_ts)} to {utc_text(report.last_ts)}")
    out += _policy_lines(report) + _latency_lines(report) + _miss_lines(report, misses_listed) + _hash_lines(report)
    return "\n".join(out)


def _policy_lines(report: Report) -> list[str]:
    return [f"served policy: {p['time']} {p['event']} config_hash {p['hash'] or '-'}" for p in report.policy_hashes]


def _latency_lines(report: Report) -> list[str]:
    rate = f" ({100.0 * report.misses / report.requests:.2f} %)" if report.requests else ""
    out = [f"requests: {report.requests} infer replies in {report.latency_records} latency records; "
           f"{report.misses} deadline misses{rate}"]
    if not report.latency_records:
        out.append(f"  no latency records in this log (latency_event_s 0, or a gateway older than them); the stop "
                   f"events count {report.stop_infers} infer replies")
        return out
    out.append(f"latency per {report.window_s:g} s window (total_us, the server's clock, by the record's time):")
    out.append(f"  {'window start (UTC)':<26}{'requests':>9}{'misses':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>10}")
    for key in sorted(report.windows):
        w = report.windows[key].summary()
        out.append(f"  {w['time']:<26}{w['requests']:>9}{w['misses']:>8}{_us(w.get('p50_us')):>9}"
                   f"{_us(w.get('p90_us')):>9}{_us(w.get('p99_us')):>9}{_us(w['max_us']):>10}")
    if report.windows_dropped:
        out.append(f"  {report.windows_dropped} later records not shown: more than {MAX_WINDOWS} windows (pass a "
                   "longer --window-s)")
    return out


def _miss_lines(report: Report, listed: int) -> list[str]:
    events = report.miss_events
    out = [f"deadline_miss events: {len(events) + report.miss_events_not_kept} logged"
           + (f" (the log held back {report.events_suppressed} per-request events over its rate)"
              if report.events_suppressed else "")]
    for miss in events[:listed]:
        out.append(f"  {miss['time']}  {miss['client']} ({miss['name'] or 'no name'})  seq {miss['seq']}  "
                   f"waited {_us(miss['waited_us'])} us")
    if len(events) > listed:
        out.append(f"  ... {len(events) - listed} more (--json lists them)")
    return out


def _hash_lines(report: Report) -> list[str]:
    out = [f"hash drift: {len(report.clients)} session(s) sent config hashes, {len(report.changes)} change(s)"
           + (f" ({report.clients_dropped} more sessions not tracked)" if report.clients_dropped else "")]
    for label, client in report.clients.items():
        for value, entry in client.hashes.items():
            verdict = {True: "matches the export", False: "MISMATCH", None: "?"}[entry["matches"]]
            out.append(f"  {label} ({client.name or 'no name'}): {value} {verdict}, {utc_text(entry['first'])} .. "
                       f"{utc_text(entry['last'])}, {entry['mismatch_events']} hash_mismatch events")
    for change in report.changes:
        where = "" if change["from_client"] == change["client"] else f" (its previous session {change['from_client']})"
        out.append(f"  changed at {change['time']}: {change['client']} ({change['name'] or 'no name'}) "
                   f"{change['from']} -> {change['to']}{where}")
    return out


def plot(report: Report, png: str | Path) -> Path:
    """Latency over time (p50, p99, max per window) with the deadline misses marked, to a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    origin = report.first_ts or 0.0
    span = (report.last_ts or origin) - origin
    unit, per = ("minutes", 60.0) if span > 600 else ("seconds", 1.0)
    fig, ax = plt.subplots(figsize=(8, 4))
    rows = [report.windows[k].summary() for k in sorted(report.windows)]
    minutes = [(r["start"] + report.window_s / 2 - origin) / per for r in rows]
    for key, style, label in (("p50_us", "o-", "p50"), ("p99_us", "s--", "p99"), ("max_us", ":", "max")):
        ax.plot(minutes, [r.get(key, np.nan) for r in rows], style, label=f"{label} per {report.window_s:g} s window")
    missed = [(m["ts"], m["waited_us"]) for m in report.miss_events if m["waited_us"]]
    if missed:
        ax.plot([(t - origin) / per for t, _ in missed], [w for _, w in missed], "x", color="C3", markersize=8,
                label="deadline miss (time waited)")
    for r, x in zip(rows, minutes):
        if r["misses"]:
            ax.annotate(f"{r['misses']} miss{'es' if r['misses'] > 1 else ''}", (x, r.get("max_us") or 1.0),
                        color="C3", fontsize=7, textcoords="offset points", xytext=(0, 6), ha="center")
    for change in report.changes:
        ax.axvline((change["ts"] - origin) / per, color="C4", linestyle="--", linewidth=0.8)
    if not rows and not missed:
        ax.text(0.5, 0.5, "no latency records in this log", transform=ax.transAxes, ha="center")
    if rows or missed:
        ax.set_yscale("log")
        ax.margins(x=0.05, y=0.15)  # room for the miss counts above the max line
        ax.legend(fontsize=7)
    ax.set_xlabel(f"{unit} since {utc_text(origin)}" + (" (dashed: a client's config hash changed)"
                                                         if report.changes else ""))
    ax.set_ylabel("total latency (us)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"Gateway latency: {report.requests} requests, {report.misses} deadline misses", fontsize=10)
    fig.tight_layout()
    return save_png(fig, png)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roarm-gateway analyze", description="Summarize a gateway event log: latency "
                                "per time window, deadline misses, config-hash drift (docs/gateway.md).")
    p.add_argument("events", help="the gateway's event log (--event-log; default logs/gateway/events.jsonl), or a "
                   "rotated events.jsonl.N.gz")
    p.add_argument("--png", help="also plot latency over time, misses marked, to this PNG")
    p.add_argument("--window-s", dest="window_s", type=float, default=60.0, help="window length (default 60 s)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON instead of text")
    p.add_argument("--misses", type=int, default=20, help="deadline misses listed in the text (default 20)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.window_s) and args.window_s > 0):
        parser.error(f"--window-s must be a positive number of seconds, got {args.window_s}")
    path = Path(args.events)
    if not path.is_file():
        print(f"error: {path} is not a file: pass the gateway's event log (its --event-log; configs/gateway.yaml "
              "writes logs/gateway/events.jsonl)", file=sys.stderr)
        return 2
    try:
        report = analyze(path, args.window_s)
    except (OSError, EOFError, zlib.error) as err:
        print(f"error: cannot read {path} ({getattr(err, 'strerror', None) or err}): pass a readable event log "
              "(plain .jsonl or a rotated .gz)", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=1) if args.json else format_report(report, max(args.misses, 0)))
    if args.png:
        try:
            print(f"wrote {plot(report, args.png)}")
        except (OSError, ValueError) as err:
            print(f"error: cannot write {args.png} ({err}): pass a writable .png path", file=sys.stderr)
            return 2
    return 0
