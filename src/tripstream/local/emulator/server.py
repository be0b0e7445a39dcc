"""The embedded AWS emulator: moto's server in its own process, on 127.0.0.1.

:class:`Emulator` (used by the CLI and the tests) starts ``python -m tripstream.local.emulator.server``
as a child process and waits until it answers HTTP. The child (:func:`main`) applies
:mod:`tripstream.local.emulator.moto_patches`, binds 127.0.0.1 and serves moto's own WSGI application
(``DomainDispatcherApplication(create_backend_app)``, what ``moto_server`` serves, less a debug helper of Flask's that
kept request bodies alive: :mod:`.backend_app`) over HTTP/1.1 with
keep-alive (:mod:`.http_server`; moto's own werkzeug server closes the connection after every answer, which was a
third of the emulator's fixed cost per request).

Every response path but one is moto's: ``GET /moto-api/tripstream-emulator`` answers what serves it (JSON:
the moto version, patched or not), so a client given an endpoint URL can tell tripstream's patched emulator from
a plain moto server (:func:`identify`). ``tripstream emulator`` serves it in the foreground, as an endpoint of
its own for ``--endpoint-url``.

The child writes the port it actually bound to a file named on its command line, so port 0
("any free port") works without the race of probing for a free port first, and the parent never
mistakes another server already listening on the port for its emulator. The child also exits when
its standard input reaches end-of-file, i.e. when the parent process dies without calling
:meth:`Emulator.stop`, so a crashed CLI does not leave an emulator holding a port.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from tripstream.local.emulator.environment import STATE_DIR_VARIABLE, STORE_DIR_VARIABLE
from tripstream.local.emulator.launcher import (
    ChildProcess,
    LaunchError,
    LocalServer,
    child_environment,
    http_answer,
    on_stdin_eof,
)

HOST: Final = "127.0.0.1"
_HEALTH_PATH: Final = "/moto-api/"  # moto's dashboard: answers without touching any AWS backend
# What this server answers, beside moto: who it is (moto's own /moto-api/ namespace, where no AWS request goes).
IDENTITY_PATH: Final = "/moto-api/tripstream-emulator"
MALLOC_ARENA_MAX_VARIABLE: Final = "MALLOC_ARENA_MAX"  # glibc's; ignored by other C libraries
MALLOC_ARENAS: Final = "2"  # unless the environment says otherwise
ServerKind = Literal["patched", "moto"]


class EmulatorError(RuntimeError):
    """The emulator could not be started (the message includes the tail of its log)."""


class Emulator(LocalServer):
    """moto's server in a child process on 127.0.0.1, usable as a context manager.

    ``port=0`` picks a free port. The child's output goes to ``log_path`` (by default a temporary
    file, removed by :meth:`stop`), never to the terminal. ``patched=False`` serves moto without
    :mod:`tripstream.local.emulator.moto_patches`; it exists only for the tests and the benchmark that show
    what the patches fix. ``state_dir``: the tables' items and the stream's records are kept there, and a later
    emulator given the same folder re-attaches to them (:mod:`tripstream.local.emulator.moto_patches.storage`).
    """

    _not_running = (EmulatorError, "the emulator is not running")

    def __init__(
        self, port: int = 0, *, log_path: Path | None = None, patched: bool = True, state_dir: Path | None = None
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {port}")
        super().__init__(log_path)
        self._requested_port = port
        self._patched = patched
        self._state_dir = state_dir.absolute() if state_dir is not None else None  # the child may run elsewhere

    @property
    def patched(self) -> bool:
        return self._patched

    def start(self, timeout: float = 30.0) -> str:
        """Start the child and return its endpoint URL once it answers HTTP. No-op if running."""
        if (running := self._running_endpoint()) is not None:
            return running
        port_file = self._new_work_dir("tripstream-emulator-", "emulator.log") / "port"
        if self._state_dir is not None:  # two emulators on one kept store would number records over each other
            in_use = EmulatorError(
                f"{self._state_dir} is in use by another emulator started by tripstream (another `tripstream up "
                "--state-dir` on the same folder?); stop it first or use another --state-dir"
            )
            self._lock_state_dir(self._state_dir, ".tripstream-emulator.lock", in_use)
        assert self._log_path is not None
        command = [
            sys.executable,
            "-m",
            "tripstream.local.emulator.server",
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
        # The child watches its own stdin (--exit-on-stdin-eof): no supervisor process needed.
        self._child = ChildProcess(
            "the emulator",
            command,
            log_path=self._log_path,
            # the child sets MOTO_PORT to the port it binds
            env=child_environment(
                {
                    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
                    "PYTHONUNBUFFERED": "1",
                    # glibc gives each of the server's threads (one per connection) a malloc arena of its own, up
                    # to 8 per core, each holding the high-water mark of the large bodies its thread handled
                    MALLOC_ARENA_MAX_VARIABLE: os.environ.get(MALLOC_ARENA_MAX_VARIABLE, MALLOC_ARENAS),
                    # tables' items and stream records: on disk, in the scratch folder (moto_patches.storage)...
                    STORE_DIR_VARIABLE: str(port_file.parent / "store"),
                }
                # ... or kept in the state folder, for the next emulator to re-attach to
                | ({STATE_DIR_VARIABLE: str(self._state_dir)} if self._state_dir is not None else {}),
                drop=["MOTO_PORT", STATE_DIR_VARIABLE],
            ),
        )
        try:
            self._child.start()
            endpoint_url = _PortFileEndpoint(port_file)
            try:
                self._child.wait_until_ready(endpoint_url.answers_http, time.monotonic() + timeout)
            except LaunchError as error:
                raise EmulatorError(str(error)) from None
            assert endpoint_url.url is not None
            self._endpoint_url = endpoint_url.url
        except BaseException:
            self._stop(keep_log=True)  # the error message names the log
            raise
        return self._endpoint_url


class _PortFileEndpoint:
    """The child's endpoint, once it wrote the port it bound to ``port_file``."""

    def __init__(self, port_file: Path) -> None:
        self._port_file = port_file
        self.url: str | None = None

    def answers_http(self) -> bool:
        if self.url is None and self._port_file.exists():
            self.url = f"http://{HOST}:{int(self._port_file.read_text())}"
        return self.url is not None and _answers_http(self.url)


def _answers_http(endpoint_url: str) -> bool:
    return http_answer(endpoint_url + _HEALTH_PATH) is not None  # any HTTP answer will do


def identify(endpoint_url: str, timeout: float = 2.0) -> ServerKind | None:
    """What serves `endpoint_url`: "patched" (this emulator with tripstream's moto patches), "moto" (a moto server
    without them: `moto_server`, or this one with --unpatched), None (anything else, or nothing)."""
    base = endpoint_url.rstrip("/")
    scheme, host = urlsplit(base)[:2]
    if scheme not in ("http", "https") or host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return None  # AWS itself: not asked
    answer = http_answer(base + IDENTITY_PATH, timeout)
    if answer is not None:
        try:
            identity = json.loads(answer)
        except ValueError:
            identity = None
        if isinstance(identity, dict) and identity.get("server") == "tripstream emulator":
            return "patched" if identity.get("patched") else "moto"
    dashboard = http_answer(base + _HEALTH_PATH, timeout)
    return "moto" if dashboard is not None and b"<title>Moto</title>" in dashboard else None


def set_iam_enforcement(endpoint_url: str, enforce: bool) -> None:
    """Switch the emulator's IAM enforcement on (every later request checked against its caller's policies, the
    emulator's own key an administrator: `moto_patches.iam`) or off (moto's default: nothing checked).

    moto's `POST /moto-api/reset-auth`: the number of requests still let through unchecked (0: none)."""
    count = b"0" if enforce else b"inf"
    request = urllib.request.Request(
        f"{endpoint_url}/moto-api/reset-auth", data=count, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


# --- the child process -------------------------------------------------------------------------


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tripstream.local.emulator.server",
        description="Serve moto (with tripstream's Kinesis patches) on one address, threaded.",
    )
    parser.add_argument("--host", default=HOST, help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file when ready")
    parser.add_argument("--unpatched", action="store_true", help="serve moto as released (for tests and benchmarks)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when standard input is closed")
    parser.add_argument("--log-requests", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _identified(app: WsgiApp, identity: dict[str, Any]) -> WsgiApp:
    """`app`, and `identity` as JSON at IDENTITY_PATH."""
    body = json.dumps(identity).encode()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == IDENTITY_PATH:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)

    return application


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``--host``/``--port`` until SIGTERM/SIGINT (or stdin EOF if asked)."""
    args = _parse_arguments(argv)
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

    # Imported here, in the child only: importing moto costs the parent half a second for nothing.
    import moto
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from tripstream import gc_policy
    from tripstream.local.emulator import diagnostics, http_server, moto_patches
    from tripstream.local.emulator.backend_app import backend_app
    from tripstream.local.emulator.json_lane import json_lane
    from tripstream.local.emulator.moto_patches import kinesis, storage, stream_mode

    diagnostics.install()

    stream_mode.apply()  # a template's ON_DEMAND stream is one
    if not args.unpatched:
        moto_patches.apply()
        kinesis.start_retention_sweeper()
        if os.environ.get(STATE_DIR_VARIABLE):
            storage.store()  # a kept store that cannot be read stops the start here, its reason in the log
    if args.log_requests:
        request_log = logging.getLogger(http_server.__name__)
        request_log.setLevel(logging.INFO)
        request_log.addHandler(logging.StreamHandler())

    # What moto.server.main / ThreadedMotoServer do, minus two things: ThreadedMotoServer binds
    # in a thread and waits forever if binding fails, and moto.server.main cannot report the port
    # it bound when asked for port 0 (and then advertises MOTO_PORT=0 to the services that build
    # URLs from it).
    moto_app: http_server.WsgiApp = DomainDispatcherApplication(backend_app)
    app = _identified(
        json_lane(moto_app) if moto_patches.is_applied() else moto_app,
        {"server": "tripstream emulator", "moto": moto.__version__, "patched": moto_patches.is_applied()},
    )
    server = http_server.KeepAliveServer((args.host, args.port), app)
    port: int = server.server_port
    os.environ["MOTO_PORT"] = str(port)

    def exit_on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGINT, exit_on_signal)
    if args.exit_on_stdin_eof:
        on_stdin_eof(server.shutdown)

    print(
        f"tripstream emulator: moto {moto.__version__} "
        f"({'patched' if moto_patches.is_applied() else 'unpatched'}) "
        f"listening on http://{args.host}:{port} (pid {os.getpid()})",
        flush=True,
    )
    if args.port_file is not None:
        _write_atomically(args.port_file, str(port))
    gc_policy.collect_rarely()
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
