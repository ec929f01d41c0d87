"""Errors a user can act on: each carries one paragraph naming the key or file at fault."""


class TunedagError(Exception):
    """Base class for errors shown to the user as one paragraph, with a non-zero exit."""


class ConfigError(TunedagError, ValueError):
    """`params.yaml` is malformed, or names something that cannot be used.

    A ValueError too, so that pydantic validators raising it report the key at fault.
    """


class DataError(TunedagError):
    """A data source is missing, unreadable or unusable for the configured task."""


class SearchSpaceError(ConfigError):
    """The search space cannot be sampled by the configured sampler."""


def redact(uri: str) -> str:
    """A URI with any password replaced by ***, fit for messages, logs and recorded parameters."""
    import re

    uri = re.sub(r"(://[^:/@\s]*):\S*@", r"\1:***@", uri)  # up to the last @: a password may hold @ or /
    return re.sub(r"(?i)([?&](?:password|passwd|pwd)=)[^&\s]*", r"\1***", uri)
