"""A realistic generated trips file (the modern yellow schema), reproducible from a seed.

Distributions (documented in the README):
- pickup time: uniform over the days of the month, hour of day weighted like NYC demand (low at 4-5 am,
  peaks at 8-9 am and 6-7 pm);
- zones: the busy Manhattan zones weighted high, the airports (JFK 132, LaGuardia 138, Newark 1) present,
  every zone 1-263 possible;
- distance: log-normal, median 1.7 miles (long tail to 40+ miles), 1% recorded as 0;
- speed: normal around 11 mph (3-40), so duration = distance / speed + 1-4 minutes of stops;
  0.3% of trips have a dropoff before the pickup or over 24 hours, as real files do;
- fare: the 2023 meter: $3.00 + $3.50 a mile + $0.35 a minute; $70 flat between Manhattan and JFK;
- payment: 72% card (tip 10-30% of fare), 26% cash (no tip recorded), 2% no charge / dispute;
- surcharges: MTA $0.50, improvement $1.00, congestion $2.50 for Manhattan trips, airport fee $1.75.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

HEADER = [
    "VendorID",
    "tpep_pickup_datetime",
    "tpep_dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "RatecodeID",
    "store_and_fwd_flag",
    "PULocationID",
    "DOLocationID",
    "payment_type",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
    "Airport_fee",
]
_HOUR_WEIGHTS = [
    3,
    2,
    1.5,
    1,
    0.8,
    1,
    2.5,
    4.5,
    5.5,
    5,
    4.5,
    4.6,
    4.8,
    4.8,
    5,
    5.2,
    5.4,
    5.8,
    6.2,
    5.6,
    4.8,
    4.6,
    4.3,
    3.6,
]
_BUSY_ZONES = [
    161,
    237,
    236,
    162,
    230,
    170,
    48,
    234,
    142,
    186,
    163,
    68,
    239,
    141,
    79,
    107,
    140,
    238,
    249,
    100,
]
_AIRPORTS = {132: "JFK", 138: "LGA", 1: "EWR"}
_MANHATTAN = set(_BUSY_ZONES) | {
    4,
    12,
    13,
    24,
    41,
    42,
    43,
    45,
    50,
    74,
    75,
    87,
    88,
    90,
    113,
    114,
    125,
    137,
    143,
    144,
    148,
    151,
    152,
    158,
    164,
    166,
    209,
    211,
    224,
    229,
    231,
    232,
    233,
    246,
    261,
    262,
    263,
}


def _zone(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.70:
        return rng.choice(_BUSY_ZONES)
    if roll < 0.78:
        return rng.choice(list(_AIRPORTS))
    return rng.randint(1, 263)


def generate_rows(count: int, *, seed: int = 42, year: int = 2024, month: int = 1) -> list[list[str]]:
    return list(iter_rows(count, seed=seed, year=year, month=month))


def iter_rows(count: int, *, seed: int = 42, year: int = 2024, month: int = 1):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    start = datetime(year, month, 1)
    days = ((start.replace(day=28) + timedelta(days=4)).replace(day=1) - start).days
    hours = list(range(24))
    for _ in range(count):
        day = rng.randrange(days)
        hour = rng.choices(hours, weights=_HOUR_WEIGHTS)[0]
        pickup = start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
        pickup_zone, dropoff_zone = _zone(rng), _zone(rng)
        distance = 0.0 if rng.random() < 0.01 else min(rng.lognormvariate(0.53, 0.85), 60.0)
        speed = min(max(rng.gauss(11, 3), 3), 40)
        minutes = distance / speed * 60 + rng.uniform(1, 4)
        odd = rng.random()
        if odd < 0.002:
            dropoff = pickup - timedelta(minutes=rng.uniform(1, 30))
        elif odd < 0.003:
            dropoff = pickup + timedelta(hours=rng.uniform(24.5, 30))
        else:
            dropoff = pickup + timedelta(seconds=round(minutes * 60))
        jfk_flat = {pickup_zone, dropoff_zone} & {132} and ({pickup_zone, dropoff_zone} & _MANHATTAN)
        rate_code = 2 if jfk_flat else 1
        fare = 70.0 if jfk_flat else round(3.0 + 3.5 * distance + 0.35 * minutes, 2)
        payment_roll = rng.random()
        payment = 1 if payment_roll < 0.72 else 2 if payment_roll < 0.98 else rng.choice([3, 4])
        tip = round(fare * rng.uniform(0.10, 0.30), 2) if payment == 1 else 0.0
        extra = 2.5 if 16 <= hour < 20 else 1.0 if hour >= 20 or hour < 6 else 0.0
        tolls = 6.94 if (pickup_zone in _AIRPORTS or dropoff_zone in _AIRPORTS) and rng.random() < 0.4 else 0.0
        congestion = 2.5 if pickup_zone in _MANHATTAN or dropoff_zone in _MANHATTAN else 0.0
        airport_fee = 1.75 if pickup_zone in (132, 138) else 0.0
        total = round(fare + extra + 0.5 + tip + tolls + 1.0 + congestion + airport_fee, 2)
        passengers = "" if rng.random() < 0.01 else str(rng.choices([1, 2, 3, 4, 5, 6], [70, 15, 5, 3, 4, 3])[0])
        yield [
            str(rng.choice([1, 2])),
            pickup.strftime("%Y-%m-%d %H:%M:%S"),
            dropoff.strftime("%Y-%m-%d %H:%M:%S"),
            passengers,
            f"{distance:.2f}",
            str(rate_code),
            "Y" if rng.random() < 0.005 else "N",
            str(pickup_zone),
            str(dropoff_zone),
            str(payment),
            f"{fare:.2f}",
            f"{extra:.2f}",
            "0.50",
            f"{tip:.2f}",
            f"{tolls:.2f}",
            "1.00",
            f"{total:.2f}",
            f"{congestion:.2f}",
            f"{airport_fee:.2f}",
        ]


def write_sample(path: Path, count: int, *, seed: int = 42, year: int = 2024, month: int = 1) -> Path:
    """Write `count` generated trips as CSV (or Parquet when the name ends in .parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = iter_rows(count, seed=seed, year=year, month=month)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        temporary = path.with_suffix(".csv.tmp")
        _write_csv(temporary, rows)
        table = pacsv.read_csv(temporary)
        pq.write_table(table, path, row_group_size=100_000)
        temporary.unlink()
        _ = pa
        return path
    _write_csv(path, rows)
    return path


def _write_csv(path: Path, rows) -> None:  # type: ignore[no-untyped-def]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
