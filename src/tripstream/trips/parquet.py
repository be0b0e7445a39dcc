"""Parquet trip files: checked whole when opened (schema, types, every row group decodable), then read in batches
of only the columns that feed canonical fields. Split from readers.py, which chooses the format."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from tripstream.trips.limits import PARQUET_ROW_BYTES, ObjectLimits
from tripstream.trips.normalise import FileRefused, Header, RejectReason, RowError
from tripstream.trips.trip_file import (
    MAX_REJECT_TEXT,
    ByteSource,
    RawRow,
    ResumePoint,
    TripFile,
    one_line,
    resolve_columns,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

_PARQUET_BATCH = 8192
_UTC_NAMES = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "z", "+00:00", "-00:00", "+0000", "zulu", "universal"})


def _parquet_type_supported(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(data_type):
        return _parquet_type_supported(data_type.value_type)
    return any(
        check(data_type)
        for check in (
            pa.types.is_timestamp,
            pa.types.is_date,
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_decimal,
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_boolean,
            pa.types.is_null,
        )
    )


def open_parquet(source: ByteSource, service_hint: str | None, limits: ObjectLimits) -> TripFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pyarrow's default allocator (mimalloc) keeps what each row group used: peak memory then grows with the file
    # (measured: 3.9x from 10 MB to 256 MB). The system allocator gives it back, and memory stays flat (1.19x).
    pa.set_memory_pool(pa.system_memory_pool())

    with source.open_seekable() as handle:
        try:
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for a damaged footer
            problem = f"is not a readable Parquet file ({one_line(exc)})"
            raise FileRefused(source.name, "unreadable_parquet", problem) from None
        # The row count is in the footer: a file of millions of rows in a few KB is refused before any is read.
        rows = parquet.metadata.num_rows
        limits.check_rows(source.name, rows)
        limits.check_bytes(source.name, rows * PARQUET_ROW_BYTES, source.size())
        # Columns are read by name: two of the same name cannot be told apart (pyarrow hands out both).
        duplicates = sorted(name for name, count in Counter(schema.names).items() if count > 1)
        if duplicates:
            shown = ", ".join(repr(name) for name in duplicates[:5])
            raise FileRefused(source.name, "duplicate_columns", f"has more than one column named {shown}")
        full = resolve_columns(source, schema.names, service_hint)
        for name, index, _ in full.plan:
            data_type = schema.field(index).type
            if not _parquet_type_supported(data_type):
                raise FileRefused(
                    source.name,
                    "unsupported_column_type",
                    f"column {full.columns[index]!r} has the Parquet type {data_type}, which cannot hold a {name}",
                )
        # Only the columns that feed canonical fields are read: the header keeps just those, in file order.
        wanted = [full.columns[index] for _, index, _ in full.plan]
        header = Header(
            columns=tuple(wanted),
            plan=tuple((name, position, kind) for position, (name, _, kind) in enumerate(full.plan)),
            ignored=full.ignored,
            service=full.service,
        )
        # Decode every row group once before anything is sent: a damaged page refuses the file, not half of it.
        for group in range(parquet.num_row_groups):
            try:
                for _ in parquet.iter_batches(batch_size=65536, row_groups=[group], columns=wanted, use_threads=False):
                    pass
            except Exception as exc:
                raise FileRefused(
                    source.name,
                    "corrupt_parquet",
                    f"row group {group + 1} of {parquet.num_row_groups} cannot be read ({one_line(exc)})",
                ) from None
    return TripFile(source=source, format="parquet", header=header, read_rows=parquet_rows)


def _column_texts(column: Any) -> tuple[list[str], dict[int, RowError]]:
    """One Arrow column -> its values as the text a CSV would hold ("" for null), and per-row errors."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    data_type = column.type
    if pa.types.is_timestamp(data_type):
        if data_type.tz is not None and data_type.tz.strip().lower() not in _UTC_NAMES:
            # An instant in a named zone or offset: its NYC wall time.
            column = pc.local_timestamp(column.cast(pa.timestamp(data_type.unit, tz="America/New_York")))
        # Naive: NYC wall time already. UTC: taken as NYC wall time, as for text marked UTC (normalise.py).
        column = column.cast(pa.timestamp(data_type.unit)).cast(pa.timestamp("s"), safe=False)
    elif pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        texts: list[str] = []
        errors: dict[int, RowError] = {}
        for position, value in enumerate(column.to_pylist()):
            try:
                texts.append("" if value is None else value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                errors[position] = RowError(RejectReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
                texts.append(value.decode("utf-8", "replace"))
        return texts, errors
    return pc.fill_null(column.cast(pa.string()), "").to_pylist(), {}


def parquet_rows(trip_file: TripFile, resume: ResumePoint | None) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    wanted = list(trip_file.header.columns)
    skip = resume.row_number if resume is not None else 0
    with trip_file.source.open_seekable() as handle:
        parquet = pq.ParquetFile(handle)
        row_number = 0
        for group in range(parquet.num_row_groups):
            group_rows = parquet.metadata.row_group(group).num_rows
            if row_number + group_rows <= skip:
                row_number += group_rows
                continue
            for batch in parquet.iter_batches(
                batch_size=_PARQUET_BATCH, row_groups=[group], columns=wanted, use_threads=False
            ):
                columns: list[list[str]] = []
                errors: dict[int, RowError] = {}
                for column in batch.columns:
                    texts, column_errors = _column_texts(column)
                    columns.append(texts)
                    for position, error in column_errors.items():
                        errors.setdefault(position, error)
                if row_number + batch.num_rows <= skip:
                    row_number += batch.num_rows
                    continue
                for position, values in enumerate(zip(*columns, strict=True)):
                    row_number += 1
                    if row_number <= skip:
                        continue
                    row_error = errors.get(position) if errors else None
                    if row_error is not None:
                        yield RawRow(row_number, None, row_error, ",".join(values)[:MAX_REJECT_TEXT])
                    else:
                        yield RawRow(row_number, values)
