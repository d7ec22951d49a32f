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


def clip(value: object, limit: int = 200) -> str:
    """`repr(value)` cut to `limit` characters: an error quotes input, never all of it (a
    hostile config can hold megabytes)."""
    text = value if isinstance(value, str) and value.startswith("'") else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(message: str, limit: int = 1000) -> str:
    """An error message as one line of at most `limit` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
