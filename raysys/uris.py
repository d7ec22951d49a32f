"""URIs of storage locations, below every other raysys module: which are remote, joining
parts, the credentials in them (refused) and their redaction (the one point every URI
passes before a log line, an error, a stored config or a mark).

Standard library only (and `raysys.errors`), so configs validate storage locations
without importing the storage machinery.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import unquote

from raysys.errors import UserError


def is_remote(path: str | Path) -> bool:
    """An object-store URI (s3://, gs://, gcs://): not a path on this machine."""
    return bool(re.match(r"^(s3|gs|gcs)://", str(path), re.IGNORECASE))


def join_uri(uri: str, *parts: str) -> str:
    """`uri` with path parts appended, keeping its `?query` (options) at the end."""
    base, sep, query = uri.partition("?")
    path = "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return path + sep + query


# --------------------------------------------------------------------------- credentials

# A URI as it appears in free text (a log line, an error): up to whitespace or a quote.
# A trailing `)`, `,` or `.` is the sentence's, not the URI's. The scheme starts a word
# (the lookbehind): a scan from every letter of a long word would be quadratic.
_URI_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z0-9+.-]+://[^\s'\"<>`]*[^\s'\"<>`),.;:]")
_SECRET_KEY = re.compile(
    r"key|secret|token|passw|pwd|signature|credential|auth|^sig$", re.IGNORECASE
)
# `gs://anonymous@bucket` is pyarrow's spelling of "no credentials", not a credential.
_NOT_A_SECRET = "anonymous"
REMOTE_SCHEMES = ("s3", "gs", "gcs")
LOCATION_SCHEMES = ("file", *REMOTE_SCHEMES)


def redact(text: str | Path) -> str:
    """`text` with the credentials of every URI in it replaced by `***`: user info
    (`s3://KEY:SECRET@bucket` -> `s3://***@bucket`) and secret-looking query options
    (`?secret_key=...`, `token`, `password`, `signature`, `credential`...). The one
    point every URI passes before a log line, an error, a stored config or a mark."""
    return _URI_IN_TEXT.sub(lambda m: _redact_uri(m.group(0)), str(text))


def _user_info(uri: str) -> tuple[int, int] | None:
    """Where the user info of `uri` is (`scheme://user:password@`), or None. The password
    may hold a `/` (AWS secret keys do), the user name may not (else `s3://bucket/a@b`
    would read as user info). String search, not a regex: linear on hostile input."""
    start = uri.find("://") + 3
    head = re.split(r"[?#]", uri[start:], maxsplit=1)[0]
    at = head.rfind("@")
    if at < 0 or "/" in head[:at].partition(":")[0] or head[:at] == _NOT_A_SECRET:
        return None
    return start, start + at


def _redact_uri(uri: str) -> str:
    if where := _user_info(uri):
        uri = f"{uri[: where[0]]}***{uri[where[1] :]}"
    base, q, rest = uri.partition("?")
    if not q:
        return uri
    query, hash_, fragment = rest.partition("#")
    params = re.split(r"([&;])", query)  # the separators are kept, in place
    return base + q + "".join(_redact_param(p) for p in params) + hash_ + fragment


def _redact_param(param: str) -> str:
    key, eq, value = param.partition("=")
    if eq and _secret_param(key, value):
        return f"{key}=***"
    return param


def _secret_param(key: str, value: str) -> bool:
    # `endpoint_override=KEY:SECRET@host` smuggles user info in through an option
    return bool(_SECRET_KEY.search(unquote(key))) or "@" in value


def _credentials_in(uri: str) -> str | None:
    """What in `uri` is a credential (described without its value), or None."""
    if _user_info(uri):
        return "user info before '@'"
    query = uri.partition("?")[2].partition("#")[0]
    for param in re.split(r"[&;]", query):
        key, eq, value = param.partition("=")
        if eq and _secret_param(key, value):
            return f"query option '{unquote(key)[:24]}'"
    return None


def credentials_problem(uri: str) -> str | None:
    """Why `uri` is refused for carrying credentials (one line, without the secret and
    without a field name: the caller puts its own in front), or None."""
    if "://" not in uri or (what := _credentials_in(uri)) is None:
        return None
    return (
        f"credentials in the URI ({what}) are refused; set AWS_ACCESS_KEY_ID/.. or "
        "GOOGLE_APPLICATION_CREDENTIALS on every node, or use an instance role or a KubeRay Secret"
    )


def bucket_problem(uri: str) -> str | None:
    """Why an object-store `uri` names no bucket (`s3://?endpoint_override=...` would
    reach every bucket the credentials can read), or None."""
    if not is_remote(uri):
        return None
    scheme, _, rest = uri.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.rpartition("@")[2].strip():
        return None
    return (
        f"{scheme.lower()}:// URI without a bucket; name one "
        f"({scheme.lower()}://BUCKET/path, options after '?')"
    )


def location_problem(value: str) -> str | None:
    """Why `value` cannot be a storage location (credentials, a scheme other than a local
    path, file://, s3:// or gs://, a bucketless URI), or None; one line, no field name."""
    if problem := credentials_problem(value):
        return problem
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme and scheme.group(1).lower() not in LOCATION_SCHEMES:
        return (
            f"unsupported scheme '{scheme.group(1)[:20]}://'; use a local path, file://, "
            "s3:// or gs://"
        )
    return bucket_problem(value)


def check_location(value: str, field: str) -> None:
    """Refuse (exit 2, before anything is written) a location `location_problem` names."""
    if problem := location_problem(value):
        raise UserError(f"{field}: {problem}")


class RedactFilter(logging.Filter):
    """Redacts URIs in every record a handler emits (`install_log_redaction`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a `RedactFilter` on every handler of `logger` (default: the root logger),
    so a URI logged anywhere (ours, a library's) leaves without its credentials."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())


# --------------------------------------------------------------------------- object stores


def bare(uri: str) -> str:
    """A URI as users see it: without its options, credentials redacted."""
    return redact(uri.partition("?")[0])
