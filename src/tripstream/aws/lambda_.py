"""Lambda calls of tripstream: a function's configuration (for the local runtime), an asynchronous invocation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


@dataclass(frozen=True)
class FunctionInfo:
    """What the local runtime needs of a deployed function to stand in for Lambda."""

    name: str
    arn: str
    role_arn: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    handler: str = ""
    runtime: str = "python3.12"
    architecture: str = "x86_64"


def function_info(lambda_: LambdaClient, name: str) -> FunctionInfo:
    config = lambda_.get_function_configuration(FunctionName=name)
    return FunctionInfo(
        name=config["FunctionName"],
        arn=config["FunctionArn"],
        role_arn=config["Role"],
        timeout_seconds=config.get("Timeout", 3),
        memory_mb=config.get("MemorySize", 128),
        environment=dict(config.get("Environment", {}).get("Variables", {})),
        handler=config.get("Handler", ""),
        runtime=config.get("Runtime", "python3.12"),
        architecture=(config.get("Architectures") or ["x86_64"])[0],
    )


def invoke_async(lambda_: LambdaClient, function_arn: str, payload: bytes) -> None:
    """Invoke a function asynchronously (InvocationType Event): Lambda queues the event and retries it itself."""
    lambda_.invoke(FunctionName=function_arn, InvocationType="Event", Payload=payload)


@dataclass(frozen=True)
class Invocation:
    """The answer of a synchronous invocation."""

    status: int
    function_error: str | None  # "Unhandled" (the function raised or timed out), or None
    payload: bytes  # the function's response, or its error document


def invoke_sync(lambda_: LambdaClient, function_name: str, payload: bytes) -> Invocation:
    """Invoke a function and wait for its answer (InvocationType RequestResponse). The client's read timeout must
    outlast the function's timeout."""
    answer = lambda_.invoke(FunctionName=function_name, InvocationType="RequestResponse", Payload=payload)
    return Invocation(
        status=answer["StatusCode"], function_error=answer.get("FunctionError"), payload=answer["Payload"].read()
    )
