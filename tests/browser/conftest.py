"""Fixtures for the browser tests: Jupyter servers over a temporary copy of the lessons, and a
headless system Chromium driven by Playwright.

Chromium: $COURSE_CHROMIUM, else /usr/bin/chromium, else `chromium` / `chromium-browser` on PATH.
Without one (or without Playwright) the browser tests skip, except when CI=true: then they fail,
because CI must run them (.ci/run installs Debian's chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# JupyterLab / Notebook 7 user settings for the test servers: every cell stays in the DOM (no virtual
# scrolling). The news pop-up and update checks are switched off by the environment's own
# overrides.json (installed by `make install` from tools/jupyterlab-overrides.json), as for `make lab`:
# the tests check that it works.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip with a clear reason, or fail when CI=true (CI must run the browser tests)."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so the browser tests must run, not skip", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    env = os.environ.get("COURSE_CHROMIUM")
    if env:
        return env if Path(env).is_file() and os.access(env, os.X_OK) else None
    for c in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        where = os.environ.get("COURSE_CHROMIUM") or "/usr/bin/chromium (or chromium on PATH)"
        skip_or_fail(
            f"no Chromium found at {where}: install Debian's `chromium` or set COURSE_CHROMIUM "
            "to a Chromium binary"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Python Playwright is not installed (pip install -e '.[test]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:  # a broken or incompatible binary
        pw.stop()
        skip_or_fail(f"could not launch Chromium at {chromium_path}: {e}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """`jupyter lab` or `jupyter notebook` (from this venv) on 127.0.0.1, on a free port,
    without a token, serving a temporary copy of the notebooks folder."""

    def __init__(self, app: str, base: Path) -> None:
        self.app = app
        self.root = base / "course" / "notebooks"
        shutil.copytree(NOTEBOOKS, self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        if (REPO / "assets").is_dir():  # lessons may read ../assets
            (base / "course" / "assets").symlink_to(REPO / "assets", target_is_directory=True)
        settings = base / "settings"
        for name, value in USER_SETTINGS.items():
            f = settings / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(base / "config"),
            JUPYTER_RUNTIME_DIR=str(base / "runtime"),
            JUPYTER_DATA_DIR=str(base / "data"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
            IPYTHONDIR=str(base / "ipython"),
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app_class = "LabApp" if app == "lab" else "JupyterNotebookApp"
        cmd = [
            str(Path(sys.executable).with_name("jupyter")),
            app,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root}",
            f"--{app_class}.expose_app_in_browser=True",  # window.jupyterapp: kernel state for the tests
        ]
        if app == "lab":
            cmd.append("--LabApp.extension_manager=readonly")  # no PyPI queries from the extension manager
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = base / f"jupyter-{app}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_until_up(timeout=90)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter {self.app} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter {self.app} did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM: the server shuts its kernels down and exits; kill it if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def jupyter_lab(chromium_path, tmp_path_factory):
    server = JupyterServer("lab", tmp_path_factory.mktemp("jupyter-lab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jupyter_notebook(chromium_path, tmp_path_factory):
    server = JupyterServer("notebook", tmp_path_factory.mktemp("jupyter-notebook"))
    yield server
    server.stop()
