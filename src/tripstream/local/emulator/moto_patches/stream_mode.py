"""moto creates a CloudFormation ``AWS::Kinesis::Stream`` as PROVISIONED whatever its ``StreamModeDetails``: this
patch makes an ON_DEMAND stream ON_DEMAND (with moto's 4 shards of an on-demand stream), as Kinesis does."""

from __future__ import annotations

from typing import Any

from moto.kinesis import models as kinesis_models

ON_DEMAND_SHARDS = 4  # what moto (and Kinesis, at first) gives an on-demand stream
_MARKER = "_tripstream_stream_mode"


def apply() -> None:
    """Patch ``Stream.create_from_cloudformation_json``. Idempotent."""
    stream_class = kinesis_models.Stream
    if _MARKER in vars(stream_class):
        return
    original = stream_class.create_from_cloudformation_json

    def create(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
        stream = original(resource_name, cloudformation_json, *args, **kwargs)
        mode = cloudformation_json.get("Properties", {}).get("StreamModeDetails") or {}
        if mode.get("StreamMode") == "ON_DEMAND":
            stream.stream_mode = {"StreamMode": "ON_DEMAND"}
            stream.init_shards(ON_DEMAND_SHARDS)  # a new stream: no records yet
        return stream

    setattr(stream_class, "create_from_cloudformation_json", classmethod(create))  # noqa: B010
    setattr(stream_class, _MARKER, True)
