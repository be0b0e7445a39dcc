"""The emulator's keep-alive WSGI server (tripstream.local.emulator.http_server), over real sockets."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from tripstream.local.emulator.http_server import KeepAliveServer

pytestmark = pytest.mark.integration


def _echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers what it was asked: the request as the WSGI application saw it."""
    body = environ["wsgi.input"].read()
    seen = {
        key: environ[key]
        for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "RAW_URI", "CONTENT_TYPE", "CONTENT_LENGTH")
    }
    seen["headers"] = {key: value for key, value in environ.items() if key.startswith("HTTP_")}
    seen["body"] = body.decode("latin-1")
    seen["client_port"] = environ["REMOTE_PORT"]
    if environ["PATH_INFO"] == "/stream":  # no Content-Length: the server counts it
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"part one, ", b"part two"])
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("the application failed")
    answer = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
    return [answer]


@contextlib.contextmanager
def _serving(app: Callable[..., Iterable[bytes]]) -> Iterator[int]:
    """`app` served by KeepAliveServer on a free port of 127.0.0.1 (the port), stopped after."""
    server = KeepAliveServer(("127.0.0.1", 0), app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with _serving(_echo) as port:
        yield "127.0.0.1", port


def _json(response: http.client.HTTPResponse) -> dict[str, Any]:
    assert response.status == 200
    return json.loads(response.read())  # type: ignore[no-any-return]


def test_one_connection_serves_request_after_request(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    ports = set()
    for number in range(5):
        connection.request("POST", f"/t?n={number}", body=b"x" * (1000 * number), headers={"X-Amz-Target": "T"})
        response = connection.getresponse()
        assert response.getheader("Connection") is None
        seen = _json(response)
        assert (seen["QUERY_STRING"], len(seen["body"]), seen["headers"]["HTTP_X_AMZ_TARGET"]) == (
            f"n={number}",
            1000 * number,
            "T",
        )
        ports.add(seen["client_port"])
    assert len(ports) == 1  # the same TCP connection all along
    connection.close()


def test_a_client_that_asks_to_close_is_closed(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("GET", "/t", headers={"Connection": "close"})
    response = connection.getresponse()
    assert response.getheader("Connection") == "close"
    _json(response)


def test_raw_and_decoded_paths_as_werkzeug_gives_them(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("PUT", "/bucket/a%20key%2Fwith%C3%A9?x=1%202", body=b"data", headers={"Content-Type": "a/b"})
    seen = _json(connection.getresponse())
    assert seen["RAW_URI"] == "/bucket/a%20key%2Fwith%C3%A9?x=1%202"
    assert seen["PATH_INFO"] == "/bucket/a key/withé".encode().decode("latin-1")
    assert (seen["QUERY_STRING"], seen["CONTENT_TYPE"], seen["CONTENT_LENGTH"]) == ("x=1%202", "a/b", "4")


def test_an_empty_body_keeps_its_length_and_no_body_has_none(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("PUT", "/empty", body=b"")  # http.client sends Content-Length: 0
    assert _json(connection.getresponse())["CONTENT_LENGTH"] == "0"
    connection.request("GET", "/nothing")
    assert _json(connection.getresponse())["CONTENT_LENGTH"] == ""


def test_a_chunked_body_is_read_whole_and_the_connection_stays_usable(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("POST", "/t", body=iter([b"first ", b"second ", b"third"]), encode_chunked=True)
    assert _json(connection.getresponse())["body"] == "first second third"
    connection.request("GET", "/t?after")
    assert _json(connection.getresponse())["QUERY_STRING"] == "after"


def test_expect_100_continue_is_answered_before_the_body(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as raw:
        raw.sendall(b"PUT /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 100")
        raw.sendall(b"hello")
        answer = b""
        while b'"body": "hello"' not in answer:
            chunk = raw.recv(65536)
            assert chunk
            answer += chunk


def test_an_answer_without_length_is_counted_and_head_has_no_body(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("GET", "/stream")
    response = connection.getresponse()
    assert (response.getheader("Content-Length"), response.read()) == ("18", b"part one, part two")
    connection.request("HEAD", "/stream")
    response = connection.getresponse()
    assert response.read() == b""  # as werkzeug: no body, and no length counted for it
    connection.request("GET", "/t?after-head")  # the connection still reads from the right place
    assert _json(connection.getresponse())["QUERY_STRING"] == "after-head"


def test_a_failing_application_answers_500_and_the_server_goes_on(address: tuple[str, int]) -> None:
    connection = http.client.HTTPConnection(*address)
    connection.request("GET", "/fail")
    response = connection.getresponse()
    assert (response.status, response.read()) == (500, b"Internal Server Error")
    connection.request("GET", "/t")
    _json(connection.getresponse())


def test_a_bad_content_length_is_a_400_and_a_closed_connection(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as raw:
        raw.sendall(b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        answer = raw.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400")
        raw.settimeout(5)
        while answer:
            answer = raw.recv(65536)  # then the server closes it


def test_werkzeug_reads_the_body_as_the_server_read_it() -> None:
    """The server says its input ends with the body (wsgi.input_terminated): werkzeug reads the stream it was given,
    not a LimitedStream copying it into a bytearray and then into bytes."""
    from werkzeug.wrappers import Request

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        same = request.stream is environ["wsgi.input"]
        data = request.get_data()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{same} {len(data)} {data[:5].decode()}".encode()]

    with _serving(app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        for body in (b"hello" * 40_000, b""):
            connection.request("PUT", "/", body=body)
            assert connection.getresponse().read() == f"True {len(body)} {body[:5].decode()}".encode()
        connection.close()


def _requests_left_in_cycles(app: Callable[..., Iterable[bytes]], send: Callable[[int], None]) -> list[object]:
    """The werkzeug requests (Flask's too) that only the cycle collector would free after `send(port)` made its
    requests to `app`, served by KeepAliveServer."""
    import gc

    from werkzeug.wrappers import Request

    with _serving(app) as port:
        collecting = gc.isenabled()
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            send(port)
            gc.collect()
            return [o for o in gc.garbage if isinstance(o, Request)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if collecting:
                gc.enable()


def test_a_werkzeug_request_leaves_no_cycle_holding_its_body() -> None:
    """werkzeug's Request keeps itself in its environ; the server drops that link once it answered, so a request's
    body is freed when the request ends, not at the collector's next pass."""
    from werkzeug.wrappers import Request

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        data = Request(environ).get_data()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(data)).encode()]

    def send(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        for _ in range(3):
            connection.request("POST", "/", body=b"x" * 200_000)
            assert connection.getresponse().read() == b"200000"
        connection.close()

    assert _requests_left_in_cycles(app, send) == []


def test_an_s3_upload_through_moto_leaves_no_request_holding_its_body() -> None:
    """moto's Flask apps run in debug mode, where Flask gave each request whose form it read a class of its own
    holding the request (a cycle): an upload's parts stayed in memory until the collector's next pass. The
    emulator's backend_app leaves that helper out; the parts and the object are stored as before."""
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from tripstream.local.emulator.backend_app import backend_app

    body = bytes(range(256)) * 24_000  # two parts: 5 MiB, the least S3 takes but for the last, and the rest

    def send(port: int) -> None:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="cycles")
        s3.put_object(Bucket="cycles", Key="small", Body=body[:200_000])
        upload = s3.create_multipart_upload(Bucket="cycles", Key="large")["UploadId"]
        parts = []
        for number, start in enumerate((0, 5 * 2**20), start=1):
            part = body[start : start + 5 * 2**20]
            etag = s3.upload_part(Bucket="cycles", Key="large", UploadId=upload, PartNumber=number, Body=part)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(Bucket="cycles", Key="large", UploadId=upload, MultipartUpload={"Parts": parts})
        assert s3.get_object(Bucket="cycles", Key="large")["Body"].read() == body
        assert s3.get_object(Bucket="cycles", Key="small", Range="bytes=10-19")["Body"].read() == body[10:20]

    assert _requests_left_in_cycles(DomainDispatcherApplication(backend_app), send) == []
