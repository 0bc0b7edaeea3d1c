"""Whether a configuration's arrays fit in the memory that is free, checked before it starts.

The runner checks host memory before it sends a CPU configuration to a worker; the worker checks a
device's memory through :meth:`backends.contract.Backend.free_memory` before it prepares the fit.
"""

from __future__ import annotations

import numpy as np
import psutil

from bench.config import Configuration

ARRAYS_ALIVE = 12
"""Arrays of n elements alive at once in the tutorial loop (x, y, y_pred, y_pred - y, its gradient, x**2,
x**3 and their products, plus framework temporaries), a deliberately generous count."""

USABLE_FRACTION = 0.8
"""A configuration may use at most this fraction of the free memory: the rest is for everything else."""


RANK_PROCESS_BYTES = 2**29
"""What one more process of a fit across devices costs besides its arrays (a framework imported: 0.2-0.5 GB)."""


def bytes_needed(config: Configuration) -> int:
    """The estimated peak memory of ``config``'s arrays; across ``world`` devices, the sum over the devices
    (each holds n / world of every array) and, on the host, a process per device."""
    arrays = config.n * np.dtype(config.dtype).itemsize * ARRAYS_ALIVE
    return arrays + (config.world * RANK_PROCESS_BYTES if config.world > 1 and config.device == "cpu" else 0)


def rank_bytes(config: Configuration) -> int:
    """The estimated peak memory of one device's share of ``config``'s arrays (n / world, rounded up)."""
    return -(-config.n // config.world) * np.dtype(config.dtype).itemsize * ARRAYS_ALIVE


def readable(size: float) -> str:
    """``size`` bytes in TiB, GiB, MiB or KiB, whichever reads best."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale / 10:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 2**10:.1f} KiB"


def shortfall(config: Configuration, free: int, where: str) -> str | None:
    """The reason to skip ``config`` when its estimate exceeds the usable part of ``free`` bytes, else None."""
    need = bytes_needed(config)
    if need <= USABLE_FRACTION * free:
        return None
    return (
        f"needs about {readable(need)} of {where} ({ARRAYS_ALIVE} arrays of n={config.n:,} {config.dtype}),"
        f" {readable(free)} free"
    )


def host_shortfall(config: Configuration) -> str | None:
    """:func:`shortfall` of a CPU configuration against the host's available memory."""
    if config.device != "cpu":
        return None
    return shortfall(config, psutil.virtual_memory().available, "host memory")
