"""A WSGI server that keeps connections open: moto's application served over HTTP/1.1 keep-alive.

moto's own server (``moto_server``, werkzeug's development server) answers every request with ``Connection: close``
(werkzeug cannot drain a request body it did not read before reading the next request line): every request of every
client then pays a TCP connection, a new server thread and the kernel's work for both (a fifth of the emulator's
CPU was system time, measured under load). Here a connection gets one thread for its life and serves request after
request: the body is read whole by its ``Content-Length`` (or its chunks) before the application runs, so the next
request line is always where the stream stands, and the answer (status, headers, body) goes out in one write.

What the application sees is the WSGI environment werkzeug builds, down to ``RAW_URI``/``REQUEST_URI`` (moto reads
S3 keys from the raw path): percent-decoded ``PATH_INFO`` as latin-1, the query string, ``HTTP_*`` headers.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import unquote_to_bytes, urlsplit

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_MAX_REQUEST_LINE: Final = 65536
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class _BadRequest(Exception):
    pass


class KeepAliveServer(ThreadingHTTPServer):
    """One thread per connection, for as long as the client keeps it open."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: WsgiApp) -> None:
        self.app = app
        super().__init__(address, _WsgiHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is no error of the server."""
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            log.exception("request from %s failed", client_address)


class _WsgiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the answer is one write; nothing to wait for
    server: KeepAliveServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(_MAX_REQUEST_LINE + 1)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > _MAX_REQUEST_LINE:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            self.close_connection = True
            return
        if not self.parse_request():  # answered the error itself
            self.close_connection = True
            return
        try:
            body = self._body()
        except _BadRequest as error:
            self.send_error(HTTPStatus.BAD_REQUEST, str(error))
            self.close_connection = True
            return
        self._answer(body)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._dechunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadRequest(f"Content-Length is not a number: {length!r}") from None
        if size < 0:
            raise _BadRequest("negative Content-Length")
        body = self.rfile.read(size)
        if len(body) != size:
            raise ConnectionResetError("the client closed the connection inside the request body")
        return body

    def _dechunked(self) -> bytes:
        chunks = io.BytesIO()
        while True:
            line = self.rfile.readline(_MAX_REQUEST_LINE + 1)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                while self.rfile.readline(_MAX_REQUEST_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return chunks.getvalue()
            chunks.write(self.rfile.read(size))
            self.rfile.readline(3)  # the chunk's CRLF

    def _environ(self, body: bytes) -> dict[str, Any]:
        target = urlsplit(self.path)
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(target.path).decode("latin-1"),
            "QUERY_STRING": target.query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            # As werkzeug: the length when the request gave one (a dechunked body's own), else nothing.
            "CONTENT_LENGTH": str(len(body)) if body or self.headers.get("Content-Length") is not None else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            # The body is read whole and ends where the stream ends: werkzeug then reads it as it is, where it
            # would copy it through a LimitedStream into a bytearray and that into bytes (an 8 MB upload part: two
            # more copies while it is served; a 300 KB PutRecords body: two more allocations per request).
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue
            key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _answer(self, body: bytes) -> None:
        answer: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            if exc_info and answer:
                raise exc_info[1].with_traceback(exc_info[2])
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        environ = self._environ(body)
        try:
            result = self.server.app(environ, start_response)
            try:
                content = b"".join([*answer.get("written", []), *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            answer = {"status": "500 INTERNAL SERVER ERROR", "headers": [("Content-Type", "text/plain")]}
            content = b"Internal Server Error"
        finally:
            # werkzeug's Request keeps itself in its environ: a cycle that would hold the request and the body it read
            # until the collector's next pass (67 MiB of such garbage while the producer sends, under gc_policy).
            environ.pop("werkzeug.request", None)
        self._write(answer["status"], answer["headers"], content)

    def _write(self, status: str, headers: list[tuple[str, str]], content: bytes) -> None:
        code = int(status.split(None, 1)[0])
        lines = [f"{self.protocol_version} {status}\r\n"]
        names = set()
        for name, value in headers:
            names.add(name.lower())
            lines.append(f"{name}: {value}\r\n")
        no_body = self.command == "HEAD" or code in _NO_BODY_STATUSES or 100 <= code < 200
        if "content-length" not in names and not no_body:
            lines.append(f"Content-Length: {len(content)}\r\n")
        if "date" not in names:
            lines.append(f"Date: {self.date_time_string()}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        log.info('"%s" %d', self.requestline, code)  # shown by `--log-requests`
        head = "".join(lines).encode("latin-1")
        try:
            self.wfile.write(head if no_body else head + content)
            self.wfile.flush()
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
