"""What a function process runs on, prepared once and reused: the runtime's interpreter, a venv holding what the
Lambda runtime provides (`awslambdaric`, boto3), and the deployment package unpacked.

- the interpreter of the template's `Runtime` (`python3.12`: pyenv's 3.12.x, or `python3.12` on PATH); where the
  machine has none, the local interpreter, said once;
- `.tripstream/lambda-runtime/<python>/`: a venv of that interpreter with `awslambdaric` and the boto3/botocore of
  the Lambda runtime (pinned: :data:`RUNTIME_PACKAGES`), created on first use from PyPI;
- `.tripstream/functions/<hash>/`: the package `tripstream deploy` ships (`infra.artifacts.build_lambda_package`,
  built once per content hash), unpacked: the function's `LAMBDA_TASK_ROOT`.

The base folder is `$TRIPSTREAM_LAMBDA_DIR`, else `.tripstream` in the current directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tripstream.infra.artifacts import LambdaTarget, build_lambda_package

log = logging.getLogger(__name__)

BASE_DIR_VARIABLE: Final = "TRIPSTREAM_LAMBDA_DIR"
# What the python3.12 Lambda runtime provides beside the function's package: its runtime interface client and
# the AWS SDK it bundles (Lambda's "runtime-included SDK versions"; the package never ships boto3).
RUNTIME_PACKAGES: Final = ("awslambdaric==4.2.2", "boto3==1.40.4", "botocore==1.40.4")
_READY_MARKER: Final = "tripstream-runtime-ready"
_lock = threading.Lock()


class RuntimeSetupError(RuntimeError):
    """The function's runtime could not be prepared (no venv, pip failed, no package)."""


def base_dir(environ: Mapping[str, str] | None = None) -> Path:
    configured = (environ if environ is not None else os.environ).get(BASE_DIR_VARIABLE)
    return Path(configured) if configured else Path.cwd() / ".tripstream"


@dataclass(frozen=True)
class RuntimePython:
    path: Path
    version: str  # "3.12"
    is_runtimes: bool  # False: the local interpreter stands in for the runtime's


@functools.cache  # one interpreter, one version: asked once per process, not once per function
def _version_of(python: Path) -> str:
    completed = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip()


def find_runtime_python(runtime: str, note: Callable[[str], None] | None = None) -> RuntimePython:
    """The interpreter of `runtime` (`python3.12`) on this machine, else the local one (said once, by `note`)."""
    wanted = runtime.removeprefix("python")
    candidates: list[Path] = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted((pyenv_root / "versions").glob(f"{wanted}.*/bin/python{wanted}"), reverse=True)
    if found := shutil.which(f"python{wanted}"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and _version_of(candidate) == wanted:
            return RuntimePython(candidate, wanted, True)
    local = f"{sys.version_info.major}.{sys.version_info.minor}"
    if note is not None:
        note(f"no Python {wanted} on this machine (the functions' {runtime}): they run on the local Python {local}")
    return RuntimePython(Path(sys.executable), local, local == wanted)


@contextlib.contextmanager
def _preparing(root: Path) -> Iterator[None]:
    """One preparer of `root`'s runtime and packages at a time: this process's threads, and other processes on the same
    folder (two test workers, or `run` beside `up`, on a fresh clone would otherwise build one venv over the other)."""
    root.mkdir(parents=True, exist_ok=True)
    with _lock, open(root / ".preparing.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def runtime_venv(python: RuntimePython, root: Path, log_line: Callable[[str], None] | None = None) -> Path:
    """The venv's interpreter: `awslambdaric` and the runtime's boto3, installed on first use."""
    venv = root / "lambda-runtime" / f"python{python.version}"
    interpreter = venv / "bin" / "python"
    marker = venv / _READY_MARKER
    wanted = "\n".join(RUNTIME_PACKAGES)
    with _preparing(root):
        if marker.is_file() and marker.read_text() == wanted and interpreter.exists():
            return interpreter
        if log_line is not None:
            log_line(f"preparing the Lambda runtime in {venv} ({', '.join(RUNTIME_PACKAGES)}; once)")
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [str(python.path), "-m", "venv", str(venv)],
            [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *RUNTIME_PACKAGES],
        ]
        for command in steps:
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                raise RuntimeSetupError(f"{' '.join(command[:4])}... failed: {completed.stderr.strip()[-1500:]}")
        marker.write_text(wanted)
    return interpreter


def function_code(
    root: Path, *, runtime: str, architecture: str, log_line: Callable[[str], None] | None = None
) -> Path:
    """The deployment package for `runtime`/`architecture`, unpacked once per content hash (the task root)."""
    with _preparing(root):
        package = build_lambda_package(
            root / "packages", target=LambdaTarget.from_runtime(runtime, architecture), log=log_line
        )
        task_root = root / "functions" / package.sha256[:32]
        if task_root.is_dir():
            return task_root
        task_root.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="unpacking-", dir=task_root.parent))
        try:
            with zipfile.ZipFile(package.path) as archive:
                archive.extractall(scratch)
            scratch.replace(task_root)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return task_root
