"""What the benchmarks ran on: CPU model, cores, torch version, device."""

from __future__ import annotations

import os
import platform
import sys

import torch

from course_lib.device import describe_device, pick_device


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_details() -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    device = pick_device()
    details = {
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "torch threads": str(torch.get_num_threads()),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": describe_device(device),
    }
    if device.type == "cuda":
        details["CUDA"] = f"{torch.version.cuda}, {torch.cuda.device_count()} device(s)"
    try:
        details["load average (1, 5, 15 min)"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return details
