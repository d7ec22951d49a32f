"""`raysys.config`, the public face: every name it exports resolves, and importing it
loads no other raysys layer and nothing heavy (every process reads a config)."""

from __future__ import annotations

import json
import subprocess
import sys

import raysys.config as config
from tests.fixtures import REPO


def test_every_exported_name_resolves():
    assert len(set(config.__all__)) == len(config.__all__)
    for name in config.__all__:
        assert getattr(config, name) is not None, name
    assert config.load_config is config.loader.load_config


def test_importing_the_config_loads_only_the_bottom_layer():
    code = (
        "import json, sys, raysys.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('raysys', 'ray', 'torch', 'pandas', 'numpy', 'transformers', 'pyarrow'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    ).stdout
    loaded = json.loads(out)
    assert {m for m in loaded if not m.startswith("raysys.config")} == {
        "raysys",
        "raysys.errors",
        "raysys.uris",
    }
