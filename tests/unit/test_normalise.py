"""Raw rows -> canonical trips: values, the alias table, every schema era, text codes, trip ids."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from tripstream.trips.normalise import (
    CanonicalTrip,
    FileRefused,
    RejectReason,
    RowError,
    TripNormaliser,
    derive_trip_id,
    parse_coordinate,
    parse_integer,
    parse_money,
    parse_timestamp,
    resolve_header,
    trip_as_row,
)
from tripstream.trips.schema import ALIASES, CANONICAL_FIELDS, FIELDS, PAYMENT_CODES, VENDOR_CODES, column_key


def normalise(header: str, row: str, *, name: str = "trips.csv") -> CanonicalTrip:
    columns = header.split(",")
    return TripNormaliser(resolve_header(columns, source_name=name)).normalise(row.split(","), 2)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-01-17 18:25:20", "2019-01-17T18:25:20"),
        ("2019-01-17T18:25:20", "2019-01-17T18:25:20"),
        (" 2019-01-17 18:25:20 ", "2019-01-17T18:25:20"),
        ("2019-01-17 18:25:20.999", "2019-01-17T18:25:20"),  # a meter counts whole seconds
        ("2019-01-17T18:25:20.123456789", "2019-01-17T18:25:20"),
        ("2019-01-17 18:25", "2019-01-17T18:25:00"),
        ("2019-1-7 8:05:09", "2019-01-07T08:05:09"),
        ("2018-03-27 12:47:16 UTC", "2018-03-27T12:47:16"),  # BigQuery TIMESTAMP export of a wall time
        ("2018-03-27T12:47:16Z", "2018-03-27T12:47:16"),
        ("2018-03-27T12:47:16+00:00", "2018-03-27T12:47:16"),
        ("2018-03-27T12:47:16-04:00", "2018-03-27T12:47:16"),  # EDT: already NYC wall time
        ("2018-03-27T18:47:16+02:00", "2018-03-27T12:47:16"),  # an instant elsewhere -> NYC wall time
        ("2018-01-27T12:47:16-0500", "2018-01-27T12:47:16"),
        ("01/31/2019 11:59:00 PM", "2019-01-31T23:59:00"),  # the TLC's open-data (Socrata) exports
        ("01/31/2019 12:05:07 AM", "2019-01-31T00:05:07"),
        ("1/31/2019 23:59", "2019-01-31T23:59:00"),
    ],
)
def test_timestamps(text: str, expected: str) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2019-02-29 10:00:00",
        "2019-01-01 24:00:00",
        "2019-01-01",
        "31/01/2019 10:00",
        "2019-01-01 10:00:00 EST",
    ],
)
def test_not_timestamps(text: str) -> None:
    with pytest.raises(RowError) as raised:
        parse_timestamp(text)
    assert raised.value.reason == RejectReason.INVALID_TIMESTAMP


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.56999999999999995", 0.57),  # ARCHITECTURE.md's example: long float text of the 2009-2015 files
        ("16.30", 16.3),
        (".76", 0.76),
        ("5.", 5.0),
        ("-0.00", 0.0),
        ("-3.5", -3.5),
        ("2.675", 2.68),  # half-even on the decimal, not on the binary double (2.67499999...)
        ("2.665", 2.66),
        ("0.125", 0.12),
        ("0.135", 0.14),
        ("0.005", 0.0),
        ("5e-3", 0.0),
        ("1.5e1", 15.0),
        ("2E2", 200.0),
        ("1.e5", 100000.0),
        (" 7.25 ", 7.25),
        ("+1.999", 2.0),
        # A long text is the double it denotes: its shortest form is what the TLC's software wrote.
        ("40.765000000000001", 40.76),
    ],
)
def test_money_is_rounded_half_even_to_cents(text: str, expected: float) -> None:
    value = parse_money(text)
    assert value == expected
    assert repr(value) == repr(expected)  # no -0.0, no binary noise


def test_money_rounding_is_the_decimal_rule_on_the_shortest_form_of_the_double() -> None:
    for whole in range(0, 300):
        for digits in ("005", "015", "125", "135", "995", "4999999999", "5000000001", "56999999999999995"):
            text = f"{whole}.{digits}"
            expected = Decimal(repr(float(text))).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
            assert Decimal(repr(parse_money(text))) == expected, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-73.950552999999999", -73.950553),
        ("40.782347999999999", 40.782348),
        ("-73.870964050292969", -73.870964),
        ("0", 0.0),
        ("-74.0000005", -74.0),  # a tie: half-even
        ("-74.0000015", -74.000002),
        ("1e-7", 0.0),
        ("1.5e-7", 0.0),
        ("2.5e-6", 0.000002),  # a tie: half-even
        ("3.5e-6", 0.000004),
        ("1.e-9", 0.0),
        ("-7.4e1", -74.0),
    ],
)
def test_coordinates_are_rounded_to_six_places(text: str, expected: float) -> None:
    assert parse_coordinate(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("1", 1), (" 6 ", 6), ("1.0", 1), ("2e1", 20), ("-1", -1), ("007", 7)])
def test_whole_numbers(text: str, expected: int) -> None:
    assert parse_integer(text) == expected


# ---------------------------------------------------------------- the alias table


def test_every_alias_is_in_one_table_and_means_one_field() -> None:
    seen: dict[str, str] = {}
    for canonical, (_, aliases) in FIELDS.items():
        for alias in (*aliases, canonical):
            assert seen.setdefault(column_key(alias), canonical) == canonical, alias
    assert seen == ALIASES


@pytest.mark.parametrize(
    ("column", "canonical"),
    [
        ("RatecodeID", "rate_code"),
        ("RateCodeID", "rate_code"),
        ("rate_code", "rate_code"),
        ("rate_code_id", "rate_code"),
        ("Rate_Code", "rate_code"),
        ("imp_surcharge", "improvement_surcharge"),
        ("improvement_surcharge", "improvement_surcharge"),
        ("Airport_fee", "airport_fee"),
        ("airport_fee", "airport_fee"),
        ("Fare_Amt", "fare_amount"),
        ("fare_amount", "fare_amount"),
        ("surcharge", "extra"),
        ("Trip_Pickup_DateTime", "pickup_datetime"),
        ("Lpep_dropoff_datetime", "dropoff_datetime"),
        ("Start_Lon", "pickup_longitude"),
        ("End_Lat", "dropoff_latitude"),
        ("vendor_name", "vendor_id"),
        ("store_and_forward", "store_and_fwd_flag"),
        ("PULocationID", "pickup_location_id"),
        ("pickup_location_id", "pickup_location_id"),
        ("  Trip_type ", "trip_type"),
        ("\ufeffVendorID", "vendor_id"),
        ('"VendorID"', "vendor_id"),
        ("cbd_congestion_fee", "cbd_congestion_fee"),
    ],
)
def test_column_names_are_matched_case_and_space_insensitively(column: str, canonical: str) -> None:
    assert ALIASES[column_key(column)] == canonical


# Real headers of every era (from the TLC's files and data dictionaries) -> the fields they must fill.
ERAS = {
    "yellow_2009": (
        "vendor_name,Trip_Pickup_DateTime,Trip_Dropoff_DateTime,Passenger_Count,Trip_Distance,Start_Lon,Start_Lat,"
        "Rate_Code,store_and_forward,End_Lon,End_Lat,Payment_Type,Fare_Amt,surcharge,mta_tax,Tip_Amt,Tolls_Amt,"
        "Total_Amt",
        "VTS,2009-01-04 02:52:00,2009-01-04 03:02:00,1,2.63,-73.991957,40.721567,,,-73.993803,40.695922,CASH,8.9,"
        "0.5,,0,0,9.4",
    ),
    "yellow_2010_2014": (
        "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,pickup_longitude,pickup_latitude,"
        "rate_code,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,surcharge,"
        "mta_tax,tip_amount,tolls_amount,total_amount",
        "CMT,2013-01-01 15:11:48,2013-01-01 15:18:10,4,1,-73.978165000000004,40.757976999999997,1,N,"
        "-73.989840000000001,40.751173000000001,CSH,6.5,0,0.5,0,0,7",
    ),
    "yellow_2015": (
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
        "pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type,fare_amount,"
        "extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount",
        "1,2015-01-22 08:22:49,2015-01-22 09:10:33,1,16.30,-73.870964050292969,40.773609161376953,1,N,"
        "-74.015357971191406,40.70989990234375,1,50.5,0,0.5,11.26,5.33,0.3,67.89",
    ),
    "yellow_2017": (
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
        "improvement_surcharge,total_amount",
        "1,2017-01-09 11:13:28,2017-01-09 11:25:45,1,3.30,1,N,263,161,1,12.5,0,0.5,2,0,0.3,15.3",
    ),
    "yellow_2022": (
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
        "improvement_surcharge,total_amount,congestion_surcharge,airport_fee",
        "1,2022-01-01 00:35:40,2022-01-01 00:53:29,2.0,3.8,1.0,N,142,236,1,14.5,3,0.5,3.65,0,0.3,21.95,2.5,0.0",
    ),
    "yellow_2025": (
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
        "improvement_surcharge,total_amount,congestion_surcharge,Airport_fee,cbd_congestion_fee",
        "1,2025-01-01 00:18:38,2025-01-01 00:26:59,1,1.6,1,N,229,237,1,10,3.5,0.5,3,0,1,18,2.5,0,0.75",
    ),
    "green_2014": (
        "VendorID,lpep_pickup_datetime,Lpep_dropoff_datetime,Store_and_fwd_flag,RateCodeID,Pickup_longitude,"
        "Pickup_latitude,Dropoff_longitude,Dropoff_latitude,Passenger_count,Trip_distance,Fare_amount,Extra,MTA_tax,"
        "Tip_amount,Tolls_amount,Ehail_fee,Total_amount,Payment_type,Trip_type ",
        "2,2014-01-22 18:21:04,2014-01-22 18:41:16,N,5,-73.891365051269531,40.823135375976562,-73.87213134765625,"
        "40.827720642089844,1,2.71,11.5,0,0.5,0,0,,12,2,1",
    ),
    "green_2019": (
        "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
        "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,"
        "improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge",
        "2,2019-01-28 13:41:45,2019-01-28 13:50:28,N,5,177,77,1,1.89,15,0,0.5,0,0,,0,15.5,1,2,0",
    ),
    "bigquery_yellow": (
        "vendor_id,pickup_datetime,dropoff_datetime,passenger_count,trip_distance,rate_code,store_and_fwd_flag,"
        "payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,imp_surcharge,total_amount,"
        "pickup_location_id,dropoff_location_id",
        "1,2018-03-27T12:47:16,2018-03-27T13:39:54,1,2.7,1,N,1,29,0,0.5,5.95,0,0.3,35.75,68,162",
    ),
    "bigquery_green": (
        "vendor_id,pickup_datetime,dropoff_datetime,store_and_fwd_flag,rate_code,passenger_count,trip_distance,"
        "fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,airport_fee,total_amount,payment_type,"
        "distance_between_service,time_between_service,trip_type,imp_surcharge,pickup_location_id,"
        "dropoff_location_id,data_file_year,data_file_month",
        "2,2020-01-01T00:10:00,2020-01-01T00:20:00,N,1,1,2.5,10,0.5,0.5,0,0,,,11.8,2,,,1,0.3,74,75,2020,1",
    ),
}


@pytest.mark.parametrize("era", list(ERAS))
def test_every_schema_era_gives_a_complete_canonical_trip(era: str) -> None:
    header, row = ERAS[era]
    trip = normalise(header, row)
    assert set(trip) == {*CANONICAL_FIELDS, "service", "trip_id", "schema_version", "source"}
    assert trip["pickup_datetime"][:4] == trip["dropoff_datetime"][:4] == row.split(",")[1][:4]
    assert isinstance(trip["total_amount"], float) and trip["total_amount"] > 0
    assert isinstance(trip["fare_amount"], float)
    assert isinstance(trip["vendor_id"], int)
    assert isinstance(trip["payment_type"], int)
    has_zones = "location" in header.lower()
    assert (trip["pickup_location_id"] is not None) == has_zones
    assert (trip["pickup_longitude"] is not None) == (not has_zones)
    assert trip["service"] == ("green" if era.startswith(("green", "bigquery_green")) else "yellow")


def test_the_2009_schema_in_full() -> None:
    header, row = ERAS["yellow_2009"]
    trip = normalise(header, row)
    assert {k: v for k, v in trip.items() if v is not None and k not in ("trip_id", "source")} == {
        "vendor_id": 2,
        "pickup_datetime": "2009-01-04T02:52:00",
        "dropoff_datetime": "2009-01-04T03:02:00",
        "passenger_count": 1,
        "trip_distance": 2.63,
        "payment_type": 2,
        "fare_amount": 8.9,
        "extra": 0.5,
        "tip_amount": 0.0,
        "tolls_amount": 0.0,
        "total_amount": 9.4,
        "pickup_longitude": -73.991957,
        "pickup_latitude": 40.721567,
        "dropoff_longitude": -73.993803,
        "dropoff_latitude": 40.695922,
        "service": "yellow",
        "schema_version": 1,
    }


def test_the_green_2014_extra_trailing_fields_and_the_modern_fees() -> None:
    header, row = ERAS["green_2014"]
    assert normalise(header, row + ",,")["trip_type"] == 1
    header, row = ERAS["yellow_2025"]
    trip = normalise(header, row)
    assert (trip["airport_fee"], trip["cbd_congestion_fee"], trip["congestion_surcharge"]) == (0.0, 0.75, 2.5)


# ---------------------------------------------------------------- text codes


@pytest.mark.parametrize(
    ("text", "code"),
    [("VTS", 2), ("CMT", 1), ("cmt", 1), ("Creative Mobile Technologies", 1), ("VeriFone Inc.", 2), ("1", 1), ("2", 2)],
)
def test_vendor_codes(text: str, code: int) -> None:
    assert (
        normalise("vendor_id,pickup_datetime,dropoff_datetime", f"{text},2010-01-01 00:00:00,2010-01-01 00:10:00")[
            "vendor_id"
        ]
        == code
    )


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("CRD", 1),
        ("Credit", 1),
        ("CREDIT", 1),
        ("Cre", 1),
        ("CSH", 2),
        ("Cash", 2),
        ("CAS", 2),
        ("NOC", 3),
        ("No Charge", 3),
        ("DIS", 4),
        ("Dispute", 4),
        ("UNK", 5),
        ("Unknown", 5),
        ("NA ", 5),
        ("Voided trip", 6),
        ("4", 4),
    ],
)
def test_payment_codes(text: str, code: int) -> None:
    assert (
        normalise("payment_type,pickup_datetime,dropoff_datetime", f"{text},2010-01-01 00:00:00,2010-01-01 00:10:00")[
            "payment_type"
        ]
        == code
    )


@pytest.mark.parametrize(("column", "text"), [("vendor_id", "DDS"), ("payment_type", "XYZ"), ("vendor_id", "Helix 2")])
def test_a_text_code_without_a_number_keeps_the_original(column: str, text: str) -> None:
    trip = normalise(f"{column},pickup_datetime,dropoff_datetime", f" {text} ,2010-01-01 00:00:00,2010-01-01 00:10:00")
    assert trip[column] == text


def test_the_code_tables_map_to_the_data_dictionary() -> None:
    assert set(VENDOR_CODES.values()) <= {1, 2}
    assert set(PAYMENT_CODES.values()) <= {1, 2, 3, 4, 5, 6}


@pytest.mark.parametrize(("text", "flag"), [("N", "N"), ("Y", "Y"), ("0", "N"), ("1", "Y"), ("true", "Y"), ("?", "?")])
def test_store_and_forward_flags(text: str, flag: str) -> None:
    header = "store_and_fwd_flag,pickup_datetime,dropoff_datetime"
    assert normalise(header, f"{text},2010-01-01 00:00:00,2010-01-01 00:10:00")["store_and_fwd_flag"] == flag


# ---------------------------------------------------------------- header


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("VendorID,tpep_dropoff_datetime", ["pickup"]),
        ("VendorID,tpep_pickup_datetime", ["dropoff"]),
        ("VendorID,fare_amount", ["pickup", "dropoff"]),
    ],
)
def test_a_header_without_time_columns_is_refused_naming_what_is_missing(header: str, missing: list[str]) -> None:
    with pytest.raises(FileRefused) as raised:
        resolve_header(header.split(","), source_name="s3://bucket/taxi_trips.csv")
    message = str(raised.value)
    assert raised.value.problem == "missing_columns"
    assert message.startswith("s3://bucket/taxi_trips.csv: ")
    for word in missing:
        assert f"no {word} time" in message
    assert "tpep_pickup_datetime" in message or "pickup" not in missing  # it lists the names it looks for


def test_unknown_columns_are_ignored_and_listed_and_a_duplicate_name_keeps_the_first() -> None:
    header = resolve_header(
        ["tpep_pickup_datetime", "tpep_dropoff_datetime", "fare_amount", "Fare_Amt", "weather"], source_name="x"
    )
    assert header.ignored == ("Fare_Amt", "weather")
    assert [name for name, _, _ in header.plan] == ["pickup_datetime", "dropoff_datetime", "fare_amount"]


# ---------------------------------------------------------------- the record and its trip id


def test_the_canonical_record() -> None:
    header, row = ERAS["yellow_2017"]
    normaliser = TripNormaliser(
        resolve_header(header.split(","), source_name="x"), source_bucket="b", source_key="k.csv"
    )
    trip = normaliser.normalise(row.split(","), 7)
    assert list(trip)[: len(CANONICAL_FIELDS)] == list(CANONICAL_FIELDS)
    assert trip["schema_version"] == 1
    assert trip["source"] == {"bucket": "b", "key": "k.csv", "row": 7}
    assert trip["airport_fee"] is None and trip["pickup_longitude"] is None
    assert trip["trip_id"] == derive_trip_id(trip)
    assert len(trip["trip_id"]) == 32


def test_the_same_trip_gets_the_same_id_whatever_its_file_era_or_column_order() -> None:
    modern = normalise(*ERAS["yellow_2017"])
    header, row = ERAS["yellow_2017"]
    names, values = header.split(","), row.split(",")
    renamed = {"RatecodeID": "rate_code", "PULocationID": "pickup_location_id", "DOLocationID": "dropoff_location_id"}
    names = [renamed.get(n, n).upper() for n in names]
    order = list(reversed(range(len(names))))
    shuffled = normalise(",".join(names[i] for i in order), ",".join(values[i] for i in order), name="other.csv")
    assert shuffled["trip_id"] == modern["trip_id"]
    again = normalise(*ERAS["yellow_2017"])
    assert again["trip_id"] == modern["trip_id"]  # two identical rows are one trip


def test_any_difference_makes_another_trip() -> None:
    header, row = ERAS["yellow_2017"]
    ids = {normalise(header, row)["trip_id"], normalise(header, row.replace(",15.3", ",15.31"))["trip_id"]}
    ids.add(normalise(header.replace("tpep", "lpep"), row)["trip_id"])  # green: another service
    assert len(ids) == 3


def test_a_trip_id_column_is_taken_as_it_is() -> None:
    header, row = ERAS["yellow_2017"]
    assert normalise(header + ",trip_id", row + ", abc-123 ")["trip_id"] == "abc-123"


def test_normalisation_is_idempotent_on_every_era() -> None:
    for header, row in ERAS.values():
        trip = normalise(header, row)
        again = TripNormaliser(
            resolve_header(list(CANONICAL_FIELDS), source_name="x", service_hint=trip["service"])
        ).normalise(trip_as_row(trip), 2)
        assert again == trip


def test_remembered_values_never_change_an_outcome() -> None:
    header, row = ERAS["yellow_2017"]
    normaliser = TripNormaliser(resolve_header(header.split(","), source_name="x"))
    first = normaliser.normalise(row.split(","), 2)
    assert normaliser.normalise(row.split(","), 2) == first
    bad = row.replace(",12.5,", ",twelve,").split(",")
    for _ in range(2):
        with pytest.raises(RowError) as raised:
            normaliser.normalise(bad, 3)
        assert (raised.value.reason, raised.value.column) == (RejectReason.INVALID_NUMBER, "fare_amount")
