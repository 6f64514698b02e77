"""tools/install_torch.py: which PyTorch build is installed from where, and the fallbacks."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import threading
import time
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "install_torch", Path(__file__).resolve().parents[1] / "tools" / "install_torch.py"
)
it = importlib.util.module_from_spec(spec)
spec.loader.exec_module(it)


class FakePip:
    """Records pip commands; fails those whose arguments contain any of `fail_on`."""

    def __init__(self, *fail_on: str) -> None:
        self.fail_on, self.calls = fail_on, []

    def __call__(self, cmd) -> int:
        args = list(cmd)[3:]  # drop "python -m pip"
        self.calls.append(args)
        return 1 if any(f in args for f in self.fail_on) else 0


def run(choice="auto", gpu=False, current=None, reachable=False, pip=None):
    pip = pip or FakePip()
    source = it.install(
        choice,
        gpu=gpu,
        current=current,
        cpu_index="https://cpu.example/whl",
        reachable=lambda url: reachable,
        runner=pip,
        log=lambda msg: None,
    )
    return source, pip.calls


def test_no_gpu_installs_from_the_cpu_index():
    source, calls = run(reachable=True)
    assert source == "cpu-index"
    assert calls == [["install", "--index-url", "https://cpu.example/whl", it.SPEC]]


def test_unreachable_cpu_index_falls_back_to_a_local_wheel_then_the_default_index():
    source, calls = run(reachable=False)
    assert source == "local-wheel"
    assert calls == [["install", "--no-index", "--no-deps", it.SPEC], ["install", it.SPEC]]
    source, calls = run(reachable=False, pip=FakePip("--no-index"))
    assert source == "default-index"
    assert calls[-1] == ["install", it.SPEC]


def test_a_failing_cpu_index_also_falls_back():
    source, calls = run(reachable=True, pip=FakePip("--index-url"))
    assert source == "local-wheel" and calls[1][:2] == ["install", "--no-index"]


def test_gpu_or_torch_cuda_installs_the_default_build():
    for kw in ({"gpu": True}, {"choice": "cuda"}):
        source, calls = run(**kw)
        assert source == "default-index" and calls == [["install", it.SPEC]]


def test_torch_cpu_forces_the_cpu_build_even_with_a_gpu():
    source, calls = run(choice="cpu", gpu=True, reachable=True)
    assert source == "cpu-index" and "--index-url" in calls[0]


def test_an_installed_build_is_kept_or_replaced():
    assert run(current="cuda") == ("kept", [])  # auto keeps whatever is there
    assert run(choice="cpu", current="cpu") == ("kept", [])
    source, calls = run(choice="cpu", current="cuda", reachable=True)
    assert calls[0] == ["uninstall", "-y", "-q", "torch"] and source == "cpu-index"
    source, calls = run(choice="cuda", current="cpu")
    assert calls == [["uninstall", "-y", "-q", "torch"], ["install", it.SPEC]]


def test_bad_choice_and_total_failure_are_one_line_errors():
    with pytest.raises(SystemExit, match="TORCH must be one of auto, cpu, cuda, got 'gpu'"):
        run(choice="gpu")
    with pytest.raises(SystemExit, match="could not install PyTorch from any source"):
        run(pip=FakePip("install"))


def test_index_reachable_on_loopback():
    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/whl/torch/" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert it.index_reachable(f"http://127.0.0.1:{server.server_port}/whl", timeout=5)
        assert not it.index_reachable(f"http://127.0.0.1:{server.server_port}/nothing", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:  # a port nobody listens on: refused at once, no hang
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    assert not it.index_reachable(f"http://127.0.0.1:{port}/whl", timeout=5)
    assert time.monotonic() - t0 < 5
