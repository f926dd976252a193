"""The side-by-side table, edgecell's figures as ratios to each peer's, and the issue's targets,
from the figures of one run."""

from __future__ import annotations

from typing import Any

from bench.workload import Workload

EDGECELL_ROWS = ("edgecell", "edgecell-changes")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    header = ["gateway", "values/s", "complete", "changes", "CPU %core", "CPU ms/1k val",
              "RSS MB", "peak RSS MB", "lat p50 ms", "lat p99 ms", "jitter p99 ms",
              "req/cycle (opt)"]
    lines = [header]
    for r in rows:
        lines.append([
            r["label"] + ("" if r["ok"] else " (!)"),
            _fmt(r["values_per_s"], 0),
            f"{r['values_completeness']:.1%}",
            f"{r['changes_completeness']:.1%}",
            _fmt(r["cpu_percent_of_core"], 1),
            _fmt(r["cpu_ms_per_1000_values"], 2),
            _fmt(r["rss_mb"], 0),
            _fmt(r["peak_rss_mb"], 0),
            _fmt(r["latency_p50_ms"], 0),
            _fmt(r["latency_p99_ms"], 0),
            _fmt(r["poll_jitter_p99_ms"], 1),
            f"{r['requests_per_cycle']:g} ({r['optimal_requests_per_cycle']})",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:],
                                                                         strict=True)]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"(!) {r['label']}: {r['note']}" for r in rows if not r["ok"]]
    return "\n".join(out + notes)


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """edgecell's figure / the peer's figure, for each edgecell row and each peer row (below 1
    is better for edgecell on every one of these). Report by exception delivers a tenth of the
    values by design: its CPU per value is not comparable, its CPU share is."""
    by_key = {r["gateway"]: r for r in rows}
    result = []
    for ours_key in EDGECELL_ROWS:
        ours = by_key.get(ours_key)
        if ours is None:
            continue
        for peer in rows:
            if peer["gateway"] in EDGECELL_ROWS:
                continue
            result.append({
                "edgecell": ours_key,
                "peer": peer["gateway"],
                "cpu_per_value": _ratio(ours["cpu_ms_per_1000_values"],
                                        peer["cpu_ms_per_1000_values"]),
                "cpu_percent": _ratio(ours["cpu_percent_of_core"], peer["cpu_percent_of_core"]),
                "rss": _ratio(ours["rss_mb"], peer["rss_mb"]),
                "peak_rss": _ratio(ours["peak_rss_mb"], peer["peak_rss_mb"]),
                "latency_p99": _ratio(ours["latency_p99_ms"], peer["latency_p99_ms"]),
            })
    return result


def comparison_table(items: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    if not items:
        return "(no peer in this run)"
    labels = {r["gateway"]: r["label"] for r in rows}
    header = ["edgecell / peer", "CPU per value", "CPU %core", "RSS", "peak RSS", "latency p99"]
    lines = [header]
    for c in items:
        lines.append([
            f"{labels[c['edgecell']]} / {labels[c['peer']]}",
            *(("-" if c[k] is None else f"{c[k]:.2f}x")
              for k in ("cpu_per_value", "cpu_percent", "rss", "peak_rss", "latency_p99")),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join([line[0].ljust(widths[0])]
                             + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def targets(rows: list[dict[str, Any]], workload: Workload) -> list[dict[str, Any]]:
    """The issue's targets that this run can judge, each met or missed with the figures."""
    by_key = {r["gateway"]: r for r in rows}
    found: list[dict[str, Any]] = []

    def add(name: str, met: bool, detail: str) -> None:
        found.append({"target": name, "met": met, "detail": detail})

    ours = by_key.get("edgecell")
    if ours is not None:
        rate = workload.tags / workload.period
        complete = ours["values_completeness"] >= 0.99 and ours["changes_completeness"] >= 0.99
        if rate <= 10_000:
            add(f"{rate:,.0f} tags/s (target for 10,000): complete, < 5% of a core, < 100 MB",
                complete and ours["cpu_percent_of_core"] < 5 and ours["peak_rss_mb"] < 100,
                f"{ours['values_completeness']:.1%} complete, {ours['cpu_percent_of_core']}% "
                f"core, {ours['peak_rss_mb']} MB")
        else:
            add(f"{rate:,.0f} tags/s: complete, < 40% of a core",
                complete and ours["cpu_percent_of_core"] < 40,
                f"{ours['values_completeness']:.1%} complete, {ours['cpu_percent_of_core']}% core")
            # Issue 13, point 14: what the daemon holds at 100,000 tags/s.
            add(f"{rate:,.0f} tags/s: RSS at the end of the window < 150 MB",
                ours["rss_mb"] < 150, f"{ours['rss_mb']} MB (peak {ours['peak_rss_mb']} MB)")
        p99 = ours["latency_p99_ms"]
        limit = workload.period * 1000 + 50
        add(f"p99 change-to-broker < poll interval + 50 ms ({limit:.0f} ms)",
            p99 is not None and p99 < limit, f"p99 {p99} ms")
        per_value = ours["cpu_ms_per_1000_values"]
        for peer, factor in (("nodered-raw", 1.0), ("nodered-decode", 3.0), ("thingsboard", 10.0)):
            theirs = by_key.get(peer, {}).get("cpu_ms_per_1000_values")
            if theirs is None or per_value is None:
                continue
            add(f"CPU per value >= {factor:g}x lower than {peer}",
                per_value * factor <= theirs,
                f"{per_value} vs {theirs} ms per 1,000 values ({theirs / per_value:.2f}x)")
    return found


def targets_text(items: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['detail']}" for t in items
    ) or "(no target applies)"


def opcua_label(nodes: int) -> str:
    return f"edgecell, OPC UA ({nodes:,} polled + {nodes:,} subscribed nodes)"


def opcua_table(opcua: dict[str, Any]) -> str:
    """The OPC UA row (bench/opcua_bench.py's figures, run after the Modbus rows) and its note."""
    note = ("Node-RED and the ThingsBoard gateway have no OPC UA row: the peers run on the "
            "Modbus devices only.")
    if not opcua["ok"]:
        return f"{opcua['label']} (!): {opcua['note']}\n{note}"
    f, w = opcua["figures"], opcua["workload"]
    per_1000 = f["daemon_cpu_s_per_1000_values"]
    header = ["gateway", "values/s", "complete", "changes", "CPU %core", "CPU ms/1k val",
              "peak RSS MB", "publish->MQTT p50/p99 ms", "change->MQTT p99 ms (sub/poll)",
              "round trips/cycle"]
    published = f["subscribed_published"]
    row = [
        opcua["label"],
        f"{_fmt(f['values_per_s'], 0)} ({_fmt(f['polled_values_per_s'], 0)} + "
        f"{_fmt(f['subscribed_values_per_s'], 0)})",
        "-" if f["values_completeness"] is None else f"{f['values_completeness']:.1%}",
        f"{1 - f['subscribed_lost'] / published:.1%}" if published else "-",
        _fmt(f["daemon_cpu_percent_of_core"], 1),
        _fmt(None if per_1000 is None else per_1000 * 1000, 2),
        _fmt(f["daemon_peak_rss_mb"], 0),
        f"{_fmt(f['publish_to_mqtt_p50_ms'])} / {_fmt(f['publish_to_mqtt_p99_ms'])}",
        f"{_fmt(f['change_to_mqtt_p99_ms'], 0)} / {_fmt(f['polled_change_to_mqtt_p99_ms'], 0)}",
        _fmt(f["poll_round_trips_per_cycle"], 2),
    ]
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    lines = ["  ".join([line[0].ljust(widths[0])]
                       + [c.rjust(n) for c, n in zip(line[1:], widths[1:], strict=True)])
             for line in (header, row)]
    lines.insert(1, "  ".join("-" * n for n in widths))
    targets = ", ".join(f"{name} {'met' if met else 'MISSED'}"
                        for name, met in opcua["targets"].items())
    return "\n".join([
        *lines,
        f"{w['polled_nodes']:,} nodes read every {w['poll_interval']}, {w['subscribed_nodes']:,} "
        f"subscribed at {w['publishing_interval']} publishing, "
        f"{_fmt(w['changes_per_s'], 0)} changes/s (each node at least once a second), "
        f"mqtt.publish {w['mqtt_publish']}; 'complete': of {_fmt(w['expected_values_per_s'], 0)} "
        f"values/s; 'changes': subscribed changes that reached the broker; "
        f"{f['window_s']:g} s measured.",
        f"Targets (issue 3): {targets}.",
        note,
    ])
