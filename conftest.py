"""Loads the benchmark plugin and the availability rules (tests/availability.py) for every pytest run.

pytest reads command-line options only from conftest files and plugins it loads at start-up, which
tests/benchmarks/ is not in a bare ``pytest`` run: registering the plugin here makes ``--fit-sizes`` and
friends known however pytest is started.
"""

pytest_plugins = ["tests.availability", "tests.benchmarks.plugin"]
