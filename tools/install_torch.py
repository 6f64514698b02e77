"""Install PyTorch into the course's environment: the small CPU build unless there is an NVIDIA GPU.

    python tools/install_torch.py            # TORCH=auto (the default), cpu or cuda

PyTorch from the default package index on Linux is the CUDA build (several GB). A machine without an
NVIDIA GPU needs only the CPU build (a few hundred MB), which PyTorch publishes on its own index. The
order of sources for the CPU build:

1. PyTorch's CPU index ($TORCH_CPU_INDEX, default https://download.pytorch.org/whl/cpu), if it answers;
2. a CPU wheel that pip finds without any index (a wheelhouse named in pip's find-links, as in an
   offline classroom or a container image);
3. the default package index, with a warning that this may be the large CUDA build.

TORCH=cuda installs from the default index; TORCH=cpu forces the CPU build on any machine. With
TORCH=auto a PyTorch that is already installed is kept, whichever build it is; with TORCH=cpu or
TORCH=cuda a build of the other kind is replaced. Run by `make install` (and so `make lab`, `make test`)
with the virtual environment's Python, before the course itself is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SPEC = "torch>=2.2"
CHOICES = ("auto", "cpu", "cuda")

Runner = Callable[[Sequence[str]], int]


def has_nvidia_gpu() -> bool:
    """True when `nvidia-smi -L` lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def installed_build() -> str | None:
    """'cpu' or 'cuda' for the PyTorch importable by this interpreter, None if there is none."""
    code = "import torch; print('cuda' if torch.version.cuda else 'cpu')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def index_reachable(url: str, timeout: float = 10.0) -> bool:
    """True when the package index answers for torch within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as r:
            return 200 <= r.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args]


def run(cmd: Sequence[str]) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(list(cmd)).returncode


def install(
    choice: str,
    *,
    gpu: bool,
    current: str | None,
    cpu_index: str = CPU_INDEX,
    reachable: Callable[[str], bool] = index_reachable,
    runner: Runner = run,
    log: Callable[[str], None] = print,
) -> str:
    """Install the build `choice` asks for; return where it came from.

    Returns one of 'kept', 'cpu-index', 'local-wheel', 'default-index'. Raises SystemExit with a
    one-line message when `choice` is not one of auto/cpu/cuda or when no source works.
    """
    if choice not in CHOICES:
        raise SystemExit(f"TORCH must be one of {', '.join(CHOICES)}, got {choice!r}")
    want = choice if choice != "auto" else ("cuda" if gpu else "cpu")
    if current is not None and (choice == "auto" or current == want):
        log(f"PyTorch ({current} build) is already installed; keeping it (TORCH={choice}).")
        return "kept"
    if current is not None:
        log(f"Replacing the installed {current} build of PyTorch with the {want} build (TORCH={choice}).")
        if runner(pip("uninstall", "-y", "-q", "torch")) != 0:
            raise SystemExit("could not uninstall the installed PyTorch")

    if want == "cuda":
        log("Installing the CUDA build of PyTorch from the default package index (several GB).")
        if runner(pip("install", SPEC)) != 0:
            raise SystemExit("pip could not install PyTorch from the default package index")
        return "default-index"

    log(f"Installing the CPU build of PyTorch (TORCH={choice}, NVIDIA GPU: {'yes' if gpu else 'no'}).")
    if reachable(cpu_index):
        if runner(pip("install", "--index-url", cpu_index, SPEC)) == 0:
            return "cpu-index"
        log(f"pip could not install from {cpu_index}; trying the next source.")
    else:
        log(f"PyTorch's CPU index ({cpu_index}) cannot be reached; falling back.")
    # A wheel pip can find without an index (find-links). --no-deps, then a plain install that
    # finds torch satisfied and brings only its dependencies (filelock, sympy, ...).
    if runner(pip("install", "--no-index", "--no-deps", SPEC)) == 0:
        log("Installed a PyTorch wheel found locally (pip's find-links); now its dependencies.")
        if runner(pip("install", SPEC)) != 0:
            raise SystemExit("pip could not install PyTorch's dependencies")
        return "local-wheel"
    log(
        "No local wheel either: installing from the default package index. On Linux this is the CUDA "
        "build (several GB); set TORCH_CPU_INDEX to a reachable mirror of PyTorch's CPU index to avoid it."
    )
    if runner(pip("install", SPEC)) != 0:
        raise SystemExit("pip could not install PyTorch from any source")
    return "default-index"


def main() -> None:
    choice = os.environ.get("TORCH", "auto").strip().lower() or "auto"
    source = install(
        choice,
        gpu=has_nvidia_gpu(),
        current=installed_build(),
        cpu_index=os.environ.get("TORCH_CPU_INDEX", CPU_INDEX),
    )
    build = installed_build()
    if build is None:
        raise SystemExit("PyTorch does not import after the install")
    print(f"PyTorch: {build} build ({source})")


if __name__ == "__main__":
    main()
