"""A trips file replayed as a live feed: records sent to the stream paced by their pickup times.

At `--speed 60` an hour of pickups is sent in a minute: trips are read and normalised up front (rows that cannot
be are counted and written to the rejects prefix, as the producer does), sorted by pickup time, and each is sent
when the replay clock reaches its pickup time. Quiet stretches of the data are shortened to at most `max_wait`
seconds of real time, so a stray pickup years away from the others cannot stall the feed. The consumer runs
alongside, on the local runtime's event source mapping, exactly as in `tripstream run`.

Stopping (`stop` set, e.g. by Ctrl-C) is clean: no record is half sent, the consumer gets a moment to finish
what was sent (what it did not stays in the stream, after the checkpoints), and the summary says how far the feed
and the consumer got.

The trips to send are kept in memory (their encoded records, about half a kilobyte each): for a whole month of
TLC data, pick a window with `start`/`end` or a `limit`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tripstream.aws.clients import AwsClients, Credentials
from tripstream.aws.kinesis import KinesisSender, RecordsNotSent
from tripstream.aws.s3 import put_json_lines
from tripstream.infra.stack import DeployedStack
from tripstream.local.commands.options import StackOptions
from tripstream.local.commands.progress import Progress, ProgressDisplay
from tripstream.local.commands.run_summary import ConsumedFigures
from tripstream.local.commands.stack import open_stack
from tripstream.local.lambda_service.functions import ConsumerTotals, LocalFunctions, handler_settings
from tripstream.pipeline.consumer import ConsumerResult
from tripstream.pipeline.producer import SentFigures, new_backoff
from tripstream.trips.normalise import TripNormaliser
from tripstream.trips.readers import LocalFileSource, open_trip_file
from tripstream.trips.records import encode_trip
from tripstream.trips.rows import trip_rows

DEFAULT_SPEED = 60.0
DEFAULT_MAX_WAIT_SECONDS = 5.0
_TICK_SECONDS = 0.5  # the longest the sender sleeps before looking at `stop` again
DRAIN_AFTER_STOP_SECONDS = 1.5  # how long a stopped replay lets the consumer catch up before it stops too


@dataclass(frozen=True)
class FeedTrip:
    pickup: datetime  # NYC wall time, as in the source
    trip_id: str
    data: bytes  # the encoded Kinesis record


@dataclass
class Feed:
    """A file read for replay: its trips in pickup order, and what was not sendable."""

    trips: list[FeedTrip]
    format: str
    service: str
    rows_read: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    outside_window: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)


def load_feed(
    path: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> Feed:
    """Read and normalise `path`, keep the trips with start <= pickup < end, sorted by pickup (then trip id),
    the first `limit` of them. Raises `FileRefused` for a file the producer would refuse."""
    trip_file = open_trip_file(LocalFileSource(path))
    normaliser = TripNormaliser(trip_file.header, source_bucket=None, source_key=path.name)
    feed = Feed(trips=[], format=trip_file.format, service=trip_file.header.service)
    rejected: Counter[str] = Counter()
    for outcome in trip_rows(trip_file, normaliser, {"file": str(path)}):
        feed.rows_read += 1
        if outcome.trip is not None:
            pickup = datetime.fromisoformat(outcome.trip["pickup_datetime"])
            if (start is not None and pickup < start) or (end is not None and pickup >= end):
                feed.outside_window += 1
            else:
                feed.trips.append(FeedTrip(pickup, outcome.trip["trip_id"], encode_trip(outcome.trip)))
        elif outcome.reject is not None:
            rejected[outcome.reject.reason] += 1
            feed.rejects.append(outcome.reject.to_dict())
    feed.trips.sort(key=lambda trip: (trip.pickup, trip.trip_id))
    if limit is not None:
        feed.trips = feed.trips[:limit]
    feed.rows_rejected = dict(sorted(rejected.items()))
    return feed


def schedule(pickups: Sequence[datetime], speed: float, max_wait: float) -> list[float]:
    """When (seconds after the start, real time) each pickup is sent: gaps divided by `speed`, each gap at most
    `max_wait` seconds. `pickups` must be sorted."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, not {speed}")
    offsets: list[float] = []
    elapsed = 0.0
    for i, pickup in enumerate(pickups):
        if i:
            gap = (pickup - pickups[i - 1]).total_seconds() / speed
            elapsed += min(max(0.0, gap), max_wait)
        offsets.append(elapsed)
    return offsets


@dataclass
class ReplaySummary(SentFigures, ConsumedFigures):
    file: str
    stream: str
    speed: float
    outside_window: int = 0
    trips_to_send: int = 0
    first_pickup: str | None = None
    last_pickup: str | None = None
    sent_through: str | None = None  # the pickup time of the last trip sent
    interrupted: bool = False
    send_error: str | None = None
    rejects_key: str | None = None
    # A live `up` consumed the stream (its output shows the counts): nothing was consumed by this replay.
    consumed_by_live_up: bool = False

    @property
    def ok(self) -> bool:
        return self.send_error is None and self.records_to_on_failure == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeedOptions:
    """Which trips of the file are sent (start <= pickup < end, the first `limit` of them) and how fast: `speed`
    times their pickup times, quiet stretches cut to `max_wait` seconds."""

    speed: float = DEFAULT_SPEED
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ReplayOptions:
    stack: StackOptions
    file: Path
    feed: FeedOptions = field(default_factory=FeedOptions)


def replay_command(
    options: ReplayOptions,
    stop: threading.Event,
    *,
    scratch: Path,
    note: Callable[[str], None],
    on_endpoint: Callable[[str], None],
    progress: Callable[[], AbstractContextManager[ProgressDisplay]],
) -> ReplaySummary:
    """`tripstream replay`: the endpoint, the stack deployed there, then `replay_file` (the consumer alongside,
    unless a live `up` consumes the stream) until every trip was sent or `stop` is set."""
    with open_stack(options.stack, scratch=scratch, note=note, on_endpoint=on_endpoint) as local:
        endpoint, stack, state_dir = local.endpoint, local.stack, local.state_dir
        # A live `up` serving this endpoint consumes what is sent; otherwise this replay runs the consumer.
        consume = not local.served_by_live_up
        if not consume:
            note("a live `tripstream up` serves this endpoint: its runtime consumes what is sent")
        speed = options.feed.speed
        with progress() as display:

            def loaded(feed: Feed) -> None:
                display.set_total(len(feed.trips))
                first, last = (feed.trips[0].pickup, feed.trips[-1].pickup) if feed.trips else ("-", "-")
                note(f"{len(feed.trips):,} trips to send, picked up {first} to {last}, at {speed:g}x")

            return replay_file(
                endpoint.clients,
                endpoint.handler_clients,
                stack,
                options.file,
                options.feed,
                stop=stop,
                progress=display.callbacks(),
                on_clock=lambda clock: display.set_status(f"feed clock {clock:%Y-%m-%d %H:%M:%S} ({speed:g}x)"),
                on_loaded=loaded,
                state_dir=state_dir,
                consume=consume,
                in_process=options.stack.in_process,
                credentials=endpoint.credentials,
            )


def replay_file(
    clients: AwsClients,
    handler_clients: AwsClients,
    stack: DeployedStack,
    path: Path,
    options: FeedOptions,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_clock: Callable[[datetime], None] | None = None,
    on_loaded: Callable[[Feed], None] | None = None,
    state_dir: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    consume: bool = True,
    in_process: bool = True,
    credentials: Credentials | None = None,
) -> ReplaySummary:
    """Replay `path` into the stack's stream as `options` say, with the consumer running alongside; returns when every
    trip was sent (or `stop` was set) and the consumer has processed everything that was sent.

    `consume=False` (a live `up` consumes the stream): only send; the summary then counts nothing consumed."""
    started = clock()
    stop = stop or threading.Event()
    progress = progress or Progress()
    summary = ReplaySummary(file=str(path), stream=stack.stream_name, speed=options.speed)
    feed = load_feed(path, start=options.start, end=options.end, limit=options.limit)
    summary.format, summary.service = feed.format, feed.service
    summary.rows_read, summary.rows_rejected, summary.outside_window = (
        feed.rows_read,
        feed.rows_rejected,
        feed.outside_window,
    )
    summary.trips_to_send = len(feed.trips)
    if feed.trips:
        summary.first_pickup = feed.trips[0].pickup.isoformat()
        summary.last_pickup = feed.trips[-1].pickup.isoformat()
    if progress.rows_read is not None:
        progress.rows_read(feed.rows_read)
    if on_loaded is not None:
        on_loaded(feed)
    producer_settings = handler_settings(stack.producer)
    if feed.rejects:
        key = f"{producer_settings.rejects_prefix}replay/{path.name}/{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
        put_json_lines(clients.s3, producer_settings.rejects_bucket or stack.bucket, key, feed.rejects)
        summary.rejects_key = key

    totals = ConsumerTotals()
    on_items = progress.items_written

    def on_result(result: ConsumerResult) -> None:
        if on_items is not None:
            on_items(sum(result.items_written.values()))

    mapping = None
    functions = LocalFunctions(clients, handler_clients, stack, in_process=in_process, credentials=credentials)
    if consume:
        mapping = functions.event_source_mapping(
            state_dir=state_dir, totals=totals, on_result=on_result, on_records_done=progress.records_consumed
        )
        mapping.start()
    sender = KinesisSender(
        clients.kinesis, stack.stream_name, new_backoff(producer_settings), producer_settings.max_in_flight
    )
    try:
        offsets = schedule([trip.pickup for trip in feed.trips], options.speed, options.max_wait)
        send_started = clock()
        sent = 0
        while sent < len(feed.trips):
            if stop.is_set():
                summary.interrupted = True
                break
            now = clock() - send_started
            due = sent
            while due < len(feed.trips) and offsets[due] <= now:
                sender.add(feed.trips[due].data, feed.trips[due].trip_id)
                due += 1
            if due == sent:
                stop.wait(min(offsets[sent] - now, _TICK_SECONDS))
                continue
            sender.flush()  # what is due is in the stream before the clock moves on
            if progress.records_sent is not None:
                progress.records_sent(due - sent)
            sent = due
            summary.records_sent = sent
            summary.sent_through = feed.trips[sent - 1].pickup.isoformat()
            if on_clock is not None:
                on_clock(feed.trips[sent - 1].pickup)
    except RecordsNotSent as error:
        summary.send_error = str(error)
    finally:
        sender.close()
        if mapping is not None:
            mapping.producer_finished()
            try:
                # Stopped: the consumer gets a moment for what was sent; the rest stays in the stream, after the
                # checkpoints, for the next replay or run with the same --state-dir.
                mapping.wait_drained(DRAIN_AFTER_STOP_SECONDS if stop.is_set() else None)
            finally:
                mapping.stop()
                functions.close()
    if mapping is None:
        summary.consumed_by_live_up = True
        summary.seconds = clock() - started
        return summary
    summary.records_consumed = mapping.stats.records_done
    summary.records_rejected = totals.rejected()
    summary.items_written = totals.written()
    summary.records_to_on_failure = mapping.stats.records_to_on_failure
    summary.seconds = clock() - started
    return summary
