"""Benchmark 11: a whole month on one laptop (issue 21): `tripstream run` on N generated trips, as a user runs it.

Generates a month of N trips as TLC-style Parquet (cached), runs `tripstream run FILE --json` in a child process
(the embedded default: moto emulator in its own process), samples the CLI and every descendant process from /proc
every 0.5 s (tripstream.local.commands.resources), and reads the CLI's plain progress lines for the consumed count
over time. Prints wall time, trips/s, the consumed rate of the first and the last tenth, peak RSS per process and of
all together, and CPU per trip by process. `--newcomer` times `tripstream run` on its own 20,000 generated trips.

Targets: 3M trips <= 25 min and >= 2,000 trips/s on 2 cores; <= 4 GiB all processes together, the same at 1M and
3M; newcomer <= 15 s. On a shared machine wall time is noisy: prefer CPU per trip.

Usage: .venv/bin/python bench/month.py [--trips 3000000] [--newcomer] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE, report, verdict

from tripstream.local.commands.resources import ProcessTreeSampler
from tripstream.trips.generate import write_sample

_LINE = re.compile(r"^\[\s*([\d.]+)s\].*records consumed ([\d,]+)")
_NEWCOMER_TRIPS = 20_000


def month_file(trips: int) -> Path:
    path = CACHE / f"month-{trips}.parquet"
    if not path.exists():
        started = time.perf_counter()
        write_sample(path, trips, seed=21)
        print(f"generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def _tenth_rates(marks: list[tuple[float, int]], total: int) -> tuple[float | None, float | None]:
    """Trips/s over the first and the last tenth of the consumed trips (from the progress lines)."""
    if not marks or total <= 0:
        return None, None

    def time_at(count: float) -> float | None:
        previous = (0.0, 0)
        for elapsed, done in marks:
            if done >= count:
                if done == previous[1]:
                    return elapsed
                return previous[0] + (elapsed - previous[0]) * (count - previous[1]) / (done - previous[1])
            if done > previous[1]:
                previous = (elapsed, done)
        return None

    # The first tenth from 1 % on: the lines come every 5 s, so when the first trip was consumed is not known.
    one, first, nine, last = (time_at(total * share) for share in (0.01, 0.1, 0.9, 1.0))
    first_rate = None if one is None or first is None else (total * 0.09) / max(first - one, 1e-9)
    last_rate = None if nine is None or last is None else (total / 10) / max(last - nine, 1e-9)
    return first_rate, last_rate


def run(arguments: list[str], trips: int, *, output: Path | None = None) -> dict[str, Any]:
    """`tripstream run` under the sampler; with `output`, its human summary is kept there (no `--json`)."""
    form = ["--json"] if output is None else []
    command = [str(Path(sys.executable).parent / "tripstream"), "run", *arguments, *form, "--progress"]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marks: list[tuple[float, int]] = []
    with ProcessTreeSampler(process.pid) as sampler:
        assert process.stderr is not None
        for line in process.stderr:
            if match := _LINE.match(line):
                marks.append((float(match.group(1)), int(match.group(2).replace(",", ""))))
        out = process.stdout.read() if process.stdout else ""
        process.wait()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"tripstream run failed ({process.returncode}): {out[-2000:]}")
    if output is not None:
        output.write_text(f"$ tripstream run {' '.join(arguments)}\n{out}")
        print(out, flush=True)
        summary: dict[str, Any] = {"records_consumed": marks[-1][1] if marks else 0}
    else:
        summary = json.loads(out[out.index("{") :])
    consumed = summary["records_consumed"]
    first_rate, last_rate = _tenth_rates(marks, consumed)
    by_name: dict[str, dict[str, float]] = {}
    for usage in sampler.usage():
        entry = by_name.setdefault(usage.name, {"processes": 0, "peak_rss_mib": 0.0, "cpu_s": 0.0})
        entry["processes"] += 1
        entry["peak_rss_mib"] = round(max(entry["peak_rss_mib"], usage.peak_rss_bytes / 2**20), 1)
        entry["cpu_s"] = round(entry["cpu_s"] + usage.cpu_seconds, 1)
    for entry in by_name.values():
        entry["cpu_ms_per_trip"] = round(entry["cpu_s"] * 1000 / max(trips, 1), 3)
    return {
        "trips": trips,
        "records_consumed": consumed,
        "wall_s": round(seconds, 1),
        "trips_per_s": round(consumed / seconds, 1),
        "first_tenth_trips_per_s": None if first_rate is None else round(first_rate, 1),
        "last_tenth_trips_per_s": None if last_rate is None else round(last_rate, 1),
        "peak_rss_all_mib": round(sampler.peak_total_bytes / 2**20, 1),
        "processes": by_name,
        "cpu_ms_per_trip_all": round(sum(e["cpu_s"] for e in by_name.values()) * 1000 / max(trips, 1), 3),
        "table_items": summary.get("table_items"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=3_000_000)
    parser.add_argument("--newcomer", action="store_true", help="time `tripstream run` on 20,000 generated trips")
    parser.add_argument(
        "--output", type=Path, help="keep the run's human output (its summary, as a user sees it) in this file"
    )
    args = parser.parse_args()
    if args.newcomer:
        figures = run(["--rows", str(_NEWCOMER_TRIPS)], _NEWCOMER_TRIPS)
        figures["target newcomer <= 15 s"] = verdict(figures["wall_s"], 15, at_most=True)
        report("month (newcomer)", figures)
        return
    figures = run([str(month_file(args.trips))], args.trips, output=args.output)
    minutes_for_3m = 3_000_000 / max(figures["trips_per_s"], 1e-9) / 60
    figures["target >= 2,000 trips/s"] = verdict(figures["trips_per_s"], 2000)
    figures["projected minutes for 3M at this rate (target <= 25)"] = round(minutes_for_3m, 1)
    figures["target <= 4 GiB all processes"] = verdict(figures["peak_rss_all_mib"], 4096, at_most=True)
    report(f"month ({args.trips:,} trips)", figures)


if __name__ == "__main__":
    main()
