"""moto's Flask application for one service, as ``moto_server`` builds it, without one debug-mode helper that kept
every request's body alive after its answer.

moto runs its Flask apps with ``debug = True``. In debug mode Flask gives each request whose form it reads a class
of its own, whose ``__getitem__`` holds the request (``flask.debughelpers.attach_enctype_error_multidict``: a nicer
error for a form read as files). A class is always in a reference cycle, so the request, and the body it read,
stayed until the collector's next pass over the generation the class had reached; ``gc_policy`` makes those passes
rare. The month's upload (an 81 MB Parquet file in 8 MB parts) left the emulator ~280 MiB larger for the rest of the
run, a 27 MB file ~145 MiB: its memory followed the file's size. Only the helper goes: debug mode's other effects
(exceptions propagated to the server, key errors trapped) stay as moto has them.
"""

from __future__ import annotations

from flask import Flask, Request
from moto.backends import SERVICE_NAMES
from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.wrappers import Request as WerkzeugRequest


class _Request(Request):
    """Flask's request; its form loaded by werkzeug's code, which Flask's override only adds the helper to."""

    def _load_form_data(self) -> None:
        WerkzeugRequest._load_form_data(self)


def backend_app(service: SERVICE_NAMES) -> Flask:
    """What ``DomainDispatcherApplication`` builds for `service` (moto's ``create_backend_app``), with `_Request`."""
    app = create_backend_app(service)
    app.request_class = _Request
    return app
