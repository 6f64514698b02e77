"""The project's own setup: packaging metadata, the Makefile's test commands, git's ignore rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_string_with_its_file():
    text = (REPO / "pyproject.toml").read_text()
    # a TOML table (license = { text = ... }) is deprecated and warns on every install
    assert re.search(r'^license = "MIT"$', text, re.M), "project.license must be an SPDX string"
    assert re.search(r'^license-files = \["LICENSE"\]$', text, re.M)
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert re.search(r'requires = \["setuptools>=(7[7-9]|[89]\d)', text), "SPDX license needs setuptools>=77"


def makefile_recipe(target: str) -> str:
    text = (REPO / "Makefile").read_text()
    m = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, f"no `{target}` target in the Makefile"
    return m.group(1)


@pytest.mark.parametrize("target", ["unit", "nbval", "browser"])
def test_make_test_shows_skip_reasons(target):
    assert re.search(r"pytest .*-rs", makefile_recipe(target)), f"`make {target}` must pass -rs"


def test_install_uses_the_torch_installer_and_lab_overrides():
    text = (REPO / "Makefile").read_text()
    assert "tools/install_torch.py" in text
    overrides = json.loads((REPO / "tools" / "jupyterlab-overrides.json").read_text())
    note = overrides["@jupyterlab/apputils-extension:notification"]
    assert note == {"fetchNews": "false", "checkForUpdates": False}
    assert "share/jupyter/lab/settings/overrides.json" in text


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_checkpoints_written_by_the_course_are_ignored_but_shipped_ones_are_not():
    def ignored(path: str) -> bool:
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert r.returncode in (0, 1), f"git check-ignore failed for {path}"
        return r.returncode == 0

    for path in ("dates_fast.pt", "runs/a/model.pt", "notebooks/my_model.pt", "tmp/x.pt"):
        assert ignored(path), f"{path} would be committed by `git add .`"
    assert not ignored("assets/dates_model.pt")
