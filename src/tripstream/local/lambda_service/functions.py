"""The stack's two functions as the local Lambda service runs them: the one place that builds a function's
dependencies, its handler and the consumer's event source mapping (as chalice's `create_local_server` is for its
local server).

`LocalFunctions` is what `run`, `replay` and `up` (and `redrive`) hold: `invoke_producer` for an S3 event
(asynchronous invocation with retries, dead-letter queue and continuations) and `event_source_mapping` for the
stream (its settings from the template, its checkpoints in the state folder, on-failure destination). What every
consumer invocation returned is summed in `ConsumerTotals`, the mapping's own count of records done beside it.

Two ways to run a function. Isolated (`in_process=False`, what `run` and `up` do): as Lambda runs it, the deployment
package in processes of its own through the Runtime API (`function_process`), with the function's environment,
timeout, memory size and its role's credentials; what a consumer batch did is read from the structured log line the
handler prints ("batch processed"), as one reads it in CloudWatch Logs. In-process (`in_process=True`, `--in-process`
and most tests): the handlers of the source tree called in this process with injected clients (fast, debuggable).
Either way, what Lambda itself does with a function's role (reading the stream, the on-failure and dead-letter
queues) uses that role's credentials where the endpoint can issue them (`sts:AssumeRole`).

A continuation (the producer finishing a large file in a follow-up invocation) is, isolated on tripstream's
emulator, what it is on AWS: the producer's own `lambda:InvokeFunction` (InvocationType Event, under its role), which
the emulator checks and queues (`moto_patches.awslambda`) and the service takes from that queue
(`invocation_queue`) and runs with Lambda's retries and dead-letter queue. In-process, or at an endpoint that would
not queue it, the producer returns it in its response (`CONTINUATION_MODE=return`) and the service invokes that.
"""

from __future__ import annotations

import logging
import platform
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tripstream.aws.clients import AwsClients, Credentials, chain_credentials, credentials_environment
from tripstream.aws.kinesis import describe_stream_summary
from tripstream.aws.lambda_ import FunctionInfo
from tripstream.aws.sts import assume_role
from tripstream.handlers import consumer as consumer_handler
from tripstream.handlers import producer as producer_handler
from tripstream.handlers.dependencies import Dependencies
from tripstream.infra.stack import DeployedStack
from tripstream.infra.template import event_source_mapping_settings, load_template
from tripstream.local.emulator.server import identify
from tripstream.local.lambda_service.async_invocation import Handler, ProducerRun, invoke_producer
from tripstream.local.lambda_service.checkpoints import CheckpointStore
from tripstream.local.lambda_service.event_source_mapping import EventSourceMapping, StreamInfo
from tripstream.local.lambda_service.function_process import (
    FunctionPool,
    FunctionSpec,
    Invocation,
    lambda_environment,
)
from tripstream.local.lambda_service.invocation_queue import InvocationQueue
from tripstream.local.lambda_service.runtime_environment import (
    base_dir,
    find_runtime_python,
    function_code,
    runtime_venv,
)
from tripstream.pipeline.consumer import ConsumerResult
from tripstream.settings import Settings
from tripstream.trips.analytics import DURATION_CATEGORIES

log = logging.getLogger(__name__)

# The template's reserved concurrency parameters (-1: none).
_RESERVED_CONCURRENCY = {"producer": "ProducerReservedConcurrency", "consumer": "ConsumerReservedConcurrency"}


def local_environment(
    function: FunctionInfo, overrides: Mapping[str, str] | None = None, continuation_mode: str = "return"
) -> dict[str, str]:
    """The function's environment as the local service runs it: how continuations go (see the module's doc), plus
    test overrides."""
    return {**function.environment, "CONTINUATION_MODE": continuation_mode, **(overrides or {})}


def handler_settings(function: FunctionInfo, overrides: Mapping[str, str] | None = None) -> Settings:
    """The settings a handler would read in Lambda: its function's environment (plus test overrides)."""
    return Settings.from_env(local_environment(function, overrides))


class FunctionError(Exception):
    """An invocation of a function process failed: Lambda's error (`errorType`, `errorMessage`); `sent` and
    `rows_read` from what the producer logged before failing ("records not sent"), as the in-process error has."""

    def __init__(self, error: dict[str, Any], logged: list[dict[str, Any]]) -> None:
        self.error_type = str(error.get("errorType") or "Unhandled")
        super().__init__(f"{self.error_type}: {error.get('errorMessage', '')}")
        self.sent = 0
        self.rows_read = 0
        for record in logged:
            if record.get("message") == "records not sent":
                self.sent = int(record.get("records_sent") or 0)
                self.rows_read = int(record.get("rows_read") or 0)


def structured_logs(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON log lines of an invocation's output (Powertools' records; EMF lines are JSON too)."""
    records = []
    for line in lines:
        if line.startswith("{"):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def consumer_result_from_log(record: dict[str, Any]) -> ConsumerResult | None:
    """The consumer's figures of one batch, from its "batch processed" log line."""
    if record.get("message") != "batch processed" or not isinstance(record.get("result"), dict):
        return None
    return ConsumerResult.from_dict(record["result"])


@dataclass
class ConsumerTotals:
    """What the consumer's invocations returned, summed (thread-safe: the mapping's pollers add to it)."""

    trips_processed: int = 0
    records_consumed: int = 0
    records_rejected: Counter[str] = field(default_factory=Counter)
    items_written: Counter[str] = field(default_factory=Counter)
    duration_categories: Counter[str] = field(default_factory=Counter)
    unprocessed_items_retried: int = 0
    calls_retried: int = 0
    rejects_keys: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ConsumerResult) -> None:
        done = result.records_received if result.first_failed_sequence is None else None
        with self._lock:
            self.trips_processed += result.trips_processed
            # A batch that stopped at a failed record is done up to it: its trips and its rejects.
            self.records_consumed += (
                done if done is not None else result.trips_processed + sum(result.records_rejected.values())
            )
            self.records_rejected.update(result.records_rejected)
            self.items_written.update(result.items_written)
            self.duration_categories.update(result.duration_categories)
            self.unprocessed_items_retried += result.writes.unprocessed_retried
            self.calls_retried += result.writes.calls_retried
            if result.rejects_key:
                self.rejects_keys.append(result.rejects_key)

    def rejected(self) -> dict[str, int]:
        return dict(sorted(self.records_rejected.items()))

    def written(self) -> dict[str, int]:
        return dict(sorted(self.items_written.items()))

    def categories(self) -> dict[str, int]:
        return {category: self.duration_categories.get(category, 0) for category in DURATION_CATEGORIES}


@dataclass
class LocalFunctions:
    """The producer and the consumer of one deployed stack, run by the local Lambda service.

    `clients` are the service's own (administrator's: describing the stream); `handler_clients` are what the
    functions' code gets in-process. `environment_overrides` are added to both functions' environment (tests
    shrink batch sizes and budgets with them). `in_process=False` runs the functions isolated (see the module's
    doc); `credentials` are the endpoint's (None: boto3's chain), what a function falls back on where the endpoint
    cannot issue a role's. Call `close` when done (it stops the function processes).
    """

    clients: AwsClients
    handler_clients: AwsClients
    stack: DeployedStack
    environment_overrides: Mapping[str, str] | None = None
    in_process: bool = True
    credentials: Credentials | None = None
    note: Callable[[str], None] = field(default=log.info, repr=False)
    _pools: dict[str, FunctionPool] = field(default_factory=dict, init=False, repr=False)
    _role_clients: dict[str, AwsClients] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _noted: set[str] = field(default_factory=set, init=False, repr=False)
    _invocations: InvocationQueue | None = field(default=None, init=False, repr=False)

    def settings(self, function: FunctionInfo) -> Settings:
        return handler_settings(function, self.environment_overrides)

    def producer_handler(self, on_progress: Callable[[int, int], None] | None = None) -> Handler:
        if not self.in_process:
            return self._isolated_handler(self.stack.producer, on_line=_producer_progress(on_progress))
        deps = Dependencies(self.handler_clients, self.settings(self.stack.producer))
        return producer_handler.make_handler(lambda: deps, on_progress=on_progress)

    def consumer_handler(self, on_result: Callable[[ConsumerResult], None] | None = None) -> Handler:
        if not self.in_process:
            return self._isolated_handler(self.stack.consumer, on_logs=_consumer_results(on_result))
        deps = Dependencies(self.handler_clients, self.settings(self.stack.consumer))
        return consumer_handler.make_handler(lambda: deps, on_result)

    # -- roles

    def _note_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        self.note(message)

    def role_credentials(self, function: FunctionInfo) -> Credentials | None:
        """The credentials of the function's role (`sts:AssumeRole` on the endpoint), else the endpoint's own."""
        if "dynamodb" in self.clients.service_endpoints:
            self._note_once(
                "dynamodb-local",
                "DynamoDB Local keeps tables per access key: the functions run with the endpoint's credentials, not "
                "their roles' (their IAM policies are not put to the test)",
            )
            return self.credentials
        try:
            return assume_role(self.clients.sts, function.role_arn, f"{function.name}-local")
        except Exception as error:  # an endpoint without STS, or a role it does not know
            self._note_once(
                "assume-role",
                f"the endpoint could not issue the functions' role credentials ({error}): they use its own",
            )
            return self.credentials

    def role_clients(self, function: FunctionInfo) -> AwsClients:
        """Clients with the function's role: what Lambda does on its behalf (stream reads, destinations)."""
        with self._lock:
            cached = self._role_clients.get(function.name)
        if cached is not None:
            return cached
        credentials = self.role_credentials(function)
        clients = (
            self.clients
            if credentials is None or credentials == self.credentials
            else AwsClients.create(
                endpoint_url=self.clients.endpoint_url,
                region=self.clients.region,
                credentials=credentials,
                service_endpoints=self.clients.service_endpoints,
            )
        )
        with self._lock:
            return self._role_clients.setdefault(function.name, clients)

    # -- isolated functions

    def _role_of(self, function: FunctionInfo) -> str:
        return "producer" if function.name == self.stack.producer.name else "consumer"

    def pool(self, function: FunctionInfo) -> FunctionPool:
        """The function's execution environments (created on first use: the runtime and package prepared once)."""
        with self._lock:
            if (existing := self._pools.get(function.name)) is not None:
                return existing
        root = base_dir()
        python = find_runtime_python(function.runtime, note=lambda message: self._note_once("python", message))
        interpreter = runtime_venv(python, root, log_line=self.note)
        # The package's wheels are those of the interpreter and machine that run it.
        machine = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
        if machine != function.architecture:
            self._note_once("architecture", f"{function.name} is {function.architecture}: it runs on this {machine}")
        task_root = function_code(root, runtime=f"python{python.version}", architecture=machine, log_line=self.note)
        credentials = self.role_credentials(function) or chain_credentials()
        service_endpoints = self.clients.service_endpoints
        environment = lambda_environment(
            function_environment={
                **local_environment(function, self.environment_overrides, self._continuation_mode(function)),
                **{f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in service_endpoints.items()},
            },
            name=function.name,
            memory_mb=function.memory_mb,
            handler=function.handler,
            region=self.clients.region,
            endpoint_url=self.clients.endpoint_url,
            credentials=credentials_environment(credentials) if credentials is not None else {},
            task_root=task_root,
            runtime=function.runtime,
        )
        reserved = int(self.stack.parameters.get(_RESERVED_CONCURRENCY[self._role_of(function)], "-1") or -1)
        spec = FunctionSpec(
            name=function.name,
            arn=function.arn,
            handler=function.handler,
            timeout_seconds=function.timeout_seconds,
            memory_mb=function.memory_mb,
            python=interpreter,
            task_root=task_root,
            environment=environment,
            reserved_concurrency=reserved if reserved > 0 else None,
        )
        logger = logging.getLogger(f"tripstream.lambda.{function.name}")
        with self._lock:
            return self._pools.setdefault(function.name, FunctionPool(spec, on_log=logger.debug))

    def _continuation_mode(self, function: FunctionInfo) -> str:
        """`invoke` (a real lambda:InvokeFunction) for the producer where the endpoint queues asynchronous
        invocations for this service (tripstream's emulator), else `return`."""
        if function.name != self.stack.producer.name:
            return "return"
        if (self.environment_overrides or {}).get("CONTINUATION_MODE") == "return":
            return "return"  # a test's choice
        endpoint = self.clients.endpoint_url
        if endpoint is None or identify(endpoint) != "patched":
            self._note_once(
                "continuations",
                "the endpoint would not queue the producer's own lambda:InvokeFunction for this service: its "
                "continuations are returned in its response and invoked from there",
            )
            return "return"
        with self._lock:  # one queue reader for every taker (`up`'s workers may build the pool at once)
            if self._invocations is None:
                self._invocations = InvocationQueue(self.clients.sqs)
        return "invoke"

    def asynchronous_invocations(self) -> InvocationQueue | None:
        """Lambda's queue of asynchronous invocations where this service runs them (functions isolated, at an
        endpoint that queues them: tripstream's emulator); else None."""
        if self.in_process or self._continuation_mode(self.stack.producer) != "invoke":
            return None
        return self._invocations

    def _isolated_handler(
        self,
        function: FunctionInfo,
        *,
        on_logs: Callable[[list[dict[str, Any]]], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> Handler:
        """`on_logs`: an invocation's structured log lines once it ended; `on_line`: each line as it is printed."""
        pool = self.pool(function)

        def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
            remaining = getattr(context, "get_remaining_time_in_millis", None)
            timeout = remaining() / 1000 if remaining is not None else None
            # The service stopping (`up`'s Ctrl-C) ends an isolated invocation at once: its process cannot be told
            # that no time remains, as an in-process handler is; its event is retried next time.
            invocation = Invocation(orjson.dumps(event), timeout, getattr(context, "stopped", None), on_line)
            result = pool.invoke(invocation)
            logged = structured_logs(result.logs)
            if on_logs is not None:
                on_logs(logged)
            if result.error is not None:
                raise FunctionError(result.error, logged)
            response = orjson.loads(result.payload) if result.payload else None
            return response if isinstance(response, dict) else {}

        return handle

    def start_environments(self) -> None:
        """Start, before the first event, the environments a file's run uses (isolated functions only): the producer's
        and one consumer's per open shard. Their init (the runtime, the handlers' imports: ~1 s of CPU each) then
        overlaps the upload instead of delaying the first records, as with Lambda's provisioned concurrency."""
        if self.in_process:
            return
        shards = describe_stream_summary(self.role_clients(self.stack.consumer).kinesis, self.stack.stream_name)
        self.pool(self.stack.producer).start_idle(1)
        self.pool(self.stack.consumer).start_idle(shards.open_shards or 1)

    def close(self) -> None:
        """Stop every function process."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def invoke_producer(
        self,
        event: dict[str, Any],
        *,
        on_progress: Callable[[int, int], None] | None = None,
        timeout_seconds: float | None = None,
        dead_letter: bool = True,
        stop: threading.Event | None = None,
    ) -> ProducerRun:
        """Lambda's asynchronous invocation of the producer on `event`, until its file is done or given up (then
        the event goes to the dead-letter queue, unless `dead_letter` is false: a redrive keeps its message), or
        `stop` is set."""
        handler = self.producer_handler(on_progress)  # isolated: its pool decides how continuations go
        invocations = None if self.in_process else self._invocations
        take_invoked = None
        if invocations is not None:
            name = self.stack.producer.name

            def take_invoked(continuation: dict[str, Any]) -> dict[str, Any] | None:
                return invocations.take(name, continuation, stop=stop)

        return invoke_producer(
            handler,
            event,
            self.stack.producer,
            timeout_seconds=timeout_seconds,
            sqs=self.role_clients(self.stack.producer).sqs,
            dead_letter_queue_url=self.stack.dead_letter_queue_url if dead_letter else None,
            stop=stop,
            take_invoked=take_invoked,
        )

    def event_source_mapping(
        self,
        *,
        state_dir: Path | None,
        totals: ConsumerTotals | None = None,
        on_result: Callable[[ConsumerResult], None] | None = None,
        on_records_done: Callable[[int], None] | None = None,
        wrap_consumer: Callable[[Handler], Handler] | None = None,
        idle_poll_interval: float | None = None,
    ) -> EventSourceMapping:
        """The consumer's mapping on every shard, from the checkpoints under `state_dir` (in memory without one);
        each invocation's result is added to `totals` and passed to `on_result`. Not started."""

        def on_consumer_result(result: ConsumerResult) -> None:
            if totals is not None:
                totals.add(result)
            if on_result is not None:
                on_result(result)

        handler = self.consumer_handler(on_consumer_result)
        if wrap_consumer is not None:
            handler = wrap_consumer(handler)
        summary = describe_stream_summary(self.role_clients(self.stack.consumer).kinesis, self.stack.stream_name)
        stream = StreamInfo(name=self.stack.stream_name, arn=summary.arn, created=summary.created.isoformat())
        # The stream's creation time is in the checkpoints' name: a re-created stream never inherits old ones.
        checkpoints = CheckpointStore(
            state_dir / "checkpoints" if state_dir is not None else None, f"{stream.name}-{stream.created}"
        )
        return EventSourceMapping(
            self.role_clients(self.stack.consumer),
            stream,
            handler,
            self.stack.consumer,
            event_source_mapping_settings(load_template(), self.stack.parameters),
            checkpoints,
            on_failure_queue_url=self.stack.on_failure_queue_url,
            on_records_done=on_records_done,
            idle_poll_interval=idle_poll_interval,
        )


def _producer_progress(on_progress: Callable[[int, int], None] | None) -> Callable[[str], None] | None:
    """Progress of an isolated producer, live: the increments of its "progress" log lines, as it prints them."""
    if on_progress is None:
        return None

    def on_line(line: str) -> None:
        if '"progress"' not in line:  # most lines: not parsed
            return
        for record in structured_logs([line]):
            if record.get("message") == "progress":
                on_progress(int(record.get("rows_read") or 0), int(record.get("records_sent") or 0))

    return on_line


def _consumer_results(
    on_result: Callable[[ConsumerResult], None] | None,
) -> Callable[[list[dict[str, Any]]], None]:
    def on_logs(logged: list[dict[str, Any]]) -> None:
        if on_result is None:
            return
        for record in logged:
            if (result := consumer_result_from_log(record)) is not None:
                on_result(result)

    return on_logs
