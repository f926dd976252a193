"""How `edgecell report` scores a run's alarms against the plant's true leaks: by what each
alarm declares it indicates and where (controller/alarms.py, `DeclaredAlarm`), never by words
in its message. A finding is an alarm's raise or a step of its estimate by another leak
(controller/rules/steps.py); docs/rules.md, "Alarms", gives the convention.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.rules.config import RuleConfig
from drivers.sim.scenario import Leak, WaterLeak

LEAK_ALARMS = {"water": "water_leak", "air": "air_leak"}  # a leak's kind -> alarm `indicates`
# Water-leak rule kinds and where their alarm looks (docs/rules.md, "Alarms"): their
# `threshold_m3_h` is the smallest leak they are configured to find there.
WATER_LEAK_KINDS = {"water_leak": "main", "tower_balance": "cooling_tower"}


@dataclass(frozen=True, slots=True)
class AlarmFinding:
    """What an alarm said once: raised (`step` 0) or stepped up by another leak (`step` n), at
    `at_s` seconds into the run, indicating `indicates` at `location`."""

    alarm: str
    episode: int
    step: int
    at_s: float
    indicates: str | None
    location: str | None
    previous_s: float | None  # the same episode's finding before this step


def findings(truth: dict[str, Any], alarms: list[dict[str, Any]]) -> list[AlarmFinding]:
    """Every finding of the run's alarms, in time order: each episode's raise and each step of
    its estimate (docs/rules.md, "Alarms")."""
    # The co-simulation's clock reads the scenario's local start as UTC (controller/cosim.py).
    start = datetime.fromisoformat(truth["start"]).replace(tzinfo=UTC)
    start_ms = start.timestamp() * 1000
    found: list[AlarmFinding] = []
    by_episode: dict[tuple[str, int], float] = {}
    for alarm in sorted(alarms, key=lambda a: a.get("stepped_at") or a["first"]):
        step = int(alarm.get("steps") or 0)
        at_ms = alarm["first"] if step == 0 else alarm.get("stepped_at")
        if at_ms is None:
            continue
        name = alarm["topic"].rsplit("/", 1)[-1]
        episode = int(alarm.get("raised_count", 1))
        at_s = (at_ms - start_ms) / 1000
        found.append(
            AlarmFinding(
                alarm=name,
                episode=episode,
                step=step,
                at_s=at_s,
                indicates=alarm.get("indicates"),
                location=alarm.get("location"),
                previous_s=by_episode.get((name, episode)),
            )
        )
        by_episode[(name, episode)] = at_s
    return sorted(found, key=lambda f: f.at_s)


def _about(leak: dict[str, Any], finding: AlarmFinding) -> bool:
    """The finding is of the leak's kind and place (as its rule declares), made after it began."""
    return (
        leak["started_s"] is not None
        and finding.indicates == LEAK_ALARMS.get(leak["kind"])
        and finding.location == leak.get("location")
        and finding.at_s >= leak["started_s"]
    )


def leak_scores(
    truth: dict[str, Any], alarms: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Each true leak with the delay until a finding of its kind and place; false alarms.

    Leaks are taken in the order they began; each is found by the first finding about it
    (`_about`) that no earlier leak took: a raise, or a step of a raised alarm's estimate (a
    second leak under an alarm still raised for the first). A raise is a false alarm when no
    leak of its kind and place was flowing; a step, when none began since the finding before
    it (nothing new to find). Alarms that indicate no leak (a process limit, equipment,
    maintenance) are not leak alarms: `other_alarms` counts their raises by what they
    indicate, judged elsewhere (the plant's violations), never as a found or a false leak."""
    found = findings(truth, alarms)
    taken: set[AlarmFinding] = set()
    scored: list[dict[str, Any]] = []
    leaks = sorted(truth["leaks"], key=lambda leak: leak["started_s"] or float("inf"))
    for leak in leaks:
        entry: dict[str, Any] = {
            "leak": leak["name"],
            "kind": leak["kind"],
            "location": leak.get("location"),
            "true_start_s": leak["started_s"],
            "alarm": None,
            "step": None,
            "detected_after_min": None,
        }
        for finding in found:
            if finding not in taken and _about(leak, finding):
                taken.add(finding)
                entry["alarm"] = finding.alarm
                entry["step"] = finding.step
                entry["detected_after_min"] = round((finding.at_s - leak["started_s"]) / 60, 1)
                break
        scored.append(entry)
    order = {leak["name"]: i for i, leak in enumerate(truth["leaks"])}
    scored.sort(key=lambda entry: order[entry["leak"]])

    def false(finding: AlarmFinding) -> bool:
        about = [leak for leak in leaks if _about(leak, finding)]
        if finding.step == 0 or finding.previous_s is None:
            return not about
        since = finding.previous_s
        return not any(leak["started_s"] > since for leak in about)

    leak_findings = [finding for finding in found if finding.indicates in LEAK_ALARMS.values()]
    return scored, sum(1 for finding in leak_findings if false(finding))


def other_alarms(truth: dict[str, Any], alarms: list[dict[str, Any]]) -> dict[str, int]:
    """Raises of alarms that indicate no leak, by what they indicate (`process_limit`,
    `equipment`, `maintenance`; `unknown` for a payload without `indicates`)."""
    counts: dict[str, int] = {}
    for finding in findings(truth, alarms):
        if finding.step == 0 and finding.indicates not in LEAK_ALARMS.values():
            kind = finding.indicates or "unknown"
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def detection_limits(rules: Iterable[RuleConfig]) -> dict[str, float]:
    """The smallest water leak each place's rule is configured to find (m3/h): the
    `threshold_m3_h` of its water_leak (`main`) and tower_balance (`cooling_tower`) rules, the
    lowest when a place has several. A place without such a rule has no entry."""
    limits: dict[str, float] = {}
    for rule in rules:
        location = WATER_LEAK_KINDS.get(rule.kind)
        threshold = getattr(rule, "threshold_m3_h", None)
        if location is not None and threshold is not None:
            limits[location] = min(threshold, limits.get(location, threshold))
    return limits


def under_detection_limit(leaks: Iterable[Leak], limits: dict[str, float]) -> set[str]:
    """Names of the water leaks (a scenario's `events.leaks`) smaller than the detection limit
    of their place's rule: a leak the rules were not configured to find. The score reports them
    apart, as under the limit, neither found late nor missed."""
    return {
        leak.name
        for leak in leaks
        if isinstance(leak, WaterLeak)
        and leak.location in limits
        and leak.m3_h < limits[leak.location]
    }
