"""The embedded AWS emulator: moto's server in its own process, on 127.0.0.1.

:class:`Emulator` (used by the CLI and the tests) starts ``python -m tripstream.local.emulator``
as a child process and waits until it answers HTTP. The child (:func:`main`) applies
:mod:`tripstream.local.moto_patches`, binds 127.0.0.1 and serves moto's own WSGI application
(``DomainDispatcherApplication(create_backend_app)``, exactly what ``moto_server`` serves) with
werkzeug's threaded server.

The child writes the port it actually bound to a file named on its command line, so port 0
("any free port") works without the race of probing for a free port first, and the parent never
mistakes another server already listening on the port for its emulator. The child also exits when
its standard input reaches end-of-file, i.e. when the parent process dies without calling
:meth:`Emulator.stop`, so a crashed CLI does not leave an emulator holding a port.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Self

HOST: Final = "127.0.0.1"
_STOP_GRACE_SECONDS: Final = 5.0
_POLL_SECONDS: Final = 0.05
_LOG_TAIL_LINES: Final = 40
_HEALTH_PATH: Final = "/moto-api/"  # moto's dashboard: answers without touching any AWS backend


class EmulatorError(RuntimeError):
    """The emulator could not be started (the message includes the tail of its log)."""


class Emulator:
    """moto's server in a child process on 127.0.0.1, usable as a context manager.

    ``port=0`` picks a free port. The child's output goes to ``log_path`` (by default a temporary
    file, removed by :meth:`stop`), never to the terminal. ``patched=False`` serves moto without
    :mod:`tripstream.local.moto_patches`; it exists only for the tests and the benchmark that show
    what the patches fix.
    """

    def __init__(self, port: int = 0, *, log_path: Path | None = None, patched: bool = True) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {port}")
        self._requested_port = port
        self._requested_log_path = log_path
        self._patched = patched
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._owns_log = False
        self._work_dir: tempfile.TemporaryDirectory[str] | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises :class:`EmulatorError` before :meth:`start`."""
        if self._endpoint_url is None:
            raise EmulatorError("the emulator is not running: call start() first")
        return self._endpoint_url

    @property
    def log_path(self) -> Path | None:
        """Where the child's output goes (``None`` before :meth:`start`)."""
        return self._log_path

    @property
    def patched(self) -> bool:
        return self._patched

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and return its endpoint URL once it answers HTTP. No-op if running."""
        if self._process is not None and self._process.poll() is None and self._endpoint_url is not None:
            return self._endpoint_url
        self.stop()
        self._work_dir = tempfile.TemporaryDirectory(prefix="tripstream-emulator-")
        port_file = Path(self._work_dir.name) / "port"
        if self._requested_log_path is None:
            self._log_path = Path(self._work_dir.name) / "emulator.log"
            self._owns_log = True
        else:
            self._log_path = self._requested_log_path
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._owns_log = False

        command = [
            sys.executable,
            "-m",
            "tripstream.local.emulator",
            "--host",
            HOST,
            "--port",
            str(self._requested_port),
            "--port-file",
            str(port_file),
            "--exit-on-stdin-eof",
        ]
        if not self._patched:
            command.append("--unpatched")
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_environment(),
                # Its own session: Ctrl-C in the terminal reaches only the parent, which decides
                # when to stop the emulator (after, e.g., the local runtime has saved checkpoints).
                start_new_session=True,
            )
        try:
            self._endpoint_url = self._wait_until_ready(port_file, timeout)
        except BaseException:
            self._stop(keep_log=True)  # the error message names the log
            raise
        return self._endpoint_url

    def stop(self) -> None:
        """Terminate the child, killing it after a grace period. Idempotent."""
        self._stop(keep_log=False)

    def _stop(self, *, keep_log: bool) -> None:
        process, self._process = self._process, None
        self._endpoint_url = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        if self._work_dir is not None and not (keep_log and self._owns_log):
            self._work_dir.cleanup()
            self._work_dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self, port_file: Path, timeout: float) -> str:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        endpoint_url: str | None = None
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                raise EmulatorError(
                    f"the emulator exited with status {returncode} while starting; "
                    f"its log ({self._log_path}) ends with:\n{self._log_tail()}"
                )
            if endpoint_url is None and port_file.exists():
                endpoint_url = f"http://{HOST}:{int(port_file.read_text())}"
            if endpoint_url is not None and _answers_http(endpoint_url):
                return endpoint_url
            if time.monotonic() >= deadline:
                raise EmulatorError(
                    f"the emulator did not answer within {timeout:g} s; "
                    f"its log ({self._log_path}) ends with:\n{self._log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def _log_tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as error:
            return f"(could not read the log: {error})"
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("MOTO_PORT", None)  # the child sets it to the port it binds
    # Make sure the child imports this very copy of tripstream, installed or not.
    source_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    return env


_NO_PROXY_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_http(endpoint_url: str) -> bool:
    try:
        with _NO_PROXY_OPENER.open(endpoint_url + _HEALTH_PATH, timeout=2.0) as response:
            response.read()
    except urllib.error.HTTPError:
        return True  # any HTTP answer will do
    except (OSError, ValueError):
        return False
    return True


# --- the child process -------------------------------------------------------------------------


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tripstream.local.emulator",
        description="Serve moto (with tripstream's Kinesis patches) on one address, threaded.",
    )
    parser.add_argument("--host", default=HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file when ready")
    parser.add_argument("--unpatched", action="store_true", help="serve moto as released (for tests and benchmarks)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when standard input is closed")
    parser.add_argument("--log-requests", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _stop_on_stdin_eof(server: Any, stdin_fd: int) -> None:
    # os.read on the descriptor, not sys.stdin.buffer.read: a daemon thread blocked inside the
    # buffered reader holds its lock, and the interpreter aborts when it finalizes stdin at exit.
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(stdin_fd, 4096):
                pass
        server.shutdown()

    threading.Thread(target=watch, name="stdin-eof-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``--host``/``--port`` until SIGTERM/SIGINT (or stdin EOF if asked)."""
    args = _parse_arguments(argv)
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    # Imported here, in the child only: importing moto costs the parent half a second for nothing.
    import moto
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from tripstream.local import moto_patches

    if not args.unpatched:
        moto_patches.apply()
    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    # What moto.server.main / ThreadedMotoServer do, minus two things: ThreadedMotoServer binds
    # in a thread and waits forever if binding fails, and moto.server.main cannot report the port
    # it bound when asked for port 0 (and then advertises MOTO_PORT=0 to the services that build
    # URLs from it).
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, app, threaded=True)
    port: int = server.server_port
    os.environ["MOTO_PORT"] = str(port)

    def exit_on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGINT, exit_on_signal)
    if args.exit_on_stdin_eof:
        _stop_on_stdin_eof(server, sys.stdin.fileno())

    print(
        f"tripstream emulator: moto {moto.__version__} "
        f"({'patched' if moto_patches.is_applied() else 'unpatched'}) "
        f"listening on http://{args.host}:{port} (pid {os.getpid()})",
        flush=True,
    )
    if args.port_file is not None:
        _write_atomically(args.port_file, str(port))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
