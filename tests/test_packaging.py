"""`pip install -e .` (what `make install` runs) builds the editable wheel without setuptools' warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_editable_install_is_a_plain_path_entry_with_no_warning(tmp_path: Path) -> None:
    pyproject = REPO / "pyproject.toml"
    include = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    for package in {p.rstrip("*") for p in include}:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "optuna").mkdir()  # the study storage folder, as in a clone after a run: not a package

    # PEP 660's hook, as pip calls it; pip shows what the backend warns (setuptools' InformationOnly among them).
    build = "from setuptools import build_meta; print(build_meta.build_editable('dist'))"
    done = subprocess.run([sys.executable, "-W", "error", "-c", build], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the build warned: {done.stderr[-3000:]}"

    with zipfile.ZipFile(tmp_path / "dist" / done.stdout.split()[-1]) as wheel:
        (pth,) = [n for n in wheel.namelist() if n.endswith(".pth")]
        entries = wheel.read(pth).decode().split()
        assert not [n for n in wheel.namelist() if re.search(r"finder\.py$", n)]
    assert entries == [str(tmp_path.resolve())], "the project folder on sys.path, after site-packages"
