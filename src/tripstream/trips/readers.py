"""Trip files -> raw rows, streamed: CSV, gzip-compressed CSV and Parquet, chosen by content.

A file is checked as a whole before its first row is handed out (format, header, gzip integrity), so a
refused file sends nothing. Rows come out one at a time with their row number: the physical line number for
CSV (the header is line 1) and the 1-based row number for Parquet.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from tripstream.trips.normalise import (
    FileRefused,
    Header,
    RejectReason,
    RowError,
    resolve_header,
    split_csv_line,
)

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
MAX_HEADER_BYTES = 1 << 20
MAX_REJECT_TEXT = 2000
_CHUNK = 1 << 20


class ByteSource(Protocol):
    """Where a trip file's bytes come from: a local path or an S3 object (tripstream.aws.s3)."""

    @property
    def name(self) -> str: ...

    def size(self) -> int: ...

    def read_range(self, start: int, length: int) -> bytes: ...

    def open_stream(self, start: int = 0) -> IO[bytes]: ...

    def open_seekable(self) -> IO[bytes]: ...


@dataclass(frozen=True)
class LocalFileSource:
    path: Path

    @property
    def name(self) -> str:
        return str(self.path)

    def size(self) -> int:
        return self.path.stat().st_size

    def read_range(self, start: int, length: int) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def open_stream(self, start: int = 0) -> IO[bytes]:
        handle = self.path.open("rb")
        handle.seek(start)
        return handle

    def open_seekable(self) -> IO[bytes]:
        return self.path.open("rb")


@dataclass(frozen=True)
class ResumePoint:
    """Where a follow-up invocation picks up: every row up to `row_number` is done.

    `byte_offset` is set for plain CSV only (the byte after that row), so the follow-up can seek there.
    """

    row_number: int
    byte_offset: int | None = None


@dataclass
class RawRow:
    row_number: int
    fields: Sequence[str] | None
    error: RowError | None
    text: str
    # Byte offset just past this row, for plain CSV (None otherwise).
    end_offset: int | None = None


@dataclass
class FileStats:
    blank_lines: int = 0


@dataclass
class TripFile:
    """An opened, checked trip file."""

    source: ByteSource
    format: str
    header: Header
    stats: FileStats = field(default_factory=FileStats)
    _header_end: int = 0

    def rows(self, resume: ResumePoint | None = None) -> Iterator[RawRow]:
        if self.format == "parquet":
            return _parquet_rows(self, resume)
        return _csv_rows(self, resume)


def open_trip_file(source: ByteSource, *, service_hint: str | None = None) -> TripFile:
    """Detect the format by content and check the header; raises `FileRefused` for a file not to be sent."""
    size = source.size()
    head = source.read_range(0, 8) if size else b""
    if not head.strip() and (size == 0 or not _has_content(source)):
        raise FileRefused(source.name, "empty_file", "the file is empty")
    if head.startswith(PARQUET_MAGIC):
        return _open_parquet(source, service_hint)
    if head.startswith(ZIP_MAGIC):
        raise FileRefused(source.name, "unknown_format", "is a ZIP archive; upload the CSV or Parquet file itself")
    if head.startswith(GZIP_MAGIC):
        _check_gzip(source)
        with _gzip_stream(source) as stream:
            return _open_csv(source, "csv.gz", stream, service_hint)
    with source.open_stream() as stream:
        return _open_csv(source, "csv", stream, service_hint)


def _has_content(source: ByteSource) -> bool:
    with source.open_stream() as stream:
        while chunk := stream.read(_CHUNK):
            if chunk.strip():
                return True
    return False


def _check_gzip(source: ByteSource) -> None:
    """Decompress the whole stream once, discarding it: a truncated or corrupt gzip is refused before sending."""
    decompressor = zlib.decompressobj(wbits=47)
    total = 0
    with source.open_stream() as stream:
        try:
            while chunk := stream.read(_CHUNK):
                while chunk:
                    total += len(decompressor.decompress(chunk, _CHUNK))
                    chunk = decompressor.unconsumed_tail
                    if decompressor.eof:  # concatenated gzip members are valid gzip
                        chunk = decompressor.unused_data + chunk
                        if not chunk.strip(b"\x00"):
                            break
                        decompressor = zlib.decompressobj(wbits=47)
        except zlib.error as exc:
            raise FileRefused(source.name, "corrupt_gzip", f"is not a valid gzip stream ({exc})") from None
    if not decompressor.eof:
        raise FileRefused(source.name, "truncated_gzip", "the gzip stream is truncated (it ends before its trailer)")
    if total == 0:
        raise FileRefused(source.name, "empty_file", "the gzip stream holds no data")


def _gzip_stream(source: ByteSource) -> IO[bytes]:
    return io.BufferedReader(gzip.GzipFile(fileobj=source.open_stream(), mode="rb"), buffer_size=_CHUNK)


def _open_csv(source: ByteSource, fmt: str, stream: IO[bytes], service_hint: str | None) -> TripFile:
    stats = FileStats()
    offset = 0
    while True:
        line = stream.readline(MAX_HEADER_BYTES)
        offset += len(line)
        if not line:
            raise FileRefused(source.name, "empty_file", "the file has no header line")
        if line.strip():
            break
        stats.blank_lines += 1
    if len(line) >= MAX_HEADER_BYTES and not line.endswith(b"\n"):
        raise FileRefused(source.name, "unknown_format", "is not a CSV file (its first line is over 1 MiB)")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(
            source.name,
            "unknown_format",
            "is not a CSV, gzip-compressed CSV or Parquet file (binary content)",
        ) from None
    if "\x00" in text:
        raise FileRefused(
            source.name,
            "unknown_format",
            "is not a CSV, gzip-compressed CSV or Parquet file (binary content)",
        )
    columns = split_csv_line(text.rstrip("\r\n"))
    header = _resolve(source, columns, service_hint)
    return TripFile(source=source, format=fmt, header=header, stats=stats, _header_end=offset)


def _resolve(source: ByteSource, columns: Sequence[str], service_hint: str | None) -> Header:
    try:
        return resolve_header(columns, source_name=source.name, service_hint=service_hint)
    except FileRefused as refused:
        if len(_known(columns)) == 0:
            raise FileRefused(
                source.name,
                "unknown_format",
                "is not a TLC trip file: none of the columns of its first line is a known trip column "
                f"({refused.detail.split('(columns found: ', 1)[-1].rstrip(')')[:200]})",
            ) from None
        raise


def _known(columns: Sequence[str]) -> list[str]:
    from tripstream.trips.schema import ALIASES, column_key

    return [c for c in columns if column_key(c) in ALIASES]


def _csv_rows(trip_file: TripFile, resume: ResumePoint | None) -> Iterator[RawRow]:
    source = trip_file.source
    seek = resume.byte_offset if resume is not None and trip_file.format == "csv" else None
    if seek is not None and resume is not None:
        stream = source.open_stream(seek)
        line_number, offset, skip_until = resume.row_number, seek, 0
    else:
        stream = _gzip_stream(source) if trip_file.format == "csv.gz" else source.open_stream()
        line_number, offset = 0, 0
        skip_until = resume.row_number if resume is not None else 0
    plain = trip_file.format == "csv"
    with stream:
        if seek is None:
            # Re-read the header and the lines before it.
            while True:
                line = stream.readline(MAX_HEADER_BYTES)
                offset += len(line)
                line_number += 1
                if line.strip() or not line:
                    break
        for raw in stream:
            offset += len(raw)
            line_number += 1
            if line_number <= skip_until:
                continue
            stripped = raw.rstrip(b"\r\n")
            if not stripped.strip(b" ,\t"):
                trip_file.stats.blank_lines += 1
                continue
            end = offset if plain else None
            try:
                text = stripped.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = stripped.decode("utf-8", "replace")[:MAX_REJECT_TEXT]
                error = RowError(RejectReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
                yield RawRow(line_number, None, error, shown, end)
                continue
            yield RawRow(line_number, split_csv_line(text), None, text, end)


# ---------------------------------------------------------------- parquet


def _open_parquet(source: ByteSource, service_hint: str | None) -> TripFile:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.open_seekable())
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for a damaged footer
        raise FileRefused(source.name, "unreadable_parquet", f"is not a readable Parquet file ({exc})") from None
    header = _resolve(source, parquet.schema_arrow.names, service_hint)
    return TripFile(source=source, format="parquet", header=header)


def _parquet_rows(trip_file: TripFile, resume: ResumePoint | None) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    header = trip_file.header
    wanted = [header.columns[index] for _, index, _ in header.plan]
    width = header.width
    positions = [index for _, index, _ in header.plan]
    skip = resume.row_number if resume is not None else 0
    with trip_file.source.open_seekable() as handle:
        parquet = pq.ParquetFile(handle)
        row_number = 0
        for group in range(parquet.num_row_groups):
            group_rows = parquet.metadata.row_group(group).num_rows
            if row_number + group_rows <= skip:
                row_number += group_rows
                continue
            for batch in parquet.iter_batches(batch_size=8192, row_groups=[group], columns=wanted, use_threads=False):
                columns: list[list[str]] = []
                for original in batch.columns:
                    column = original
                    if pa.types.is_timestamp(column.type):
                        if column.type.tz is not None:
                            column = pc.local_timestamp(column.cast(pa.timestamp("s", tz="America/New_York")))
                        column = column.cast(pa.timestamp("s"), safe=False)
                    as_text = pc.fill_null(column.cast(pa.string()), "")
                    columns.append(as_text.to_pylist())
                for values in zip(*columns, strict=True):
                    row_number += 1
                    if row_number <= skip:
                        continue
                    fields = [""] * width
                    for position, value in zip(positions, values, strict=True):
                        fields[position] = value
                    yield RawRow(row_number, fields, None, ",".join(values)[:MAX_REJECT_TEXT])
