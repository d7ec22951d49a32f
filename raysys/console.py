"""What a person sees while raysys works: its own lines, and a progress bar per long step.

Quiet (the CLI's default): the libraries' own output goes to a log file, not the console —
Ray's, Tune's, Train's and Ray Data's loggers, Python warnings, other libraries' log
records, and whatever the driver's C++ core worker writes to stderr (the process's fd 2 is
pointed at the file; Python's `sys.stderr` keeps the terminal). The file is spooled until
the run directory is known, then becomes `<run dir>/logs/driver.log`. Ray's workers'
output (the HF Trainer's log dicts, Train's report lines) stays in Ray's session logs
(`ray.init(log_to_driver=False)`), whose folder is printed once. `--verbose` (or
RAYSYS_VERBOSE=1) leaves everything on the console, as before.

Bars are tqdm's on a terminal. Elsewhere (a `ray job submit` log, a pipe, CI) a bar is a
plain raysys line — `generating: 120/448 [01:02<02:50]` — when its count moves and at most
every `PLAIN_EVERY_S` seconds, and once when it ends: no terminal control codes.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("raysys.console")

PLAIN_EVERY_S = 30.0
FORMAT = "[raysys %(asctime)s] %(message)s"
LIB_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# loggers whose records are raysys's own lines (the rest is the libraries')
OWN = ("raysys", "__main__", "jobs")


class _State:
    verbose = True  # nothing set up: a library user's process is left as it is
    active = False
    orig_stderr: TextIO | None = None
    orig_fd2: int | None = None
    spool: str | None = None
    log_path: Path | None = None
    lib_handler: logging.Handler | None = None
    handlers: list[logging.Handler] = []
    routed: list[tuple[logging.Logger, list[logging.Handler]]] = []
    shown_ray_logs = False


def active() -> bool:
    """A CLI process set the console up (a library caller's process is left alone)."""
    return _State.active


def quiet() -> bool:
    return _State.active and not _State.verbose


def setup(verbose: bool = False) -> None:
    """Console logging for a CLI process: raysys's lines on stdout; quiet unless
    `verbose` (see the module's docstring). `restore` undoes it."""
    verbose = verbose or os.environ.get("RAYSYS_VERBOSE", "") not in ("", "0")
    restore()
    _State.verbose, _State.active = verbose, True
    root = logging.getLogger()
    own = _ConsoleHandler(sys.stdout)
    own.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    if verbose:
        _add(root, own)
        root.setLevel(logging.INFO)
        for noisy in ("ray", "transformers", "datasets", "filelock", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return
    own.addFilter(_own)
    _add(root, own)
    root.setLevel(logging.INFO)
    _State.lib_handler = logging.StreamHandler(_lib_stream())
    _State.lib_handler.setFormatter(logging.Formatter(LIB_FORMAT))
    _State.lib_handler.setLevel(logging.INFO)  # Ray Data's DEBUG goes to its own ray-data.log
    _State.lib_handler.addFilter(lambda r: not _own(r))
    _add(root, _State.lib_handler)
    logging.captureWarnings(True)
    route_library_loggers()


def _add(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.addHandler(handler)
    _State.handlers.append(handler)


def _own(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] in OWN


def _lib_stream() -> TextIO:
    """Where the libraries write: fd 2, pointed at a spool file when this process's
    stderr is the real one (not a test's capture); `sys.stderr` keeps the terminal."""
    if sys.stderr is not sys.__stderr__ or sys.__stderr__ is None:
        return _Null()
    sys.stderr.flush()
    fd, _State.spool = tempfile.mkstemp(prefix="raysys-driver-", suffix=".log")
    _State.orig_fd2 = os.dup(2)
    _State.orig_stderr = sys.stderr
    os.dup2(fd, 2)
    os.close(fd)
    terminal = os.dup(_State.orig_fd2)
    sys.stderr = _stream(terminal, closefd=True)
    return _stream(2, closefd=False)  # fd 2: the spool, later the run's driver.log


def _stream(fd: int, closefd: bool) -> TextIO:
    """A line-buffered text stream on `fd`, for as long as the process's console lives."""
    return open(fd, "w", buffering=1, closefd=closefd, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115  # atomic: a console stream, not a file raysys writes


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def library_stream() -> Any:
    """Where the libraries' output goes in quiet mode (None otherwise)."""
    return _State.lib_handler.stream if quiet() and _State.lib_handler is not None else None


def route_library_loggers() -> None:
    """Every library logger that prints to the console (Ray's handlers write to whatever
    `sys.stderr` is; Ray Data configures its own) writes to the log file instead. Call
    again after importing a library that sets up its own handlers."""
    if not quiet() or _State.lib_handler is None:
        return
    for name in list(logging.Logger.manager.loggerDict):
        logger = logging.getLogger(name)
        if not isinstance(logger, logging.Logger) or name.split(".")[0] in OWN:
            continue
        console = [h for h in logger.handlers if _is_console(h)]
        if not console:
            continue
        _State.routed.append((logger, console))
        for h in console:
            logger.removeHandler(h)
        if not logger.propagate:  # else its records reach the root's file handler
            logger.addHandler(_State.lib_handler)


def _is_console(h: logging.Handler) -> bool:
    return (
        isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
        and h is not _State.lib_handler
        and h not in _State.handlers
    )


def attach_run(run_path: Path) -> None:
    """The run directory is known: the spooled library output moves to
    `<run>/logs/driver.log` and goes on there (the first run of a process keeps it)."""
    if not quiet() or _State.log_path is not None:
        return
    target = Path(run_path) / "logs" / "driver.log"
    _State.log_path = target
    if _State.spool is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    sys.__stderr__ and sys.__stderr__.flush()
    with open(_State.spool, "rb") as f, open(target, "ab") as out:  # atomic: an append-only log
        out.write(f.read())
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    os.unlink(_State.spool)
    _State.spool = None
    log.info("libraries' output (Ray, Tune, Train, Ray Data): %s; --verbose shows it here", target)


def note_ray_logs(logs_dir: str | None) -> None:
    """Once per process: where Ray's workers' own output is (quiet mode keeps it off the
    console)."""
    if not quiet() or _State.shown_ray_logs or not logs_dir:
        return
    _State.shown_ray_logs = True
    log.info("Ray workers' output (Train, the HF Trainer, engines): %s", logs_dir)


def restore() -> None:
    """Undo `setup`: fd 2 and `sys.stderr` back, handlers removed, the spool dropped."""
    root = logging.getLogger()
    for h in _State.handlers:
        root.removeHandler(h)
    for logger, handlers in _State.routed:
        if _State.lib_handler is not None:
            logger.removeHandler(_State.lib_handler)
        for h in handlers:
            logger.addHandler(h)
    if _State.orig_fd2 is not None:
        sys.stderr.flush()
        os.dup2(_State.orig_fd2, 2)
        os.close(_State.orig_fd2)
        sys.stderr = _State.orig_stderr or sys.__stderr__
    if _State.spool is not None:
        try:
            os.unlink(_State.spool)
        except OSError:
            pass
    if _State.active and not _State.verbose:
        logging.captureWarnings(False)
    _State.handlers, _State.routed = [], []
    _State.lib_handler = _State.orig_fd2 = _State.orig_stderr = None
    _State.spool = _State.log_path = None
    _State.active, _State.verbose, _State.shown_ray_logs = False, True, False


class _ConsoleHandler(logging.StreamHandler):
    """raysys's lines; while a tqdm bar is on the terminal they go above it. A report's
    note (raysys.analysis) is shown once per process though a pipeline builds several."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not super().filter(record):
            return False
        if record.name.startswith("raysys.analysis"):
            msg = record.getMessage()
            if msg in self._seen:
                return False
            self._seen.add(msg)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if Progress.live:
            from tqdm import tqdm

            try:
                tqdm.write(self.format(record), file=self.stream)
            except Exception:  # noqa: BLE001 - a console line must never break the run
                self.handleError(record)
            return
        super().emit(record)


class Progress:
    """A progress bar for a long step: `with Progress("generating", total=448) as p:
    p.update(56)`. tqdm on a terminal; plain raysys lines elsewhere (module docstring)."""

    live = 0  # tqdm bars on the terminal now

    def __init__(self, desc: str, total: int | None, unit: str = "it") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.n, self.postfix = 0, ""
        self.start = time.monotonic()
        self._last_line = self.start
        self._line_n = -1
        self._bar: Any = None
        if _terminal():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True
            )
            Progress.live += 1

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.set(self.n + n, postfix)

    def set(self, n: int, postfix: str | None = None, total: int | None = None) -> None:
        """The count is `n` (of `total`, when it changed) and the bar says `postfix`."""
        moved = n != self.n or (postfix is not None and postfix != self.postfix)
        self.n = n
        if total is not None:
            self.total = total
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if total is not None:
                self._bar.total = total
            self._bar.n = n
            self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.refresh()
        elif moved and time.monotonic() - self._last_line >= PLAIN_EVERY_S:
            self._line()

    def line(self) -> str:
        """`desc: n/total [elapsed<remaining], postfix` as tqdm would meter it."""
        from tqdm import tqdm

        meter = tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self.start,
            unit=self.unit,
            bar_format="{n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]"
            if self.total
            else "{n_fmt} {unit} [{elapsed}]",
        )
        return f"{self.desc}: {meter}" + (f", {self.postfix}" if self.postfix else "")

    def _line(self) -> None:
        self._last_line, self._line_n = time.monotonic(), self.n
        log.info("%s", self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            Progress.live -= 1
        elif self._line_n != self.n and time.monotonic() - self.start >= PLAIN_EVERY_S:
            self._line()  # a step long enough to have had lines ends with one


def _terminal() -> bool:
    """Bars draw on a terminal, in a CLI process (a library caller gets no bar)."""
    if not _State.active:
        return False
    try:
        return sys.stderr.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False
