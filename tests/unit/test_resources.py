"""The run's process tree sampled from /proc: the CLI and its descendants, their peak memory and CPU (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tripstream.cli.summaries import render_run_summary
from tripstream.local.commands.resources import ProcessTreeSampler, command_name
from tripstream.local.commands.run_summary import RunSummary, record_resources

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def test_children_and_grandchildren_are_counted() -> None:
    code = (
        "import subprocess, sys, time; b = bytearray(64 << 20); "
        "subprocess.run([sys.executable, '-c', 'import time; time.sleep(1.5)']); time.sleep(0.2)"
    )
    with ProcessTreeSampler(interval=0.1) as sampler:
        child = subprocess.Popen([sys.executable, "-c", code])
        child.wait()
    pids = {usage.pid for usage in sampler.usage()}
    assert child.pid in pids and len(pids) >= 3  # this process, the child, the grandchild
    biggest = max(sampler.usage(), key=lambda usage: usage.peak_rss_bytes if usage.pid == child.pid else 0)
    assert biggest.peak_rss_bytes >= 64 << 20
    assert sampler.peak_total_bytes >= biggest.peak_rss_bytes


def test_a_process_seen_before_its_exec_is_named_by_what_it_runs_after() -> None:
    """Fork then exec: sampled in between, a process carries its parent's command line (the 3M run's producer was
    counted as a `tripstream` process)."""
    code = (
        "import os, sys, time; time.sleep(0.6); "
        "os.execv(sys.executable, [sys.executable, '-m', 'timeit', '-n', '1', 'import time; time.sleep(0.6)'])"
    )
    with ProcessTreeSampler(interval=0.1) as sampler:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
        child.wait()
    (usage,) = [usage for usage in sampler.usage() if usage.pid == child.pid]
    assert usage.name == "timeit"


def test_the_summary_shows_trips_per_second_and_peak_memory() -> None:
    summary = RunSummary(file="f.csv", bucket="b", key="f.csv", records_sent=1000, records_consumed=1000, seconds=2.0)
    with ProcessTreeSampler() as sampler:
        pass
    record_resources(summary, sampler)
    text = render_run_summary(summary)
    assert "(500 trips/s)" in text and "peak memory" in text and "MiB all processes" in text
    assert summary.to_dict()["trips_per_second"] == 500.0
    assert summary.peak_memory_bytes and summary.peak_memory_bytes > 0


@pytest.mark.parametrize(
    ("words", "name"),
    [
        (
            ["/v/bin/python3", "-m", "tripstream.local.emulator.server", "--port", "0"],
            "tripstream.local.emulator.server",
        ),
        (["/v/bin/python3", "-W", "ignore::DeprecationWarning", "-m", "awslambdaric", "h.handle"], "awslambdaric"),
        (["/usr/bin/python3.12", "-X", "utf8", "/v/bin/pip", "install", "x"], "pip"),
        (["/v/bin/python3", "-u", "-c", "import sys"], "python3 -c"),
        (["/usr/bin/java", "-jar", "DynamoDBLocal.jar"], "java"),
        (["/v/bin/python3"], "python3"),
    ],
)
def test_a_process_is_named_by_what_it_runs(words: list[str], name: str) -> None:
    assert command_name(words) == name
