"""A function run as Lambda runs it: one process per concurrent execution environment, through the Runtime API.

`FunctionProcess` is one execution environment: `python -m awslambdaric <handler>` of the runtime's venv, in the
unpacked package (`LAMBDA_TASK_ROOT`, the working directory), with a clean environment: the function's `Environment`,
Lambda's own variables, the endpoint and the function's credentials, nothing of the CLI's. Its output (stdout and
stderr, as CloudWatch Logs gets them) is read line by line; what it printed during an invocation comes back with
the invocation's outcome. An invocation not answered by its deadline is killed and reported as Lambda reports it
(`Task timed out after N.NN seconds`); a process whose resident memory passes `MemorySize` is killed too
(`Runtime.OutOfMemory`); a process that died is replaced by a cold one at the next invocation.

`FunctionPool` holds a function's environments: an idle one is reused (warm), else one is started (cold), at most
`reserved_concurrency` at a time (an invocation over it waits for one to be free, where Lambda would throttle it and
retry an asynchronous or stream invocation itself). `start_idle` starts environments before any event, as Lambda's
provisioned concurrency does: their init (the runtime and the handler's imports) runs while the caller goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tripstream.counters import Counters
from tripstream.local.lambda_service.runtime_api import STOPPED, Outcome, RuntimeApi

log = logging.getLogger(__name__)

_MEMORY_POLL_SECONDS: Final = 0.05
_START_TIMEOUT_SECONDS: Final = 60.0


@dataclass(frozen=True)
class FunctionSpec:
    """Everything a function process is started from."""

    name: str
    arn: str
    handler: str
    timeout_seconds: float
    memory_mb: int
    python: Path  # the runtime venv's interpreter
    task_root: Path  # the unpacked package
    environment: Mapping[str, str]  # the whole environment of the process (see `lambda_environment`)
    reserved_concurrency: int | None = None


def lambda_environment(
    *,
    function_environment: Mapping[str, str],
    name: str,
    memory_mb: int,
    handler: str,
    region: str,
    endpoint_url: str | None,
    credentials: Mapping[str, str],
    task_root: Path,
    runtime: str,
) -> dict[str, str]:
    """The environment Lambda gives a function: its `Environment` and Lambda's reserved variables, no more."""
    environment = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(task_root),
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **function_environment,
        **credentials,
    }
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    return environment


@dataclass(frozen=True)
class Invocation:
    """One event for a function: its deadline (the function's timeout when None), `abort` (the local service
    stopping) and `on_line` (each line the function prints while it runs; all of them are in the result too)."""

    event: bytes
    timeout_seconds: float | None = None
    abort: threading.Event | None = None
    on_line: Callable[[str], None] | None = None


@dataclass
class InvocationResult:
    payload: bytes | None
    error: dict[str, Any] | None
    logs: list[str]
    seconds: float
    cold: bool


@dataclass
class ProcessStats(Counters):
    """Per function: environments started, their peak resident memory, cold and warm invocation times."""

    started: int = 0
    peak_rss_mb: float = 0.0
    cold_seconds: list[float] = field(default_factory=list)
    warm_seconds: list[float] = field(default_factory=list)

    def record(self, result: InvocationResult, peak_rss_mb: float) -> None:
        with self._lock:
            (self.cold_seconds if result.cold else self.warm_seconds).append(result.seconds)
            self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb)


def timed_out_error(timeout_seconds: float) -> dict[str, Any]:
    return {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout_seconds:.2f} seconds"}


class FunctionProcess:
    """One execution environment of a function (one invocation at a time)."""

    def __init__(self, spec: FunctionSpec, on_log: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._on_log = on_log
        self._api = RuntimeApi()
        self._lines: list[str] | None = None  # the current invocation's output
        self._on_line: Callable[[str], None] | None = None  # the current invocation's, each line as it is read
        self._output_lock = threading.Lock()
        self._partial = b""
        self._killed_for: dict[str, Any] | None = None
        self.peak_rss_mb = 0.0
        self.invocations = 0
        environment = {**spec.environment, "AWS_LAMBDA_RUNTIME_API": self._api.address}
        self._process = subprocess.Popen(
            [str(spec.python), "-m", "awslambdaric", spec.handler],
            cwd=spec.task_root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the CLI is the CLI's to handle, not the function's
        )
        assert self._process.stdout is not None
        self._fd = self._process.stdout.fileno()
        threading.Thread(target=self._read_output, name=f"{spec.name}-output", daemon=True).start()
        threading.Thread(target=self._watch_memory, name=f"{spec.name}-memory", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and self._killed_for is None

    def invoke(self, invocation: Invocation) -> InvocationResult:
        """One invocation; killed at its deadline, or when its `abort` is set."""
        timeout = self.spec.timeout_seconds if invocation.timeout_seconds is None else invocation.timeout_seconds
        cold = self.invocations == 0
        self.invocations += 1
        started = time.monotonic()
        with self._output_lock:
            self._lines, self._on_line = [], invocation.on_line
        outcome = self._api.invoke(
            invocation.event, timeout_seconds=timeout, function_arn=self.spec.arn, abort=invocation.abort
        )
        if outcome is None:
            self.kill(timed_out_error(timeout))
            outcome = Outcome(error=self._killed_for)
        elif outcome is STOPPED or outcome.init_error:
            self.kill(outcome.error or {})
        self._drain_output()
        with self._output_lock:
            lines, self._lines, self._on_line = self._lines or [], None, None
        return InvocationResult(outcome.payload, outcome.error, lines, time.monotonic() - started, cold)

    def kill(self, reason: dict[str, Any]) -> None:
        """End the environment (the invocation in it fails with `reason`)."""
        if self._killed_for is None:
            self._killed_for = reason
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._api.fail_in_flight(Outcome(error=self._killed_for))

    def stop(self) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, _status_mb(Path(f"/proc/{self._process.pid}/status"), "VmHWM:"))
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)
        self._api.close()

    # -- output and memory

    def _read_output(self) -> None:
        while True:
            readable, _, _ = select.select([self._fd], [], [], 0.5)
            if not readable:
                if self._process.poll() is not None and not self._pending_bytes():
                    break
                continue
            with self._output_lock:
                chunk = os.read(self._fd, 1 << 16)
                if not chunk:
                    break
                self._take(chunk)
        if self._killed_for is None:
            code = self._process.wait()
            self._api.fail_in_flight(
                Outcome(error={"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with error: {code}"})
            )

    def _take(self, chunk: bytes) -> None:
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if self._lines is not None:
                self._lines.append(line)
                if self._on_line is not None:
                    self._on_line(line)
            if self._on_log is not None:
                self._on_log(line)

    def _pending_bytes(self) -> int:
        try:
            buffer = bytearray(4)
            fcntl.ioctl(self._fd, termios.FIONREAD, buffer)
            return int.from_bytes(buffer, "little")
        except OSError:
            return 0

    def _drain_output(self) -> None:
        """Wait until what the process printed before answering is read (its output is written before its answer
        is posted; the reader reads and parses under the lock, so nothing pending means everything is parsed)."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._output_lock:
                if not self._pending_bytes():
                    return
            time.sleep(0.001)

    def _watch_memory(self) -> None:
        limit_mb = self.spec.memory_mb
        status = Path(f"/proc/{self._process.pid}/status")
        while self._process.poll() is None:
            rss_mb = _rss_mb(status)
            self.peak_rss_mb = max(self.peak_rss_mb, rss_mb)
            if rss_mb > limit_mb:
                log.warning("%s: %.0f MB resident, over its %d MB: killed", self.spec.name, rss_mb, limit_mb)
                self.kill(
                    {
                        "errorType": "Runtime.OutOfMemory",
                        "errorMessage": f"Runtime exited with error: signal: killed (memory over {limit_mb} MB)",
                    }
                )
                return
            time.sleep(_MEMORY_POLL_SECONDS)


def _rss_mb(status: Path) -> float:
    return _status_mb(status, "VmRSS:")


def _status_mb(status: Path, field: str) -> float:
    """A memory figure of /proc/PID/status (VmRSS now, VmHWM its peak), in MiB; 0 when the process is gone."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


class FunctionPool:
    """A function's execution environments: reused when idle, started when none is, killed at the end."""

    def __init__(self, spec: FunctionSpec, on_log: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._on_log = on_log
        self._idle: list[FunctionProcess] = []
        self._all: list[FunctionProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        limit = spec.reserved_concurrency
        self._slots = threading.BoundedSemaphore(limit) if limit is not None and limit > 0 else None
        self.stats = ProcessStats()

    def invoke(self, invocation: Invocation) -> InvocationResult:
        if self._slots is not None:
            self._slots.acquire()
        try:
            process = self._take()
            result = process.invoke(invocation)
            self.stats.record(result, process.peak_rss_mb)
            self._give_back(process)
            return result
        finally:
            if self._slots is not None:
                self._slots.release()

    def start_idle(self, count: int) -> int:
        """Start environments until the pool holds `count` live ones (never more than its reserved concurrency); they
        wait idle, initialising, for the first invocations. Returns how many were started."""
        limit = self.spec.reserved_concurrency
        wanted = count if limit is None else min(count, limit)
        with self._lock:
            if self._closed:
                return 0
            started = 0
            while sum(process.alive for process in self._all) < wanted:
                self._idle.append(self._start())
                started += 1
            return started

    def _take(self) -> FunctionProcess:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.spec.name}: the local Lambda service is stopped")
            while self._idle:
                process = self._idle.pop()
                if process.alive:
                    return process
                process.stop()
            return self._start()

    def _start(self) -> FunctionProcess:
        """A new environment of the pool (the caller holds the lock)."""
        process = FunctionProcess(self.spec, self._on_log)
        self._all.append(process)
        self.stats.add(started=1)
        return process

    def _give_back(self, process: FunctionProcess) -> None:
        with self._lock:
            if process.alive and not self._closed:
                self._idle.append(process)
                return
        self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, process.peak_rss_mb)
        process.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            processes, self._all, self._idle = self._all, [], []
        for process in processes:
            self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, process.peak_rss_mb)
            process.stop()
