"""The TLC taxi zone lookup: location id -> borough and zone name.

The TLC publishes it as a small CSV (CRLF line endings, every field quoted):

    "LocationID","Borough","Zone","service_zone"
    1,"EWR","Newark Airport","EWR"

`load_zones` reads it from a path given by the user, or downloads the published file (and keeps a copy in the
user's cache folder) when no path is given and the machine is online. Without it, reports show location ids only.
"""

from __future__ import annotations

import csv
import io
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ZONES_URL: Final = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
ZONES_ENV: Final = "TRIPSTREAM_ZONES"  # a path or URL; "none" turns the lookup off
DOWNLOAD_TIMEOUT_SECONDS: Final = 5.0
_MAX_BYTES: Final = 1 << 20  # the published file is 12 KB
_OFF: Final = frozenset({"none", "off", "no", "false", "0"})

Fetch = Callable[[str, float], bytes]


class ZonesError(ValueError):
    """A zone lookup file that cannot be read (the message names it)."""


@dataclass(frozen=True)
class Zone:
    location_id: int
    borough: str
    zone: str
    service_zone: str

    @property
    def label(self) -> str:
        """`Manhattan / Midtown Center`; just the zone when the borough adds nothing."""
        if not self.borough or self.borough == self.zone:
            return self.zone or self.borough or str(self.location_id)
        return f"{self.borough} / {self.zone}"


class ZoneLookup(Mapping[int, Zone]):
    """Location id -> `Zone`, read-only; `source` tells where it came from."""

    def __init__(self, zones: Mapping[int, Zone], source: str) -> None:
        self._zones = dict(zones)
        self.source = source

    def __getitem__(self, location_id: int) -> Zone:
        return self._zones[location_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._zones)

    def __len__(self) -> int:
        return len(self._zones)

    def find(self, location_id: object) -> Zone | None:
        """The zone of a location id given as int, Decimal or text; None when unknown or not an id."""
        try:
            key = int(str(location_id))
        except (TypeError, ValueError):
            return None
        return self._zones.get(key)


def parse_zone_lookup(data: bytes | str, source: str = "taxi_zone_lookup.csv") -> ZoneLookup:
    """Parse the lookup CSV: CRLF or LF, quoted or not, BOM or not; columns matched by name, in any case."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ZonesError(f"{source}: the zone lookup is empty")
    columns = {name.strip().casefold(): index for index, name in enumerate(header)}
    missing = [name for name in ("locationid", "borough", "zone") if name not in columns]
    if missing:
        raise ZonesError(f"{source}: not a TLC zone lookup (no {', '.join(missing)} column in {header!r})")
    service_index = columns.get("service_zone")
    zones: dict[int, Zone] = {}
    for row in reader:
        if not row or not any(field.strip() for field in row):
            continue
        try:
            location_id = int(row[columns["locationid"]].strip())
        except (ValueError, IndexError):
            continue  # a malformed line says nothing about the other zones
        zones[location_id] = Zone(
            location_id=location_id,
            borough=_field(row, columns["borough"]),
            zone=_field(row, columns["zone"]),
            service_zone=_field(row, service_index) if service_index is not None else "",
        )
    if not zones:
        raise ZonesError(f"{source}: the zone lookup has no zones")
    return ZoneLookup(zones, source)


def _field(row: list[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def default_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "tripstream" / "taxi_zone_lookup.csv"


def _urllib_fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "tripstream"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: bytes = response.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise ZonesError(f"{url}: larger than {_MAX_BYTES} bytes, not a zone lookup")
    return data


@dataclass(frozen=True)
class ZonesResult:
    """The lookup (None when unavailable) and, when it is unavailable, why."""

    lookup: ZoneLookup | None
    note: str | None = None


def load_zones(
    source: str | Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    cache_path: Path | None = None,
    fetch: Fetch = _urllib_fetch,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    download: bool = True,
) -> ZonesResult:
    """The zone lookup from `source` (a path, an http(s) URL, or "none"), else `TRIPSTREAM_ZONES`, else the
    cached download, else the published file (cached for next time).

    An explicit source that cannot be read raises `ZonesError`; the implicit download failing (offline) only
    yields a result without lookup and a note saying why. `download=False` never downloads implicitly.
    """
    env = os.environ if environ is None else environ
    explicit = str(source) if source is not None else (env.get(ZONES_ENV) or None)
    if explicit is not None:
        if explicit.strip().casefold() in _OFF:
            return ZonesResult(None, "zone names off")
        if explicit.startswith(("http://", "https://")):
            try:
                return ZonesResult(parse_zone_lookup(fetch(explicit, timeout), explicit))
            except (OSError, urllib.error.URLError) as error:
                raise ZonesError(f"{explicit}: cannot download the zone lookup ({error})") from error
        path = Path(explicit).expanduser()
        try:
            return ZonesResult(parse_zone_lookup(path.read_bytes(), str(path)))
        except OSError as error:
            raise ZonesError(f"{path}: cannot read the zone lookup ({error.strerror or error})") from error
    cache = cache_path or default_cache_path(env)
    if cache.is_file():
        try:
            return ZonesResult(parse_zone_lookup(cache.read_bytes(), str(cache)))
        except (OSError, ZonesError):
            pass  # a damaged cache is downloaded again
    if not download:
        return ZonesResult(None, "zone names not loaded (use --zones PATH)")
    try:
        data = fetch(ZONES_URL, timeout)
        lookup = parse_zone_lookup(data, ZONES_URL)
    except (OSError, urllib.error.URLError, ZonesError) as error:
        return ZonesResult(None, f"zone names unavailable (could not download {ZONES_URL}: {error}); use --zones PATH")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + ".partial")
        partial.write_bytes(data)
        partial.replace(cache)
    except OSError:
        pass  # no cache, no harm
    return ZonesResult(lookup)
