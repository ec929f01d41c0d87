"""The only place tunedag touches a library's private names.

Each module is named for its library and states the version range it was written for
(`SUPPORTED`); tests/compat checks that the installed version is inside it, so an upgrade
that may have moved a private name fails there, with the name of this module, not mid-study.
"""

from __future__ import annotations

from importlib.metadata import version

from packaging.version import Version


def check_range(distribution: str, low: str, below: str) -> str:
    """The installed version of `distribution`; raises RuntimeError when it is outside [low, below)."""
    installed = version(distribution)
    if not Version(low) <= Version(installed) < Version(below):
        raise RuntimeError(
            f"compat/{distribution.replace('-', '_')}.py was written for {distribution} >= {low}, < {below}; "
            f"{installed} is installed: check each private name it uses, then widen its SUPPORTED range."
        )
    return installed
