"""The Lambda Runtime API of one function instance: what AWS's runtime interface client (`awslambdaric`) talks to.

One small threaded HTTP server on 127.0.0.1 per function process (Lambda gives each execution environment its own
`AWS_LAMBDA_RUNTIME_API`), with the four endpoints a runtime uses:

- `GET  /2018-06-01/runtime/invocation/next`: blocks until the next invocation; the event is the body, the request
  id, deadline (epoch ms) and function ARN are headers;
- `POST /2018-06-01/runtime/invocation/{id}/response`: the handler's result;
- `POST /2018-06-01/runtime/invocation/{id}/error`: the handler raised (`errorMessage`, `errorType`, `stackTrace`);
- `POST /2018-06-01/runtime/init/error`: the handler could not even be imported.

`invoke` hands one event to the process and waits for its outcome until the deadline (None: it timed out).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import orjson

HOST: Final = "127.0.0.1"
PREFIX: Final = "/2018-06-01/runtime"


@dataclass(frozen=True)
class Invocation:
    request_id: str
    event: bytes
    deadline_ms: int
    function_arn: str


@dataclass
class Outcome:
    """What the runtime answered: a result (`payload`) or an error (`error`: Lambda's error shape)."""

    payload: bytes | None = None
    error: dict[str, Any] | None = None
    init_error: bool = False


# The local service stopped while the invocation ran (Lambda has no such thing: only the local service stops).
STOPPED: Final = Outcome(
    error={"errorType": "Local.ServiceStopped", "errorMessage": "the local Lambda service stopped"}
)


@dataclass
class _Pending:
    invocation: Invocation
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


_SHUTDOWN_POLL_SECONDS: Final = 0.05


class RuntimeApi:
    """The Runtime API server of one execution environment (one invocation at a time, as Lambda's)."""

    def __init__(self) -> None:
        self._next: queue.Queue[_Pending | None] = queue.Queue()
        self._in_flight: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self.init_error: dict[str, Any] | None = None
        self._init_failed = threading.Event()
        self._server = _Server((HOST, 0), _handler_class(self))
        self._server.daemon_threads = True
        # `close` waits for the loop's next poll: at socketserver's 0.5 s, ending a run's environments one after the
        # other cost it ~0.8 s of wall time.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_SHUTDOWN_POLL_SECONDS,), name="lambda-runtime-api", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """`host:port`, as `AWS_LAMBDA_RUNTIME_API` holds it."""
        return f"{HOST}:{self._server.server_port}"

    def invoke(
        self, event: bytes, *, timeout_seconds: float, function_arn: str, abort: threading.Event | None = None
    ) -> Outcome | None:
        """Run one invocation; None when it did not answer within `timeout_seconds`, `STOPPED` when `abort` was set
        first (either way the caller kills the process: the invocation is still running in it)."""
        deadline = time.time() + timeout_seconds
        pending = _Pending(Invocation(str(uuid.uuid4()), event, int(deadline * 1000), function_arn))
        with self._lock:
            self._in_flight[pending.invocation.request_id] = pending
        self._next.put(pending)
        finished = False
        while not finished and time.time() < deadline:
            finished = pending.done.wait(min(0.05, max(0.0, deadline - time.time())))
            if not finished and self._init_failed.is_set():
                return Outcome(error=self.init_error, init_error=True)
            if not finished and abort is not None and abort.is_set():
                with self._lock:
                    self._in_flight.pop(pending.invocation.request_id, None)
                return STOPPED
        with self._lock:
            self._in_flight.pop(pending.invocation.request_id, None)
        return pending.outcome if finished else None

    def fail_in_flight(self, outcome: Outcome) -> None:
        """The process died: every waiting invocation ends with `outcome` (as Lambda reports a crashed runtime)."""
        with self._lock:
            waiting = list(self._in_flight.values())
        for pending in waiting:
            if not pending.done.is_set():
                pending.outcome = outcome
                pending.done.set()

    def close(self) -> None:
        self._next.put(None)  # releases a GET /next still waiting
        self._server.shutdown()
        self._server.server_close()

    # -- called by the HTTP handler

    def _next_invocation(self) -> Invocation | None:
        pending = self._next.get()
        if pending is None:
            self._next.put(None)
            return None
        return pending.invocation

    def _finish(self, request_id: str, outcome: Outcome) -> bool:
        with self._lock:
            pending = self._in_flight.get(request_id)
        if pending is None:
            return False  # too late: the invocation timed out
        pending.outcome = outcome
        pending.done.set()
        return True

    def _fail_init(self, error: dict[str, Any]) -> None:
        self.init_error = error
        self._init_failed.set()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection the process dropped (killed, or stopped with the service) is no error of the service."""


def _handler_class(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An answer is written as its headers and then its body: with Nagle's algorithm on, the body waited for the
        # runtime client's delayed ACK of the headers (~40 ms an invocation, a seventh of a consumer's time).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: HTTPStatus, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the process is gone (killed, or stopped with the service)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._reply(HTTPStatus.NOT_FOUND)
                return
            invocation = api._next_invocation()
            if invocation is None:
                self._reply(HTTPStatus.GONE)  # the environment is shutting down
                return
            self._reply(
                HTTPStatus.OK,
                invocation.event,
                {
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                },
            )

        def do_POST(self) -> None:
            body = self._body()
            parts = self.path.removeprefix(PREFIX).strip("/").split("/")
            if parts == ["init", "error"]:
                api._fail_init(_error_body(body))
                self._reply(HTTPStatus.ACCEPTED)
                return
            if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                outcome = Outcome(payload=body) if parts[2] == "response" else Outcome(error=_error_body(body))
                found = api._finish(parts[1], outcome)
                self._reply(HTTPStatus.ACCEPTED if found else HTTPStatus.BAD_REQUEST)
                return
            self._reply(HTTPStatus.NOT_FOUND)

    return Handler


def _error_body(body: bytes) -> dict[str, Any]:
    try:
        error = orjson.loads(body)
    except orjson.JSONDecodeError:
        error = None
    if not isinstance(error, dict):
        return {"errorType": "Runtime.Unknown", "errorMessage": body.decode("utf-8", "replace")}
    return error
