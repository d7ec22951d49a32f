"""Storage helpers: object-store URIs for Ray Train storage (`train.checkpoint_storage`),
and telling a storage failure (full, read-only, no permission) from other errors.

A URI is what pyarrow's `FileSystem.from_uri` takes, so S3-compatible stores (MinIO,
Ceph, moto) work through its query options, e.g.
`s3://bucket/ckpt?endpoint_override=10.0.0.5:9000&scheme=http` (credentials: the usual
`AWS_*` variables on every node). `probe` proves, before any work starts, that the
store answers and takes a write: an unreachable endpoint or a missing bucket is a
one-line error, not a training run that dies at its first checkpoint.
"""

from __future__ import annotations

import errno
import threading
import uuid
from typing import Any

from raysys.errors import UserError

PROBE_SECONDS = 20.0  # an endpoint that has not answered by then is unreachable


def join_uri(uri: str, *parts: str) -> str:
    """`uri` with path parts appended, keeping its `?query` (options) at the end."""
    base, sep, query = uri.partition("?")
    path = "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return path + sep + query


def filesystem(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def probe(uri: str, field: str, timeout: float | None = None) -> None:
    """Write, read back and delete a small object under `uri`, within `timeout` seconds."""
    timeout = PROBE_SECONDS if timeout is None else timeout
    if "://" not in uri or uri.startswith("file://"):
        return
    outcome: dict[str, BaseException | None] = {}

    def attempt() -> None:
        try:
            fs, root = filesystem(uri)
            fs.create_dir(root, recursive=True)
            path = f"{root.rstrip('/')}/.raysys-probe-{uuid.uuid4().hex[:8]}"
            with fs.open_output_stream(path) as f:
                f.write(b"ok")
            with fs.open_input_stream(path) as f:
                if f.read() != b"ok":
                    raise OSError("the probe object read back different bytes")
            fs.delete_file(path)
            outcome["error"] = None
        except BaseException as e:  # reported by the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=attempt, daemon=True, name="raysys-storage-probe")
    worker.start()
    worker.join(timeout)
    scheme = uri.split("://", 1)[0].lower()
    hint = (
        "check the bucket, the endpoint (?endpoint_override=host:port for S3-compatible "
        "stores) and the AWS_* credentials on every node"
        if scheme == "s3"
        else "check the bucket and the credentials (GOOGLE_APPLICATION_CREDENTIALS)"
    )
    if "error" not in outcome:
        raise UserError(
            f"{field}: {uri} did not answer within {timeout:g} s (unreachable endpoint?); {hint}"
        )
    err = outcome["error"]
    if err is not None:
        raise UserError(f"{field}: cannot write to {uri} ({one_line(err)}); {hint}")


_STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def is_storage_error(e: BaseException) -> bool:
    """The storage refused a write (permissions, read-only, full): pyarrow and the OS
    raise these as OSError subclasses with the errno set."""
    return isinstance(e, OSError) and (e.errno in _STORAGE_ERRNOS or isinstance(e, PermissionError))


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] if text else type(e).__name__
