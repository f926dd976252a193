"""The `edgecell` command: run, validate, demo, sim and the tools around them.

Exit codes: 0 success, 1 runtime failure, 2 bad input (config or arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller import __version__
from controller.config import Config, ConfigError, LoadedConfig, load_config
from controller.logs import configure_logging
from controller.statedir import StateDirLockedError

if TYPE_CHECKING:
    from drivers.sim.scenario import Scenario

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgecell",
        description="Edge controller for factory cells: Modbus and OPC UA in, rules, MQTT out.",
    )
    parser.add_argument("--version", action="version", version=f"edgecell {__version__}")
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default="auto",
        help="log lines as JSON (default when stderr is not a terminal) or key=value",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon with a config file")
    run.add_argument("config", type=Path)

    validate = sub.add_parser("validate", help="check config files; exit 2 on any problem")
    validate.add_argument("configs", type=Path, nargs="+", metavar="config")

    demo = sub.add_parser(
        "demo", help="simulated cell + local broker + controller, all on this machine"
    )
    demo.add_argument("--config", type=Path, default=_repo_file("configs/demo.yaml"))
    demo.add_argument("--scenario", default="normal-day", help="simulated cell scenario")
    demo.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument(
        "--use-config-broker",
        action="store_true",
        help="publish to the broker in the config instead of starting a private mosquitto",
    )

    sim = sub.add_parser("sim", help="serve the simulated factory cell over Modbus and OPC UA")
    sim.add_argument("--scenario", default="normal-day", help="a name in configs/sim/ or a path")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    sim.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="serve devices on consecutive ports from this one (default: the scenario's ports)",
    )
    report = sub.add_parser(
        "report",
        help="savings on the simulated cell: baseline vs rules, same scenario and seed",
    )
    report.add_argument("--scenario", default="normal-day", help="a name in configs/sim/ or a path")
    report.add_argument(
        "--config",
        type=Path,
        default=None,
        help="default: configs/cosim.yaml, or configs/cosim-storage.yaml for a cell with a battery",
    )
    report.add_argument("--seed", type=int, default=None)
    report.add_argument("--hours", type=float, default=None, help="default: the scenario's")
    report.add_argument("--cycle", type=float, default=5.0, help="controller cycle, seconds")
    report.add_argument("--out", type=Path, default=Path("report"))
    report.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    report.add_argument(
        "--scheduler",
        action="store_true",
        help="three runs (baseline, reactive rules, rules + scheduler) and the perfect-foresight"
        " bound",
    )
    report.add_argument(
        "--scheduler-config",
        type=Path,
        default=None,
        help="with --scheduler: the rules + scheduler config (configs/cosim-scheduler.yaml)",
    )
    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands that live with their driver (OPC UA browse and certs, Modbus scan) or their
    extra (watch)."""
    # Only argparse and config models are imported here; asyncua, pymodbus and textual load
    # when a command runs.
    from controller.watch.cli import add_commands as add_watch  # noqa: PLC0415
    from drivers.modbus.scan_cli import add_commands as add_modbus_commands  # noqa: PLC0415
    from drivers.opcua.cli import add_commands  # noqa: PLC0415

    add_commands(sub)
    add_modbus_commands(sub)
    add_watch(sub)


def _repo_file(relative: str) -> Path:
    """A file of the source tree (configs/ is not installed into site-packages)."""
    here = Path(__file__).resolve().parent.parent / relative
    return here if here.exists() else Path(relative)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    command = args.command
    if command == "validate":
        return cmd_validate(args.configs)
    if command == "run":
        loaded = _load_or_report(args.config)
        if loaded is None:
            return EXIT_BAD_INPUT
        configure_logging(loaded.config.gateway.log_level, json=json_logs)
        return _run_async(_run_daemon(loaded))
    if command == "demo":
        loaded = _load_or_report(args.config)
        if loaded is None:
            return EXIT_BAD_INPUT
        configure_logging("info", json=json_logs)
        from controller.demo import run_demo  # noqa: PLC0415  (pulls in the simulator)

        return _run_async(
            run_demo(
                loaded,
                scenario=args.scenario,
                speed=args.speed,
                duration=args.duration,
                use_config_broker=args.use_config_broker,
                say=_say,
            )
        )
    if command == "sim":
        configure_logging("info", json=json_logs)
        from controller.demo import run_sim  # noqa: PLC0415

        return _run_async(
            run_sim(
                args.scenario,
                speed=args.speed,
                seed=args.seed,
                duration=args.duration,
                base_port=args.base_port,
                say=_say,
            )
        )
    if command == "report":
        configure_logging("warning", json=json_logs)
        return cmd_report(args)
    handler = getattr(args, "handler", None)
    if handler is not None:
        configure_logging("info", json=json_logs)
        return int(handler(args))
    parser.error(f"unknown command {command}")
    return EXIT_BAD_INPUT


def cmd_validate(paths: Sequence[Path]) -> int:
    worst = EXIT_OK
    for path in paths:
        loaded = _load_or_report(path)
        if loaded is None:
            worst = EXIT_BAD_INPUT
        else:
            config = loaded.config
            tags = sum(len(device.tags) for device in config.devices)
            print(
                f"{path}: ok (gateway {config.gateway.id}, {len(config.devices)} devices, "
                f"{tags} tags, base topic {config.base_topic})"
            )
    return worst


def report_config_for(scenario: Scenario) -> Path:
    """The shipped co-simulation config for a scenario: configs/cosim-storage.yaml for a cell
    with a battery (it polls the SunSpec devices and drives the battery), else cosim.yaml."""
    if scenario.battery is not None:
        return _repo_file("configs/cosim-storage.yaml")
    return _repo_file("configs/cosim.yaml")


def cmd_report(args: argparse.Namespace) -> int:
    from controller.cellcheck import check_cell  # noqa: PLC0415
    from controller.report import markdown, run_pair, write_report  # noqa: PLC0415
    from drivers.sim.scenario import ScenarioError, load_scenario  # noqa: PLC0415

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    config_path = args.config or report_config_for(scenario)
    loaded = _load_or_report(config_path)
    if loaded is None:
        return EXIT_BAD_INPUT
    # Where the config repeats the plant by hand and the scenario says otherwise: said before
    # the run, kept in the report; the run goes ahead (a deliberate difference is allowed).
    findings = check_cell(loaded.config, scenario)
    for finding in findings:
        print(finding.line(), file=sys.stderr)
    if args.scheduler:
        return _scheduler_report(args, scenario, loaded.config)
    baseline, edgecell = asyncio.run(
        run_pair(scenario, loaded.config, hours=args.hours, cycle=args.cycle, seed=args.seed)
    )
    report = write_report(
        baseline, edgecell, scenario, args.out, plots=not args.no_plots, findings=findings
    )
    print(markdown(report))
    plots = ", PNG plots" if report["plots"] else ""
    print(f"written to {args.out}/: report.json, report.md{plots}")
    return EXIT_OK


def _scheduler_report(args: argparse.Namespace, scenario: Scenario, reactive: Config) -> int:
    """`report --scheduler`: baseline, reactive rules and rules + scheduler on one seed, and the
    perfect-foresight bound (docs/simulator.md, "The scheduler report")."""
    from controller.cellcheck import check_cell  # noqa: PLC0415
    from controller.scheduler_report import (  # noqa: PLC0415
        bound_for,
        flexible_set,
        run_three,
        scheduler_markdown,
        write_scheduler_report,
    )

    path = args.scheduler_config or _repo_file("configs/cosim-scheduler.yaml")
    loaded = _load_or_report(path)
    if loaded is None:
        return EXIT_BAD_INPUT
    if loaded.config.scheduler is None:
        print(f"{path}: --scheduler needs a config with a scheduler: section", file=sys.stderr)
        return EXIT_BAD_INPUT
    for finding in check_cell(loaded.config, scenario):
        print(finding.line(), file=sys.stderr)
    runs = asyncio.run(
        run_three(
            scenario,
            reactive,
            loaded.config,
            hours=args.hours,
            cycle=args.cycle,
            seed=args.seed,
        )
    )
    flexible = flexible_set(loaded.config, scenario)
    bound = bound_for(runs, scenario, flexible)
    planned = bound_for(runs, scenario, flexible, planner_demand_charge=True)
    report = write_scheduler_report(
        runs, bound, scenario, args.out, plots=not args.no_plots, planner_bound=planned
    )
    print(scheduler_markdown(report))
    plots = ", plan_vs_actual.png" if report["plots"] else ""
    print(f"written to {args.out}/: scheduler.json, scheduler.md{plots}")
    return EXIT_OK


def _load_or_report(path: Path) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _say(line: str) -> None:
    """A line for the person at the terminal, at once (the demo's watch hint, the sim's ports)."""
    print(line, flush=True)


def _run_async(coro: object) -> int:
    try:
        return int(asyncio.run(coro))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return EXIT_OK


async def _run_daemon(loaded: LoadedConfig) -> int:
    from controller.runtime import Runtime  # noqa: PLC0415

    runtime = Runtime(loaded)
    runtime.install_signal_handlers()
    try:
        await runtime.run()
    except StateDirLockedError as exc:
        # One line that names the holder; a traceback would say nothing more.
        log.error(  # noqa: TRY400
            "state_dir_in_use",
            state_dir=str(exc.state_dir),
            holder_pid=exc.holder_pid,
            error=str(exc),
        )
        return EXIT_FAILURE
    return EXIT_OK
