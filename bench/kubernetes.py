"""A sweep as a Kubernetes Indexed Job: ``docs/examples/indexed-job.yaml`` rendered for one sweep.

Pod ``$JOB_COMPLETION_INDEX`` runs that shard (counted from 0, as ``bench run --shard``) into a folder on a
shared volume, or resumes it when the pod is retried; ``bench merge`` then joins the folders. ``python -m
bench.kubernetes --shards N --image IMAGE [--name NAME] [--memory 16Gi] -- BENCH-RUN-OPTIONS`` prints it.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from string import Template

from bench.environment import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "docs" / "examples" / "indexed-job.yaml"


def threads_of(run_options: Sequence[str]) -> int:
    """The ``--threads`` of the run options (the pod's whole CPUs); a shard must give it."""
    options = list(run_options)
    for i, option in enumerate(options):
        if option == "--threads" and i + 1 < len(options):
            return int(options[i + 1])
        if option.startswith("--threads="):
            return int(option.split("=", 1)[1])
    raise ValueError("the bench run options need --threads (and --devices): every pod must compute the same split")


def render(shards: int, image: str, run_options: Sequence[str], name: str = "arraybench", memory: str = "16Gi") -> str:
    """The Indexed Job manifest (YAML text) of ``shards`` pods running ``bench run RUN_OPTIONS``."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?", name):
        raise ValueError(f"{name!r} is not a Kubernetes name (lower-case letters, digits and '-')")
    return Template(TEMPLATE.read_text()).substitute(
        NAME=name,
        SHARDS=shards,
        IMAGE=image,
        THREADS=threads_of(run_options),
        MEMORY=memory,
        RUN_OPTIONS=shlex.join(run_options),
        RESULTS=f"/results/{name}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, run_options = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m bench.kubernetes", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--name", default="arraybench")
    parser.add_argument("--memory", default="16Gi")
    args = parser.parse_args(argv)
    try:
        print(render(args.shards, args.image, run_options, args.name, args.memory), end="")
    except ValueError as error:
        print(f"python -m bench.kubernetes: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
