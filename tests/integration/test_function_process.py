"""A function run as Lambda runs it (`lambda_service.function_process`): the Runtime API, awslambdaric in a process
of its own with a clean environment, warm reuse, errors, the timeout and the memory limit as Lambda reports them."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from tripstream.aws.aggregates import AggregateStats
from tripstream.aws.dynamodb import WriteStats
from tripstream.local.lambda_service.function_process import (
    FunctionPool,
    FunctionSpec,
    Invocation,
    InvocationResult,
    lambda_environment,
)
from tripstream.local.lambda_service.functions import FunctionError, consumer_result_from_log, structured_logs
from tripstream.local.lambda_service.runtime_environment import base_dir, find_runtime_python, runtime_venv
from tripstream.pipeline.consumer import ConsumerResult

HANDLERS = """
import json, os, sys, time

def echo(event, context):
    print(json.dumps({"message": "seen", "pid": os.getpid()}))
    return {
        "event": event,
        "pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "env": sorted(os.environ),
        "python": "%d.%d" % sys.version_info[:2],
        "path": sys.path,
    }

def fail(event, context):
    raise ValueError("no good")

def sleep(event, context):
    time.sleep(event["seconds"])
    return {}

hoard = []
def grow(event, context):
    for _ in range(event["mb"]):
        hoard.append(bytearray(1 << 20))
        time.sleep(0.002)
    return {"held": len(hoard)}
"""


@pytest.fixture(scope="module")
def runtime() -> Path:
    return runtime_venv(find_runtime_python("python3.12"), base_dir())


def pool(runtime: Path, tmp_path: Path, handler: str, *, timeout: float = 30, memory: int = 256) -> FunctionPool:
    task_root = tmp_path / "task"
    task_root.mkdir(exist_ok=True)
    (task_root / "handlers.py").write_text(HANDLERS)
    environment = lambda_environment(
        function_environment={"TABLE": "t"},
        name="probe",
        memory_mb=memory,
        handler=f"handlers.{handler}",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        credentials={"AWS_ACCESS_KEY_ID": "AKIAPROBE", "AWS_SECRET_ACCESS_KEY": "secret"},
        task_root=task_root,
        runtime="python3.12",
    )
    spec = FunctionSpec(
        name="probe",
        arn="arn:aws:lambda:us-east-1:123456789012:function:probe",
        handler=f"handlers.{handler}",
        timeout_seconds=timeout,
        memory_mb=memory,
        python=runtime,
        task_root=task_root,
        environment=environment,
    )
    return FunctionPool(spec)


def invoke_twice(functions: FunctionPool, first: dict[str, Any], second: dict[str, Any]) -> list[InvocationResult]:
    """Two invocations in a row, the pool closed after."""
    try:
        return [functions.invoke(Invocation(orjson.dumps(event))) for event in (first, second)]
    finally:
        functions.close()


def test_a_function_runs_in_its_own_process_with_lambdas_environment_and_nothing_of_the_cli(
    runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPSTREAM_SECRET_OF_THE_CLI", "leak")
    functions = pool(runtime, tmp_path, "echo")
    cold, warm = invoke_twice(functions, {"n": 1}, {"n": 2})
    assert cold.error is None and cold.cold and not warm.cold
    first, second = orjson.loads(cold.payload or b""), orjson.loads(warm.payload or b"")
    assert first["event"] == {"n": 1} and second["event"] == {"n": 2}
    assert first["pid"] == second["pid"] != os.getpid()  # one warm environment, not the CLI's process
    assert first["function"] == "probe" and first["memory"] == "256"
    assert 25_000 < first["remaining_ms"] <= 30_000
    assert first["python"] == "3.12"
    assert "TRIPSTREAM_SECRET_OF_THE_CLI" not in first["env"]
    assert {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "TABLE",
    } <= set(first["env"])
    assert not any(part.endswith("/src") for part in first["path"])  # the source tree is not importable
    assert any('"message": "seen"' in line for line in cold.logs)  # its output, as CloudWatch Logs gets it
    assert functions.stats.started == 1


def test_environments_started_ahead_serve_the_first_invocations(runtime: Path, tmp_path: Path) -> None:
    """As provisioned concurrency: started before any event (never past the reserved concurrency), initialising while
    the caller goes on; the first invocations run in them, none is started then; a closed pool starts none."""
    functions = FunctionPool(replace(pool(runtime, tmp_path, "echo").spec, reserved_concurrency=2))
    try:
        assert functions.start_idle(3) == 2 and functions.start_idle(2) == 0
        ahead = {process.pid for process in functions._all}
        results: list[InvocationResult] = []
        invokers = [
            threading.Thread(target=lambda n=n: results.append(functions.invoke(Invocation(orjson.dumps({"n": n})))))
            for n in range(2)
        ]
        for invoker in invokers:
            invoker.start()
        for invoker in invokers:
            invoker.join(60)
        assert {orjson.loads(result.payload or b"")["pid"] for result in results} <= ahead
        assert all(result.error is None for result in results) and len(results) == 2
        assert functions.stats.started == 2
    finally:
        functions.close()
    assert functions.start_idle(1) == 0


def test_an_exception_comes_back_as_lambdas_error_and_the_environment_stays_warm(runtime: Path, tmp_path: Path) -> None:
    functions = pool(runtime, tmp_path, "fail")
    result, again = invoke_twice(functions, {}, {})
    assert result.error is not None and result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "no good"
    assert again.error is not None and functions.stats.started == 1


def test_an_invocation_past_its_timeout_is_killed_and_reported_as_lambda_does(runtime: Path, tmp_path: Path) -> None:
    functions = pool(runtime, tmp_path, "sleep", timeout=1)
    result, after = invoke_twice(functions, {"seconds": 30}, {"seconds": 0})
    assert result.error == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
    assert 1 <= result.seconds < 5
    assert after.error is None and after.cold  # the killed environment was replaced
    assert functions.stats.started == 2


def test_a_process_over_its_memory_size_is_killed(runtime: Path, tmp_path: Path) -> None:
    functions = pool(runtime, tmp_path, "grow", memory=128)
    small, big = invoke_twice(functions, {"mb": 10}, {"mb": 400})
    assert small.error is None
    assert big.error is not None and big.error["errorType"] == "Runtime.OutOfMemory"
    assert functions.stats.peak_rss_mb > 128


def test_what_a_function_logged_comes_back_as_the_in_process_hooks_got_it() -> None:
    """The consumer's figures from its "batch processed" line, a failed producer's counts from "records not sent"
    (what ConsumerTotals and the run summary read in-process)."""
    result = ConsumerResult(
        records_received=3,
        trips_processed=2,
        records_rejected={"undecodable_record": 1},
        writes=WriteStats(calls=2, unprocessed_retried=1),
        aggregates=AggregateStats(transactions=1, trips_counted=2),
    )
    logged_result = result.to_dict() | {"new": 1}  # a key a later version may add is left out
    logged_result["writes"] = logged_result["writes"] | {"new": 1}
    lines = [
        "START of something that is not JSON",
        orjson.dumps({"message": "batch processed", "level": "INFO", "result": logged_result}).decode(),
        '{"_aws": {"CloudWatchMetrics": []}}',
        orjson.dumps({"message": "records not sent", "records_sent": 7, "rows_read": 9}).decode(),
    ]
    logged = structured_logs(lines)
    assert [consumer_result_from_log(record) for record in logged] == [result, None, None]
    error = FunctionError({"errorType": "RecordsNotSent", "errorMessage": "2 records not sent"}, logged)
    assert (error.sent, error.rows_read, str(error)) == (7, 9, "RecordsNotSent: 2 records not sent")


def test_the_service_stopping_ends_an_isolated_invocation_at_once(runtime: Path, tmp_path: Path) -> None:
    functions = pool(runtime, tmp_path, "sleep")
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    try:
        result = functions.invoke(Invocation(orjson.dumps({"seconds": 30}), abort=stop))
    finally:
        functions.close()
    assert result.error is not None and result.error["errorType"] == "Local.ServiceStopped"
    assert result.seconds < 5
