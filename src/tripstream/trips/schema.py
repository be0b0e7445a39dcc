"""The canonical trip and every column name the TLC (and its public copies) ever used for it.

One table of aliases, so that a new era or export is one line here, not a code change elsewhere.
Names are matched after `column_key()`: case-folded, surrounding spaces removed.
"""

from __future__ import annotations

from enum import Enum

SCHEMA_VERSION = 1


class Kind(Enum):
    """How a canonical field is parsed."""

    TIMESTAMP = "timestamp"
    MONEY = "money"  # decimal, rounded half-even to 2 places (money and distance)
    COORDINATE = "coordinate"  # decimal, rounded half-even to 6 places
    INTEGER = "integer"
    VENDOR = "vendor"  # integer code, or a 2009-2014 text code mapped to it
    PAYMENT = "payment"  # integer code, or a 2009-2014 text code mapped to it
    FLAG = "flag"  # store_and_fwd_flag: Y / N
    TEXT = "text"


# Canonical field -> (kind, aliases): THE alias table. Every name any TLC era or public copy used for a field
# is listed here and nowhere else (compared after `column_key()`, so `RatecodeID`, `RateCodeID` and
# ` ratecodeid ` are one alias). The canonical name is always an alias of itself.
#   yellow 2009          vendor_name, Trip_Pickup_DateTime, Start_Lon, Rate_Code, store_and_forward, Fare_Amt, ...
#   yellow 2010-2014     vendor_id (VTS/CMT/DDS), pickup_datetime, rate_code, surcharge, payment_type (CSH/CRD)
#   yellow 2015-         VendorID, tpep_*, RateCodeID/RatecodeID, PULocationID, Airport_fee, cbd_congestion_fee
#   green                lpep_*, Lpep_dropoff_datetime, Ehail_fee, Trip_type (with a trailing space in 2014)
#   BigQuery copies      vendor_id, rate_code, imp_surcharge, pickup_location_id, ...
#   snake_case exports   rate_code_id, pu_location_id, do_location_id, ...
#   fhvhv                trip_miles, base_passenger_fare, tips, tolls
FIELDS: dict[str, tuple[Kind, tuple[str, ...]]] = {
    "vendor_id": (Kind.VENDOR, ("vendorid", "vendor_name", "vendor")),
    "pickup_datetime": (
        Kind.TIMESTAMP,
        ("tpep_pickup_datetime", "lpep_pickup_datetime", "trip_pickup_datetime", "pickup_datetime"),
    ),
    "dropoff_datetime": (
        Kind.TIMESTAMP,
        ("tpep_dropoff_datetime", "lpep_dropoff_datetime", "trip_dropoff_datetime", "dropoff_datetime"),
    ),
    "passenger_count": (Kind.INTEGER, ("passenger_count",)),
    "trip_distance": (Kind.MONEY, ("trip_distance", "trip_miles")),
    "rate_code": (Kind.INTEGER, ("ratecodeid", "rate_code_id", "rate_code", "ratecode")),
    "store_and_fwd_flag": (Kind.FLAG, ("store_and_forward", "store_and_fwd_flag")),
    "payment_type": (Kind.PAYMENT, ("payment_type",)),
    "fare_amount": (Kind.MONEY, ("fare_amt", "fare_amount", "base_passenger_fare")),
    # 2009-2014 files call the extra charges "surcharge"; the TLC data dictionary maps it to extra.
    "extra": (Kind.MONEY, ("surcharge", "extra")),
    "mta_tax": (Kind.MONEY, ("mta_tax",)),
    "tip_amount": (Kind.MONEY, ("tip_amt", "tip_amount", "tips")),
    "tolls_amount": (Kind.MONEY, ("tolls_amt", "tolls_amount", "tolls")),
    "improvement_surcharge": (Kind.MONEY, ("imp_surcharge", "improvement_surcharge")),
    "congestion_surcharge": (Kind.MONEY, ("congestion_surcharge",)),
    "airport_fee": (Kind.MONEY, ("airport_fee",)),
    "cbd_congestion_fee": (Kind.MONEY, ("cbd_congestion_fee",)),
    "ehail_fee": (Kind.MONEY, ("ehail_fee",)),
    "total_amount": (Kind.MONEY, ("total_amt", "total_amount")),
    "pickup_location_id": (Kind.INTEGER, ("pulocationid", "pickup_location_id", "pu_location_id")),
    "dropoff_location_id": (Kind.INTEGER, ("dolocationid", "dropoff_location_id", "do_location_id")),
    "pickup_longitude": (Kind.COORDINATE, ("start_lon", "pickup_longitude")),
    "pickup_latitude": (Kind.COORDINATE, ("start_lat", "pickup_latitude")),
    "dropoff_longitude": (Kind.COORDINATE, ("end_lon", "dropoff_longitude")),
    "dropoff_latitude": (Kind.COORDINATE, ("end_lat", "dropoff_latitude")),
    "trip_type": (Kind.INTEGER, ("trip_type",)),
    "trip_id": (Kind.TEXT, ("trip_id",)),
}

CANONICAL_FIELDS: tuple[str, ...] = tuple(name for name in FIELDS if name != "trip_id")
REQUIRED_FIELDS: tuple[str, ...] = ("pickup_datetime", "dropoff_datetime")


def column_key(name: str) -> str:
    """The form in which column names are compared: no BOM, no surrounding spaces or quotes, case-folded."""
    return name.replace("\ufeff", "").strip().strip('"').strip().casefold()


ALIASES: dict[str, str] = {
    column_key(alias): canonical for canonical, (_, aliases) in FIELDS.items() for alias in (*aliases, canonical)
}

# Text codes of 2009-2014 files -> numeric codes of the TLC data dictionary (keys are column_key()'d).
VENDOR_CODES: dict[str, int] = {
    "cmt": 1,
    "creative mobile technologies": 1,
    "creative mobile technologies, llc": 1,
    "vts": 2,
    "verifone": 2,
    "verifone inc.": 2,
    "curb mobility": 2,
}
# DDS (Digital Dispatch Systems) has no code in the data dictionary: it is kept as text.

PAYMENT_CODES: dict[str, int] = {
    "crd": 1,
    "cre": 1,
    "credit": 1,
    "credit card": 1,
    "csh": 2,
    "cas": 2,
    "cash": 2,
    "noc": 3,
    "no charge": 3,
    "no": 3,
    "dis": 4,
    "dispute": 4,
    "unk": 5,
    "unknown": 5,
    "na": 5,
    "voi": 6,
    "voided": 6,
    "voided trip": 6,
}

# Parquet writers that infer a boolean column write the flag as true/false.
FLAG_CODES: dict[str, str] = {
    "y": "Y",
    "n": "N",
    "1": "Y",
    "0": "N",
    "yes": "Y",
    "no": "N",
    "true": "Y",
    "false": "N",
}

# Header words that tell the service when the file does not have a trip_type / lpep_ / tpep_ column.
GREEN_MARKERS = frozenset({"lpep_pickup_datetime", "lpep_dropoff_datetime", "ehail_fee", "trip_type"})
YELLOW_MARKERS = frozenset({"tpep_pickup_datetime", "tpep_dropoff_datetime", "airport_fee"})
