"""`python -m bench --cells N`: the controller co-simulated on N generated cells
(bench/cellgen.py), each against its own baseline as `edgecell report` does, and per cell what
issue #14 asks to bring to zero: process-limit violations, false alarms, leaks alarmed late or
never; with the energy, peak, cost and water savings and their distribution.

    .venv/bin/python -m bench --cells 30 [--seed 1] [--hours 24] [--cycle 5] [--jobs 2] [--out FILE]

`--jobs N` runs the cells in N processes side by side (a co-simulation uses about one core);
each writes its own JSON beside the result, and the result combines them in cell order.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.cellgen import ROOT, generate
from controller.alarmscore import detection_limits, under_detection_limit
from controller.config import load_config
from controller.logs import configure_logging
from controller.report import compare, run_pair
from drivers.sim.scenario import load_scenario

RESULTS = ROOT / "bench" / "results"
LATE_MIN = 30.0  # issue #14: every leak alarmed within 30 simulated minutes of its start
SAVINGS = ("energy_kwh", "peak_demand_kw", "energy_cost", "water_m3")


def _log(message: str) -> None:
    print(f"bench cells: {message}", file=sys.stderr, flush=True)


def summary(
    report: dict[str, Any], cell: str, under_limit: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """What one cell's report says about the issue's targets. `under_limit`: the names of the
    leaks under their rule's detection limit (`alarmscore.under_detection_limit`), reported
    apart: neither missed nor late when not alarmed in time."""
    # A leak counts once it flowed: one that starts with less than LATE_MIN of the run left and
    # is not alarmed yet is not counted as missed (the run ended, not the rule).
    end_s = report["hours"] * 3600
    leaks = [leak for leak in report["leaks"] if leak["true_start_s"] is not None]
    due = [
        leak
        for leak in leaks
        if leak["detected_after_min"] is not None or leak["true_start_s"] <= end_s - LATE_MIN * 60
    ]
    delays = [leak["detected_after_min"] for leak in due if leak["leak"] not in under_limit]
    base, ours = report["baseline"], report["edgecell"]
    return {
        "cell": cell,
        "hours": report["hours"],
        "violations_s": report["constraint_violations"],
        "violations_total_s": report["constraint_violations_s"],
        # The plant on its own fixed controls: a cell built to hold its limits shows none here,
        # so a violation beside edgecell's says the generated cell, not the rules, is at fault.
        "baseline_violations_s": {k: v for k, v in base["violations_s"].items() if v > 0},
        "baseline_violations_total_s": sum(base["violations_s"].values()),
        "ev_energy_short_kwh": [base["ev_energy_short_kwh"], ours["ev_energy_short_kwh"]],
        "false_alarms": report["false_alarms"],
        "other_alarms": report.get("other_alarms", {}),
        "leaks": [
            {
                **{
                    k: leak.get(k)
                    for k in (
                        "leak",
                        "kind",
                        "location",
                        "true_start_s",
                        "alarm",
                        "detected_after_min",
                    )
                },
                "under_detection_limit": leak["leak"] in under_limit,
            }
            for leak in due
        ],
        "leaks_under_limit": sum(1 for leak in due if leak["leak"] in under_limit),
        "leaks_not_due": len(leaks) - len(due),
        "leaks_missed": sum(1 for d in delays if d is None),
        "leaks_late": sum(1 for d in delays if d is not None and d > LATE_MIN),
        "savings_pct": {key: report["savings_pct"][key] for key in SAVINGS},
        # kW, baseline and edgecell: the billed peak (the tariff's clock-aligned windows) and
        # the meter's own sliding one (not billed).
        "peak_kw": [base["peak_demand_kw"], ours["peak_demand_kw"]],
        "meter_peak_kw": [base["meter_peak_demand_kw"], ours["meter_peak_demand_kw"]],
        "uses_more": [key for key in SAVINGS if (report["savings_pct"][key] or 0.0) < 0],
        "alarms": [alarm["topic"].rsplit("/", 1)[-1] for alarm in report["alarms"]],
        "wall_s": round(base["wall_s"] + ours["wall_s"], 1),
    }


def distribution(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of cells missing each target, and min / median / max of each saving."""
    out: dict[str, Any] = {
        "cells": len(cells),
        "cells_with_violations": sum(1 for c in cells if c["violations_total_s"] > 0),
        "violations_s_total": round(sum(c["violations_total_s"] for c in cells), 1),
        "baseline_violations_s_total": round(
            sum(c.get("baseline_violations_total_s", 0.0) for c in cells), 1
        ),
        "false_alarms_total": sum(c["false_alarms"] for c in cells),
        "leaks_total": sum(len(c["leaks"]) for c in cells),
        "leaks_missed": sum(c["leaks_missed"] for c in cells),
        "leaks_late": sum(c["leaks_late"] for c in cells),
        "leaks_under_limit": sum(c.get("leaks_under_limit", 0) for c in cells),
        "cells_using_more": sum(1 for c in cells if c["uses_more"]),
        "savings_pct": {},
    }
    for key in SAVINGS:
        values = [c["savings_pct"][key] for c in cells if c["savings_pct"][key] is not None]
        out["savings_pct"][key] = (
            {"min": min(values), "median": round(statistics.median(values), 2), "max": max(values)}
            if values
            else None
        )
    return out


def _delay(leak: dict[str, Any], missed: str) -> str:
    found = leak["detected_after_min"]
    return f"{leak['kind']} " + (missed if found is None else f"{found}")


def table(cells: list[dict[str, Any]], dist: dict[str, Any]) -> str:
    lines = [
        "| cell | violations (s) | baseline's violations (s) | false alarms | leaks: delay (min)"
        " | under the detection limit | energy | peak | cost | water |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]

    def pct(value: float | None) -> str:
        return "" if value is None else f"{value:+.1f} %"

    for c in cells:
        violated = ", ".join(f"{k} {v:.0f}" for k, v in c["violations_s"].items()) or "0"
        base_violated = (
            ", ".join(f"{k} {v:.0f}" for k, v in c.get("baseline_violations_s", {}).items()) or "0"
        )
        leaks = ", ".join(
            _delay(leak, "missed") for leak in c["leaks"] if not leak.get("under_detection_limit")
        )
        under = ", ".join(
            _delay(leak, "not alarmed") for leak in c["leaks"] if leak.get("under_detection_limit")
        )
        s = c["savings_pct"]
        lines.append(
            f"| {c['cell']} | {violated} | {base_violated} | {c['false_alarms']} | "
            f"{leaks or '-'} | {under or '-'} | {pct(s['energy_kwh'])} | "
            f"{pct(s['peak_demand_kw'])} | {pct(s['energy_cost'])} | {pct(s['water_m3'])} |"
        )
    lines += [
        "",
        f"{dist['cells']} cells: {dist['cells_with_violations']} with process-limit violations "
        f"({dist['violations_s_total']:.0f} s in all; the baseline runs "
        f"{dist['baseline_violations_s_total']:.0f} s), {dist['false_alarms_total']} false alarms, "
        f"{dist['leaks_total']} leaks of which {dist['leaks_missed']} never alarmed and "
        f"{dist['leaks_late']} alarmed after {LATE_MIN:g} min (and "
        f"{dist.get('leaks_under_limit', 0)} under their rule's detection limit, apart), "
        f"{dist['cells_using_more']} cells "
        "using more energy, peak, cost or water than their baseline.",
        "",
        "| saving | min | median | max |",
        "|---|---:|---:|---:|",
    ]
    for key, spread in dist["savings_pct"].items():
        if spread is not None:
            lines.append(
                f"| {key} | {spread['min']:+.1f} % | {spread['median']:+.1f} % | "
                f"{spread['max']:+.1f} % |"
            )
    return "\n".join(lines)


def _write(out: Path, head: dict[str, Any], cells: list[dict[str, Any]]) -> None:
    result = {**head, "cells": cells, "distribution": distribution(cells)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


async def run_cells(
    count: int,
    *,
    seed: int,
    hours: float,
    cycle: float,
    first: int,
    work: Path,
    out: Path | None = None,
    head: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each cell in turn; with `out`, the JSON is rewritten after every cell, so a long run
    that is stopped keeps the cells it finished."""
    results: list[dict[str, Any]] = []
    for index in range(first, first + count):
        cell = generate(seed, index)
        scenario_path, config_path = cell.write(work / cell.name)
        scenario = load_scenario(scenario_path)
        config = load_config(config_path).config
        started = time.perf_counter()
        baseline, edgecell = await run_pair(
            scenario, config, hours=hours, cycle=cycle, progress=False
        )
        report = compare(baseline, edgecell, scenario)
        limits = detection_limits(config.rules)
        under = frozenset(under_detection_limit(scenario.events.leaks, limits))
        result = summary(report, cell.name, under)
        result["machines"] = len(scenario.machines)
        result["demand_window_s"] = scenario.site.meter.demand_window
        results.append(result)
        _log(
            f"{cell.name}: {result['violations_total_s']:.0f} s violations, "
            f"{result['false_alarms']} false alarms, {result['leaks_missed']} missed and "
            f"{result['leaks_late']} late leaks ({time.perf_counter() - started:.0f} s)"
        )
        if out is not None:
            _write(out, head or {}, results)
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench --cells", description=__doc__)
    parser.add_argument("--cells", type=int, required=True, help="how many generated cells")
    parser.add_argument("--seed", type=int, default=1, help="the series of cells (1)")
    parser.add_argument("--first", type=int, default=0, help="index of the first cell (0)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours per run (24)")
    parser.add_argument("--cycle", type=float, default=5.0, help="controller cycle, s (5)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (bench/results/)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the cells' YAML here")
    parser.add_argument("--jobs", type=int, default=1, help="processes side by side (1)")
    args = parser.parse_args(argv)
    if args.cells < 1 or args.hours <= 0 or args.cycle <= 0 or args.jobs < 1:
        parser.error("--cells, --hours, --cycle and --jobs must be positive")
    return args


def shares(first: int, count: int, jobs: int) -> list[tuple[int, int]]:
    """(first, count) of each process: consecutive runs of cells, as even as they divide."""
    jobs = min(jobs, count)
    base, extra = divmod(count, jobs)
    result: list[tuple[int, int]] = []
    for job in range(jobs):
        size = base + (1 if job < extra else 0)
        result.append((first, size))
        first += size
    return result


def run_jobs(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """The cells in `args.jobs` processes of `python -m bench --cells`, combined in order. A
    process that fails is reported with its exit status; the cells it finished are kept."""
    parts: list[tuple[Path, subprocess.Popen[bytes]]] = []
    for first, count in shares(args.first, args.cells, args.jobs):
        part = out.with_name(f"{out.stem}.part{first}{out.suffix}")
        command = [
            sys.executable, "-m", "bench", "--cells", str(count), "--first", str(first),
            "--seed", str(args.seed), "--hours", str(args.hours), "--cycle", str(args.cycle),
            "--out", str(part),
        ]  # fmt: skip
        if args.keep is not None:
            command += ["--keep", str(args.keep)]
        parts.append((part, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    cells: list[dict[str, Any]] = []
    for part, process in parts:
        status = process.wait()
        if status != 0:
            _log(f"the process writing {part.name} exited with {status}")
        if part.exists():
            cells.extend(orjson.loads(part.read_bytes())["cells"])
    return sorted(cells, key=lambda cell: str(cell["cell"]))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging("warning")
    started = time.strftime("%Y%m%dT%H%M%S")
    out = args.out or RESULTS / f"{started}-cells-{args.seed}x{args.cells}.json"
    head = {
        "started": started,
        "seed": args.seed,
        "first": args.first,
        "hours": args.hours,
        "cycle_s": args.cycle,
    }
    if args.jobs > 1:
        cells = run_jobs(args, out)
        _write(out, head, cells)
        print(table(cells, distribution(cells)))
        print(f"\nJSON: {out}")
        return 0 if len(cells) == args.cells else 1
    with tempfile.TemporaryDirectory(prefix="edgecell-cells-") as scratch:
        work = args.keep or Path(scratch)
        cells = asyncio.run(
            run_cells(
                args.cells,
                seed=args.seed,
                hours=args.hours,
                cycle=args.cycle,
                first=args.first,
                work=work,
                out=out,
                head=head,
            )
        )
    _write(out, head, cells)
    print(table(cells, distribution(cells)))
    print(f"\nJSON: {out}")
    return 0
