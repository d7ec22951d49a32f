"""Run directories shared by every job: `<storage_path>/<run.name>/<run_id>/`.

A run directory holds the resolved `config.yaml` and one folder per stage; a
stage is done when its `stage.json` exists, so re-running a run skips it.
Resuming a run with a different config is refused (it would mix stale stages
into new results).

`RunDir` owns where a run lives: stage code reads and writes plain paths under
`RunDir.path` (the directory itself, or for `s3://`/`gs://` storage its local mirror)
and never sends or fetches anything. The run directory sends what changed to its store
after each stage (`stage`), each resumable unit (`keep`: a synthesis shard, a finished
sweep trial) and at the end of a command (`publish`), fetches a run back (`RunDir.of(...,
fetch=True)`) and names paths as users should see them (`shown`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from raysys import console
from raysys.config import dump_config, resolve_run_id
from raysys.errors import UserError
from raysys.io import write_json, write_text

log = logging.getLogger(__name__)


def in_ray_job() -> bool:
    """True in the driver of a `ray job submit` job (Ray sets its job config for it)."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"))


def check_job_storage(storage_path: str, field: str = "run.storage_path") -> None:
    """Where run directories can go, checked before any work (`field` names it in the
    error): no credentials in a URI, a known scheme, a bucket; an object store must answer
    and take a write (probed once per process). Under `ray job submit` the working
    directory is a temporary copy of the upload, deleted with the job: a relative
    run.storage_path would put every output there."""
    from raysys.storage import check_location, is_remote, probe

    check_location(storage_path, field)
    if is_remote(storage_path):
        if storage_path not in _PROBED:
            probe(storage_path, field)
            _PROBED.add(storage_path)
        return
    if in_ray_job() and "://" not in storage_path and not Path(storage_path).is_absolute():
        raise UserError(
            f"{field}: {storage_path!r} is relative, and this runs under `ray job "
            "submit`, whose working directory is a temporary copy deleted with the job; give "
            "an absolute path on storage every node sees (e.g. /mnt/shared/raysys), or an "
            "s3:// or gs:// URI"
        )


_PROBED: set[str] = set()


def latest_run_id(storage_path: str, name: str, marker: str) -> str | None:
    """The newest run id of `name` (ids are UTC timestamps unless given) whose folder
    holds `marker`; what `--resume` continues when no run id is given. Looks in the
    object store itself for remote storage (the local mirror may be another machine's)."""
    from raysys.storage import exists, is_remote, join_uri, local_root, subfolders

    if is_remote(storage_path):
        base = join_uri(storage_path, name)
        found = [r for r in subfolders(base) if exists(join_uri(base, r, marker))]
    else:
        root = local_root(storage_path) / name
        found = sorted(p.name for p in root.glob("*") if (p / marker).exists())
    return sorted(found)[-1] if found else None


@dataclass(frozen=True)
class RunDir:
    """A run directory: `path` is where code reads and writes; `uri` the object-store
    location it mirrors (None: a local run)."""

    path: Path
    uri: str | None = None

    @classmethod
    def of(cls, storage_path: str, name: str, run_id: str, fetch: bool = False) -> RunDir:
        """The run `name/run_id` under `storage_path`; with `fetch`, what an object store
        holds of it is brought into the mirror first (a resume, maybe on another machine)."""
        from raysys.storage import is_remote, join_uri

        uri = join_uri(storage_path, name, run_id) if is_remote(storage_path) else None
        if fetch:
            return cls(run_root(storage_path, name, run_id), uri)
        return cls(storage_root(storage_path) / name / run_id, uri)

    @classmethod
    def fetched(cls, location: str, field: str = "run directory") -> RunDir:
        """A finished run named by the user: a local path, or an s3:// / gs:// URI whose
        files (not Tune's state) are fetched into its mirror."""
        from raysys.storage import is_remote, local_root, pull

        if not is_remote(location):
            return cls(Path(location))
        path = local_root(location, field=field)
        pull(location, path, exclude=("tune/*",))
        return cls(path, location.rstrip("/"))

    @classmethod
    def at(cls, path: Path | str) -> RunDir:
        """The run directory of a local path (maybe inside a mirror)."""
        from raysys.storage import remote_of

        return cls(Path(path), remote_of(path))

    def __truediv__(self, part: str | Path) -> Path:
        return self.path / part

    def location(self, sub: str = "") -> str:
        """Where `sub` lives for those who read the store (Ray Tune's state, checkpoints):
        its URI in the object store, else the local path."""
        from raysys.storage import join_uri

        if self.uri is None:
            return str(self.path / sub) if sub else str(self.path)
        return join_uri(self.uri, sub) if sub else self.uri

    def exists(self, sub: str = "") -> bool:
        from raysys.storage import exists

        return exists(self.location(sub))

    def shown(self, sub: str | Path | None = None) -> str:
        """How a path of this run is named to users: its URI when mirrored."""
        return shown(self.path / sub if sub is not None else self.path)

    def keep(self, sub: str | Path | None = None) -> None:
        """A resumable unit just written (a shard, a finished trial, a stage): sent to the
        store now, so a run resumed elsewhere finds it. Nothing to do for local runs."""
        from raysys.storage import push

        push(self.path / sub if sub is not None else self.path)

    def gather(self, sub: str, exclude: tuple[str, ...] = ()) -> int:
        """What Ray workers on other nodes wrote under `sub` of an object-store run (they
        send it to the store; nodes share no disk), brought into this mirror, leaving out
        `exclude` (fnmatch patterns under `sub`; Ray Train checkpoints always). Returns
        the number of files fetched; nothing to do for local runs."""
        if self.uri is None:
            return 0
        from raysys.storage import join_uri, pull

        return pull(join_uri(self.uri, sub), self.path / sub, exclude=exclude)

    def publish(self, sub: str | Path | None = None) -> str:
        """`keep`, then the name to print (its URI, or the path)."""
        self.keep(sub)
        return self.shown(sub)

    def job_metadata(self, command: str) -> dict[str, str]:
        """What the Ray job of `command` on this run says about it (`init_ray(metadata=)`):
        the dashboard's job list then tells one study from another."""
        return {
            "raysys_command": command,
            "raysys_run": f"{self.path.parent.name}/{self.path.name}",  # <name>/<run_id>
            "raysys_run_dir": self.shown(),  # the path, or the URI without its options
        }

    def stage(self, sub: str | Path, title: str, fn: Callable[[Path], Any]) -> Any:
        """Run `fn(<run>/<sub>)` once (see `stage`); its files reach the store with it."""
        return stage(self.path / sub, title, fn)


# Folders a status reader never needs (checkpoints, adapters, task rows): not walked.
UNREAD = ("ray_train", "adapter", "tasks", "shards", "plots")
KINDS = ("pipeline", "sweep", "synth", "eval", "train")  # a config's telling section first


@dataclass(frozen=True)
class RunFiles:
    """A run directory as another terminal sees it while a job writes it: its files listed
    once (a local folder or an object store; nothing is fetched or written), the small
    ones read on demand. `cache` keeps what was read of a file until it changes, across
    listings (`raysys status --watch`)."""

    location: str  # a local path or a URI (with its options)
    files: dict[str, tuple[int, float]]  # relative path -> (size, mtime)
    cache: dict[tuple[str, int, float], Any] = dataclasses.field(
        default_factory=dict, compare=False
    )

    @classmethod
    def listed(cls, location: str, field: str = "RUN_DIR", cache: dict | None = None) -> RunFiles:
        from raysys.storage import listing

        files = listing(location, UNREAD, field)
        cache = {} if cache is None else cache
        stamps = {(_joined(location, rel), *st) for rel, st in files.items()}
        for key in [k for k in cache if k not in stamps]:  # changed or gone: read again
            del cache[key]
        return cls(location, files, cache)

    def under(self, prefix: str) -> RunFiles:
        """A folder of this run as a run of its own (a pipeline's sweep)."""
        head = prefix.strip("/") + "/"
        files = {k[len(head) :]: v for k, v in self.files.items() if k.startswith(head)}
        return RunFiles(_joined(self.location, prefix.strip("/")), files, self.cache)

    def has(self, rel: str) -> bool:
        return rel in self.files

    def mtime(self, rel: str) -> float | None:
        return self.files[rel][1] if rel in self.files else None

    def fresh(self, rel: str) -> bool:
        """`rel` exists and was written since this run of its job began (every start and
        resume rewrites config.yaml): not a summary an earlier, resumed run left."""
        written, begun = self.mtime(rel), self.mtime("config.yaml")
        return written is not None and (begun is None or written >= begun)

    def newest(self, prefix: str = "") -> float | None:
        """The latest write under `prefix` (a folder; "" for the whole run)."""
        head = prefix.strip("/") + "/" if prefix else ""
        times = [st[1] for rel, st in self.files.items() if rel.startswith(head)]
        return max(times) if times else None

    def names(self, prefix: str = "") -> list[str]:
        """Names of the files and folders directly under `prefix` (folders by their files)."""
        head = prefix.strip("/") + "/" if prefix else ""
        return sorted({k[len(head) :].split("/")[0] for k in self.files if k.startswith(head)})

    def text(self, rel: str) -> str | None:
        """A file's text (None: not there, or gone since the listing)."""
        if rel not in self.files:
            return None
        key = (_joined(self.location, rel), *self.files[rel])
        if key not in self.cache:
            from raysys.storage import read_bytes

            data = read_bytes(key[0], "RUN_DIR")
            self.cache[key] = None if data is None else data.decode(errors="replace")
        return self.cache[key]

    def json(self, rel: str) -> Any:
        """A JSON file's data (None: not there, or not JSON, as a file being written)."""
        text = self.text(rel)
        try:
            return json.loads(text) if text is not None else None
        except ValueError:
            return None

    def config(self) -> dict[str, Any]:
        """The run's resolved config.yaml as plain data ({} when missing or unreadable)."""
        import yaml

        from raysys.config import load_yaml_text

        try:
            data = load_yaml_text(self.text("config.yaml") or "")
        except yaml.YAMLError:  # not ours after all: the reader does without it
            return {}
        return data if isinstance(data, dict) else {}

    def kind(self) -> str | None:
        """Which job made this run (its config's section: pipeline, sweep, synth, eval,
        train); None when it holds no config.yaml."""
        config = self.config()
        return next((k for k in KINDS if k in config), None)

    def shown(self, rel: str = "") -> str:
        """How a file of this run is named to users: its path, or its URI without options."""
        from raysys.storage import bare, is_remote, redact

        where = _joined(self.location, rel)
        return bare(where) if is_remote(where) else redact(where)


def _joined(location: str, rel: str) -> str:
    from raysys.storage import is_remote, join_uri

    if not rel:
        return location
    return join_uri(location, rel) if is_remote(location) else str(Path(location) / rel)


def storage_root(storage_path: str, field: str = "run.storage_path") -> Path:
    """The local folder of a run storage: the path itself, or an object store's mirror
    (shared caches such as the cocktails live there)."""
    from raysys.storage import local_root

    return local_root(storage_path, field=field)


def shown(path: str | Path) -> str:
    """How a path is named to users: its URI when it is mirrored (without the query)."""
    from raysys.storage import shown as storage_shown

    return storage_shown(path)


def run_root(storage_path: str, name: str, run_id: str) -> Path:
    """The local folder of a run (for object-store storage: in its mirror, with what the
    store holds of it fetched first; Tune's own `tune/` state stays in the store)."""
    from raysys.storage import is_remote, join_uri, local_root, pull

    run_dir = local_root(storage_path) / name / run_id
    if is_remote(storage_path):
        pull(join_uri(storage_path, name, run_id), run_dir, exclude=("tune/*",))
    return run_dir


def open_run(cfg: BaseModel, check: bool = True) -> RunDir:
    """Create (or reopen, if its config matches) the run directory of `cfg` and record
    the config there. `check=False`: a run's config may change between invocations
    (the pipeline keys its stages by config instead)."""
    from raysys.storage import redact

    run = cfg.run  # type: ignore[attr-defined]
    check_job_storage(run.storage_path)
    run_dir = RunDir.of(run.storage_path, run.name, resolve_run_id(cfg), fetch=True)
    if check:
        check_resume(run_dir.path, cfg)
    check_writable(run_dir.path)
    # URIs with credentials are refused by the config; redacted again as the last line
    # before a file that is uploaded with the run and read by whoever reads the bucket.
    write_text(run_dir / "config.yaml", redact(dump_config(cfg)))
    run_dir.keep("config.yaml")
    log.info("run directory: %s", run_dir.shown())
    console.attach_run(run_dir.path)
    return run_dir


def open_run_with_tasks(cfg: BaseModel, needs: list[Any]) -> RunDir:
    """A job's run directory with its tasks' rows in `<run>/tasks`: the rows are read and
    checked first (a bad file is refused before anything is written), then the run is
    opened and they are written; the run id is fixed once for both."""
    from raysys.config import with_run_id
    from raysys.tasks.store import prepare

    cfg = with_run_id(cfg)
    run = cfg.run  # type: ignore[attr-defined]
    where = RunDir.of(run.storage_path, run.name, run.run_id)
    prepared = prepare(where.path, needs, run.seed)
    run_dir = open_run(cfg)
    prepared.write()
    return run_dir


def publish(path: Path) -> str:
    """Send what is new under `path` to its object store (when mirrored); returns how to
    name it to the user: its URI, or the path."""
    return RunDir.at(path).publish()


def check_writable(run_dir: Path) -> None:
    """Create `run_dir` and prove a file can be written there, before any work starts."""
    probe = run_dir / f".write-probe-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")  # atomic: a throwaway probe, deleted at once
        probe.unlink()
    except OSError as e:
        raise UserError(
            f"run.storage_path: cannot write to {shown(run_dir)} ({e.strerror or e}); point "
            "run.storage_path at a writable directory"
        ) from None


def check_resume(run_dir: Path, cfg: BaseModel) -> None:
    import yaml

    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    from raysys.storage import redact

    # the saved copy is redacted (see open_run): compare like with like
    old = _flatten(yaml.safe_load(saved.read_text()))
    new = _flatten(yaml.safe_load(redact(dump_config(cfg))))
    # run.run_id is the folder's own name: given or not, it names this run.
    changed = sorted(
        k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k != "run.run_id"
    )
    if changed:
        raise UserError(
            f"run {run_dir.name} exists with another config ({', '.join(changed[:5])} differ); "
            "set a new run.run_id, or resume with the same settings"
        )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def stage(out_dir: Path, title: str, fn: Callable[[Path], Any]) -> Any:
    """Run `fn(out_dir)` unless a previous run finished it (its stage.json exists)."""
    done = out_dir / "stage.json"
    if done.is_file():
        log.info("%s: done earlier, skipping", title)
        return json.loads(done.read_text())["result"]
    log.info("%s ...", title)
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = fn(out_dir)
    seconds = time.perf_counter() - start
    write_json(done, {"result": result, "seconds": seconds})
    from raysys.storage import push

    push(out_dir)  # object-store runs: the stage's files, then its stage.json
    log.info("%s: done in %.1fs", title, seconds)
    return result
