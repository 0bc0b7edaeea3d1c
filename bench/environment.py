"""The machine and software fingerprint recorded beside every run (``environment.json``)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
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
    "cupy-cuda13x",
    "jax-cuda12-plugin",
    "jax-cuda13-plugin",
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


GPU_FIELDS = ("name", "memory.total", "driver_version")
"""What ``nvidia-smi --query-gpu`` is asked for."""


def gpus() -> list[dict[str, str]]:
    """Name, memory, driver version and the CUDA version the driver supports, of each NVIDIA GPU (from
    nvidia-smi; empty without it). The CUDA runtime each framework uses is in its ``describe()`` facts."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(GPU_FIELDS)}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
        banner = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_gpus(listing, banner)


def parse_gpus(listing: str, banner: str) -> list[dict[str, str]]:
    """One dict per line of ``nvidia-smi --query-gpu=GPU_FIELDS`` output, with the CUDA version from the
    banner of plain ``nvidia-smi`` (``CUDA Version: 12.4``)."""
    match = re.search(r"CUDA Version:\s*([\d.]+)", banner)
    cuda_version = match.group(1) if match else ""
    found = []
    for line in listing.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(GPU_FIELDS):
            found.append({**dict(zip(GPU_FIELDS, values, strict=True)), "cuda_version": cuda_version})
    return found


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


def gpu_evidence() -> str | None:
    """What shows a CUDA GPU here (a device file, or a GPU in ``nvidia-smi -L``), or ``None``: a check that imports
    no framework, so that the runner stays free of them; whether a framework can use the GPU is each worker's
    question (a ``skipped`` row with the reason when it cannot)."""
    devices = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    if devices:
        return devices[0]
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        if listing.strip():
            return "nvidia-smi -L"
    return None


def host_name() -> str:
    return socket.gethostname().split(".")[0] or "host"


HARDWARE_FIELDS = ("cpu_model", "logical_cores", "physical_cores", "memory_gib", "gpus")
"""The facts :func:`hardware_id` hashes: the CPU, its cores, the memory, and each GPU's name, memory, driver
and CUDA version (not the host name, the OS or the software: two identical nodes share one id)."""


def hardware_id(facts: dict) -> str:
    """A short hash of the hardware in a fingerprint (:data:`HARDWARE_FIELDS`), the same on identical nodes:
    shards of one run must share it (``bench merge``), while a fleet's machines differ in it."""
    wanted = {name: facts.get(name) for name in HARDWARE_FIELDS}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(threads: int | None = None) -> dict:
    """Everything about this machine and its software that can change a number."""
    memory = psutil.virtual_memory()
    facts = {
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
    return {**facts, "hardware_id": hardware_id(facts)}
