"""`python -m bench.scheduler_day`: the rules + scheduler run of `edgecell report --scheduler`
alone, with its two perfect-foresight bounds, beside the baseline and reactive figures of an
earlier full report on the same scenario, seed and hours (its scheduler.json).

Those two runs read neither the scheduler's config nor its code: re-running them is two thirds
of the report's time (20-40 min of a busy 2-core box) for the same figures. The output is the
report's (scheduler.json, scheduler.md, plan_vs_actual.png), scheduler.json saying in
`reused_from` where the baseline and reactive columns come from.

    python -m bench.scheduler_day --scenario solar-day --reuse /tmp/solar/scheduler.json \\
        --out /tmp/solar-sched
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.foresight import bound_points
from controller.report import run_once
from controller.scheduler_report import (
    SchedulerRuns,
    bound_for,
    compare_figures,
    flexible_set,
    plan_summary,
    plan_vs_actual,
    plot_plan_vs_actual,
    run_figures,
    scheduler_markdown,
)
from drivers.sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler_day", description=__doc__)
    parser.add_argument("--scenario", default="solar-day")
    parser.add_argument("--reuse", type=Path, required=True, help="an earlier scheduler.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--scheduler-config", type=Path, default=ROOT / "configs" / "cosim-scheduler.yaml"
    )
    parser.add_argument("--cycle", type=float, default=5.0)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    earlier: dict[str, Any] = json.loads(args.reuse.read_text("utf-8"))
    scenario = load_scenario(args.scenario)
    hours = scenario.duration / 3600
    seed = earlier["seed"]
    if earlier["scenario"] != scenario.name or earlier["hours"] != hours:
        print(
            f"{args.reuse}: {earlier['scenario']} for {earlier['hours']} h, not "
            f"{scenario.name} for {hours} h",
            file=sys.stderr,
        )
        return 2
    config = load_config(args.scheduler_config).config
    run = asyncio.run(
        run_once(
            scenario,
            config,
            rules=True,
            hours=hours,
            cycle=args.cycle,
            seed=seed,
            label="scheduler",
            extra_points=bound_points(scenario),
        )
    )
    # The bounds read the scheduler run only (its true load and PV); the other two are
    # placeholders the bounds never look at.
    runs = SchedulerRuns(baseline=run, reactive=run, scheduler=run)
    flexible = flexible_set(config, scenario)
    bound = bound_for(runs, scenario, flexible)
    planned = bound_for(runs, scenario, flexible, planner_demand_charge=True)
    figures = {
        "baseline": earlier["runs"]["baseline"],
        "reactive": earlier["runs"]["reactive"],
        "scheduler": run_figures(run, scenario),
    }
    report = compare_figures(figures, bound, scenario, planned, seed=seed, hours=hours)
    report["reused_from"] = {"path": str(args.reuse), "runs": ["baseline", "reactive"]}
    start_ms = int(scenario.start.replace(tzinfo=UTC).timestamp() * 1000)
    series = plan_vs_actual(run, scenario, start_ms)
    report["plan_vs_actual"] = series
    report["plans"] = [plan_summary(hour, plan) for hour, plan in run.plans]
    args.out.mkdir(parents=True, exist_ok=True)
    report["plots"] = [] if args.no_plots else [plot_plan_vs_actual(series, bound, args.out).name]
    (args.out / "scheduler.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    markdown = scheduler_markdown(report)
    (args.out / "scheduler.md").write_text(markdown, encoding="utf-8")
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
