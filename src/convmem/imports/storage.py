"""Where an import's file is uploaded to and read from.

Embedded default (`LocalStorage`): the server receives the upload itself, at
a URL signed with HMAC-SHA256 that expires, and keeps the file in the data
directory. Production (`S3Storage`): an S3-compatible bucket; the client PUTs
to a boto3 pre-signed URL that signs the content length, and workers find the
object with HEAD requests."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlencode, urlparse

from convmem.ingest import prebuild
from convmem.kit import s3
from convmem.kit.errors import Forbidden
from convmem.settings import Settings


class UploadForbidden(Forbidden):
    default_message = "The upload URL is invalid or has expired"


@dataclass(frozen=True)
class Upload:
    """The file an import expects."""

    store_id: str
    import_id: str
    file_size: int
    expires_at: dt.datetime


class Storage(Protocol):
    #: Whether the server learns of a finished upload itself (so workers need not poll).
    receives_uploads: bool

    def upload_url(self, upload: Upload, base_url: str) -> str: ...

    def size(self, upload: Upload) -> int | None:
        """The uploaded file's size, or None while there is none."""

    def open(self, upload: Upload) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def discard(self, upload: Upload) -> None:
        """Remove the file once the import is over (no error when it is gone)."""


def storage_for(settings: Settings) -> Storage:
    if settings.import_storage:
        return S3Storage(settings)
    return LocalStorage(settings)


def upload_secret(settings: Settings) -> bytes:
    """The configured secret, or one generated into the data directory once."""
    if settings.upload_secret:
        return settings.upload_secret.encode()
    path = settings.data_dir / "upload-secret"
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


UPLOAD_PATH = "/v1/Uploads/Imports"


class LocalStorage:
    receives_uploads = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.data_dir / "uploads"

    @functools.cached_property
    def secret(self) -> bytes:
        # Read (or made) on first use, not when the app starts.
        return upload_secret(self.settings)

    def path(self, upload: Upload) -> Path:
        return self.root / upload.store_id / f"{upload.import_id}.csv"

    def signature(self, upload: Upload, expires: int) -> str:
        message = f"{upload.store_id}\n{upload.import_id}\n{upload.file_size}\n{expires}"
        return hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()

    def upload_url(self, upload: Upload, base_url: str) -> str:
        expires = int(upload.expires_at.timestamp())
        query = urlencode({"expires": expires, "signature": self.signature(upload, expires)})
        return f"{base_url}{UPLOAD_PATH}/{upload.store_id}/{upload.import_id}?{query}"

    def verify(self, upload: Upload, expires: str, signature: str, now: dt.datetime) -> None:
        """UploadForbidden unless the URL is the one we signed and is still valid."""
        if not expires.isdigit() or len(expires) > 12:
            raise UploadForbidden("The upload URL's signature is invalid")
        expected = self.signature(upload, int(expires))
        if not hmac.compare_digest(expected, signature.encode("ascii", "replace").decode()):
            raise UploadForbidden("The upload URL's signature is invalid")
        if int(expires) != int(upload.expires_at.timestamp()):
            raise UploadForbidden("The upload URL's signature is invalid")
        if now.timestamp() > int(expires):
            raise UploadForbidden("The upload URL has expired; create a new import")

    def size(self, upload: Upload) -> int | None:
        try:
            return self.path(upload).stat().st_size
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def open(self, upload: Upload) -> Iterator[IO[bytes]]:
        with self.path(upload).open("rb") as handle:
            yield handle

    def discard(self, upload: Upload) -> None:
        self.path(upload).unlink(missing_ok=True)
        # A builder's batches, had its process been killed (ingest.prebuild).
        shutil.rmtree(prebuild.spool_dir(self.path(upload)), ignore_errors=True)


class S3Storage:
    receives_uploads = False

    def __init__(self, settings: Settings) -> None:
        parsed = urlparse(settings.import_storage or "")
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(
                f"CONVMEM_IMPORT_STORAGE must look like s3://bucket/prefix, "
                f"not {settings.import_storage!r}"
            )
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client: Any = s3.client(settings)
        self.expires_in = settings.upload_url_seconds

    def key(self, upload: Upload) -> str:
        name = f"{upload.store_id}/{upload.import_id}.csv"
        return f"{self.prefix}/{name}" if self.prefix else name

    def upload_url(self, upload: Upload, base_url: str) -> str:
        # ContentLength is signed: S3 refuses a body of any other size.
        return str(
            self.client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(upload),
                    "ContentLength": upload.file_size,
                },
                ExpiresIn=self.expires_in,
            )
        )

    def size(self, upload: Upload) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(upload))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    @contextlib.contextmanager
    def open(self, upload: Upload) -> Iterator[IO[bytes]]:
        body = self.client.get_object(Bucket=self.bucket, Key=self.key(upload))["Body"]
        try:
            yield body
        finally:
            body.close()

    def discard(self, upload: Upload) -> None:
        # Objects stay: the bucket's lifecycle rules decide how long.
        return None
