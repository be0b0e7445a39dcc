"""The Lambda code package the template's functions point at (``ArtifactBucket``/``ArtifactKey``).

:func:`build_source_zip` packages the ``tripstream`` package's own source, with no dependencies.
That is what a deploy into the emulator needs: moto's Lambda only accepts a function whose code
object exists in (moto's) S3, and nothing ever runs that code there, because the local runtime
imports the handlers in-process. The zip is byte-for-byte reproducible (fixed timestamps and
order), so :func:`artifact_key` is stable and deploying an unchanged tree twice changes nothing.

That zip is NOT a working package for AWS Lambda: there, the handlers also need orjson, pyarrow
and aws-lambda-powertools (manylinux wheels for the template's runtime and architecture) next to
``tripstream/``. :func:`build_lambda_package` builds that one, cached by a hash of its inputs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1]  # .../src/tripstream
ARTIFACT_PREFIX: Final = "lambda/"
# The project's pins (scripts/lock), in a source checkout: the Lambda package installs from them too.
CONSTRAINTS_FILE: Final = PACKAGE_ROOT.parents[1] / "constraints.txt"

_ZIP_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_INCLUDED_SUFFIXES: Final = frozenset({".py", ".yaml", ".typed"})
_EXCLUDED_DIRECTORIES: Final = frozenset({"__pycache__"})


# What Lambda runs, and nothing else: the settings, the trip domain, the use cases, the AWS layer and the handlers.
# The CLI, the local runtime, the read side and the infrastructure code stay out of the zip.
LAMBDA_MODULES: Final = frozenset({"__init__.py", "py.typed", "settings.py", "retry.py", "counters.py", "gc_policy.py"})
LAMBDA_PACKAGES: Final = frozenset({"trips", "pipeline", "aws", "handlers"})
_NOT_FOR_LAMBDA: Final = frozenset({"trips/generate.py"})  # the CLI's sample generator


def _runs_in_lambda(relative: Path) -> bool:
    if relative.as_posix() in _NOT_FOR_LAMBDA:
        return False
    if len(relative.parts) == 1:
        return relative.name in LAMBDA_MODULES
    return relative.parts[0] in LAMBDA_PACKAGES


def _package_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in _INCLUDED_SUFFIXES
        and not _EXCLUDED_DIRECTORIES.intersection(path.relative_to(root).parts)
        and _runs_in_lambda(path.relative_to(root))
    )


def build_source_zip(package_root: Path = PACKAGE_ROOT) -> bytes:
    """A reproducible zip of the part of the ``tripstream`` source that Lambda runs (``tripstream/...`` at its root).

    For the emulator only (see the module docstring): the package's dependencies are not in it.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _package_files(package_root):
            name = (Path(package_root.name) / path.relative_to(package_root)).as_posix()
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def artifact_key(body: bytes, prefix: str = ARTIFACT_PREFIX) -> str:
    """A content-addressed key: new code gets a new key, so CloudFormation updates the functions."""
    return f"{prefix}tripstream-{hashlib.sha256(body).hexdigest()[:32]}.zip"


# --- the Lambda package (code + runtime dependencies) -------------------------------------------

#: What the handlers import beyond the standard library and boto3 (which the Lambda runtime provides).
#: pyarrow is most of the package (about 140 MB unpacked): it is kept, because Parquet is one of the
#: accepted input formats and the producer reads it with pyarrow; it is pruned of what tripstream
#: never loads (Flight, headers, Cython sources, its tests). Substrait stays: pyarrow.lib links it.
LAMBDA_DEPENDENCIES: Final = ("orjson", "pyarrow", "aws-lambda-powertools")
LAMBDA_UNZIPPED_LIMIT_BYTES: Final = 250 * 1024 * 1024  # Lambda's limit for a function and its layers
_PRUNED_DIRECTORIES: Final = frozenset({"__pycache__", "tests", "include", "includes"})
_PRUNED_SUFFIXES: Final = (".pyc", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# pyarrow components tripstream never imports, and that no kept library links (readelf -d: pyarrow.lib
# and libarrow_python need libarrow_substrait, dataset, acero and parquet, but not Flight).
_PRUNED_FILE_PREFIXES: Final = (
    "pyarrow/libarrow_flight.",
    "pyarrow/libarrow_python_flight.",
    "pyarrow/_flight.",
    "pyarrow/_pyarrow_cpp_tests.",
)
_EXECUTABLE_SUFFIXES: Final = (".so",)


@dataclass(frozen=True)
class LambdaTarget:
    """The Lambda runtime the package is built for: wheels are chosen for this Python and platform."""

    python_version: str = "3.12"
    platform: str = "manylinux2014_x86_64"

    @classmethod
    def from_runtime(cls, runtime: str, architecture: str) -> LambdaTarget:
        """``python3.12`` / ``x86_64`` (as in the template) -> the pip target."""
        if not runtime.startswith("python"):
            raise ValueError(f"not a Python runtime: {runtime}")
        machine = {"x86_64": "x86_64", "arm64": "aarch64"}.get(architecture)
        if machine is None:
            raise ValueError(f"unknown Lambda architecture: {architecture}")
        return cls(python_version=runtime.removeprefix("python"), platform=f"manylinux2014_{machine}")


@dataclass(frozen=True)
class LambdaPackage:
    path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    built: bool  # False: taken from the cache

    @property
    def key(self) -> str:
        return f"{ARTIFACT_PREFIX}tripstream-{self.sha256[:32]}.zip"


class PackageError(RuntimeError):
    """The Lambda package could not be built (pip failed, or it is too large for Lambda)."""


def pinned_versions(constraints: Path = CONSTRAINTS_FILE) -> dict[str, str]:
    """name -> version of each `name==version` line of the constraints file (empty when there is none)."""
    if not constraints.is_file():
        return {}
    pins: dict[str, str] = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        name, separator, version = line.split("#", 1)[0].strip().partition("==")
        if separator:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def lambda_requirements(constraints: Path = CONSTRAINTS_FILE) -> list[str]:
    """The Lambda dependencies: pinned as in constraints.txt when it is there, else with the version bounds the
    project declares (pyproject.toml)."""
    pins = pinned_versions(constraints)
    if pins and all(name in pins for name in LAMBDA_DEPENDENCIES):
        return [f"{name}=={pins[name]}" for name in LAMBDA_DEPENDENCIES]
    try:
        declared = importlib.metadata.requires("tripstream") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    wanted = {name: name for name in LAMBDA_DEPENDENCIES}
    found: dict[str, str] = {}
    for requirement in declared:
        if ";" in requirement:
            continue  # extras (dev tools) and markers
        name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].strip().lower()
        if name in wanted:
            found[name] = requirement.replace(" ", "")
    return [found.get(name, name) for name in LAMBDA_DEPENDENCIES]


def _platforms(target: LambdaTarget) -> list[str]:
    """The target's wheel platforms: python3.12+ runs on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels
    (the only ones of recent pyarrow releases) are the runtime's too."""
    major, minor = (int(part) for part in target.python_version.split(".")[:2])
    if target.platform.startswith("manylinux_2_28_"):  # older manylinux wheels run there too
        return [target.platform, target.platform.replace("manylinux_2_28_", "manylinux2014_")]
    if target.platform.startswith("manylinux2014_") and (major, minor) >= (3, 12):
        return [target.platform.replace("manylinux2014_", "manylinux_2_28_"), target.platform]
    return [target.platform]


def _keep(relative: str) -> bool:
    parts = relative.split("/")
    if _PRUNED_DIRECTORIES.intersection(parts[:-1]):
        return False
    if relative.endswith(_PRUNED_SUFFIXES):
        return False
    return not relative.startswith(_PRUNED_FILE_PREFIXES)


def _write_tree(archive: zipfile.ZipFile, root: Path, prefix: str = "") -> int:
    """Add the kept files under ``root`` (sorted, fixed timestamps); returns their unzipped size."""
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = prefix + path.relative_to(root).as_posix()
        if not _keep(relative):
            continue
        info = zipfile.ZipInfo(relative, date_time=_ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        mode = 0o755 if path.suffix in _EXECUTABLE_SUFFIXES or ".so." in path.name else 0o644
        info.external_attr = mode << 16
        data = path.read_bytes()
        total += len(data)
        archive.writestr(info, data)
    return total


def package_hash(target: LambdaTarget, requirements: list[str], source_zip: bytes, constraints: bytes = b"") -> str:
    """What decides the package's content: the code, the requirements, the pins and the target (not the clock)."""
    digest = hashlib.sha256()
    digest.update(f"{target.python_version}|{target.platform}|{'|'.join(requirements)}|".encode())
    digest.update(hashlib.sha256(constraints).digest())
    digest.update(source_zip)
    return digest.hexdigest()


def build_lambda_package(
    cache_dir: Path,
    *,
    target: LambdaTarget | None = None,
    requirements: list[str] | None = None,
    package_root: Path = PACKAGE_ROOT,
    constraints: Path = CONSTRAINTS_FILE,
    log: Callable[[str], None] | None = None,
) -> LambdaPackage:
    """The Lambda package: ``tripstream/`` plus the runtime dependencies for ``target``, as one zip.

    The versions are constraints.txt's (scripts/lock) when the checkout has it. The zip is byte-for-byte the
    same for the same inputs, and cached in ``cache_dir`` under a hash of the code, the requirements, the pins
    and the target: an unchanged tree is not built again, and the dependencies are installed once per
    requirements, pins and target (a change to the code alone runs no pip). Dependencies come from
    ``pip install --target`` with ``--platform/--python-version/--implementation cp --only-binary=:all:``, so
    the wheels are the runtime's (manylinux, CPython of the runtime) whatever this machine runs. boto3 is not
    packaged: the runtime has it. Raises :class:`PackageError` when pip fails or the package exceeds Lambda's
    250 MB unzipped limit.
    """
    target = target or LambdaTarget()
    requirements = requirements if requirements is not None else lambda_requirements(constraints)
    source = build_source_zip(package_root)
    pins = constraints.read_bytes() if constraints.is_file() else b""
    content_hash = package_hash(target, requirements, source, pins)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"tripstream-lambda-py{target.python_version}-{target.platform}-{content_hash[:16]}.zip"
    if final.exists():
        with zipfile.ZipFile(final) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        return LambdaPackage(final, _file_sha256(final), final.stat().st_size, unzipped, built=False)
    site = _dependencies(cache_dir, target, requirements, constraints if pins else None, log)
    with tempfile.TemporaryDirectory(prefix="tripstream-package-", dir=cache_dir) as scratch:
        partial = Path(scratch) / "package.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            unzipped = _write_tree(archive, site)
            with zipfile.ZipFile(io.BytesIO(source)) as code:
                for info in code.infolist():
                    data = code.read(info)
                    unzipped += len(data)
                    archive.writestr(info, data)
        if unzipped > LAMBDA_UNZIPPED_LIMIT_BYTES:
            raise PackageError(
                f"the Lambda package is {unzipped / 2**20:.0f} MiB unzipped, over Lambda's 250 MiB limit"
            )
        partial.replace(final)
    return LambdaPackage(final, _file_sha256(final), final.stat().st_size, unzipped, built=True)


def _dependencies(
    cache_dir: Path,
    target: LambdaTarget,
    requirements: list[str],
    constraints: Path | None,
    log: Callable[[str], None] | None,
) -> Path:
    """The runtime dependencies for `target`, installed once per (target, requirements, pins) and kept: a change to
    tripstream's own code rebuilds the zip from them without running pip (it was most of a rebuild's time)."""
    pins = constraints.read_bytes() if constraints is not None else b""
    key = package_hash(target, requirements, b"", pins)[:16]
    folder = cache_dir / f"dependencies-py{target.python_version}-{target.platform}-{key}"
    if folder.is_dir():
        return folder
    with tempfile.TemporaryDirectory(prefix="tripstream-dependencies-", dir=cache_dir) as scratch:
        site = Path(scratch) / "site"
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--target", str(site),
            *[argument for platform in _platforms(target) for argument in ("--platform", platform)],
            "--python-version", target.python_version,
            "--implementation", "cp",
            "--only-binary=:all:",
            *(["--constraint", str(constraints)] if constraints is not None else []),  # their dependencies pinned too
            *requirements,
        ]  # fmt: skip
        if log is not None:
            log(f"building the Lambda package: pip install {' '.join(requirements)} for "
                f"python{target.python_version} {target.platform}")  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise PackageError(f"pip could not install {requirements}: {completed.stderr.strip()[-2000:]}")
        # boto3/botocore (a dependency of powertools' optional parts only) come from the runtime.
        for provided in ("boto3", "botocore", "s3transfer"):
            shutil.rmtree(site / provided, ignore_errors=True)
        try:
            site.rename(folder)
        except OSError:  # another build kept the same dependencies first
            if not folder.is_dir():
                raise
    return folder


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_from_zip(path: Path) -> LambdaPackage:
    """A package built before (``deploy --package``: build once in CI, deploy the same zip everywhere)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        unzipped = sum(info.file_size for info in archive.infolist())
    if "tripstream/handlers/producer.py" not in names:
        raise PackageError(f"{path} is not a tripstream Lambda package (no tripstream/handlers/producer.py)")
    return LambdaPackage(path, _file_sha256(path), path.stat().st_size, unzipped, built=False)
