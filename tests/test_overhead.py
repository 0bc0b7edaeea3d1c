"""``python -m bench.overhead``: both of its timings of a fit, on a tiny NumPy configuration."""

from __future__ import annotations

import pytest

from bench import overhead
from bench.config import Configuration


@pytest.mark.slow
@pytest.mark.parametrize("timing", [overhead.runner_samples, overhead.bare_samples], ids=["runner", "bare"])
def test_each_timing_returns_one_positive_sample_per_repeat(timing) -> None:
    config = Configuration("numpy", "manual", "eager", "cpu", "float64", 1000, 100, None, 0, 1)
    samples = timing(config, 3)
    assert len(samples) == 3 and all(isinstance(s, float) and s > 0 for s in samples)
