"""`raysys.uris`: which locations are remote, joining parts under a URI's options, the
redaction every URI passes before a log line or an error, and the locations refused
(credentials, unknown schemes, no bucket)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raysys.errors import UserError
from raysys.uris import (
    RedactFilter,
    bare,
    bucket_problem,
    check_location,
    credentials_problem,
    install_log_redaction,
    is_remote,
    join_uri,
    location_problem,
    redact,
)


@pytest.mark.parametrize(
    "path, remote",
    [
        ("s3://b/x", True),
        ("S3://b", True),
        ("gs://b/x", True),
        ("gcs://b", True),
        ("file:///tmp/x", False),  # a local path spelled as a URI
        ("/tmp/x", False),
        ("runs/s3://x", False),  # a scheme only counts at the start
        ("s3:/b", False),
    ],
)
def test_is_remote(path, remote):
    assert is_remote(path) is remote


def test_join_uri_keeps_the_options_at_the_end():
    assert join_uri("s3://b/runs/?region=eu", "/sweep/", "t1") == "s3://b/runs/sweep/t1?region=eu"
    assert join_uri("/tmp/runs", "a", "b") == "/tmp/runs/a/b"
    assert join_uri("gs://b") == "gs://b"


@pytest.mark.parametrize(
    "text, clean",
    [
        ("s3://KEY:SECRET@bucket/x", "s3://***@bucket/x"),
        ("s3://KEY:se/cr+et@bucket/x", "s3://***@bucket/x"),  # AWS secrets may hold '/'
        ("failed at s3://K:S@b/x.", "failed at s3://***@b/x."),  # the sentence's '.' stays
        ("gs://anonymous@bucket/x", "gs://anonymous@bucket/x"),  # pyarrow's "no credentials"
        ("s3://bucket/v1@2024/x", "s3://bucket/v1@2024/x"),  # '@' in the path is no user
        ("s3://b/x?region=eu&secret_key=S", "s3://b/x?region=eu&secret_key=***"),
        ("s3://b/x?Token=t;sig=s#frag", "s3://b/x?Token=***;sig=***#frag"),
        ("s3://b/x?endpoint_override=K:S@host", "s3://b/x?endpoint_override=***"),
        ("s3://b/x?pass%77ord=p", "s3://b/x?pass%77ord=***"),  # the key is read unquoted
        ("/data/user@host/x", "/data/user@host/x"),  # not a URI
    ],
)
def test_redact(text, clean):
    assert redact(text) == clean


@given(st.text(alphabet="s3:/@?&=#KEYSECRT.bx ", max_size=60))
def test_redact_is_idempotent_and_leaves_no_user_info(text):
    once = redact(text)
    assert redact(once) == once
    assert "KEY:SECRET@" not in once.replace("***@", "")


@pytest.mark.parametrize(
    "uri, what",
    [
        ("s3://K:S@b/x", "user info before '@'"),
        ("gs://K@b/x", "user info before '@'"),
        ("s3://b/x?session_token=t", "query option 'session_token'"),
        ("s3://b/x?endpoint_override=K:S@h", "query option 'endpoint_override'"),
    ],
)
def test_credentials_problem_names_what_without_the_secret(uri, what):
    problem = credentials_problem(uri)
    assert problem.startswith(f"credentials in the URI ({what}) are refused")
    assert "AWS_ACCESS_KEY_ID" in problem and "S@" not in problem and "=t" not in problem


@pytest.mark.parametrize("uri", ["s3://b/x", "gs://anonymous@b/x", "/a@b", "./runs", "x@y"])
def test_no_credentials_no_problem(uri):
    assert credentials_problem(uri) is None


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("s3://?endpoint_override=h", "s3:// URI without a bucket"),
        ("GS:///x", "gs:// URI without a bucket"),
        ("s3://K@/x", "s3:// URI without a bucket"),
        ("s3://b", None),
        ("/tmp/x", None),
        ("file:///x", None),
    ],
)
def test_bucket_problem(uri, problem):
    got = bucket_problem(uri)
    assert got == problem if problem is None else got.startswith(problem)


@pytest.mark.parametrize(
    "value, problem",
    [
        ("./runs", None),
        ("/abs/runs", None),
        ("file:///abs/runs", None),
        ("s3://b/runs?region=eu", None),
        ("ftp://h/x", "unsupported scheme 'ftp://'"),
        ("http://h/x", "unsupported scheme 'http://'"),
        ("ftp://K:S@h/x", "credentials in the URI"),  # credentials first: never echoed
        ("s3://", "s3:// URI without a bucket"),
    ],
)
def test_location_problem(value, problem):
    got = location_problem(value)
    assert got is None if problem is None else got.startswith(problem)


def test_check_location_puts_the_field_in_front():
    check_location("s3://b/x", "run.storage_path")  # no error
    with pytest.raises(UserError, match=r"^run\.storage_path: unsupported scheme 'ftp://'"):
        check_location("ftp://h/x", "run.storage_path")


def test_bare_drops_options_and_credentials():
    assert bare("s3://K:S@b/x?endpoint_override=h&region=eu") == "s3://***@b/x"
    assert bare("/tmp/runs") == "/tmp/runs"


def test_log_redaction_filters_every_handler_once(caplog):
    logger = logging.getLogger("raysys.test_uris")
    handler = logging.Handler()
    records: list[str] = []
    handler.emit = lambda record: records.append(record.getMessage())
    logger.addHandler(handler)
    try:
        install_log_redaction(logger)
        install_log_redaction(logger)  # a second install adds no second filter
        assert sum(isinstance(f, RedactFilter) for f in handler.filters) == 1
        logger.warning("cannot reach %s", "s3://K:S@b/x?token=t")
        logger.warning("nothing secret at %s", "s3://b/x")
    finally:
        logger.removeHandler(handler)
    assert records == ["cannot reach s3://***@b/x?token=***", "nothing secret at s3://b/x"]
