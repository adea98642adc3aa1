"""The package's import graph keeps the documented one-way order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def lint_imports(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """import-linter with the contract of root/pyproject.toml ([tool.importlinter]);
    function-local imports count too, so a cycle cannot hide inside a function."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command is not None, "import-linter is a dev dependency"
    return subprocess.run(
        [command, "--config", str(root / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_imports_flow_one_way(repo_root: Path) -> None:
    result = lint_imports(repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_catches_an_upward_import(repo_root: Path, tmp_path: Path) -> None:
    """A domain importing one above it breaks the contract (so the check is live)."""
    source = repo_root / "src" / "convmem"
    copy = tmp_path / "src" / "convmem"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    stores = copy / "stores" / "service.py"
    stores.write_text(stores.read_text() + "\nfrom convmem.profiles import repository  # noqa\n")
    shutil.copy(repo_root / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(tmp_path, env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin"})
    assert result.returncode != 0
    assert "convmem.stores.service -> convmem.profiles.repository" in result.stdout
