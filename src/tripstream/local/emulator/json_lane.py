"""DynamoDB's and Kinesis's JSON requests handed straight to moto's handler, past Flask.

moto's server runs each service's handler inside a Flask application: per request a request context, URL routing,
a ``before_request`` hook (gzip bodies), flask-cors' ``after_request`` and a response object. For the requests the
pipeline sends by the thousand (DynamoDB BatchWriteItem/TransactWriteItems, Kinesis PutRecords/GetRecords) that is
~7 % of the emulator's CPU (py-spy, 50,000 trips), while their route is known from ``X-Amz-Target`` alone: every
DynamoDB and Kinesis action is ``POST /`` to one ``dispatch``.

:func:`json_lane` sends such a request (``POST /``, the target of one of the two services, signed for that service,
no ``Content-Encoding``, no ``Origin``) to the handler's ``dispatch`` exactly as moto's Flask view
(``convert_to_flask_response``) does: the same request class, the same arguments, a ``ClientError`` answered the
same way, the same response class, and the one header flask-cors adds to it. Any other request goes to moto's
application unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from tripstream.aws.errors import error_message, is_client_error

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: X-Amz-Target's prefix -> (the service the request is signed for, the module of its handler, the handler's class).
_SERVICES: Final = {
    "DynamoDB_20120810": ("dynamodb", "moto.dynamodb.responses", "DynamoHandler"),
    "Kinesis_20131202": ("kinesis", "moto.kinesis.responses", "KinesisResponse"),
}
_SCOPE_SERVICE: Final = re.compile(r"Credential=[^/,]*/[^/,]*/[^/,]*/([^/,]*)/aws4_request")


def json_lane(moto_app: WsgiApp) -> WsgiApp:
    """`moto_app`, with DynamoDB's and Kinesis's JSON requests dispatched without Flask."""
    import importlib

    from flask import Request, Response
    from moto import settings
    from moto.moto_api import recorder

    # flask-cors' after_request, as moto's server configures it, for a request without Origin: this one header.
    cors = [] if settings.DISABLE_GLOBAL_CORS else [("Access-Control-Allow-Origin", "*")]

    dispatchers = {
        prefix: (service, getattr(importlib.import_module(module), name).dispatch)
        for prefix, (service, module, name) in _SERVICES.items()
    }

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = dispatchers.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0])
        if route is None or not _plain_post(environ, route[0]):
            return moto_app(environ, start_response)
        request = Request(environ)
        recorder._record_request(request)
        try:
            result = route[1](request, request.url, dict(request.headers))
        except Exception as error:
            if not is_client_error(error):
                raise
            result = 400, {}, error_message(error)
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = Response(response=content, status=status, headers=headers)
        response.headers.extend(cors)
        return response(environ, start_response)

    return application


def _plain_post(environ: dict[str, Any], service: str) -> bool:
    """A POST to / that moto's own application would route to `service` and answer without a hook of its own."""
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/":
        return False
    if environ.get("HTTP_CONTENT_ENCODING") or environ.get("HTTP_ORIGIN"):  # gzip hook, CORS: moto's path
        return False
    scope = _SCOPE_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))  # what moto's application routes by
    return scope is not None and scope.group(1) == service
