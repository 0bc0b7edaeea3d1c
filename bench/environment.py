"""The machine and software fingerprint recorded beside every run (``environment.json``)."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

PACKAGES = (
    "arraybench",
    "numpy",
    "torch",
    "jax",
    "jaxlib",
    "numba",
    "cupy-cuda12x",
    "pandas",
    "threadpoolctl",
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[dict[str, str]]:
    """Name, memory, driver and CUDA version of each NVIDIA GPU (empty without nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return []
    fields = "name,memory.total,driver_version"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
        cuda = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    cuda_version = next(
        (part.split(":")[1].split("|")[0].strip() for part in cuda.split("  ") if "CUDA Version" in part), ""
    )
    keys = fields.split(",")
    return [
        {**dict(zip(keys, (v.strip() for v in line.split(",")), strict=True)), "cuda_version": cuda_version}
        for line in out.strip().splitlines()
    ]


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()


def git_commit() -> str:
    """The arraybench commit, with ``-dirty`` when tracked files have changed, or ``unknown``."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = commit and _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (commit + ("-dirty" if dirty else "")) or "unknown"


def host_name() -> str:
    return socket.gethostname().split(".")[0] or "host"


def fingerprint(threads: int | None = None) -> dict:
    """Everything about this machine and its software that can change a number."""
    memory = psutil.virtual_memory()
    return {
        "host": host_name(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(memory.total / 2**30, 1),
        "memory_available_gib": round(memory.available / 2**30, 1),
        "gpus": gpus(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "threads_requested": threads,
        "thread_environment": {
            k: os.environ[k]
            for k in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "XLA_FLAGS",
                "OPENBLAS_CORETYPE",
            )
            if k in os.environ
        },
    }
