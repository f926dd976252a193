"""The daemon's side of the solver's process: starts `python -m controller.scheduler.worker`,
sends a request, waits for its answer at most `timeout` seconds, and kills the process when it
does not answer in time, answers nonsense, or dies. The next solve starts a new one. Nothing the
process writes is trusted: a reply is read with a bounded line and validated
(controller/scheduler/wire.py) before anything uses it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Literal

import orjson
import structlog
from pydantic import ValidationError

from controller.scheduler.wire import MAX_LINE_BYTES, PlanWire, SolveReply, SolveRequest

log = structlog.get_logger(__name__)

WORKER_COMMAND = (sys.executable, "-m", "controller.scheduler.worker")
# How long a killed process is waited for (SIGKILL cannot be refused: this is the kernel's time).
REAP_TIMEOUT = 5.0

FailureKind = Literal["timeout", "crashed", "invalid_reply", "refused", "start_failed"]


class SolverFailedError(Exception):
    """No plan from the solver's process: `kind` says how (a time-out, a crash, a reply that
    did not validate, a problem the solver refused, a process that would not start)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SolverProcess:
    """One solver process at a time, started when a solve needs it."""

    def __init__(
        self,
        timeout: float,
        command: Sequence[str] = WORKER_COMMAND,
        *,
        start_timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.command = tuple(command)
        self._process: asyncio.subprocess.Process | None = None
        self._next_id = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    def exited(self) -> int | None:
        """The exit code of a process that ended on its own (killed from outside, crashed)
        since the last solve, once; None while it runs or when none was started."""
        process = self._process
        if process is None or process.returncode is None:
            return None
        self._process = None
        return process.returncode

    async def _start(self) -> asyncio.subprocess.Process:
        process = self._process
        if process is not None and process.returncode is None:
            return process
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MAX_LINE_BYTES + 1,
                env=env,
            )
        except OSError as exc:
            raise SolverFailedError("start_failed", f"cannot start the solver: {exc}") from exc
        self._process = process
        self.starts += 1
        # It says `ready` once its imports are done (seconds on a busy gateway): the solve's
        # time-out starts after that.
        try:
            if process.stdout is None:
                raise SolverFailedError("start_failed", "the solver has no pipes")
            line = await asyncio.wait_for(process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            await self.kill("not ready in time")
            raise SolverFailedError(
                "start_failed", f"the solver was not ready within {self.start_timeout:g} s"
            ) from None
        except ValueError:
            line = b""
        try:
            ready = orjson.loads(line) if line else None
        except orjson.JSONDecodeError:
            ready = None
        if not isinstance(ready, dict) or ready.get("ready") is not True:
            code = process.returncode
            await self.kill("no ready line")
            raise SolverFailedError(
                "start_failed", f"the solver did not start (exit {code}, said {line[:200]!r})"
            )
        log.info("solver_started", pid=process.pid, starts=self.starts)
        return process

    async def solve(self, request: SolveRequest) -> PlanWire:
        """The plan for `request` (its id is set here), or `SolverFailedError`."""
        self._next_id += 1
        request = request.model_copy(update={"id": self._next_id})
        process = await self._start()
        if process.stdin is None or process.stdout is None:  # started with both pipes
            raise SolverFailedError("start_failed", "the solver has no pipes")
        line = orjson.dumps(request.model_dump(mode="json")) + b"\n"
        try:
            process.stdin.write(line)
            await asyncio.wait_for(process.stdin.drain(), self.timeout)
            answer = await asyncio.wait_for(process.stdout.readline(), self.timeout)
        except TimeoutError:
            await self.kill("no answer in time")
            raise SolverFailedError(
                "timeout", f"the solver did not answer within {self.timeout:g} s: killed"
            ) from None
        except (ConnectionError, BrokenPipeError) as exc:
            code = await self._reap()
            raise SolverFailedError("crashed", f"the solver is gone (exit {code}): {exc}") from None
        except (ValueError, asyncio.LimitOverrunError):
            await self.kill("reply longer than a line may be")
            raise SolverFailedError(
                "invalid_reply", f"the solver's reply is longer than {MAX_LINE_BYTES} bytes"
            ) from None
        if not answer:
            code = await self._reap()
            raise SolverFailedError("crashed", f"the solver died (exit {code})")
        try:
            reply = SolveReply.model_validate_json(answer)
        except ValidationError as exc:
            await self.kill("reply did not validate")
            raise SolverFailedError(
                "invalid_reply", f"the solver's reply is not a plan: {exc.errors()[:2]}"[:500]
            ) from None
        if reply.id != request.id:
            await self.kill("reply to another request")
            raise SolverFailedError(
                "invalid_reply", f"reply {reply.id} to request {request.id}: out of step"
            )
        if not reply.ok or reply.plan is None:
            raise SolverFailedError("refused", reply.error or "no plan")
        return reply.plan

    async def _reap(self) -> int | None:
        process = self._process
        if process is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), REAP_TIMEOUT)
        self._process = None
        return process.returncode

    async def kill(self, why: str) -> None:
        """SIGKILL the process (a solver stuck in native code answers nothing else)."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            log.warning("solver_killed", pid=process.pid, why=why)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        await self._reap()

    async def close(self) -> None:
        """End the process: its stdin closed (it exits), killed if it does not."""
        process = self._process
        if process is None:
            return
        if process.returncode is None and process.stdin is not None:
            process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 1.0)
        await self.kill("closing")
