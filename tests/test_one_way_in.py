"""`tunedag <command>` is the one way in: no module of the project runs as a script, the CLI and the server's supervisor apart."""

from __future__ import annotations

import ast

from tests.test_imports import MODULES, REPO

# flows.cli is the console script `tunedag`; services.prefect_api runs itself as the project server's supervisor.
SCRIPTS = {"flows.cli", "services.prefect_api"}


def _runs_as_script(source: str) -> bool:
    """Whether a module's top level holds an `if __name__ == "__main__":` block."""
    for node in ast.parse(source).body:
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
            if any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators):
                return True
    return False


def test_the_check_tells_a_script_from_a_module():
    assert _runs_as_script('import x\n\nif __name__ == "__main__":\n    x.main()\n')
    assert not _runs_as_script('def main():\n    return __name__ == "__main__"\n')


def _source(module: str) -> str:
    base = REPO.joinpath(*module.split("."))
    return (base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py").read_text()


def test_no_stage_module_runs_as_a_script():
    scripts = {module for module in MODULES if _runs_as_script(_source(module))}
    assert "flows.tune" in MODULES and scripts == SCRIPTS
