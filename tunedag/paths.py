"""Where tunedag may write: inside the project, and only over folders it created itself.

The project is the working directory the command runs in. Every output folder tunedag creates
holds a marker file (`MARKER`); a folder is replaced only when it has one, so a mistyped path
(`paths.single_model_dir: data/raw`) is refused instead of deleting the user's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tunedag.errors import ConfigError

MARKER = ".tunedag-output"
_MARKER_TEXT = "Written by tunedag, which replaces this folder on the next run. Delete this file to keep tunedag off it.\n"


def inside_project(path: Path, key: str, root: Path | None = None) -> Path:
    """Return `path` if it lies inside the project (strictly below `root`, the working directory by default).

    Raises ValueError naming `key` otherwise: an absolute path elsewhere, a `..` that climbs out,
    a symlink that leads out, or the project folder itself.
    """
    root = (root or Path.cwd()).resolve()
    resolved = (root / path).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ValueError(
            f"{path} is not inside the project ({root}): {key} must name a path below the folder the command runs in"
        )
    return path


def output_folder(path: Path, key: str) -> Path:
    """Return `path` if tunedag may write a folder there: inside the project, and absent, empty or marked as tunedag's.

    Called when the config is loaded, so a mistyped folder is refused before any stage runs.
    """
    check_replaceable(inside_project(path, key), key)
    return path


def check_replaceable(path: Path, key: str) -> None:
    """Refuse (ConfigError naming `key`) an existing `path` tunedag may not replace.

    Replaceable: no such path, an empty folder, or a folder holding `MARKER`. A file, or a folder
    with files tunedag did not write, is refused before anything runs.
    """
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise ConfigError(
            f"{path} ({key}) exists and is not a folder tunedag wrote; nothing was run. Choose another {key} or move it away."
        )
    if (path / MARKER).is_file() or not any(path.iterdir()):
        return
    raise ConfigError(
        f"{path} ({key}) holds files tunedag did not write (it has no {MARKER} marker); tunedag replaces the "
        f"folder named by {key}, so it refuses to touch this one and nothing was run. Choose another {key} "
        f"(e.g. models/final), or move the folder away."
    )


def clear_staging(target: Path) -> Path:
    """The staging path beside `target` (`.<name>.tmp`), emptied of a previous run's leftovers, not created.

    The caller writes the folder there (MLflow's savers want a path that does not exist yet),
    then hands it to `replace_folder`. The hidden `.tmp` name is tunedag's own: a run killed while
    saving leaves it unmarked, and the next run clears it.
    """
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def replace_folder(staging: Path, target: Path, key: str) -> None:
    """Mark the finished `staging` folder as tunedag's and put it in place of `target` (which must be replaceable)."""
    (staging / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
    check_replaceable(target, key)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
