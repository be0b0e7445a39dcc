"""How much one object may expand to: beyond these it is refused whole, before anything is sent.

Defaults are well above a real TLC month (2009-2015 yellow months: ~15 M rows, ~2.5 GB of CSV; recent months: ~3 M
rows, ~500 MB) and far below what a crafted file can hold (a 17 MB gzip of one row repeated: 5 GB, 53 M rows).
"""

from __future__ import annotations

from dataclasses import dataclass

from tripstream.trips.normalise import FileRefused

DEFAULT_MAX_BYTES = 10 << 30  # decompressed
DEFAULT_MAX_ROWS = 50_000_000
# Real TLC CSV gzips 5-10x; one row repeated, 300x and more.
DEFAULT_MAX_RATIO = 100.0
# The ratio is judged only past this much output: a small file, however repetitive, is no bomb.
RATIO_GRACE_BYTES = 64 << 20
# What a Parquet row stands for, as CSV text, for its ratio (a TLC row is 100-300 bytes).
PARQUET_ROW_BYTES = 100


@dataclass(frozen=True)
class ObjectLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_grace_bytes: int = RATIO_GRACE_BYTES

    def check_bytes(self, name: str, expanded: int, compressed: int) -> None:
        """Raises `FileRefused` once `expanded` bytes (from `compressed` read so far) are beyond a limit."""
        if expanded > self.max_bytes:
            raise FileRefused(name, "too_large", f"expands to over {self.max_bytes:,} bytes (MAX_OBJECT_BYTES)")
        if expanded > self.ratio_grace_bytes and expanded > self.max_ratio * max(compressed, 1):
            raise FileRefused(
                name,
                "compression_ratio",
                f"expands over {self.max_ratio:g} times ({expanded:,} bytes from {compressed:,}; "
                "MAX_COMPRESSION_RATIO): a compression bomb, or a file to split",
            )

    def check_rows(self, name: str, rows: int) -> None:
        if rows > self.max_rows:
            raise FileRefused(name, "too_many_rows", f"holds over {self.max_rows:,} rows (MAX_OBJECT_ROWS)")
