"""The import-linter contracts (pyproject.toml [tool.importlinter]) hold for the package and
break, naming the contract and the import, when a module imports upward (even lazily, inside
a function) or when the key maps reach for files."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LINT = pathlib.Path(sys.executable).parent / "lint-imports"


def lint(root: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> pathlib.Path:
    """A copy of the package and its pyproject.toml (edited by each test, restored after)."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(
        REPO / "samaudio_jax", root / "samaudio_jax", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_package_keeps_every_contract():
    out = lint(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, contract, arrow",
    [
        (
            "model/flow.py",
            "def _upward():\n    from samaudio_jax.checkpoint import bundle  # noqa\n",
            "Layers:",
            "samaudio_jax.model.flow -> samaudio_jax.checkpoint.bundle",
        ),
        (
            "checkpoint/bundle.py",
            "from samaudio_jax.train import state  # noqa\n",
            "Layers:",
            "samaudio_jax.checkpoint.bundle -> samaudio_jax.train.state",
        ),
        (
            "keymaps/flow.py",
            "from samaudio_jax.paths import as_path  # noqa\n",
            "Key maps are pure",
            "samaudio_jax.keymaps.flow -> samaudio_jax.paths",
        ),
    ],
)
def test_a_wrong_import_breaks_the_contract_naming_it(copy, module, line, contract, arrow):
    path = copy / "samaudio_jax" / module
    original = path.read_text()
    try:
        path.write_text(original + "\n\n" + line)
        out = lint(copy)
    finally:
        path.write_text(original)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Broken contracts" in text, text
    broken = text.split("Broken contracts", 1)[1]  # the report: contract name, then its imports
    assert contract in broken and arrow in broken, text
