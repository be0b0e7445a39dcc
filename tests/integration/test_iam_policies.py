"""Every IAM policy statement of the template is needed, and together they are enough: the emulator enforcing IAM,
each function run as Lambda runs it with its own role's credentials.

- Sufficient: the pipeline (a file with a bad row, a stream record that cannot be decoded) lands exactly, a file
  finished in a continuation (the producer's own `lambda:InvokeFunction`, checked and queued by the emulator, run by
  the local service), and what Lambda does for the functions (the dead-letter and on-failure queues) is allowed,
  each with its own role.
- Denied what each role must not do: the producer a table, another bucket's object (`ProducerS3ReadAccess=
  BucketOnly`); the consumer the stream's PutRecords, a table not its own, the uploads.
- Needed: one test removes each statement of the template in turn (in the emulator's IAM, the stack untouched)
  and shows that one of the scenarios then fails.

One emulator for the module (the session's), one stack, one set of warm function processes.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from support.cli import reset_emulator
from support.trips import trips_file
from tripstream.aws.clients import EMULATOR_CREDENTIALS, AwsClients
from tripstream.aws.sqs import send_message
from tripstream.infra.stack import DeployedStack, deploy_for_local_runtime
from tripstream.infra.template import load_template
from tripstream.local.commands.run import upload_with_event
from tripstream.local.emulator.server import set_iam_enforcement
from tripstream.local.lambda_service.async_invocation import ProducerRun, send_to_dead_letter_queue
from tripstream.local.lambda_service.functions import ConsumerTotals, LocalFunctions

ROWS = 30
# Rows between the producer's deadline checks (pipeline.producer): a file this long continues once, with the
# deadline margin below making every check ask for a continuation.
CHECK_EVERY = 200
# moto answers NoSuchKey for a missing object whatever the caller may list (S3 answers AccessDenied without
# s3:ListBucket): no scenario can show ListTripFiles needed here. It stays, for that reason, on AWS.
NOT_PROVABLE_ON_MOTO = {"ListTripFiles"}


@dataclass
class IamStack:
    endpoint: str
    admin: AwsClients
    stack: DeployedStack
    functions: LocalFunctions
    tmp: Path
    runs: int = 0

    def role(self, which: str) -> AwsClients:
        return self.functions.role_clients(self.stack.producer if which == "producer" else self.stack.consumer)


@pytest.fixture(scope="module")
def iam_stack(emulator_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamStack]:
    reset_emulator(emulator_endpoint)
    admin = AwsClients.create(endpoint_url=emulator_endpoint, region="us-east-1", credentials=EMULATOR_CREDENTIALS)
    stack, _ = deploy_for_local_runtime(
        admin, parameters={"ProducerS3ReadAccess": "BucketOnly", "MaximumRetryAttempts": "0"}
    )
    set_iam_enforcement(emulator_endpoint, True)
    functions = LocalFunctions(
        admin,
        admin,
        stack,
        {"DEADLINE_MARGIN_SECONDS": "1000000"},
        in_process=False,
        credentials=EMULATOR_CREDENTIALS,
    )
    try:
        yield IamStack(emulator_endpoint, admin, stack, functions, tmp_path_factory.mktemp("iam"))
    finally:
        functions.close()
        set_iam_enforcement(emulator_endpoint, False)


def denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        text = f"{error.response.get('Error', {}).get('Code')} {error}"
        return "AccessDenied" in text or "not authorized" in text
    return False


# -- the scenarios: what the stack does, each with the role that does it


def scenario_pipeline(ctx: IamStack) -> None:
    """A file with one unreadable row, plus one undecodable record in the stream: every trip lands, both rejects are
    written, nothing fails."""
    ctx.runs += 1
    path = trips_file(ctx.tmp / f"run-{ctx.runs}.csv", ROWS, seed=1000 + ctx.runs)
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    bad = list(rows[0])
    bad[header.index("tpep_pickup_datetime")] = "not a time"
    with path.open("a", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(bad)
    # What an earlier, failed scenario left in the stream is read first (the checkpoints live in the state folder).
    leftovers = ctx.functions.event_source_mapping(state_dir=ctx.tmp / "state")
    leftovers.start()
    leftovers.producer_finished()
    drained = leftovers.wait_drained(timeout=60)
    leftovers.stop()
    assert drained, "the consumer did not drain what was left"
    totals = ConsumerTotals()
    mapping = ctx.functions.event_source_mapping(state_dir=ctx.tmp / "state", totals=totals)
    mapping.start()
    try:
        ctx.admin.kinesis.put_record(StreamName=ctx.stack.stream_name, Data=b"\xff not json", PartitionKey="x")
        event = upload_with_event(ctx.admin, ctx.stack.bucket, path, f"iam/run-{ctx.runs}.csv")
        run = ctx.functions.invoke_producer(event)
        mapping.producer_finished()
        assert mapping.wait_drained(timeout=60), "the consumer did not drain"
    finally:
        mapping.stop()
    assert not run.errors, run.errors
    (result,) = run.results
    assert result["records_sent"] == ROWS and result["rejects_keys"], result
    assert mapping.stats.function_errors == 0 and mapping.stats.records_to_on_failure == 0
    assert totals.records_consumed == ROWS + 1 and sum(totals.records_rejected.values()) == 1
    assert totals.rejects_keys, "the consumer wrote no rejects"
    assert set(totals.items_written) == {"high_value_trips", "trip_duration_analysis", "distance_to_fare_ratio"}


def run_needing_a_continuation(ctx: IamStack) -> ProducerRun:
    """The producer on a file it cannot finish in one invocation. Its rows are all rejects: nothing for the consumer
    to read, so the scenario stays cheap."""
    ctx.runs += 1
    path = trips_file(ctx.tmp / f"continued-{ctx.runs}.csv", CHECK_EVERY, seed=2000 + ctx.runs)
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    for row in rows:
        row[header.index("tpep_pickup_datetime")] = "not a time"
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    event = upload_with_event(ctx.admin, ctx.stack.bucket, path, f"iam/continued-{ctx.runs}.csv")
    return ctx.functions.invoke_producer(event)


def scenario_continuation(ctx: IamStack) -> None:
    """A file the producer cannot finish in one invocation: it invokes itself (lambda:InvokeFunction, under its role,
    as on AWS), and the local service runs what the emulator queued."""
    run = run_needing_a_continuation(ctx)
    assert not run.errors, run.errors
    assert run.invocations == 2 and run.continuations_invoked == 1, run
    assert sum(sum(result["rows_rejected"].values()) for result in run.results) == CHECK_EVERY


def scenario_dead_letter(ctx: IamStack) -> None:
    """What Lambda does with the producer's role when every attempt at an event failed."""
    assert ctx.stack.dead_letter_queue_url
    error = RuntimeError("every attempt failed")
    send_to_dead_letter_queue(ctx.role("producer").sqs, ctx.stack.dead_letter_queue_url, {"probe": 1}, "id", error)


def scenario_on_failure(ctx: IamStack) -> None:
    """What the event source mapping does with the consumer's role with a batch it gives up on."""
    assert ctx.stack.on_failure_queue_url
    send_message(ctx.role("consumer").sqs, ctx.stack.on_failure_queue_url, orjson.dumps({"probe": 1}).decode())


SCENARIOS: list[Callable[[IamStack], None]] = [
    scenario_continuation,
    scenario_dead_letter,
    scenario_on_failure,
    scenario_pipeline,
]


def test_the_policies_are_enough_for_everything_the_stack_does(iam_stack: IamStack) -> None:
    for scenario in SCENARIOS:
        scenario(iam_stack)


def test_without_continue_large_file_the_producer_s_own_invoke_is_denied(iam_stack: IamStack) -> None:
    """The real path's failure, as on AWS: the producer's lambda:InvokeFunction is refused by the emulator's IAM, the
    invocation fails, is retried, and the event goes to the producer's dead-letter queue."""
    (statement,) = [s for s in template_statements() if s.sid == "ContinueLargeFile"]
    with without(iam_stack.admin.iam, iam_stack.stack.account_id, statement):
        run = run_needing_a_continuation(iam_stack)
    assert run.gave_up and run.continuations_invoked == 0 and run.invocations == 3, run
    assert all("403" in error and "Invoke operation" in error for error in run.errors), run.errors
    assert run.dead_letter_message_id is not None


# -- what each role must not do


def test_the_producer_may_not_write_a_table_nor_read_another_bucket(iam_stack: IamStack) -> None:
    producer, admin = iam_stack.role("producer"), iam_stack.admin
    item = {"trip_id": {"S": "x"}}
    assert denied(lambda: producer.dynamodb.put_item(TableName="high_value_trips", Item=item))
    assert denied(
        lambda: producer.dynamodb.batch_write_item(
            RequestItems={"trip_duration_analysis": [{"PutRequest": {"Item": item}}]}
        )
    )
    assert denied(
        lambda: producer.dynamodb.update_item(
            TableName="zone_hourly_stats", Key={"pickup_location_id": {"S": "1"}, "pickup_hour": {"S": "2024-01-01T00"}}
        )
    )
    other = f"not-tripstream-{uuid.uuid4().hex[:8]}"
    admin.s3.create_bucket(Bucket=other)
    admin.s3.put_object(Bucket=other, Key="taxi_trips.csv", Body=b"a,b\n")
    assert denied(lambda: producer.s3.get_object(Bucket=other, Key="taxi_trips.csv"))
    admin.s3.put_object(Bucket=iam_stack.stack.bucket, Key="own.csv", Body=b"a,b\n")
    producer.s3.get_object(Bucket=iam_stack.stack.bucket, Key="own.csv")  # its own bucket: allowed


def test_the_consumer_may_not_write_the_stream_another_table_nor_read_the_uploads(iam_stack: IamStack) -> None:
    consumer, admin = iam_stack.role("consumer"), iam_stack.admin
    assert denied(
        lambda: consumer.kinesis.put_records(
            StreamName=iam_stack.stack.stream_name, Records=[{"Data": b"{}", "PartitionKey": "x"}]
        )
    )
    table = f"not-tripstream-{uuid.uuid4().hex[:8]}"
    admin.dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "trip_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "trip_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert denied(lambda: consumer.dynamodb.put_item(TableName=table, Item={"trip_id": {"S": "x"}}))
    admin.s3.put_object(Bucket=iam_stack.stack.bucket, Key="upload.csv", Body=b"a,b\n")
    assert denied(lambda: consumer.s3.get_object(Bucket=iam_stack.stack.bucket, Key="upload.csv"))
    assert denied(
        lambda: consumer.lambda_.invoke(
            FunctionName=iam_stack.stack.producer.arn, InvocationType="Event", Payload=b"{}"
        )
    )


# -- every statement needed


@dataclass(frozen=True)
class Statement:
    sid: str
    policy: str
    managed: bool
    roles: tuple[str, ...]


def template_statements() -> list[Statement]:
    resources = load_template()["Resources"]
    found = []
    for resource in resources.values():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        properties = resource["Properties"]
        managed = resource["Type"] == "AWS::IAM::ManagedPolicy"
        roles = tuple(resources[role["Ref"]]["Properties"]["RoleName"] for role in properties["Roles"])
        name = properties["ManagedPolicyName" if managed else "PolicyName"]
        for statement in properties["PolicyDocument"]["Statement"]:
            # A statement shared by both roles is needed by each: removed from one role at a time.
            found += [Statement(statement["Sid"], name, managed, (role,)) for role in roles]
    return found


def _document(value: Any) -> dict[str, Any]:
    return orjson.loads(value) if isinstance(value, str) else dict(value)


@contextmanager
def without(iam: Any, account: str, statement: Statement) -> Iterator[None]:
    """The statement removed from the deployed policy of each of its roles, put back after."""
    undo: list[Callable[[], Any]] = []
    try:
        for role in statement.roles:
            if statement.managed:
                arn = f"arn:aws:iam::{account}:policy/{statement.policy}"
                version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
                document = _document(
                    iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                )
                iam.detach_role_policy(RoleName=role, PolicyArn=arn)
                undo.append(lambda role=role, arn=arn: iam.attach_role_policy(RoleName=role, PolicyArn=arn))
                rest_name = f"{statement.policy}-rest"
            else:
                document = _document(iam.get_role_policy(RoleName=role, PolicyName=statement.policy)["PolicyDocument"])
                iam.delete_role_policy(RoleName=role, PolicyName=statement.policy)
                original = orjson.dumps(document).decode()
                undo.append(
                    lambda role=role, original=original: iam.put_role_policy(
                        RoleName=role, PolicyName=statement.policy, PolicyDocument=original
                    )
                )
                rest_name = statement.policy
            rest = [s for s in document["Statement"] if s.get("Sid") != statement.sid]
            assert len(rest) < len(document["Statement"]), f"{statement.sid} not deployed in {statement.policy}"
            if rest:
                iam.put_role_policy(
                    RoleName=role,
                    PolicyName=rest_name,
                    PolicyDocument=orjson.dumps({**document, "Statement": rest}).decode(),
                )
                undo.append(
                    lambda role=role, rest_name=rest_name: iam.delete_role_policy(RoleName=role, PolicyName=rest_name)
                )
        yield
    finally:
        for step in reversed(undo):
            step()


def key(statement: Statement) -> str:
    return f"{statement.sid}@{statement.roles[0]}"


def test_every_policy_statement_of_the_template_is_needed(iam_stack: IamStack) -> None:
    statements = template_statements()
    assert len(statements) >= 10
    failed_by: dict[str, str] = {}
    for statement in statements:
        if statement.sid in NOT_PROVABLE_ON_MOTO:
            continue
        with without(iam_stack.admin.iam, iam_stack.stack.account_id, statement):
            for scenario in SCENARIOS:
                try:
                    scenario(iam_stack)
                except (AssertionError, ClientError, Exception) as error:
                    failed_by[key(statement)] = f"{scenario.__name__}: {str(error)[:120]}"
                    break
        print(f"without {statement.policy}/{statement.sid} of {statement.roles[0]}: {failed_by.get(key(statement))}")
    needless = [key(s) for s in statements if key(s) not in failed_by and s.sid not in NOT_PROVABLE_ON_MOTO]
    assert not needless, f"no scenario needs {needless}"
    scenario_pipeline(iam_stack)  # everything put back: enough again
