"""Which types a skops model file may hold, and loading one that holds only those.

The trust decision is tunedag's own (REVIEWED_TYPE_PREFIXES, REVIEWED_TYPES and the user's
`model.trusted_types`), never the model folder's: its MLmodel lists types too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tunedag.errors import ConfigError

REVIEWED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")
REVIEWED_TYPES = frozenset(
    {
        "builtins.slice",
        "builtins.range",
        "builtins.complex",
        "builtins.frozenset",
        "builtins.bytearray",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)


def skops_trusted_types(model: Any, extra: Sequence[str] = ()) -> list[str]:
    """Types to trust when loading `model` from a skops file; refuse any not reviewed.

    Types from scikit-learn, NumPy and SciPy are reviewed by policy; anything else must be
    listed by the user in `model.trusted_types`.
    """
    from modelio.skops_io import skops_io  # skops builds its type list at import (about 1.5 s): only when used

    found = skops_io.get_untrusted_types(data=skops_io.dumps(model))
    unreviewed = [t for t in found if not is_reviewed_type(t, extra)]
    if unreviewed:
        raise ConfigError(
            f"The fitted model holds types that are not reviewed for safe loading: {', '.join(unreviewed)}. "
            "If you trust them, list them in model.trusted_types in params.yaml."
        )
    return sorted(found)


def is_reviewed_type(name: str, extra: Sequence[str] = ()) -> bool:
    """Whether skops may load type `name`: reviewed by tunedag (REVIEWED_TYPE_PREFIXES, REVIEWED_TYPES) or listed in `extra`."""
    return name.startswith(REVIEWED_TYPE_PREFIXES) or name in REVIEWED_TYPES or name in extra


def load_sklearn_model(model_dir: Path, extra: Sequence[str] = ()) -> Any:
    """Load the scikit-learn model of an MLflow model folder (skops format), trusting only reviewed types.

    The types to trust come from tunedag's review plus `extra` (model.trusted_types), never from the
    folder: its MLmodel lists types too, and a crafted one would make skops run any class's
    `__setstate__`. Raises ConfigError, naming the folder and the types, for a model holding others
    or not saved by skops (pickle runs code when read), before anything of the model is built.
    """
    from modelio.skops_io import skops_io

    model_dir = Path(model_dir)
    try:
        flavor = (yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {})["flavors"]["sklearn"]
        if flavor.get("serialization_format") != "skops":
            raise ConfigError(
                f"Model folder {model_dir} is saved as {flavor.get('serialization_format')!r}, not skops; "
                "tunedag loads only skops models (pickle runs code when read); refused"
            )
        file = (model_dir / str(flavor["pickled_model"])).resolve()
        if file.parent != model_dir.resolve() or not file.is_file():
            raise ConfigError(
                f"Model folder {model_dir}: its MLmodel names model file {flavor['pickled_model']!r}, not a file in the folder"
            )
        found = skops_io.get_untrusted_types(file=file)
    except (OSError, KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"Model folder {model_dir} is not an MLflow scikit-learn model tunedag can read: {exc}") from None
    unreviewed = [t for t in found if not is_reviewed_type(t, extra)]
    if unreviewed:
        raise ConfigError(
            f"Model folder {model_dir} holds types that are not reviewed for safe loading: "
            f"{', '.join(unreviewed)}; nothing was loaded. If you trust them, list them in "
            "model.trusted_types in params.yaml."
        )
    return skops_io.load(file, trusted=found)
