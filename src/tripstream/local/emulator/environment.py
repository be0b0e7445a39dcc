"""The environment variables the emulator's child process reads (set by the parent or by a developer), and the one
name the patched emulator and the local Lambda service share.

Kept apart from :mod:`.server` and :mod:`.moto_patches` so both sides read the same names without importing moto in
the parent or the server module in the patches.
"""

from __future__ import annotations

from typing import Final

#: Where the child keeps tables' items and stream records (:mod:`.moto_patches.storage`).
STORE_DIR_VARIABLE: Final = "TRIPSTREAM_EMULATOR_STORE_DIR"
#: Where the child keeps them across its own life (`up --state-dir`): tables and streams re-attached by name.
STATE_DIR_VARIABLE: Final = "TRIPSTREAM_EMULATOR_STATE_DIR"
#: ``1``: trace allocations; SIGUSR1 writes the largest to the log (:mod:`.diagnostics`).
TRACEMALLOC_VARIABLE: Final = "TRIPSTREAM_EMULATOR_TRACEMALLOC"
#: A type name: with the tracemalloc switch, SIGUSR1 also prints who holds objects of that type.
REFERRERS_VARIABLE: Final = "TRIPSTREAM_EMULATOR_REFERRERS"
#: A path: profile every request thread with cProfile, statistics written there at exit (:mod:`.diagnostics`).
PROFILE_VARIABLE: Final = "TRIPSTREAM_EMULATOR_PROFILE"
#: ``1``: on SIGUSR2 the emulator writes the most numerous types of live objects to its log (:mod:`.diagnostics`).
OBJECTS_VARIABLE: Final = "TRIPSTREAM_EMULATOR_OBJECTS"

#: The SQS queue where the patched emulator puts each asynchronous Invoke (:mod:`.moto_patches.awslambda`), for the
#: local Lambda service to run (Lambda's own internal queue of asynchronous invocations).
ASYNC_INVOCATIONS_QUEUE: Final = "tripstream-lambda-async-invocations"
