"""Loads the benchmark plugin for every pytest run of the project.

pytest reads command-line options only from conftest files and plugins it loads at start-up, which
tests/benchmarks/ is not in a bare ``pytest`` run: registering the plugin here makes ``--fit-sizes`` and
friends known however pytest is started.
"""

pytest_plugins = ["tests.benchmarks.plugin"]
