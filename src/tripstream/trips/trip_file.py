"""What the trip file readers share: where a file's bytes come from, an opened file, its raw rows, and the header
check that names what is wrong with a file that is not a trip file (trips.readers for CSV, trips.parquet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from tripstream.trips.normalise import FileRefused, Header, RowError, resolve_header
from tripstream.trips.schema import ALIASES, column_key

MAX_REJECT_TEXT = 2000


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


@dataclass(slots=True)
class RawRow:
    """One row as read: its fields, or the error that kept it from having any."""

    row_number: int
    fields: Sequence[str] | None
    error: RowError | None = None
    # The row as it appears in the file, where the reader has it (for Parquet `text` builds it when asked for).
    source_text: str | None = field(default=None, repr=False)
    # Byte offset just past this row, for plain CSV (None otherwise).
    end_offset: int | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The row as it appears in the file (for the rejects)."""
        if self.source_text is not None:
            return self.source_text
        return ",".join(self.fields or ())[:MAX_REJECT_TEXT]


@dataclass
class FileStats:
    blank_lines: int = 0


@dataclass
class TripFile:
    """An opened, checked trip file."""

    source: ByteSource
    format: str
    header: Header
    # The format's row reader (trips.readers for CSV, trips.parquet): set by whoever opened the file.
    read_rows: Callable[[TripFile, ResumePoint | None], Iterator[RawRow]]
    stats: FileStats = field(default_factory=FileStats)
    _header_end: int = 0
    _leading_blank_lines: int = 0

    def rows(self, resume: ResumePoint | None = None) -> Iterator[RawRow]:
        return self.read_rows(self, resume)


def one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_columns(
    source: ByteSource, columns: Sequence[str], service_hint: str | None, line: str | None = None
) -> Header:
    try:
        return resolve_header(columns, source_name=source.name, service_hint=service_hint)
    except FileRefused as refused:
        if any(column_key(c) in ALIASES for c in columns):
            raise
        if line is not None:
            for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
                if len([c for c in line.split(separator) if column_key(c) in ALIASES]) >= 2:
                    raise FileRefused(
                        source.name,
                        "unknown_format",
                        f"separates its columns with {name}; tripstream reads comma-separated files",
                    ) from None
        shown = refused.detail.split("(columns found: ", 1)[-1].rstrip(")")[:200]
        raise FileRefused(
            source.name,
            "unknown_format",
            f"is not a TLC trip file: no column of its first line is a known trip column ({shown})",
        ) from None
