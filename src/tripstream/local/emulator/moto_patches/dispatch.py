"""moto's request dispatch without per-request waste (inside the emulator's process only).

The fixed cost of one request in moto 5.2.1's server is about 1.3 ms of CPU (ListTables, measured), more than the
work of a 25-item BatchWriteItem. Three parts of it are redone for every request although nothing changes:

- ``DomainDispatcherApplication.get_backend_for_host`` calls ``moto.backends.list_of_moto_modules()``, which lists
  moto's package folder and stats every entry (about 2 % of the emulator's time under the pipeline): listed once.
- ``BaseResponse.call_action`` asks ``method_names_from_class`` whether the action is a method of the handler, which
  runs ``inspect.getmembers`` over the whole handler class (0.17 ms a request, cProfile): the names are kept per class
  (the patches replace methods, never add or remove names; :func:`revert` forgets them).
- every answer gets a request id of 52 letters and digits drawn by 52 calls of ``random.choice`` (0.07 ms): drawn
  in one ``choices`` call, from the same characters and moto's same (seedable) generator.
- ``BaseResponse._enrich_response`` writes that id into the body's ``<RequestId>`` with a look-behind ``re.sub`` that
  visits every character of every answer (2.6 % of the emulator's time under the pipeline, where GetRecords answers
  are half a megabyte of JSON): an answer without ``<RequestId>`` has nothing to replace, so only its headers are
  enriched, by moto's own code.
- ``BaseResponse._get_param`` parses the JSON body again for every parameter it is asked for (a Kinesis PutRecords
  body of 500 records, ~300 KB, three times; the IAM check once more: 13 % of the emulator's time while the producer
  sends): for Kinesis, parsed once per request (:func:`json_body`), answered as moto does. Kinesis only: its
  handlers only read what they get, where another service's might change a parameter and expect the next
  ``_get_param`` to parse it afresh.
"""

from __future__ import annotations

import inspect
import json
import string
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import unquote

from moto import backends
from moto.core import responses
from moto.kinesis import responses as kinesis_responses
from moto.moto_api._internal import mock_random

from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_MARKER: Final = "_tripstream_original_list_of_moto_modules"
_RESPONSE_MARKER: Final = "_tripstream_original_response_helpers"
_REQUEST_ID_CHARACTERS: Final = string.ascii_letters + string.digits  # moto's get_random_string's pool
_REQUEST_ID_LENGTH: Final = 52
_ENRICH_MARKER: Final = "_tripstream_original_enrich_response"
_XML_REQUEST_ID: Final = "<RequestId>"  # what moto's pattern looks behind
_GET_PARAM_MARKER: Final = "_tripstream_params_parsed_once"  # on a handler class while patched
_PARSED_BODY: Final = "_tripstream_parsed_body"  # on a response object (one per request): its body, parsed
_UNPARSEABLE: Final = object()
_PARAMS_PARSED_ONCE: Final = (kinesis_responses.KinesisResponse,)
# What moto's _get_param does, in this order (_params_parsed_once answers the same way): checked in its source.
_GET_PARAM_STEPS: Final = (
    "self.automated_parameter_parsing",
    "self.querystring.get(param_name)",
    "json.loads(self.body)[param_name]",
    "self.uri_match.group(param_name)",
)


def _cached(original: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    modules = tuple(original())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    return list_of_moto_modules


_method_names: dict[type, list[str]] = {}


def _method_names_once(original: Callable[[object], list[str]]) -> Callable[[object], list[str]]:
    def method_names_from_class(clazz: object) -> list[str]:
        if not isinstance(clazz, type):
            return original(clazz)
        names = _method_names.get(clazz)
        if names is None:
            names = _method_names[clazz] = original(clazz)
        return list(names)

    return method_names_from_class


def _request_id(headerdict: dict[str, Any] | None = None) -> str:
    request_id = "".join(mock_random.choices(_REQUEST_ID_CHARACTERS, k=_REQUEST_ID_LENGTH))
    if headerdict is not None and isinstance(headerdict, dict):
        headerdict.update({"x-amzn-requestid": request_id})
    return request_id


def _enriched_without_scanning(
    original: Callable[[dict[str, str], Any], tuple[dict[str, str], Any]],
) -> Callable[[dict[str, str], Any], tuple[dict[str, str], Any]]:
    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and _XML_REQUEST_ID not in body:
            headers, _ = original(headers, "")  # moto's status and request id; the body has no id to replace
            return headers, body
        return original(headers, body)

    return enrich_response


def json_body(response: Any) -> Any:
    """The request's JSON body as moto's ``json.loads(self.body)`` gives it, parsed once per request (kept on the
    response object, which moto makes per request); ``None`` when there is no body or it is not JSON. json, not
    orjson: orjson reads an integer past 64 bits as a float."""
    parsed = response.__dict__.get(_PARSED_BODY, None)
    if parsed is None:
        body = response.body
        if body is None or isinstance(body, dict):  # a service that parsed its own body (DynamoDB)
            return body
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            parsed = _UNPARSEABLE
        response.__dict__[_PARSED_BODY] = parsed
    return None if parsed is _UNPARSEABLE else parsed


def _params_parsed_once(original: Callable[..., Any]) -> Callable[..., Any]:
    def _get_param(self: Any, param_name: str, if_none: Any = None) -> Any:
        body = json_body(self) if not self.automated_parameter_parsing and isinstance(self.body, str | bytes) else None
        if not isinstance(body, dict):  # moto's own way: no body, not JSON, already parsed, a list, ...
            return original(self, param_name, if_none)
        value = self.querystring.get(param_name)
        if value is not None:
            return value[0]
        if param_name in body:
            return body[param_name]
        if self.uri_match:
            try:
                return unquote(self.uri_match.group(param_name))
            except IndexError:
                pass
        return if_none

    return _get_param


_RESPONSE_HELPERS: Final = {"method_names_from_class": ("clazz",), "gen_amzn_requestid_long": ("headerdict",)}


def _check_response_helpers() -> None:
    problems = [
        f"{name} takes {parameter_names(getattr(responses, name, None))}"
        for name, parameters in _RESPONSE_HELPERS.items()
        if not callable(getattr(responses, name, None)) or parameter_names(getattr(responses, name)) != parameters
    ]
    enrich = vars(responses.BaseResponse).get("_enrich_response")
    if not isinstance(enrich, staticmethod) or parameter_names(enrich.__func__) != ("headers", "body"):
        problems.append(f"BaseResponse._enrich_response is {enrich!r}, not a staticmethod of (headers, body)")
    get_param = vars(responses.BaseResponse).get("_get_param")
    if not callable(get_param) or parameter_names(get_param) != ("self", "param_name", "if_none"):
        problems.append(f"BaseResponse._get_param takes {parameter_names(get_param)}")
    else:
        try:
            source = inspect.getsource(get_param)
        except (OSError, TypeError):
            source = " ".join(_GET_PARAM_STEPS)  # no source shipped: nothing to compare
        if not all(step in source for step in _GET_PARAM_STEPS):
            problems.append("BaseResponse._get_param no longer reads query string, json.loads(self.body), uri_match")
    if problems:
        raise shape_error("moto.core.responses", problems)


def apply() -> None:
    """List moto's service folders once, keep handlers' method names, draw request ids at once, scan only XML
    answers for their request id. Idempotent; the caller holds the patches' lock."""
    if hasattr(backends, _MARKER):
        return
    original: Any = backends.list_of_moto_modules
    if parameter_names(original) != ():
        raise shape_error("backends.list_of_moto_modules", [f"it takes {parameter_names(original)}"])
    _check_response_helpers()
    setattr(backends, _MARKER, original)
    backends.list_of_moto_modules = _cached(original)
    originals = {name: getattr(responses, name) for name in _RESPONSE_HELPERS}
    setattr(responses, _RESPONSE_MARKER, originals)
    setattr(responses, "method_names_from_class", _method_names_once(originals["method_names_from_class"]))  # noqa: B010
    setattr(responses, "gen_amzn_requestid_long", _request_id)  # noqa: B010
    enrich = vars(responses.BaseResponse)["_enrich_response"]
    setattr(responses, _ENRICH_MARKER, enrich)  # on the module: a class attribute would be one more handler method
    responses.BaseResponse._enrich_response = staticmethod(_enriched_without_scanning(enrich.__func__))  # type: ignore[method-assign,assignment]
    get_param = vars(responses.BaseResponse)["_get_param"]
    for handler_class in _PARAMS_PARSED_ONCE:
        if "_get_param" in vars(handler_class):
            raise shape_error(handler_class.__name__, ["it has a _get_param of its own"])
        setattr(handler_class, _GET_PARAM_MARKER, True)
        handler_class._get_param = _params_parsed_once(get_param)  # type: ignore[method-assign]


def revert() -> None:
    original = getattr(backends, _MARKER, None)
    if original is not None:
        backends.list_of_moto_modules = original
        delattr(backends, _MARKER)
    originals: dict[str, Any] | None = getattr(responses, _RESPONSE_MARKER, None)
    if originals is not None:
        for name, original_helper in originals.items():
            setattr(responses, name, original_helper)
        delattr(responses, _RESPONSE_MARKER)
    enrich = getattr(responses, _ENRICH_MARKER, None)
    if enrich is not None:
        responses.BaseResponse._enrich_response = enrich  # type: ignore[method-assign]
        delattr(responses, _ENRICH_MARKER)
    for handler_class in _PARAMS_PARSED_ONCE:
        if vars(handler_class).get(_GET_PARAM_MARKER):
            del handler_class._get_param
            delattr(handler_class, _GET_PARAM_MARKER)
    _method_names.clear()
