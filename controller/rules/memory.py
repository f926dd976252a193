"""What rules learn outlives a restart: a rule that remembers (a leak baseline learned over
nights) is given back its state from `{state_dir}/rules/{rule}.json` when it is built, and the
file is rewritten when the rule learns something. A file that is corrupt, of another format, or
of another rule or kind is ignored with one log line: the rule starts as if new, never crashes.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

log = structlog.get_logger(__name__)

RULE_MEMORY_DIR = "rules"  # under gateway.state_dir
FORMAT = "edgecell-rule-memory"
VERSION = 1


class RuleMemoryError(Exception):
    """Remembered state a rule cannot take (another shape, another version)."""


@runtime_checkable
class RememberingRule(Protocol):
    """A rule with state worth keeping across restarts."""

    name: str
    kind: str
    # Changes whenever `remembered()` would return something new (the engine saves then).
    memory_revision: int

    def remembered(self) -> dict[str, Any]:
        """The state to keep, JSON-ready."""
        ...

    def recall(self, state: Mapping[str, Any]) -> None:
        """Take state an earlier run kept; `RuleMemoryError` when it cannot."""
        ...


class RuleMemory:
    """The rules' files in one directory (`{state_dir}/rules`), one JSON file per rule:
    `{"format", "version", "rule", "kind", "saved_at_ms", "state"}`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, rule: str) -> Path:
        return self.directory / f"{rule}.json"

    def save(self, rule: RememberingRule, saved_at_ms: int) -> bool:
        """Write the rule's state (atomically: a crash leaves the old file or the new one);
        False, with one log line, when the disk refuses."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "rule": rule.name,
            "kind": rule.kind,
            "saved_at_ms": saved_at_ms,
            "state": rule.remembered(),
        }
        path = self.path(rule.name)
        partial = path.with_suffix(".json.partial")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
            os.replace(partial, path)
        except OSError as exc:
            log.warning("rule_memory_not_saved", rule=rule.name, path=str(path), error=str(exc))
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            return False
        return True

    def restore(self, rule: RememberingRule) -> bool:
        """Give the rule its remembered state; False (one log line unless there is no file)
        when there is none it can take."""
        path = self.path(rule.name)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            return _ignored(rule, path, f"cannot be read: {exc}")
        try:
            document = json.loads(text)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            return _ignored(rule, path, f"not JSON: {exc}")
        problem = _foreign(document, rule)
        if problem:
            return _ignored(rule, path, problem)
        try:
            rule.recall(document["state"])
        except RuleMemoryError as exc:
            return _ignored(rule, path, str(exc))
        log.info(
            "rule_memory_restored",
            rule=rule.name,
            path=str(path),
            saved_at_ms=document["saved_at_ms"],
        )
        return True


def _foreign(document: Any, rule: RememberingRule) -> str:
    """Why `document` is not this rule's memory, or '' when it is."""
    if not isinstance(document, dict):
        return "not a JSON object"
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        return f"not {FORMAT} version {VERSION}"
    if document.get("rule") != rule.name or document.get("kind") != rule.kind:
        return (
            f"kept for rule {document.get('rule')!r} of kind {document.get('kind')!r},"
            f" not {rule.name!r} of kind {rule.kind!r}"
        )
    saved = document.get("saved_at_ms")
    if not isinstance(saved, int) or isinstance(saved, bool):
        return "no saved_at_ms"
    if not isinstance(document.get("state"), dict):
        return "no state object"
    return ""


def _ignored(rule: RememberingRule, path: Path, reason: str) -> bool:
    log.warning("rule_memory_ignored", rule=rule.name, path=str(path), reason=reason)
    return False
