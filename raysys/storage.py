"""Storage: object-store URIs (`run.storage_path`, `train.checkpoint_storage`), the local
mirror of a run directory kept in an object store, and telling a storage failure (full,
read-only, no permission) from other errors.

A URI is what pyarrow's `FileSystem.from_uri` takes, so S3-compatible stores (MinIO,
Ceph, moto) work through its query options, e.g.
`s3://bucket/ckpt?endpoint_override=10.0.0.5:9000&scheme=http`. Credentials never go
in a URI (`s3://KEY:SECRET@...` is refused: URIs reach logs, stored configs and job
uploads); every node takes them from its environment (`AWS_*`,
`GOOGLE_APPLICATION_CREDENTIALS`), an instance role / workload identity, or a Kubernetes
Secret on KubeRay. Every URI shown to a user or written to disk passes `redact`. `probe`
proves, before any work starts, that the store answers and takes a write: an
unreachable endpoint or a missing bucket is a
one-line error, not a training run that dies at its first checkpoint.

Run directories in an object store (`run.storage_path=s3://...` or `gs://...`): every
job works in a local mirror `$RAYSYS_CACHE/mirrors/<hash of the URI>/` (its root holds
the URI in `.raysys-remote`; a mark anywhere else is not ours and is ignored), so the
code that writes outputs stays plain file code.
What is written there reaches the store by `push` (each finished stage, each finished
sweep trial, the end of every command), and `pull` brings a run back (`--resume`, a
re-run of the same run id) on any machine. Markers (`stage.json`, `result.json`) go
up last, so a marker in the store means the files it vouches for are there. Paths that
Ray workers read on other nodes (training data, adapters) are handed to them as URIs
(`for_workers`) and fetched once per node into the cache (`localize`).

Neither sync compares a local clock with the store's (a node whose clock is off would
skip changed files or resend unchanged ones). A mirror's root keeps a ledger
(`.raysys-sync.json`): for each file, the sha256 of its content at its last sync and the
store's version of it then (size and LastModified, the store's own clock, compared only
with itself; pyarrow lists no ETag or version id). `push` sends a file the store lacks,
one with no ledger entry, or one whose content changed here since its last sync; a file
unchanged here stays home even when another writer replaced the object. `pull` fetches
a file missing here, one with no ledger entry, or one whose object changed in the store
while it stayed unchanged here; local edits not yet pushed are kept. Hashes are cached
per file by its local stat (size, mtime, ctime, inode: the local clock against itself).
Limit: an object rewritten with the same size within the same second (S3's LastModified
resolution) reads as the same version.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from raysys.errors import UserError
from raysys.uris import (  # noqa: F401 - the storage layer's public names
    LOCATION_SCHEMES,
    REMOTE_SCHEMES,
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

log = logging.getLogger(__name__)

PROBE_SECONDS = 20.0  # an endpoint that has not answered by then is unreachable
MIRROR_MARK = ".raysys-remote"  # in a mirror's root: the URI it mirrors
MARKERS = ("stage.json", "result.json")  # uploaded after the files they vouch for
LEDGER = ".raysys-sync.json"  # in a mirror's root: each file's content and version at its last sync
# A file changed this close to the moment it is hashed may change again within the same
# timestamp tick, its stat unchanged: its hash is not cached (git's "racily clean" files).
_RACY_NS = 2_000_000_000


def filesystem(uri: str, field: str = "storage URI") -> tuple[Any, str]:
    """pyarrow's filesystem for `uri`, refused first when the URI carries credentials or
    lacks a bucket (pyarrow would take `KEY:SECRET@`, and list every bucket without one)."""
    import pyarrow.fs

    check_location(uri, field)
    return pyarrow.fs.FileSystem.from_uri(uri)


def probe(uri: str, field: str, timeout: float | None = None) -> None:
    """Write, read back and delete a small object under `uri`, within `timeout` seconds."""
    timeout = PROBE_SECONDS if timeout is None else timeout
    check_location(uri, field)
    if "://" not in uri or uri.lower().startswith("file://"):
        return
    outcome: dict[str, BaseException | None] = {}

    def attempt() -> None:
        try:
            fs, root = filesystem(uri)
            fs.create_dir(root, recursive=True)
            path = f"{root.rstrip('/')}/.raysys-probe-{uuid.uuid4().hex[:8]}"
            with fs.open_output_stream(path) as f:  # atomic: a throwaway probe object
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
            f"{field}: {redact(uri)} did not answer within {timeout:g} s (unreachable "
            f"endpoint?); {hint}"
        )
    err = outcome["error"]
    if err is not None:
        raise UserError(f"{field}: cannot write to {redact(uri)} ({one_line(err)}); {hint}")


_STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def is_storage_error(e: BaseException) -> bool:
    """The storage refused a write (permissions, read-only, full): pyarrow and the OS
    raise these as OSError subclasses with the errno set."""
    return isinstance(e, OSError) and (e.errno in _STORAGE_ERRNOS or isinstance(e, PermissionError))


def one_line(e: BaseException) -> str:
    """An exception as one short line, URIs redacted (pyarrow quotes the whole URI it
    could not parse, user info included)."""
    text = redact(" ".join(str(e).split()))
    return text[:300] if text else type(e).__name__


# --------------------------------------------------------------------------- mirrors


class SyncError(UserError):
    """The object store refused an upload or a download mid-run."""

    exit_code = 1


def local_root(storage_path: str, field: str = "run.storage_path") -> Path:
    """Where a job writes under `storage_path`: the path itself (`file:///x` is /x), or
    for an object-store URI its local mirror (created, and marked with the URI, on first
    use). A location `location_problem` refuses is a `UserError` before anything is
    written (`field` names it)."""
    check_location(storage_path, field)
    if storage_path[:7].lower() == "file://":
        storage_path = storage_path[7:]
    if not is_remote(storage_path):
        return Path(storage_path).expanduser().resolve()
    from raysys.io import write_text

    uri = storage_path.rstrip("/")
    root = mirrors_dir() / _mirror_name(uri)
    if not (root / MIRROR_MARK).is_file():
        write_text(root / MIRROR_MARK, redact(uri))
    return root


def mirrors_dir() -> Path:
    """The only folder whose marks raysys honours: its own cache's mirrors."""
    from raysys.models import cache_dir

    return cache_dir().resolve() / "mirrors"


def _mirror_name(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def remote_of(path: str | Path) -> str | None:
    """The URI that a path inside a mirror stands for (None: a path of its own).

    Only a mark at the root of a mirror in raysys's cache counts, and only when it holds
    the URI the mirror is named after and belongs to this user: a `.raysys-remote`
    planted in a parent of a local path (a world-writable /tmp) must not send its
    outputs to someone else's bucket."""
    found = _mirror_of(path)
    if found is None:
        return None
    root, uri = found
    return join_uri(uri, *Path(path).resolve().relative_to(root).parts)


def _mirror_of(path: str | Path) -> tuple[Path, str] | None:
    """The root of the mirror holding `path` and the URI it mirrors (see `remote_of`)."""
    path, mirrors = Path(path).resolve(), mirrors_dir()
    if not path.is_relative_to(mirrors) or path == mirrors:
        return None
    name = path.relative_to(mirrors).parts[0]
    mark = mirrors / name / MIRROR_MARK
    if not mark.is_file():
        return None
    uri = mark.read_text().strip()
    if _mirror_name(uri) != name or (hasattr(os, "getuid") and mark.stat().st_uid != os.getuid()):
        log.warning("ignoring %s: not a mark raysys wrote", mark)
        return None
    return mirrors / name, uri


def mirror_location(path: str | Path) -> tuple[str, str] | None:
    """Where a mirrored path is for a process on another node: (the URI its mirror
    mirrors, the path under the mirror's root); None for a path of its own. That node
    opens the same path in its own mirror with `in_local_mirror`."""
    found = _mirror_of(path)
    if found is None:
        return None
    root, uri = found
    return uri, Path(path).resolve().relative_to(root).as_posix()


def in_local_mirror(location: tuple[str, str]) -> Path:
    """This node's copy of a `mirror_location`: the same layout under this node's mirror
    of the same URI (created empty; what is needed is pulled by the caller), so paths
    derived from it (Ray Train run names, URIs) are the same on every node."""
    uri, rel = location
    return local_root(uri) / rel


def shown(path: str | Path) -> str:
    """How a path is named to users: its URI when it is mirrored (without the query)."""
    uri = remote_of(path)
    return bare(uri) if uri else redact(str(path))


def for_workers(path: str | Path | None) -> str | None:
    """What to hand a Ray worker that may run on another node: the URI of a mirrored
    path, sent to the store first if it changed (the worker fetches it with `localize`),
    else the path (or URI) unchanged."""
    if path is None or is_remote(path):
        return None if path is None else str(path)
    uri = remote_of(path)
    if uri is None:
        return str(path)
    push(path)  # e.g. a stage's own training data, written just before its workers start
    return uri


def _skipped(name: str) -> bool:
    # mirror marks, write probes and the temp files of atomic writes (".<name>.tmp-<pid>")
    return name.startswith(".")


def _remote_files(fs: Any, root: str) -> dict[str, Any]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) :].lstrip("/"): i for i in infos if i.type == pafs.FileType.File}


def _mtime(info: Any) -> float:
    return info.mtime.timestamp() if info.mtime is not None else 0.0


def _version(info: Any) -> list[Any]:
    """An object's version as the store tells it: its size and LastModified, in whole
    seconds (S3 lists and heads objects at that resolution; MinIO lists milliseconds but
    heads seconds). Only ever compared with an earlier version of the same object."""
    ns = info.mtime_ns
    return [info.size, None if ns is None else ns // 1_000_000_000]


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class _Ledger:
    """What each file of a synced folder was at its last sync (`LEDGER` in `home`, keys
    relative to it): {"sha256": content, "store": `_version` of the object, "stat": the
    local stat the hash was taken at (None: not to be trusted)}. Read once; `save` merges
    what this sync learned into what is on disk then, under a file lock, so processes
    that sync the same mirror at once (the driver, sweep trials) keep each other's
    entries."""

    def __init__(self, home: Path, prefix: str = "") -> None:
        self.home, self.prefix = home, prefix
        self.entries = self._read()
        self.updates: dict[str, dict[str, Any]] = {}
        self._since: int | None = None

    @classmethod
    def of(cls, local: Path, uri: str) -> _Ledger:
        """The ledger of `local`, synced with `uri`: its mirror's when `local` is the
        mirror's copy of `uri`, else one in `local` itself."""
        found = _mirror_of(local)
        if found is not None:
            root, mirrored = found
            parts = local.resolve().relative_to(root).parts
            if join_uri(bare(mirrored), *parts) == bare(uri).rstrip("/"):
                return cls(root, "/".join(parts))
        return cls(local)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.home / LEDGER).read_text())
            files = data["files"]
            if isinstance(files, dict):
                return files
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        log.warning("ignoring %s: unreadable (every file counts as unsynced)", self.home / LEDGER)
        return {}

    def _key(self, rel: str) -> str:
        return "/".join(p for p in (self.prefix, rel) if p)

    def get(self, rel: str) -> dict[str, Any] | None:
        key = self._key(rel)
        return self.updates.get(key) or self.entries.get(key)

    def since(self) -> int:
        """The filesystem's time before this sync read any file (a file touched here
        reads it; the local clock is never set against the store's)."""
        if self._since is None:
            mark = self.home / (LEDGER + ".lock")
            mark.touch()
            self._since = mark.stat().st_mtime_ns
        return self._since

    def trusted(self, st: os.stat_result) -> list[int] | None:
        """`st` as a cache key for the hash read after it, unless the file changed so
        recently that it may change again unseen (same size, same timestamp tick)."""
        return _stat_key(st) if st.st_ctime_ns < self.since() - _RACY_NS else None

    def local_hash(self, rel: str, f: Path) -> str:
        """The sha256 of `f`: the ledger's when `f`'s stat is the one it was hashed at."""
        entry = self.get(rel)
        if entry is not None and entry.get("stat") == _stat_key(f.stat()):
            return entry["sha256"]
        self.since()
        digest = hashlib.sha256()
        with open(f, "rb") as src:
            st = os.fstat(src.fileno())
            while chunk := src.read(8 << 20):
                digest.update(chunk)
        sha = digest.hexdigest()
        if entry is not None and entry["sha256"] == sha and (key := self.trusted(st)):
            self.updates[self._key(rel)] = {**entry, "stat": key}  # unchanged: not hashed again
        return sha

    def record(self, rel: str, sha: str, version: list[Any], st: os.stat_result | None) -> None:
        """`rel` is in sync: its content `sha` is the object's `version` in the store."""
        key = None if st is None else self.trusted(st)
        self.updates[self._key(rel)] = {"sha256": sha, "store": version, "stat": key}

    def save(self) -> None:
        if not self.updates:
            return
        from filelock import FileLock

        from raysys.io import write_text

        self.home.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.home / (LEDGER + ".lock"))):
            entries = self._read() | self.updates  # what others wrote since, then ours
            text = json.dumps({"version": 1, "files": entries}, sort_keys=True)
            write_text(self.home / LEDGER, text)
        self.entries, self.updates = entries, {}


def push(path: str | Path) -> int:
    """Upload what changed under a mirrored `path` (a no-op for other paths); markers
    last. A file goes up when the store lacks it, the ledger has no record of it, or its
    content changed here since its last sync; one unchanged here is not sent over a
    newer object another writer put there. No clock is read. Returns the number of
    files uploaded."""
    uri = remote_of(path)
    if uri is None:
        return 0
    import pyarrow.fs as pafs

    local = Path(path)
    try:
        fs, root = filesystem(uri)
        root = root.rstrip("/")
        if local.is_file():
            files = {"": local}
            remote = {}
            info = fs.get_file_info(root)
            if info.type == pafs.FileType.File:
                remote[""] = info
        else:
            files = {
                f.relative_to(local).as_posix(): f
                for f in sorted(local.rglob("*"))
                if f.is_file() and not any(_skipped(p) for p in f.relative_to(local).parts)
            }
            remote = _remote_files(fs, root)
        ledger = _Ledger.of(local, uri)
        todo = [rel for rel, f in files.items() if _to_push(ledger, rel, f, remote.get(rel))]
        todo.sort(key=lambda rel: files[rel].name in MARKERS)
        try:
            for rel in todo:
                dst = f"{root}/{rel}" if rel else root
                sha, st = _upload(ledger, files[rel], fs, dst)
                ledger.record(rel, sha, _version(fs.get_file_info(dst)), st)
        finally:
            ledger.save()  # what went up stays known even when a later upload failed
    except OSError as e:
        raise SyncError(
            f"run.storage_path: uploading {local} to {bare(uri)} failed "
            f"({one_line(e)}); the outputs are kept in {local}; run the same command again "
            "once the store answers (finished stages are not redone)"
        ) from None
    if todo:
        log.debug("pushed %d file(s) to %s", len(todo), bare(uri))
    return len(todo)


def _to_push(ledger: _Ledger, rel: str, f: Path, have: Any) -> bool:
    entry = ledger.get(rel)
    if have is None or entry is None:
        return True
    if ledger.local_hash(rel, f) != entry["sha256"]:
        return True  # changed here since its last sync
    if _version(have) != entry["store"]:
        log.debug("not sending %s: unchanged here, and replaced in the store since", f)
    return False


def _upload(ledger: _Ledger, src: Path, fs: Any, dst: str) -> tuple[str, os.stat_result]:
    """One file to the object `dst`; the sha256 of what was sent, and the file's stat
    taken before it was read."""
    ledger.since()
    digest = hashlib.sha256()
    # atomic: an object store shows an object only once its upload completes
    with open(src, "rb") as f, fs.open_output_stream(dst) as out:
        st = os.fstat(f.fileno())
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), st


def pull(uri: str, local: Path, exclude: tuple[str, ...] = ()) -> int:
    """Download from the folder `uri` what `local` lacks, has no ledger record of, or
    holds unchanged since its last sync while the store's object changed since; local
    changes not pushed yet are kept. No clock is read. Left out: paths matching an
    `exclude` pattern (fnmatch), and Ray Train's checkpoint folders (`ray_train/`: Ray
    Train reads them from the store itself). Returns the number of files fetched."""
    try:
        fs, root = filesystem(uri)
        root = root.rstrip("/")
        ledger = _Ledger.of(local, uri)
        fetched = 0
        try:
            for rel, info in sorted(_remote_files(fs, root).items()):
                parts = rel.split("/")
                if any(fnmatch.fnmatch(rel, pat) for pat in exclude) or "ray_train" in parts[:-1]:
                    continue
                if any(_skipped(p) for p in parts):
                    continue
                dst = local / rel
                if not _to_pull(ledger, rel, dst, info):
                    continue
                tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
                sha = _download(fs, info, tmp)
                os.replace(tmp, dst)
                ledger.record(rel, sha, _version(info), None)  # just written: hashed again
                fetched += 1
        finally:
            ledger.save()
    except OSError as e:
        raise SyncError(
            f"run.storage_path: downloading {bare(uri)} failed ({one_line(e)}); "
            "check the store and run the same command again"
        ) from None
    if fetched:
        log.info("fetched %d file(s) of %s", fetched, bare(uri))
    return fetched


def _to_pull(ledger: _Ledger, rel: str, dst: Path, info: Any) -> bool:
    entry = ledger.get(rel)
    if entry is None or not dst.is_file():
        return True
    if _version(info) == entry["store"]:
        return False  # the object synced last (a change here, if any, goes up with push)
    if ledger.local_hash(rel, dst) != entry["sha256"]:
        log.debug("keeping %s: changed here since its last sync (not pushed yet)", dst)
        return False
    return True


def _download(fs: Any, info: Any, dst: Path) -> str:
    """One object to a local file; the sha256 of what came. The file takes the object's
    time as its mtime, for display only (`raysys status` on a mirror shows the order
    things were written in the store): no sync decision reads it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with fs.open_input_stream(info.path) as src, open(dst, "wb") as out:  # atomic: callers
        while chunk := src.read(8 << 20):  # write a temp name and rename it
            digest.update(chunk)
            out.write(chunk)
    stamp = _mtime(info)
    if stamp:
        os.utime(dst, (stamp, stamp))
    return digest.hexdigest()


def exists(uri: str) -> bool:
    """A file or folder at `uri` or local path (an object-store folder exists when it
    holds anything)."""
    import pyarrow.fs as pafs

    if not is_remote(uri):
        return Path(uri).exists()
    fs, root = filesystem(uri)
    info = fs.get_file_info(root.rstrip("/"))
    if info.type == pafs.FileType.File:
        return True
    return bool(_remote_files(fs, root.rstrip("/")))  # object-store folders exist by their objects


def listing(
    location: str, prune: tuple[str, ...] = (), field: str = "location"
) -> dict[str, tuple[int, float]]:
    """Every file under a local folder or an object-store prefix, without fetching any:
    relative path -> (size, mtime). A folder named in `prune` is one entry, `<path>/`
    with its latest change (not walked locally; an object store lists it anyway), so a
    job that only writes there (checkpoints, shards) is still seen at work. Dotfiles
    (temp files of atomic writes, marks) are left out. Empty when nothing is there."""
    if not is_remote(location):
        return _local_listing(local_root(location, field=field), set(prune))
    try:
        fs, root = filesystem(location, field)
        infos = _remote_files(fs, root.rstrip("/"))
    except OSError as e:
        raise SyncError(f"cannot list {bare(location)} ({one_line(e)})") from None
    out: dict[str, tuple[int, float]] = {}
    for rel, info in infos.items():
        parts = rel.split("/")
        if any(_skipped(p) for p in parts):
            continue
        cut = next((i for i, p in enumerate(parts[:-1]) if p in prune), None)
        if cut is None:
            out[rel] = (info.size, _mtime(info))
        else:
            key = "/".join(parts[: cut + 1]) + "/"
            out[key] = (0, max(out.get(key, (0, 0.0))[1], _mtime(info)))
    return out


def _local_listing(root: Path, prune: set[str]) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        for name in dirs:
            if name in prune and not _skipped(name) and (st := _stat(here / name)):
                out[(here / name).relative_to(root).as_posix() + "/"] = (0, st.st_mtime)
        dirs[:] = [d for d in dirs if d not in prune and not _skipped(d)]
        for name in files:
            if not _skipped(name) and (st := _stat(here / name)):
                out[(here / name).relative_to(root).as_posix()] = (st.st_size, st.st_mtime)
    return out


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:  # replaced or removed while a running job was walked
        return None


def read_bytes(location: str, field: str = "location") -> bytes | None:
    """A local file's or an object's bytes; None when it is gone (a running job replaces
    files)."""
    if not is_remote(location):
        try:
            return local_root(location, field=field).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
    try:
        fs, path = filesystem(location, field)
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SyncError(f"cannot read {bare(location)} ({one_line(e)})") from None


def subfolders(uri: str) -> list[str]:
    """Names of the folders directly under `uri` (none when it does not exist)."""
    import pyarrow.fs as pafs

    fs, root = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(root.rstrip("/"), allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def localize(path: str, field: str = "path") -> str:
    """A local copy of an object-store file or folder (fetched once per node into the
    cache, keyed by the URI and the objects' sizes and LastModified times); local paths
    unchanged. What Ray workers call on paths that `for_workers` gave them. The key is
    the store's own version of each object (its clock, never compared with this node's):
    pyarrow lists nothing better (an ETag or version id would cost a request per object)."""
    if not is_remote(path):  # file:///abs is /abs (Path would read "file:/abs" as relative)
        return path[len("file://") :] if path.lower().startswith("file://") else path
    import pyarrow.fs as pafs

    from raysys.models import cache_dir

    try:
        fs, root = filesystem(path, field)
        root = root.rstrip("/")
        info = fs.get_file_info(root)
        files = {"": info} if info.type == pafs.FileType.File else _remote_files(fs, root)
    except OSError as e:
        raise SyncError(f"{field}: cannot read {bare(path)} ({one_line(e)})") from None
    if not files:
        raise UserError(
            f"{field}: nothing at {bare(path)}; check the URI (and its "
            "?endpoint_override for S3-compatible stores)"
        )
    stamp = sorted((rel, i.size, _mtime(i)) for rel, i in files.items())
    key = hashlib.sha256(repr((path, stamp)).encode()).hexdigest()[:20]
    name = Path(root).name
    target = cache_dir().resolve() / "fetched" / key / name
    if target.exists():
        return str(target)
    tmp = target.parent / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        for rel, i in files.items():
            _download(fs, i, tmp / rel if rel else tmp)
    except OSError as e:
        raise SyncError(f"{field}: cannot read {bare(path)} ({one_line(e)})") from None
    try:
        os.replace(tmp, target)
    except OSError:  # another worker on this node fetched it first
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return str(target)
