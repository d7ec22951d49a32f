"""Errors the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a config, a path, a model name. Exit code 2, nothing written."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or override that does not validate."""


class ModelSourceError(UserError):
    """A model source that cannot be resolved (unknown name, missing package)."""


class AdapterIgnoredError(UserError):
    """The canary: a loaded adapter leaves the base model's logits unchanged, so it is
    not being applied (wrong path, wrong target modules, an engine that drops it)."""
