"""A trial's failures as one line each, read from Ray Tune's `error.txt` (one
`Failure # N` block per failure). Standard library only: `raysys status` reads them
from another terminal without importing Ray."""

from __future__ import annotations

import re

FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.M)

_EXC_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)): (.+)$"
)

_PYDANTIC_MSG = re.compile(r"^(?:Value error, )?(.*?) \[type=\w+.*\]$")


def failure_causes(error_txt: str) -> list[str]:
    """One line per failure recorded in a Tune `error.txt`, in order."""
    return [cause(b) for b in FAILURE_HEADER.split(error_txt) if b.strip()]


def cause(text: str) -> str:
    """One line that says why a trial failed: the traceback's last `Type: message` line
    without the module path; for a pydantic error the field and its message (its own last
    line is a documentation URL)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("For further information visit")]
    line = lines[-1] if lines else "unknown error"
    for i in range(len(lines) - 1, -1, -1):
        if (m := _PYDANTIC_MSG.match(lines[i])) and i > 0:
            line = f"ValidationError: {lines[i - 1]}: {m.group(1)}"
            break
        if m := _EXC_LINE.match(lines[i]):
            if "validation error" in m.group(2) and i + 2 < len(lines):
                continue  # its detail lines follow; the loop met them already
            line = f"{m.group(1)}: {m.group(2)}"
            break
    return line if len(line) <= 300 else line[:297] + "..."
