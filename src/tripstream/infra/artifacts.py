"""The Lambda code package the template's functions point at (``ArtifactBucket``/``ArtifactKey``).

:func:`build_source_zip` packages the ``tripstream`` package's own source, with no dependencies.
That is what a deploy into the emulator needs: moto's Lambda only accepts a function whose code
object exists in (moto's) S3, and nothing ever runs that code there, because the local runtime
imports the handlers in-process. The zip is byte-for-byte reproducible (fixed timestamps and
order), so :func:`artifact_key` is stable and deploying an unchanged tree twice changes nothing.

NOTE: this zip is NOT a working package for AWS Lambda: there, the handlers also need orjson,
pyarrow and aws-lambda-powertools (manylinux x86_64 wheels for python3.12) next to
``tripstream/``. Building that package is a separate job; it should produce the same kind of
content-addressed key so that :func:`upload_artifact` and the deploy stay as they are.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType

PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1]  # .../src/tripstream
ARTIFACT_PREFIX: Final = "lambda/"

_ZIP_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
_INCLUDED_SUFFIXES: Final = frozenset({".py", ".yaml", ".typed"})
_EXCLUDED_DIRECTORIES: Final = frozenset({"__pycache__"})


def _package_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in _INCLUDED_SUFFIXES
        and not _EXCLUDED_DIRECTORIES.intersection(path.relative_to(root).parts)
    )


def build_source_zip(package_root: Path = PACKAGE_ROOT) -> bytes:
    """A reproducible zip of the ``tripstream`` package source (``tripstream/...`` at its root).

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


def upload_artifact(s3: S3Client, *, bucket: str, key: str, body: bytes, region: str) -> None:
    """Put ``body`` at ``s3://bucket/key``, creating the bucket first if it does not exist.

    The artifact bucket must exist before the stack (the functions' code is read while the stack
    is created), so it is not the stack's own bucket. An object already at ``key`` is kept as it
    is: keys are content-addressed (:func:`artifact_key`).
    """
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey", "NoSuchBucket"}:
            raise
    else:
        return
    _ensure_bucket(s3, bucket=bucket, region=region)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip")


def _ensure_bucket(s3: S3Client, *, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
            raise
    else:
        return
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": cast("BucketLocationConstraintType", region)},
            )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
