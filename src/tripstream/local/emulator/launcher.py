"""One child process of tripstream's local servers: started, awaited, stopped (the moto emulator, DynamoDB Local).

:class:`ChildProcess` starts a command with its output in a log file, waits until a readiness check
passes or the child dies (then :class:`ChildExited` carries the tail of its log), and stops it with
SIGTERM, then SIGKILL after a grace period. The child gets its own session, so Ctrl-C in a terminal
reaches only tripstream, which stops its servers in order.

``supervised=True`` runs the command under ``python -m tripstream.local.emulator.launcher -- COMMAND``
(:func:`supervise`): a small process that stops the command when tripstream's process goes away
without stopping it (its standard input, a pipe from tripstream, closes), so a killed CLI never leaves
a server (e.g. Java) listening. A Python child can watch its own standard input instead
(:func:`on_stdin_eof`).

:class:`LocalServer` is what the emulator and DynamoDB Local share around their child: a scratch
folder for the log, stopping, and use as a context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, ClassVar, Final, Self

STOP_GRACE_SECONDS: Final = 5.0
_POLL_SECONDS: Final = 0.05
_LOG_TAIL_LINES: Final = 40
_LOG_TAIL_BYTES: Final = 16384


class LaunchError(RuntimeError):
    """The child did not become ready; the message names its log and quotes its tail."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


class ChildExited(LaunchError):
    """The child exited before its readiness check passed."""

    def __init__(self, message: str, log_tail: str, returncode: int) -> None:
        super().__init__(message, log_tail)
        self.returncode = returncode


class ChildNotReady(LaunchError):
    """The child still runs, but its readiness check did not pass in time."""


def child_environment(extra: Mapping[str, str] | None = None, *, drop: Sequence[str] = ()) -> dict[str, str]:
    """This environment plus ``extra``, minus ``drop``, with this very copy of tripstream first on PYTHONPATH."""
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env.update(extra or {})
    source_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    return env


def read_log_tail(log_path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``log_path`` (or why they could not be read)."""
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as error:
        return f"(could not read the log: {error})"
    return "\n".join(text.splitlines()[-lines:])


class ChildProcess:
    """``command`` in a child process, its output appended to ``log_path``; ``name`` is used in messages."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        supervised: bool = False,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
    ) -> None:
        self.name = name
        self.command = (
            [sys.executable, "-m", "tripstream.local.emulator.launcher", "--", *command] if supervised else [*command]
        )
        self.log_path = log_path
        self._cwd = cwd
        self._env = dict(env) if env is not None else child_environment()
        self._stop_grace_seconds = stop_grace_seconds
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the child (stdin a pipe from this process: it closes when this process dies)."""
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
            )

    def wait_until_ready(self, is_ready: Callable[[], bool], deadline: float) -> None:
        """Return once ``is_ready()`` is true and the child still runs; raise :class:`LaunchError` otherwise.

        ``deadline`` is a :func:`time.monotonic` instant. The child is left as it is: the caller stops it.
        """
        if self._process is None:
            raise LaunchError(f"{self.name} was not started", "")
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                tail = self.log_tail()
                raise ChildExited(
                    f"{self.name} exited with status {returncode} while starting; "
                    f"its log ({self.log_path}) ends with:\n{tail}",
                    tail,
                    returncode,
                )
            # Still running after it answered: the answer came from our child, not from a former tenant of the port.
            if is_ready() and self._process.poll() is None:
                return
            if time.monotonic() >= deadline:
                tail = self.log_tail()
                raise ChildNotReady(
                    f"{self.name} did not answer in time; its log ({self.log_path}) ends with:\n{tail}", tail
                )
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; close the child's stdin. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        _terminate(process, self._stop_grace_seconds)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def log_tail(self) -> str:
        return read_log_tail(self.log_path)


class LocalServer(ABC):
    """A server in a :class:`ChildProcess` on 127.0.0.1: its scratch folder, its log, and a context manager.

    The log goes to ``log_path``, by default a file in the scratch folder, which :meth:`stop` removes;
    a failed start keeps it, since its error names the log.
    """

    # What endpoint_url raises before start(): each server says it with its own error class.
    _not_running: ClassVar[tuple[type[Exception], str]] = (RuntimeError, "the server is not running")

    def __init__(self, log_path: Path | None) -> None:
        self._requested_log_path = log_path
        self._child: ChildProcess | None = None
        self._log_path: Path | None = None
        self._work_dir: tempfile.TemporaryDirectory[str] | None = None
        self._endpoint_url: str | None = None
        self._state_lock: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises :attr:`_not_running` before :meth:`start`."""
        if self._endpoint_url is None:
            error, message = self._not_running
            raise error(f"{message}: call start() first")
        return self._endpoint_url

    @property
    def log_path(self) -> Path | None:
        """Where the child's output goes (``None`` before :meth:`start`)."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (``None`` otherwise)."""
        return self._child.pid if self._child is not None and self._child.running else None

    @abstractmethod
    def start(self, timeout: float = 30.0) -> str:
        """Start the child and return its endpoint URL once it answers. No-op if running."""

    def stop(self) -> None:
        """Stop the child (after a grace period, kill it). Idempotent."""
        self._stop(keep_log=False)

    def _running_endpoint(self) -> str | None:
        """The endpoint URL while the child runs (then :meth:`start` has nothing to do)."""
        return self._endpoint_url if self._child is not None and self._child.running else None

    def _new_work_dir(self, prefix: str, log_name: str) -> Path:
        """Stop what runs, then a fresh scratch folder (returned) and the log path for this start."""
        self.stop()
        self._work_dir = tempfile.TemporaryDirectory(prefix=prefix)
        work_dir = Path(self._work_dir.name)
        self._log_path = self._requested_log_path or work_dir / log_name
        return work_dir

    def _lock_state_dir(self, state_dir: Path, lock_name: str, in_use: Exception) -> None:
        """Hold an advisory lock on `state_dir` until stopped (or this process dies: a `kill -9` releases it); raise
        `in_use` when another process holds it. A no-op where there is no fcntl."""
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / lock_name).open("a+b")
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except OSError:
            handle.close()
            raise in_use from None
        self._state_lock = handle

    def _stop(self, *, keep_log: bool) -> None:
        child, self._child = self._child, None
        self._endpoint_url = None
        if child is not None:
            child.stop()
        if self._work_dir is not None and not (keep_log and self._requested_log_path is None):
            self._work_dir.cleanup()
            self._work_dir = None
        if self._state_lock is not None:
            self._state_lock.close()  # closing releases the flock
            self._state_lock = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_NO_PROXY_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_answer(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of whatever answers a GET of ``url`` (an HTTP error too), ``None`` if nothing does.

    No proxy: the servers are on 127.0.0.1, and an HTTP(S)_PROXY in the environment must not answer for them.
    """
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except (OSError, ValueError):
        return None
    return body


def _terminate(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def on_stdin_eof(callback: Callable[[], object]) -> None:
    """Call ``callback`` in a daemon thread once this process's standard input reaches end-of-file."""

    # os.read on the descriptor, not sys.stdin.buffer.read: a daemon thread blocked inside the
    # buffered reader holds its lock, and the interpreter aborts when it finalizes stdin at exit.
    def watch(stdin_fd: int) -> None:
        with contextlib.suppress(OSError):
            while os.read(stdin_fd, 4096):
                pass
        callback()

    threading.Thread(target=watch, args=(sys.stdin.fileno(),), name="stdin-eof-watch", daemon=True).start()


# --- the supervisor (a child process) -----------------------------------------------------------


def supervise(command: Sequence[str]) -> int:
    """Run ``command``; stop it on SIGTERM/SIGINT or when standard input closes. Returns its status."""
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    stopping = threading.Event()

    def stop_child() -> None:
        stopping.set()
        _terminate(child, STOP_GRACE_SECONDS)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=stop_child, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    on_stdin_eof(stop_child)
    returncode = child.wait()
    # Stopped on request: the command's exit status after SIGTERM (143 for Java) is not an error.
    return 0 if stopping.is_set() else returncode


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    command = arguments[1:] if arguments[:1] == ["--"] else arguments
    if not command:
        print("usage: python -m tripstream.local.emulator.launcher -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    return supervise(command)


if __name__ == "__main__":
    sys.exit(main())
