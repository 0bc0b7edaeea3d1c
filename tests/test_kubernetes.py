"""The Kubernetes Indexed Job of docs/cluster.md: the rendered manifest's shape, and its container script run
for real here (as pods 0 and 1 would, with JOB_COMPLETION_INDEX set), merged to the whole sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import kubernetes, results
from bench.cli import main
from bench.environment import PROJECT_ROOT
from tests.sweeps import TINY_TUTORIAL

TINY = (*TINY_TUTORIAL, "--machine", "k8s-node")
"""The tiny sweep's 4 configurations, recorded under the machine name the pods share."""


def test_the_indexed_job_manifest_renders() -> None:
    job = yaml.safe_load(kubernetes.render(2, "registry.example/arraybench:1", TINY, name="numpy-tiny"))
    assert (job["kind"], job["spec"]["completionMode"], job["spec"]["completions"]) == ("Job", "Indexed", 2)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/arraybench:1"
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "1", "memory": "16Gi"}
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"  # one shard per node
    assert anti["labelSelector"]["matchLabels"] == {"arraybench/sweep": "numpy-tiny"}
    script = container["args"][0]
    assert '--shard "$JOB_COMPLETION_INDEX/2"' in script and "/results/numpy-tiny/shard-" in script


def test_the_manifest_refuses_what_would_not_work() -> None:
    cut = TINY.index("--threads")
    with pytest.raises(ValueError, match="need --threads"):
        kubernetes.render(2, "image", TINY[:cut] + TINY[cut + 2 :])
    with pytest.raises(ValueError, match="not a Kubernetes name"):
        kubernetes.render(2, "image", TINY, name="Not_A_Name")


@pytest.mark.slow
def test_the_container_script_runs_each_index_and_the_shards_merge(tmp_path: Path) -> None:
    """What two pods would run, here: the script with JOB_COMPLETION_INDEX 0 and 1, the volume a folder."""
    job = yaml.safe_load(kubernetes.render(2, "image", TINY, name="tiny"))
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0].replace("/results/", f"{tmp_path}/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the image's python
    (bin_dir / "python").chmod(0o755)
    for index in ("0", "1"):
        env = {**os.environ, "JOB_COMPLETION_INDEX": index, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["/bin/sh", "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    folders = [str(tmp_path / "tiny" / f"shard-{i}-of-2") for i in (0, 1)]
    assert main(["merge", *folders, "--out", str(tmp_path / "merged")]) == 0
    summary = results.read_csv(tmp_path / "merged")
    assert len(summary) == 4 and (summary["status"] == "ok").all() and set(summary["machine"]) == {"k8s-node"}
