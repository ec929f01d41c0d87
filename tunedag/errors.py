"""Errors a user can act on: each carries one paragraph naming the key or file at fault."""

MAX_MESSAGE = 990  # characters: a refusal is one paragraph under 1,000, however large the input that caused it


class TunedagError(Exception):
    """Base class for errors shown to the user as one paragraph, with a non-zero exit.

    `str()` gives that paragraph: whitespace runs (newlines included) folded to one space and
    at most MAX_MESSAGE characters, cut with an ellipsis (an echoed value may be huge).
    """

    def __str__(self) -> str:
        return bounded(super().__str__())


class ConfigError(TunedagError, ValueError):
    """`params.yaml` is malformed, or names something that cannot be used.

    A ValueError too, so that pydantic validators raising it report the key at fault.
    """


class DataError(TunedagError):
    """A data source is missing, unreadable or unusable for the configured task."""


class SearchSpaceError(ConfigError):
    """The search space cannot be sampled by the configured sampler."""


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` as one line of at most `limit` characters; a longer one keeps its start (the key) and end (the advice)."""
    if len(text) > limit * 4:
        text = text[: limit * 2] + " " + text[-limit * 2 :]
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    tail = limit // 4
    return text[: limit - tail - 3].rstrip() + " … " + text[-tail:].lstrip()


def redact(uri: str) -> str:
    """A URI with any password replaced by ***, fit for messages, logs and recorded parameters."""
    import re

    uri = re.sub(r"(://[^:/@\s]*):\S*@", r"\1:***@", uri)  # up to the last @: a password may hold @ or /
    return re.sub(r"(?i)([?&](?:password|passwd|pwd)=)[^&\s]*", r"\1***", uri)
