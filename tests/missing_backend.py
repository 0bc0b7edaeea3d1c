"""A backend whose framework is not installed, loaded in tests through ``ARRAYBENCH_BACKENDS``."""

from backends.contract import Backend, BackendUnavailable, Variant


class MissingFramework(Backend):
    name = "missing"
    variants = (Variant("manual", "eager"),)

    def __init__(self) -> None:
        raise BackendUnavailable("the 'missing' framework is not installed (test backend)")

    def version(self) -> str:
        raise AssertionError("never called: __init__ always raises")

    def prepare(self, problem, variant, device):
        raise AssertionError("never called: __init__ always raises")
