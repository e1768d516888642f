"""The layers hold: the import-linter contracts pass, and the bottom of the package
loads nothing from the top (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Layers: imports go down only KEPT" in result.stdout
    assert "No import cycle anywhere in vml KEPT" in result.stdout


def loaded(code: str) -> list[str]:
    """The vml modules (and torch) a fresh interpreter has loaded after ``code``."""
    script = f"{code}\nimport sys; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('vml', 'torch'))))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.split()


def test_the_store_loads_nothing_above_it() -> None:
    modules = loaded("import vml.store")
    assert not {"vml.api", "vml.config", "vml.models", "vml.run", "torch"} & set(modules)


def test_importing_vml_loads_the_api_only_when_it_is_used() -> None:
    assert loaded("import vml") == ["vml", "vml.version"]
    modules = loaded("import vml; vml.Project")
    assert "vml.api" in modules and "torch" not in modules
