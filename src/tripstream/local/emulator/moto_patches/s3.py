"""A multipart upload completed without the whole object in memory (inside the emulator's process only).

moto 5.2.1's ``FakeMultipart.complete`` joins every part in a bytearray and copies it to bytes; its checksum builder
gathers the parts again for the object's checksum (by default a full-object CRC64NVME: another bytearray, another
bytes copy); then ``FakeKey``'s value setter writes the object into a SpooledTemporaryFile, which copies it into a
BytesIO before it rolls over to its file. An uploaded file was in memory up to six times over while its upload
completed: the 3M month's 81 MB Parquet file, uploaded a part at a time, took a bare emulator's peak to 275 MiB (146
with this patch), and a heap keeps its high-water mark. Here the parts are copied into the new object's file a block
at a time and a full-object checksum is summed block by block, so what the completion holds is one block (and, for
a composite checksum, one part, as moto does). What moto checks and answers is unchanged: InvalidPart, EntityTooSmall
and MalformedXML in moto's order, the ETag (the MD5 of the parts' MD5s, ``-N``), the checksum's type, value and part
count. Where moto would sum the checksum with an optional library (awscrt for CRC64NVME, crc32c for CRC32C), moto's
own completion runs: those sums are not reproduced here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import inspect
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, Final

from moto import settings
from moto.core import compat
from moto.s3 import models
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.utils import compute_checksum

from tripstream.local.emulator.moto_patches.version import parameter_names, shape_error

_MARKER: Final = "_tripstream_original_complete"
_BLOCK: Final = 1 << 20  # what the completion holds of the object at once
# What moto's complete does, in this order (the patched one does the same): checked in its source.
_COMPLETE_STEPS: Final = (
    "raise InvalidPart()",
    "last.contentsize < S3_UPLOAD_PART_MIN_SIZE",
    "raise EntityTooSmall()",
    "md5s.extend(decode_hex(part_etag)[0])",
    "checksum_builder.addPart(part.value)",
    "raise MalformedXML",
    'f"{full_etag.hexdigest()}-{count}"',
)
Completion = tuple[bytes, str, tuple[str, str, int] | None]


class _Assembled(bytes):
    """An object's content already in its file: what the completion hands ``put_object``, which hands it on, unread,
    to the new ``FakeKey``'s value setter (patched to take the file as the key's own buffer)."""

    buffer: IO[bytes]
    size: int


class _FullObjectSum:
    """moto's ``compute_checksum`` of the whole object, summed block by block (stdlib algorithms only)."""

    def __init__(self, algorithm: str) -> None:
        self._hash = hashlib.sha1() if algorithm == "SHA1" else hashlib.sha256()
        self._crc: int | None = 0 if algorithm in ("CRC32", "CRC32C", "CRC64NVME") else None  # CRC32 for all three

    def update(self, block: bytes) -> None:
        if self._crc is None:
            self._hash.update(block)
        else:
            self._crc = binascii.crc32(block, self._crc)

    def value(self) -> str:
        digest = self._hash.digest() if self._crc is None else self._crc.to_bytes(4, "big")
        return base64.b64encode(digest).decode()


def _streamable(algorithm: str) -> bool:
    """Whether moto sums `algorithm` with the standard library here (else an optional library, not reproduced)."""
    if algorithm == "CRC64NVME":
        return not compat.HAS_CRT
    if algorithm == "CRC32C":
        return importlib.util.find_spec("crc32c") is None
    return True


def _complete_in_blocks(original: Callable[[Any, Iterator[tuple[int, str]]], Completion]) -> Callable[..., Completion]:
    def complete(self: Any, body: Iterator[tuple[int, str]]) -> Completion:
        builder = models.MultipartChecksumBuilder(
            self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
        )
        if not _streamable(builder.checksum_algorithm):
            return original(self, body)
        whole = _FullObjectSum(builder.checksum_algorithm) if builder.checksum_type != "COMPOSITE" else None
        buffer: IO[bytes] = tempfile.SpooledTemporaryFile(settings.get_s3_default_key_buffer_size())  # noqa: SIM115
        try:
            md5s = bytearray()
            last = None
            count = size = 0
            for number, given_etag in body:
                part = self.parts.get(number)
                part_etag = None
                if part is not None:
                    part_etag = part.etag.replace('"', "")
                if part is None or part_etag != given_etag.replace('"', ""):
                    raise InvalidPart()
                if last is not None and last.contentsize < settings.S3_UPLOAD_PART_MIN_SIZE:
                    raise EntityTooSmall()
                md5s.extend(bytes.fromhex(part_etag))
                if whole is not None:
                    size += _copy_part(part, buffer, whole)
                else:  # a composite checksum sums each part whole, as moto does: the part is read once for both
                    data = part.value
                    buffer.write(data)
                    builder.addPart(data)
                    size += len(data)
                last = part
                count += 1
            if count == 0:
                raise MalformedXML
        except BaseException:
            buffer.close()
            raise
        assembled = _Assembled()
        assembled.buffer, assembled.size = buffer, size
        checksum = builder.build() if whole is None else (builder.checksum_type, whole.value(), 1)
        return assembled, f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{count}", checksum

    return complete


def _copy_part(part: Any, buffer: IO[bytes], whole: _FullObjectSum) -> int:
    """Append `part`'s content to `buffer` and to `whole`'s sum a block at a time (under the part's lock, as moto
    reads it)."""
    copied = 0
    with part.lock:
        part._value_buffer.seek(0)
        while block := part._value_buffer.read(_BLOCK):
            buffer.write(block)
            whole.update(block)
            copied += len(block)
    return copied


def _value_setter(original: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    def value(self: Any, new_value: bytes) -> None:
        if isinstance(new_value, _Assembled):
            self._value_buffer.close()
            self._value_buffer = new_value.buffer
            self.contentsize = new_value.size
            return
        if isinstance(new_value, bytes | bytearray) and len(new_value) > self._max_buffer_size:
            # To the file at once: a SpooledTemporaryFile would copy it into memory first, then copy that out
            # again when it rolls over (an 8 MB part: two more copies while the request is served).
            self._value_buffer.seek(0)
            self._value_buffer.truncate()
            self._value_buffer.rollover()
        original(self, new_value)

    return value


def _check_shape() -> None:
    problems: list[str] = []
    complete = models.FakeMultipart.complete
    if parameter_names(complete) != ("self", "body"):
        problems.append("FakeMultipart.complete does not take (self, body)")
    else:
        source = inspect.getsource(complete)
        problems += [f"FakeMultipart.complete no longer does {step}" for step in _COMPLETE_STEPS if step not in source]
    value = inspect.getattr_static(models.FakeKey, "value", None)
    if not isinstance(value, property) or value.fset is None:
        problems.append("FakeKey.value is not a property with a setter")
    elif "self._value_buffer.write(new_value)" not in inspect.getsource(value.fset):
        problems.append("FakeKey's value setter no longer writes into self._value_buffer")
    if "self._value_buffer = tempfile.SpooledTemporaryFile" not in inspect.getsource(models.FakeKey.__init__):
        problems.append("FakeKey no longer keeps its content in a SpooledTemporaryFile")
    builder = models.MultipartChecksumBuilder(None, None)
    if (builder.checksum_algorithm, builder.checksum_type) != ("CRC64NVME", "FULL_OBJECT"):
        problems.append("MultipartChecksumBuilder's defaults are not a full-object CRC64NVME")
    # The completion's value reaches the key's setter unread: complete -> put_object -> FakeKey(value=value).
    if "value, etag, checksum_details = multipart.complete(body)" not in inspect.getsource(
        models.S3Backend.complete_multipart_upload
    ):
        problems.append("S3Backend.complete_multipart_upload no longer takes the value from FakeMultipart.complete")
    if "value=value," not in inspect.getsource(models.S3Backend.put_object):
        problems.append("S3Backend.put_object no longer hands its value to FakeKey")
    if "if HAS_CRT:" not in inspect.getsource(compute_checksum):
        problems.append("compute_checksum no longer asks HAS_CRT")
    if problems:
        raise shape_error("S3 multipart completion", problems)


def apply() -> None:
    """Complete multipart uploads in blocks. Idempotent; the caller holds the patches' lock."""
    if _MARKER in vars(models.FakeMultipart):
        return
    _check_shape()
    value = inspect.getattr_static(models.FakeKey, "value")
    setattr(models.FakeMultipart, _MARKER, (models.FakeMultipart.complete, value))
    models.FakeMultipart.complete = _complete_in_blocks(models.FakeMultipart.complete)  # type: ignore[method-assign]
    models.FakeKey.value = value.setter(_value_setter(value.fset))  # type: ignore[method-assign]


def revert() -> None:
    originals = vars(models.FakeMultipart).get(_MARKER)
    if originals is None:
        return
    models.FakeMultipart.complete, models.FakeKey.value = originals  # type: ignore[method-assign]
    delattr(models.FakeMultipart, _MARKER)
