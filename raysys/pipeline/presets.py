"""The quickstart's presets: pipeline configs shipped inside the package."""

from __future__ import annotations

from pathlib import Path

PRESETS = ("embedded", "full")


def preset_path(name: str) -> Path:
    """`embedded` (the default quickstart, 2 CPU cores) or `full` (the study, GPUs)."""
    if name not in PRESETS:
        from raysys.errors import UserError

        raise UserError(f"--preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return Path(__file__).resolve().parents[1] / "presets" / f"{name}.yaml"
