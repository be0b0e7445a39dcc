"""Trip files -> raw rows, streamed: CSV, gzip-compressed CSV and Parquet, chosen by content.

A file is checked as a whole before its first row is handed out (format, header, gzip integrity, every Parquet
row group decodable), so a refused file sends nothing. Rows come out one at a time with their row number: the
physical line number for CSV (the header is line 1) and the 1-based row number for Parquet.

Lines a CSV reader cannot even split (invalid UTF-8, NUL bytes, over `MAX_LINE_BYTES`, what the csv module
refuses) come out as rows with an error; every other line comes out as fields, and the normaliser decides. A lone
CR in an unquoted line ends a row, and counts as a line.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from functools import partial
from typing import IO

from tripstream.trips.limits import ObjectLimits
from tripstream.trips.normalise import FileRefused, RejectReason, RowError, split_csv_line
from tripstream.trips.trip_file import (
    MAX_REJECT_TEXT,
    ByteSource,
    FileStats,
    LocalFileSource,
    RawRow,
    ResumePoint,
    TripFile,
    one_line,
    resolve_columns,
)

__all__ = ["ByteSource", "LocalFileSource", "RawRow", "ResumePoint", "TripFile", "one_line", "open_trip_file"]

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
# Formats people upload by mistake, by their first bytes: refused with a message that says what the file is.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (ZIP_MAGIC, "is a ZIP archive (or an Excel workbook); upload the CSV or Parquet file itself"),
    (b"BZh", "is bzip2-compressed; tripstream reads plain CSV, gzip-compressed CSV and Parquet"),
    (b"\xfd7zXZ\x00", "is xz-compressed; tripstream reads plain CSV, gzip-compressed CSV and Parquet"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed; tripstream reads plain CSV, gzip-compressed CSV and Parquet"),
    (b"\xff\xfe", "is UTF-16 text; save it as UTF-8 CSV"),
    (b"\xfe\xff", "is UTF-16 text; save it as UTF-8 CSV"),
    (b"%PDF", "is a PDF document, not a trip file"),
)
MAX_HEADER_BYTES = 1 << 20
# A TLC row is 100-300 bytes; a line over this is not a row (binary junk, a file glued on, a missing newline).
MAX_LINE_BYTES = 8192
_CHUNK = 1 << 20
# The shortest line that can be a trip row (two timestamps): what bounds the rows of a plain CSV by its size.
_MIN_ROW_BYTES = 40


def open_trip_file(
    source: ByteSource, *, service_hint: str | None = None, limits: ObjectLimits | None = None
) -> TripFile:
    """Detect the format by content and check the file; raises `FileRefused` for a file not to be sent."""
    limits = limits or ObjectLimits()
    size = source.size()
    head = source.read_range(0, 8) if size else b""
    if not head.strip() and (size == 0 or not _has_content(source)):
        raise FileRefused(source.name, "empty_file", "the file is empty")
    if head.startswith(PARQUET_MAGIC):
        from tripstream.trips.parquet import open_parquet  # pyarrow is loaded only for a Parquet file

        return open_parquet(source, service_hint, limits)
    _refuse_foreign(source, head)
    if head.startswith(GZIP_MAGIC):
        _check_gzip(source, limits)
        with _gzip_stream(source) as stream:
            inner = stream.peek(8)[:8]
            if inner.startswith(PARQUET_MAGIC):
                raise FileRefused(
                    source.name, "unknown_format", "is a gzip-compressed Parquet file; upload the Parquet file itself"
                )
            _refuse_foreign(source, inner, "holds, under its gzip compression, a file that ")
            return _open_csv(source, "csv.gz", stream, service_hint)
    limits.check_bytes(source.name, size, size)
    if size > limits.max_rows * _MIN_ROW_BYTES:  # only a file this big can hold too many rows: count them
        _check_line_count(source, limits)
    with source.open_stream() as stream:
        return _open_csv(source, "csv", stream, service_hint)


def _refuse_foreign(source: ByteSource, head: bytes, what: str = "") -> None:
    for magic, problem in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise FileRefused(source.name, "unknown_format", f"{what}{problem}")


def _has_content(source: ByteSource) -> bool:
    with source.open_stream() as stream:
        while chunk := stream.read(_CHUNK):
            if chunk.strip():
                return True
    return False


def _check_line_count(source: ByteSource, limits: ObjectLimits) -> None:
    lines = 0
    with source.open_stream() as stream:
        while chunk := stream.read(_CHUNK):
            lines += chunk.count(b"\n")
            limits.check_rows(source.name, lines - 1)


def _check_gzip(source: ByteSource, limits: ObjectLimits) -> None:
    """Decompress the whole stream once, discarding it: a truncated or corrupt gzip is refused before sending,
    and so is one that expands beyond the limits (stopping as soon as it does)."""
    decompressor = zlib.decompressobj(wbits=47)
    total = compressed = lines = 0
    with source.open_stream() as stream:
        try:
            while chunk := stream.read(_CHUNK):
                compressed += len(chunk)
                while chunk:
                    output = decompressor.decompress(chunk, _CHUNK)
                    total += len(output)
                    lines += output.count(b"\n")
                    limits.check_bytes(source.name, total, compressed)
                    limits.check_rows(source.name, lines - 1)
                    chunk = decompressor.unconsumed_tail
                    if decompressor.eof:  # concatenated gzip members are valid gzip
                        chunk = decompressor.unused_data + chunk
                        if not chunk.strip(b"\x00"):
                            break
                        decompressor = zlib.decompressobj(wbits=47)
        except zlib.error as exc:
            raise FileRefused(source.name, "corrupt_gzip", f"is not a valid gzip stream ({one_line(exc)})") from None
    if not decompressor.eof:
        raise FileRefused(source.name, "truncated_gzip", "the gzip stream is truncated (it ends before its trailer)")
    if total == 0:
        raise FileRefused(source.name, "empty_file", "the gzip stream holds no data")


def _gzip_stream(source: ByteSource) -> io.BufferedReader:
    return io.BufferedReader(gzip.GzipFile(fileobj=source.open_stream(), mode="rb"), buffer_size=_CHUNK)


def _not_csv(source: ByteSource, why: str) -> FileRefused:
    return FileRefused(source.name, "unknown_format", f"is not a CSV, gzip-compressed CSV or Parquet file ({why})")


def _open_csv(source: ByteSource, fmt: str, stream: IO[bytes], service_hint: str | None) -> TripFile:
    stats = FileStats()
    offset = 0
    while True:
        line = stream.readline(MAX_HEADER_BYTES)
        offset += len(line)
        if not line:
            raise FileRefused(source.name, "empty_file", "the file has no header line (only blank lines)")
        if line.strip():
            break
        stats.blank_lines += 1
    if b"\r" in line.rstrip(b"\r\n"):
        raise FileRefused(
            source.name, "unknown_format", "ends its lines with a lone CR (classic Mac); save it with LF or CRLF"
        )
    if len(line) >= MAX_HEADER_BYTES and not line.endswith(b"\n"):
        raise _not_csv(source, "its first line is over 1 MiB")
    if b"\x00" in line:
        raise _not_csv(source, "binary content")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_csv(source, "binary content, or text that is not UTF-8") from None
    try:
        columns = split_csv_line(text.rstrip("\r\n"))
    except RowError as error:
        raise FileRefused(source.name, "malformed_header", f"its header line {error.detail}") from None
    header = resolve_columns(source, columns, service_hint, text)
    return TripFile(
        source=source,
        format=fmt,
        header=header,
        read_rows=_csv_rows,
        stats=stats,
        _header_end=offset,
        _leading_blank_lines=stats.blank_lines,
    )


def _csv_rows(trip_file: TripFile, resume: ResumePoint | None) -> Iterator[RawRow]:
    source = trip_file.source
    seek = resume.byte_offset if resume is not None and trip_file.format == "csv" else None
    stream: IO[bytes]
    if seek is not None and resume is not None:
        stream = source.open_stream(seek)
        line_number, offset, skip_until = resume.row_number, seek, 0
    else:
        stream = _gzip_stream(source) if trip_file.format == "csv.gz" else source.open_stream()
        line_number, offset = 0, 0
        skip_until = resume.row_number if resume is not None else 0
    plain = trip_file.format == "csv"
    stats = trip_file.stats
    # Counted afresh on every pass; the blank lines before the header belong to the first invocation only.
    stats.blank_lines = trip_file._leading_blank_lines if resume is None else 0
    with stream:
        readline = stream.readline
        if seek is None:
            # Re-read the header and the blank lines before it.
            while True:
                line = readline(MAX_HEADER_BYTES)
                offset += len(line)
                line_number += 1
                if line.strip() or not line:
                    break
        for raw in iter(partial(readline, MAX_LINE_BYTES + 1), b""):
            offset += len(raw)
            line_number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                length = len(raw)
                while (rest := readline(_CHUNK)) and not rest.endswith(b"\n"):
                    length += len(rest)
                    offset += len(rest)
                length += len(rest)
                offset += len(rest)
                if line_number > skip_until:
                    error = RowError(RejectReason.LINE_TOO_LONG, f"{length} bytes (limit {MAX_LINE_BYTES})")
                    shown = raw[:MAX_REJECT_TEXT].decode("utf-8", "replace")
                    yield RawRow(line_number, None, error, shown, offset if plain else None)
                continue
            stripped = raw.rstrip(b"\r\n")
            if b"\r" in stripped and b'"' not in stripped:
                # In an unquoted line a lone CR ends a row (universal newlines): two rows glued by one stay two
                # rows, each a line. With quotes the csv module decides (a CR inside a quoted field is text).
                pieces = stripped.split(b"\r")
                line_number -= 1
                for index, piece in enumerate(pieces):
                    line_number += 1
                    if line_number > skip_until:
                        row = _csv_row(piece, line_number, offset if plain and index == len(pieces) - 1 else None)
                        if row is None:
                            stats.blank_lines += 1
                        else:
                            yield row
                continue
            if line_number <= skip_until:
                continue
            row = _csv_row(stripped, line_number, offset if plain else None)
            if row is None:
                stats.blank_lines += 1
            else:
                yield row


def _csv_row(line: bytes, line_number: int, end: int | None) -> RawRow | None:
    """One line (without its line end) -> a row, a row with its error, or None for a blank line."""
    if not line.strip(b" ,\t"):
        return None
    if b"\x00" in line:
        position = line.index(b"\x00")
        return RawRow(
            line_number,
            None,
            RowError(RejectReason.BINARY_DATA, f"a NUL byte at byte {position} of the line"),
            _shown(line),
            end,
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = RowError(RejectReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
        return RawRow(line_number, None, error, _shown(line), end)
    try:
        return RawRow(line_number, split_csv_line(text), None, text, end)
    except RowError as error:
        return RawRow(line_number, None, error, text[:MAX_REJECT_TEXT], end)


def _shown(line: bytes) -> str:
    return line[:MAX_REJECT_TEXT].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
