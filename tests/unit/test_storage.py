"""Storage (`raysys.storage`): local roots and object-store mirrors, which paths stand for
a URI (only marks raysys wrote in its own cache), push/pull of a mirror against a real
S3-compatible server (moto's server mode on 127.0.0.1, started once for this module),
fetching for workers, the probe, and how storage errors are told apart and shown."""

from __future__ import annotations

import errno
import hashlib
import shutil
from pathlib import Path

import pytest

from raysys import storage
from raysys.errors import UserError
from raysys.storage import SyncError
from tests.fixtures import moto_s3

BUCKET = "raysys-unit"


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3(BUCKET) as where:
        yield where


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("RAYSYS_CACHE", str(d))
    return d


def _uri(endpoint: str, path: str, bucket: str = BUCKET) -> str:
    return f"s3://{bucket}/{path}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def _keys(endpoint: str, prefix: str) -> list[str]:
    from pyarrow import fs

    s3 = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    infos = s3.get_file_info(fs.FileSelector(f"{BUCKET}/{prefix}", recursive=True))
    return sorted(
        i.path.split(f"{BUCKET}/{prefix}/", 1)[1] for i in infos if i.type == fs.FileType.File
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


# --------------------------------------------------------------------------- local roots


def test_local_roots_are_the_path_itself(tmp_path, cache):
    assert storage.local_root(str(tmp_path / "runs")) == tmp_path / "runs"
    assert storage.local_root(f"file://{tmp_path}/runs") == tmp_path / "runs"
    assert storage.local_root("~/x") == Path("~/x").expanduser().resolve()
    assert not cache.exists()  # no mirror for local storage


def test_an_object_store_gets_one_marked_mirror_in_the_cache(cache):
    uri = "s3://bucket/runs?endpoint_override=h:9000&scheme=http"
    root = storage.local_root(uri + "/")  # a trailing slash names the same store
    assert root == cache.resolve() / "mirrors" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    assert (root / ".raysys-remote").read_text() == uri
    assert storage.local_root(uri) == root
    assert storage.local_root("gs://other/runs") != root


def test_a_location_with_credentials_is_refused_before_a_mirror_is_made(cache):
    with pytest.raises(UserError, match=r"--storage: credentials in the URI \(user info"):
        storage.local_root("s3://KEY:SECRET@bucket/runs", field="--storage")
    with pytest.raises(UserError, match=r"run.storage_path: s3:// URI without a bucket"):
        storage.local_root("s3://?endpoint_override=h:1")
    assert not cache.exists()


# --------------------------------------------------------------------------- remote_of


def test_paths_inside_a_mirror_stand_for_their_uri(tmp_path, cache):
    uri = "s3://bucket/runs?region=x"
    root = storage.local_root(uri)
    assert storage.remote_of(root) == uri
    assert (
        storage.remote_of(root / "exp" / "r1" / "a.csv") == "s3://bucket/runs/exp/r1/a.csv?region=x"
    )
    assert storage.remote_of(cache / "mirrors") is None
    assert storage.remote_of(tmp_path / "elsewhere") is None
    assert storage.shown(root / "exp" / "r1") == "s3://bucket/runs/exp/r1"
    assert storage.shown(tmp_path / "x") == str(tmp_path / "x")


def test_marks_raysys_did_not_write_are_ignored(tmp_path, cache):
    # planted in a parent of a local path (a world-writable /tmp): not ours
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".raysys-remote").write_text("s3://attacker/loot")
    assert storage.remote_of(tmp_path / "shared" / "run") is None
    # inside the cache, but the URI is not the one the mirror is named after
    fake = cache / "mirrors" / "0123456789abcdef"
    fake.mkdir(parents=True)
    (fake / ".raysys-remote").write_text("s3://attacker/loot")
    assert storage.remote_of(fake / "run") is None
    # inside a real mirror, but below its root: only the root's mark counts
    root = storage.local_root("s3://bucket/runs")
    (root / "exp").mkdir()
    (root / "exp" / ".raysys-remote").write_text("s3://attacker/loot")
    assert storage.remote_of(root / "exp" / "r1") == "s3://bucket/runs/exp/r1"


def test_workers_get_uris_for_mirrored_paths_and_plain_paths_otherwise(tmp_path, cache):
    assert storage.for_workers(None) is None
    assert storage.for_workers("s3://bucket/data.parquet") == "s3://bucket/data.parquet"
    assert storage.for_workers(tmp_path / "data.parquet") == str(tmp_path / "data.parquet")


# --------------------------------------------------------------------------- push / pull


def test_push_sends_what_changed_and_pull_brings_it_back(endpoint, cache, tmp_path):
    uri = _uri(endpoint, "push")
    run = storage.local_root(uri) / "exp" / "r1"
    _write(
        run,
        {
            "config.yaml": "a: 1",
            "train/metrics.json": "{}",
            "train/stage.json": "{}",
            "train/.metrics.json.tmp-123": "half",  # an atomic write's temp file
            "tune/experiment_state.json": "{}",
            "train/ray_train/checkpoint_000001/x.bin": "ckpt",
        },
    )
    assert storage.push(run) == 5
    assert _keys(endpoint, "push/exp/r1") == [
        "config.yaml",
        "train/metrics.json",
        "train/ray_train/checkpoint_000001/x.bin",
        "train/stage.json",
        "tune/experiment_state.json",
    ]
    assert storage.push(run) == 0  # nothing changed
    (run / "config.yaml").write_text("a: 22")
    assert storage.push(run / "config.yaml") == 1  # one file on its own
    assert storage.push(run) == 0

    other = tmp_path / "other-machine"
    fetched = storage.pull(storage.join_uri(uri, "exp", "r1"), other, exclude=("tune/*",))
    assert fetched == 3  # Tune's state and Ray Train's checkpoints stay in the store
    files = [p for p in other.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert sorted(str(p.relative_to(other)) for p in files) == [  # not the sync ledger
        "config.yaml",
        "train/metrics.json",
        "train/stage.json",
    ]
    assert (other / "config.yaml").read_text() == "a: 22"
    assert storage.pull(storage.join_uri(uri, "exp", "r1"), other) == 1  # now tune/ too
    assert storage.pull(storage.join_uri(uri, "exp", "r1"), other) == 0


def test_a_file_is_hashed_again_only_when_its_stat_changed(endpoint, cache, monkeypatch):
    """push reads a file it sent before only when its local stat (size, mtime, ctime,
    inode) changed since it was hashed: big adapters are not read at every push. A file
    changed within 2 s of a sync is read every time (it might change once more within
    the same timestamp tick, its stat unchanged)."""
    import time

    run = storage.local_root(_uri(endpoint, "hash-cache")) / "r1"
    _write(run, {"adapter.bin": "w" * 1000})
    reads: list[str] = []

    def spy(f, *args, **kwargs):
        reads.append(Path(f).name)
        return open(f, *args, **kwargs)

    monkeypatch.setattr(storage, "open", spy, raising=False)  # the module's own open()
    assert storage.push(run) == 1 and len(reads) == 1  # read as it went up
    assert storage.push(run) == 0 and len(reads) == 2  # just written: read again
    monkeypatch.setattr(storage, "_RACY_NS", 0)  # as if written long ago
    time.sleep(0.05)
    assert storage.push(run) == 0 and len(reads) == 3  # its stat is kept this time
    assert storage.push(run) == 0 and len(reads) == 3  # not read
    (run / "adapter.bin").touch()
    assert storage.push(run) == 0 and reads == ["adapter.bin"] * 4  # read: the same bytes


def test_push_is_a_no_op_outside_a_mirror(tmp_path, cache):
    _write(tmp_path / "run", {"a.txt": "x"})
    assert storage.push(tmp_path / "run") == 0


def test_a_mirrored_path_is_pushed_before_workers_get_its_uri(endpoint, cache):
    uri = _uri(endpoint, "workers")
    data = storage.local_root(uri) / "data" / "train.parquet"
    _write(data.parent, {"train.parquet": "rows"})
    assert storage.for_workers(data) == storage.join_uri(uri, "data", "train.parquet")
    assert _keys(endpoint, "workers") == ["data/train.parquet"]


def test_exists_and_subfolders_read_the_store(endpoint, cache):
    uri = _uri(endpoint, "listing")
    _write(storage.local_root(uri), {"exp/r1/config.yaml": "x", "exp/r2/tune/s.json": "y"})
    storage.push(storage.local_root(uri))
    assert storage.subfolders(storage.join_uri(uri, "exp")) == ["r1", "r2"]
    assert storage.subfolders(storage.join_uri(uri, "nothing")) == []
    assert storage.exists(storage.join_uri(uri, "exp", "r2", "tune"))  # a folder, by its objects
    assert storage.exists(storage.join_uri(uri, "exp", "r1", "config.yaml"))
    assert not storage.exists(storage.join_uri(uri, "exp", "r1", "tune"))


def test_a_listing_reads_nothing_and_names_pruned_folders_once(endpoint, cache, tmp_path):
    files = {
        "grid.json": "[1]",
        "trials/t/result.json": "{}",
        "trials/t/train/ray_train/checkpoint_000001/a.bin": "ckpt",
        "trials/t/train/ray_train/checkpoint_000002/b.bin": "ckpt",
        "trials/t/.result.json.tmp-7": "half",  # an atomic write's temp file
    }
    local = tmp_path / "run"
    _write(local, files)
    uri = _uri(endpoint, "status-listing")
    _write(storage.local_root(uri), files)
    storage.push(storage.local_root(uri))
    shutil.rmtree(storage.local_root(uri))  # read in the store, not in a mirror
    want = ["grid.json", "trials/t/result.json", "trials/t/train/ray_train/"]
    assert sorted(storage.listing(str(local), ("ray_train",))) == want
    assert sorted(storage.listing(uri, ("ray_train",))) == want
    assert len(storage.listing(uri)) == 4
    assert storage.listing(_uri(endpoint, "nothing-here")) == {}
    for where in (str(local), uri):
        assert storage.read_bytes(storage.join_uri(where, "grid.json")) == b"[1]"
        assert storage.read_bytes(storage.join_uri(where, "gone.json")) is None


def test_a_store_that_refuses_the_upload_is_a_sync_error(endpoint, cache):
    run = storage.local_root(_uri(endpoint, "x", bucket="no-such-bucket"))
    _write(run, {"a.txt": "x"})
    with pytest.raises(SyncError, match=r"uploading .* to s3://no-such-bucket/x failed") as e:
        storage.push(run)
    assert e.value.exit_code == 1
    assert "endpoint_override" not in str(e.value)  # the URI as users see it


def test_localize_fetches_once_into_the_cache(endpoint, cache, tmp_path):
    assert storage.localize(str(tmp_path / "a")) == str(tmp_path / "a")  # local: unchanged
    uri = _uri(endpoint, "adapters")
    _write(storage.local_root(uri), {"sft/adapter_config.json": "{}", "sft/w.bin": "w"})
    storage.push(storage.local_root(uri))
    got = Path(storage.localize(storage.join_uri(uri, "sft")))
    assert got.name == "sft" and got.is_relative_to(cache.resolve() / "fetched")
    assert sorted(p.name for p in got.iterdir()) == ["adapter_config.json", "w.bin"]
    assert storage.localize(storage.join_uri(uri, "sft")) == str(got)  # cached
    one = Path(storage.localize(storage.join_uri(uri, "sft", "w.bin")))
    assert one.read_text() == "w"
    with pytest.raises(UserError, match=r"train.init_adapter: nothing at s3://raysys-unit/none"):
        storage.localize(storage.join_uri(uri.replace("adapters", "none")), "train.init_adapter")


def test_probe_writes_reads_and_deletes_one_object(endpoint):
    uri = _uri(endpoint, "probe")
    storage.probe(uri, "run.storage_path")
    assert _keys(endpoint, "probe") == []  # the probe object is gone
    with pytest.raises(UserError, match=r"train.checkpoint_storage: cannot write to s3://gone/p"):
        storage.probe(_uri(endpoint, "p", bucket="gone"), "train.checkpoint_storage")
    with pytest.raises(UserError, match=r"f: credentials in the URI"):
        storage.probe("s3://bucket/x?secret_key=abc", "f")


def test_local_locations_are_not_probed(tmp_path):
    storage.probe(str(tmp_path / "never-made"), "f")
    storage.probe(f"file://{tmp_path}/never-made", "f")
    assert not (tmp_path / "never-made").exists()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError("no"), True),
        (OSError(errno.EACCES, "denied"), True),
        (OSError(errno.EROFS, "read-only"), True),
        (OSError(errno.ENOSPC, "full"), True),
        (OSError(errno.EDQUOT, "quota"), True),
        (OSError(errno.ENOENT, "missing"), False),
        (OSError("no errno"), False),
        (ValueError("not storage"), False),
    ],
)
def test_storage_errors_are_told_by_their_errno(exc, expected):
    assert storage.is_storage_error(exc) is expected


def test_one_line_redacts_and_shortens():
    e = OSError("failed\n  on s3://KEY:SECRET@bucket/x?secret_key=abc\n")
    assert storage.one_line(e) == "failed on s3://***@bucket/x?secret_key=***"
    assert storage.one_line(RuntimeError()) == "RuntimeError"
    assert len(storage.one_line(RuntimeError("x" * 1000))) == 300


def test_localize_takes_a_file_uri_to_its_path(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert storage.localize(f"file://{tmp_path}/a.txt") == f"{tmp_path}/a.txt"
