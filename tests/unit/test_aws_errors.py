"""tripstream.aws.errors: the one reading of botocore's errors (real botocore exception objects, no AWS call)."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from tripstream.aws.errors import (
    AwsError,
    EndpointUnreachable,
    error_code,
    is_endpoint_error,
    is_not_found,
    is_transient,
    is_unreachable,
    translate,
)


def client_error(code: str, status: int, message: str = "it failed") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Operation"
    )


def test_codes_and_predicates_of_a_client_error() -> None:
    throttled = client_error("ProvisionedThroughputExceededException", 400)
    missing = client_error("ResourceNotFoundException", 400)
    assert error_code(throttled) == "ProvisionedThroughputExceededException"
    assert is_transient(throttled) and not is_not_found(throttled)
    assert is_not_found(missing) and not is_transient(missing)
    assert is_transient(client_error("Whatever", 503))
    assert not is_transient(client_error("ValidationException", 400))
    assert is_not_found(client_error("ValidationError", 400, "Stack with id tripstream does not exist"))
    assert not is_not_found(client_error("ValidationError", 400, "Parameter X is invalid"))


def test_unreachable_endpoints_and_missing_credentials() -> None:
    refused = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert is_unreachable(refused) and is_transient(refused) and is_endpoint_error(refused)
    assert is_unreachable(NoCredentialsError())
    assert not is_unreachable(client_error("ThrottlingException", 400))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert not is_endpoint_error(ValueError("a bug, not an endpoint"))


def test_translate_keeps_code_and_status_and_names_what_was_done() -> None:
    translated = translate(client_error("AccessDenied", 403, "no"), "reading stack tripstream")
    assert isinstance(translated, AwsError) and not isinstance(translated, EndpointUnreachable)
    assert (translated.code, translated.status) == ("AccessDenied", 403)
    assert str(translated) == "reading stack tripstream: AccessDenied: no"
    assert error_code(translated) == "AccessDenied" and not is_transient(translated)
    unreachable = translate(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "listing shards")
    assert isinstance(unreachable, EndpointUnreachable) and is_unreachable(unreachable)
