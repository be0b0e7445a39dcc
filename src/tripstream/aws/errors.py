"""The one place that reads botocore's errors: their code, whether a retry may help, whether they mean "not found",
and the project's own exception for an endpoint that cannot be used (no answer, no credentials, an unparsable answer).

Code outside :mod:`tripstream.aws` never catches a botocore exception: it catches :class:`AwsError` (raised by
the functions of this package that translate) or asks the predicates below about what it caught.
"""

from __future__ import annotations

from typing import Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

# Error codes of a whole call that mean "try again later" (throttling, AWS-side faults).
TRANSIENT_ERROR_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "KMSThrottlingException",
        "TransactionInProgressException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Connection reset or closed, read timeout, broken response stream (HTTPClientError), endpoint unreachable,
# connect timeout: no answer from the service, so the call may be repeated.
TRANSIENT_EXCEPTIONS: Final[tuple[type[BaseException], ...]] = (
    HTTPClientError,
    EndpointConnectionError,
    ConnectTimeoutError,
)
# Whatever a call to an endpoint can raise. ResponseParserError (an emulator answering an error in another
# protocol, as moto does for a failing CloudFormation resource) is no BotoCoreError.
ENDPOINT_ERRORS: Final[tuple[type[BaseException], ...]] = (ClientError, BotoCoreError, ResponseParserError)
_NOT_FOUND_CODES: Final = frozenset(
    {"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchEntity", "QueueDoesNotExist"}
)
_CREDENTIAL_ERRORS: Final = (NoCredentialsError, PartialCredentialsError, NoRegionError)


class AwsError(RuntimeError):
    """A call to an AWS endpoint failed; ``code`` is the service's error code ("" when it gave none)."""

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class EndpointUnreachable(AwsError):
    """Nothing answered at the endpoint (refused, reset, timed out), or there are no credentials to sign with."""


def error_code(error: BaseException) -> str:
    """The service's error code of a failed call ("" for an error with none)."""
    if isinstance(error, AwsError):
        return error.code
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def is_client_error(error: BaseException) -> bool:
    """An error answer of a service (botocore's ``ClientError``), as opposed to a failure to get one."""
    return isinstance(error, ClientError)


def error_message(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


def http_status(error: BaseException) -> int:
    if isinstance(error, AwsError):
        return error.status
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def is_transient(error: BaseException) -> bool:
    """Whether a failed call is worth retrying."""
    if isinstance(error, TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(error, ClientError | AwsError):
        status = http_status(error)
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500 or status == 429
    return False


def is_not_found(error: BaseException) -> bool:
    """Whether the call failed because what it named does not exist (table, stack, bucket, key, queue)."""
    if error_code(error) in _NOT_FOUND_CODES or http_status(error) == 404:
        return True
    # CloudFormation says "Stack with id X does not exist" with the generic code ValidationError.
    return error_code(error) == "ValidationError" and "does not exist" in error_message(error)


def is_unreachable(error: BaseException) -> bool:
    """Whether nothing answered (refused, timed out) or there was nothing to sign the request with."""
    return isinstance(error, (EndpointUnreachable, EndpointConnectionError, ConnectTimeoutError, *_CREDENTIAL_ERRORS))


def is_endpoint_error(error: BaseException) -> bool:
    """Whether the error came from talking to an endpoint (and so is the endpoint's answer, not a bug)."""
    return isinstance(error, (*ENDPOINT_ERRORS, AwsError))


def translate(error: BaseException, what: str) -> AwsError:
    """The project's exception for a botocore one: ``what`` says what was being done ("reading stack X")."""
    if isinstance(error, AwsError):
        return error
    if isinstance(error, (*TRANSIENT_EXCEPTIONS, *_CREDENTIAL_ERRORS)):
        return EndpointUnreachable(f"{what}: {error}")
    if isinstance(error, ClientError):
        code = error_code(error)
        return AwsError(f"{what}: {code}: {error_message(error)}", code=code, status=http_status(error))
    return AwsError(f"{what}: {error}")
