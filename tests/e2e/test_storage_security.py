"""Credentials, hostile URIs and planted mirror marks (issue #20).

Every hostile case runs the real CLI in a subprocess, from an empty scratch folder that
is also its HOME and RAYSYS_CACHE, under a time and a memory limit. Each asserts the
exit code, exactly one short `raysys: error:` line, that the secret appears in no
output and no file, and that nothing was written.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from raysys.storage import (
    bucket_problem,
    credentials_problem,
    location_problem,
    redact,
)
from tests.fixtures import REPO, error_lines

COCKTAIL = str(REPO / "configs" / "cocktails" / "sentiment_mix.yaml")
KEY, SECRET = "AKIAFAKE", "SECRETFAKE"
CREDENTIALED = f"s3://{KEY}:{SECRET}@bucket/x"
NOWHERE = "endpoint_override=127.0.0.1:1&scheme=http"  # nothing listens on port 1
MEMORY = 4 << 30  # bytes of address space a refused command may use
SECONDS = 60


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    "text, clean",
    [
        (f"s3://{KEY}:{SECRET}@bucket/x", "s3://***@bucket/x"),
        (f"gs://{KEY}@bucket/x?scheme=http", "gs://***@bucket/x?scheme=http"),
        ("s3://AK:se/cr+et@bucket/x", "s3://***@bucket/x"),  # AWS secrets hold '/'
        ("s3://AK:p@ss@bucket/x", "s3://***@bucket/x"),
        (
            f"s3://b/x?{NOWHERE}&Secret_Key=S&access_key=A#f",
            f"s3://b/x?{NOWHERE}&Secret_Key=***&access_key=***#f",
        ),
        (
            "s3://b/x?X-Amz-Signature=s;X-Amz-Credential=c",
            "s3://b/x?X-Amz-Signature=***;X-Amz-Credential=***",
        ),
        (
            "s3://b/x?session_token=t&password=p&key=k",
            "s3://b/x?session_token=***&password=***&key=***",
        ),
        ("s3://b/x?endpoint_override=AK:SE@host:9000", "s3://b/x?endpoint_override=***"),
        (
            "cannot parse 's3://AK:SE@b/x' (see https://u:p@h/x?token=t), and s3://b/y.",
            "cannot parse 's3://***@b/x' (see https://***@h/x?token=***), and s3://b/y.",
        ),
        # not credentials: left alone
        ("s3://bucket/models/v1@2024/x", "s3://bucket/models/v1@2024/x"),
        ("gs://anonymous@bucket/x", "gs://anonymous@bucket/x"),
        (f"s3://bucket/x?{NOWHERE}&region=us-east-1", f"s3://bucket/x?{NOWHERE}&region=us-east-1"),
        ("/data/user@host/x and ./runs", "/data/user@host/x and ./runs"),
    ],
)
def test_redact(text, clean):
    assert redact(text) == clean
    assert redact(clean) == clean


@pytest.mark.parametrize(
    "uri, what",
    [
        (CREDENTIALED, "user info"),
        (f"gs://{KEY}@bucket/x", "user info"),
        (f"s3://bucket/x?{NOWHERE}&secret_key={SECRET}", "'secret_key'"),
        ("s3://bucket/x?SESSION_TOKEN=t", "'SESSION_TOKEN'"),
        (f"file://{KEY}:{SECRET}@host/x", "user info"),
    ],
)
def test_credentials_problem_names_what_and_where_credentials_go(uri, what):
    problem = credentials_problem(uri)
    assert problem and what in problem and "\n" not in problem
    for where in ("AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS", "role", "KubeRay"):
        assert where in problem
    assert SECRET not in problem and KEY not in problem
    # the longest field name in front still makes a line under 300 characters
    assert len(f"raysys: error: train.checkpoint_storage: {problem}") < 300


@pytest.mark.parametrize(
    "uri", ["s3://bucket/x", f"s3://bucket/x?{NOWHERE}", "gs://anonymous@b/x", "/a@b", "./runs"]
)
def test_no_credentials_no_problem(uri):
    assert credentials_problem(uri) is None


def test_bucket_and_location_problems():
    assert "without a bucket" in bucket_problem(f"s3://?{NOWHERE}")
    assert "without a bucket" in bucket_problem("gs:///x")
    assert bucket_problem("s3://b/x") is None and bucket_problem("/local") is None
    assert "unsupported scheme 'ftp://'" in location_problem("ftp://host/x")
    assert "credentials" in location_problem(f"ftp://{KEY}:{SECRET}@h/x")  # before the scheme
    assert location_problem("file:///abs") is None and location_problem("./runs") is None


def test_redact_is_linear_on_hostile_text():
    """Every log line passes `redact`: a long word, a colon run or a query of a million
    separators must not stall it (a quadratic scan takes minutes on these)."""
    code = (
        "from raysys.storage import redact, credentials_problem\n"
        "for t in ['a' * 400_000, 'a9' * 200_000, 's3://' + ':' * 400_000 + '?@',\n"
        "          's3://b/x?' + '&' * 400_000, 's3://' + 'a:' * 200_000 + '@b/x']:\n"
        "    redact(t), credentials_problem(t)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, preexec_fn=_limits)


# --------------------------------------------------------------------------- the real CLI


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _cli(scratch: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYSYS_"))}
    env.update(HOME=str(scratch), RAYSYS_CACHE=str(scratch / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "raysys.cli", *args],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=SECONDS,
        preexec_fn=_limits,
    )


def _refused(scratch: Path, code: int, *args: str) -> str:
    """Run a command that must be refused: `code`, one error line, no secret anywhere,
    no file written. Returns the error line."""
    before = _files(scratch)
    r = _cli(scratch, *args)
    err = error_lines(r.stderr)
    assert r.returncode == code, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert len(err) == 1 and err[0].startswith("raysys: error: ") and len(err[0]) < 300, err
    for secret in (SECRET, KEY):
        assert secret not in r.stdout and secret not in r.stderr
    after = _files(scratch)
    assert after == before, sorted(set(after) - set(before))
    return err[0]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    d = tmp_path / "scratch"
    d.mkdir()
    return d


def test_report_without_a_bucket_is_refused(scratch):
    """`s3://?endpoint_override=...` would have listed, and fetched, every bucket."""
    line = _refused(scratch, 2, "report", f"s3://?{NOWHERE}")
    assert "without a bucket" in line


@pytest.mark.parametrize(
    "uri",
    [
        CREDENTIALED,
        f"s3://{KEY}:{SECRET}@bucket/x?{NOWHERE}",
        f"gs://{KEY}:{SECRET}@bucket/x",
        f"s3://bucket/x?{NOWHERE}&secret_key={SECRET}&access_key={KEY}",
    ],
)
def test_report_with_credentials_in_the_uri_is_refused(scratch, uri):
    line = _refused(scratch, 2, "report", uri)
    assert "credentials in the URI" in line and "AWS_ACCESS_KEY_ID" in line


@pytest.mark.parametrize(
    "storage, expect",
    [
        (CREDENTIALED, "credentials in the URI"),
        (f"s3://?{NOWHERE}", "without a bucket"),
        ("ftp://host/x", "unsupported scheme 'ftp://'"),
        (f"ftp://{KEY}:{SECRET}@host/x", "credentials in the URI"),
    ],
)
def test_data_mix_refuses_a_bad_storage_location(scratch, storage, expect):
    line = _refused(scratch, 2, "data", "mix", COCKTAIL, "--storage", storage, "--train-size", "4")
    assert expect in line


def test_data_mix_file_uri_writes_to_that_path(scratch):
    r = _cli(
        scratch, "data", "mix", COCKTAIL, "--storage", f"file://{scratch}/out", "--train-size", "4"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((scratch / "out" / "cocktails").glob("*/train.parquet"))
    assert not (scratch / "file:").exists()


def test_a_planted_mirror_mark_is_ignored(scratch):
    """A `.raysys-remote` in a parent of a local storage path (a world-writable /tmp)
    once sent every run under it to the bucket it named; the run stays local."""
    planted = scratch / "shared"
    planted.mkdir()
    (planted / ".raysys-remote").write_text(f"s3://evil-bucket/loot?{NOWHERE}")
    r = _cli(
        scratch, "data", "mix", COCKTAIL, "--storage", str(planted / "runs"), "--train-size", "4"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "evil-bucket" not in r.stdout + r.stderr
    assert f"Outputs: {planted / 'runs' / 'cocktails'}" in r.stdout
    assert list((planted / "runs" / "cocktails").glob("*/train.parquet"))


def test_a_mark_inside_the_cache_that_does_not_match_its_folder_is_ignored(tmp_path, monkeypatch):
    import raysys.storage as st

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    root = st.local_root("s3://bucket/runs")
    assert st.remote_of(root / "a") == "s3://bucket/runs/a"
    forged = st.mirrors_dir() / "0123456789abcdef"  # not the hash of the URI it names
    forged.mkdir()
    (forged / st.MIRROR_MARK).write_text("s3://evil-bucket/loot")
    assert st.remote_of(forged / "a") is None
    assert st.remote_of(tmp_path / "elsewhere") is None


# Refused today by runs.check_job_storage and storage.probe; the config validators give
# the same refusal before any job starts (and stop `raysys validate` from printing it).
_CONFIG_CASES = [
    ("train", "configs/train_sft.yaml", f"run.storage_path={CREDENTIALED}"),
    ("train", "configs/train_sft.yaml", f"train.checkpoint_storage={CREDENTIALED}"),
    ("train", "configs/train_sft.yaml", f"train.checkpoint_storage=s3://?{NOWHERE}"),
    ("sweep", "configs/sweep_tiny.yaml", f"run.storage_path={CREDENTIALED}"),
    ("sweep", "configs/sweep_tiny.yaml", f"train.checkpoint_storage={CREDENTIALED}"),
    ("validate", "configs/train_sft.yaml", f"run.storage_path={CREDENTIALED}"),
]


@pytest.mark.parametrize("command, config, override", _CONFIG_CASES)
def test_configs_with_credentials_or_no_bucket_are_refused(scratch, command, config, override):
    args = [command, str(REPO / config), override, "model.source=tiny-random"]
    if command == "validate":
        args = ["validate", "--kind", "train", str(REPO / config), override]
    line = _refused(scratch, 2, *args)
    field = override.split("=", 1)[0]
    assert line.startswith(f"raysys: error: {field}: ") or f" {field}: " in line
