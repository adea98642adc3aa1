"""The README documents every setting and the two set-up commands."""

from __future__ import annotations

from pathlib import Path

from convmem.settings import Settings


def test_every_setting_is_documented(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    missing = [
        f"CONVMEM_{name.upper()}"
        for name in Settings.model_fields
        if f"CONVMEM_{name.upper()}" not in readme
    ]
    assert not missing, f"README lacks: {missing}"


def test_ci_runs_the_readme_test_command(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    assert "make test" in readme and "make serve" in readme
    assert "exec make test" in ci
