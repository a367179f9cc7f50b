"""The S3 package store (any S3-compatible endpoint): multipart uploads streamed in parts.

Nothing is visible under a key until the upload completes (S3 publishes a multipart object
atomically); a failed write aborts the upload so no parts linger. boto3 errors stop here.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dblogpack.errors import StoreError
from dblogpack.stores import check_key
from dblogpack.stores.base import PackageStore

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")


class S3Store(PackageStore):
    """Packages as objects `<prefix>/<key>` in `bucket` at `endpoint_url` (None: AWS itself).

    `access_key`/`secret_key` None means boto3's usual credential chain. Memory per writer
    stays under about one `part_size` however large the package. `public_endpoint_url`, when
    users download from another address than dblogpack uploads to, is what links point at.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str | None,
        access_key: str | None,
        secret_key: str | None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        timeout: float = 30.0,
        public_endpoint_url: str | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._client = _client(session, endpoint_url, timeout)
        # Presigned URLs carry their host in the signature: users who reach the store by
        # another name than dblogpack does need links signed for that name.
        self._link_client = (
            _client(session, public_endpoint_url, timeout) if public_endpoint_url else self._client
        )

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url!r})"

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        upload = _MultipartUpload(self, self.object_key(key))
        buffered = io.BufferedWriter(upload, buffer_size=1024 * 1024)
        try:
            yield buffered
            buffered.flush()
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        finally:
            buffered.close()

    def open(self, key: str) -> BinaryIO:
        reader = _ObjectReader(self, self.object_key(key))
        return io.BufferedReader(reader, buffer_size=1024 * 1024)

    def size(self, key: str) -> int:
        object_key = self.object_key(key)
        with self._translated("stat", object_key):
            return self._client.head_object(Bucket=self.bucket, Key=object_key)["ContentLength"]

    def delete(self, key: str) -> None:
        object_key = self.object_key(key)
        with self._translated("delete", object_key):
            self._client.delete_object(Bucket=self.bucket, Key=object_key)

    def presigned_url(self, key: str, valid_seconds: int, filename: str) -> str | None:
        object_key = self.object_key(key)
        safe_name = _UNSAFE_FILENAME.sub("_", filename) or "package.tar.gz"
        with self._translated("presign", object_key):
            return self._link_client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": object_key,
                    "ResponseContentDisposition": f'attachment; filename="{safe_name}"',
                },
                ExpiresIn=valid_seconds,
            )

    def check(self) -> None:
        probe = self.object_key(f"_dblogpack_probe/{uuid.uuid4().hex}")
        with self._translated("write a probe object as", probe):
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"dblogpack store probe\n")
            self._client.delete_object(Bucket=self.bucket, Key=probe)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translated("list", base + prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(base) :]

    def remove_abandoned(self, idle_since: float) -> int:
        # S3 keeps the parts of an upload nobody completes or aborts (and bills them) forever.
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_multipart_uploads")
        removed = 0
        with self._translated("list the unfinished uploads under", base):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"].timestamp() < idle_since:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        return removed

    @contextmanager
    def _translated(self, action: str, object_key: str) -> Iterator[None]:
        """boto3's errors as FileNotFoundError (missing object) or StoreError (anything else)."""
        where = f"s3://{self.bucket}/{object_key}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code in _NOT_FOUND:
                raise FileNotFoundError(f"no package at {where}") from exc
            raise StoreError(
                f"S3 could not {action} {where}: {code} {error.get('Message', '')}".rstrip()
                + _hint(code)
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 could not {action} {where}: {exc}") from exc


def _client(session: boto3.session.Session, endpoint_url: str | None, timeout: float) -> S3Client:
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            signature_version="s3v4",
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            # S3-compatible servers rarely have wildcard DNS for bucket subdomains.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        ),
    )


def _hint(code: str) -> str:
    if code == "NoSuchBucket":
        return " (create the bucket or fix the store URL)"
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return " (check the access key, secret key and bucket policy)"
    return ""


class _MultipartUpload(io.RawIOBase):
    """Bytes cut into parts and uploaded as they fill; published by `complete()` only.

    Holds at most one part in memory. Small packages (under one part) skip the multipart
    machinery and are put in one request, which is just as atomic.
    """

    def __init__(self, store: S3Store, object_key: str) -> None:
        super().__init__()
        self._store = store
        self._key = object_key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._aborted = False

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        size = memoryview(data).nbytes
        if self._aborted:
            # The buffered wrapper flushing its tail on close after an abort: the upload is
            # gone and its data unwanted, so the bytes are dropped on purpose.
            return size
        self._buffer += data
        while len(self._buffer) >= self._store.part_size:
            self._upload_part(self._store.part_size)
        return size

    def complete(self) -> None:
        s3, bucket = self._store._client, self._store.bucket
        with self._store._translated("upload", self._key):
            if self._upload_id is None:
                s3.put_object(Bucket=bucket, Key=self._key, Body=bytes(self._buffer))
                self._buffer.clear()
                return
            if self._buffer:
                self._upload_part(len(self._buffer))
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> None:
        """Forget the upload so that no part is left billed or listed; never masks the cause."""
        self._aborted = True
        self._buffer.clear()
        if self._upload_id is None:
            return
        try:
            self._store._client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._key, UploadId=self._upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not abort upload %s of %s: %s", self._upload_id, self._key, exc)

    def _upload_part(self, size: int) -> None:
        s3, bucket = self._store._client, self._store.bucket
        with self._store._translated("upload", self._key):
            if self._upload_id is None:
                started = s3.create_multipart_upload(Bucket=bucket, Key=self._key)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            # Hand the buffer itself over (truncated in place) and start a new one with the
            # tail: only the tail is copied, so memory stays near one part.
            part, self._buffer = self._buffer, self._buffer[size:]
            del part[size:]
            answer = s3.upload_part(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                # botocore takes any bytes-like blob (it validates bytearray); its stubs say bytes.
                Body=cast("bytes", part),
            )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})


class _ObjectReader(io.RawIOBase):
    """A published object as a seekable raw stream: one streamed GET, and after a seek a new
    ranged GET pinned to the same ETag (a package replaced meanwhile fails, never mixes)."""

    def __init__(self, store: S3Store, object_key: str) -> None:
        super().__init__()
        self._store = store
        self._key = object_key
        with store._translated("download", object_key):
            answer = store._client.get_object(Bucket=store.bucket, Key=object_key)
        self._body: StreamingBody | None = answer["Body"]
        self._size = answer["ContentLength"]
        self._etag = answer["ETag"]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._position:
            self._drop_body()
            self._position = target
        return target

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not view.nbytes:
            return 0
        with self._store._translated("download", self._key):
            if self._body is None:
                self._body = self._store._client.get_object(
                    Bucket=self._store.bucket,
                    Key=self._key,
                    Range=f"bytes={self._position}-",
                    IfMatch=self._etag,
                )["Body"]
            data = self._body.read(view.nbytes)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
        super().close()

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
