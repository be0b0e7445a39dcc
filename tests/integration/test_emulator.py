"""The embedded emulator: starts, answers, binds 127.0.0.1 only, stops cleanly."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from tripstream.local.emulator.server import MALLOC_ARENA_MAX_VARIABLE, MALLOC_ARENAS, Emulator, EmulatorError

pytestmark = pytest.mark.integration


def _port(endpoint_url: str) -> int:
    port = urlsplit(endpoint_url).port
    assert port is not None
    return port


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _listening_addresses(port: int, proc_net_file: Path) -> list[str]:
    """Local addresses (hex, as the kernel writes them) of sockets listening on ``port``."""
    addresses = []
    for line in proc_net_file.read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, port_hex = local.split(":")
        if int(port_hex, 16) == port and state == "0A":  # 0A: TCP_LISTEN
            addresses.append(address)
    return addresses


def test_emulator_answers_aws_apis(emulator_endpoint: str, aws_env: None) -> None:
    assert emulator_endpoint.startswith("http://127.0.0.1:")
    kinesis = boto3.client("kinesis", endpoint_url=emulator_endpoint)
    kinesis.create_stream(StreamName="test-emulator-answers", ShardCount=1)
    assert "test-emulator-answers" in kinesis.list_streams()["StreamNames"]
    sts = boto3.client("sts", endpoint_url=emulator_endpoint)
    assert sts.get_caller_identity()["Account"] == "123456789012"


@pytest.mark.parametrize(
    "policy_arn",
    [
        # Note the path: AWS's own ARN is service-role/AWSLambdaBasicExecutionRole.
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    ],
)
def test_aws_managed_policies_are_loaded(emulator_endpoint: str, aws_env: None, policy_arn: str) -> None:
    iam = boto3.client("iam", endpoint_url=emulator_endpoint)
    assert iam.get_policy(PolicyArn=policy_arn)["Policy"]["Arn"] == policy_arn


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_emulator_binds_loopback_only(emulator_endpoint: str) -> None:
    port = _port(emulator_endpoint)
    assert _listening_addresses(port, Path("/proc/net/tcp")) == ["0100007F"]  # 127.0.0.1
    if Path("/proc/net/tcp6").exists():
        assert _listening_addresses(port, Path("/proc/net/tcp6")) == []
    # On Linux all of 127/8 reaches this host: a socket bound to 0.0.0.0 would accept this.
    assert not _accepts_connections("127.0.0.2", port)


def test_start_stop_and_stop_again(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log_path = tmp_path / "emulator.log"
    emulator = Emulator(log_path=log_path)
    with pytest.raises(EmulatorError, match="not running"):
        _ = emulator.endpoint_url
    assert emulator.pid is None

    endpoint_url = emulator.start()
    assert endpoint_url == emulator.endpoint_url
    assert emulator.start() == endpoint_url  # already running: no second server
    assert _accepts_connections("127.0.0.1", _port(endpoint_url))

    assert emulator.pid is not None
    emulator.stop()
    emulator.stop()
    assert emulator.pid is None
    assert not _accepts_connections("127.0.0.1", _port(endpoint_url))
    with pytest.raises(EmulatorError, match="not running"):
        _ = emulator.endpoint_url

    log = log_path.read_text()
    assert f"listening on {endpoint_url}" in log
    assert "Traceback" not in log
    assert "Fatal Python error" not in log  # the child exited, it did not abort
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")  # nothing from the child on the terminal


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads Linux's /proc/<pid>/environ")
@pytest.mark.parametrize(("outside", "expected"), [(None, MALLOC_ARENAS), ("4", "4")])
def test_the_emulator_runs_with_few_malloc_arenas_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, outside: str | None, expected: str
) -> None:
    if outside is None:
        monkeypatch.delenv(MALLOC_ARENA_MAX_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(MALLOC_ARENA_MAX_VARIABLE, outside)
    with Emulator() as emulator:
        assert emulator.pid is not None
        environment = Path(f"/proc/{emulator.pid}/environ").read_bytes().split(b"\0")
    assert f"{MALLOC_ARENA_MAX_VARIABLE}={expected}".encode() in environment


def test_context_manager_and_free_ports() -> None:
    with Emulator() as first, Emulator() as second:
        assert first.endpoint_url != second.endpoint_url
        ports = [_port(first.endpoint_url), _port(second.endpoint_url)]
        assert all(_accepts_connections("127.0.0.1", port) for port in ports)
        temporary_log = first.log_path
        assert temporary_log is not None and temporary_log.exists()
    assert not any(_accepts_connections("127.0.0.1", port) for port in ports)
    assert not temporary_log.exists()  # a log the emulator chose itself is removed by stop()


def test_child_dying_during_start_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        emulator = Emulator(port, log_path=tmp_path / "emulator.log")
        with pytest.raises(EmulatorError, match=r"exited with status \d+ while starting(.|\n)*in use"):
            emulator.start()
        emulator.stop()


def test_rejects_an_impossible_port() -> None:
    with pytest.raises(ValueError, match="port"):
        Emulator(70_000)
