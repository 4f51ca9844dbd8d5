"""Test configuration.

Hypothesis runs derandomized by default, so the README's test command gives the
same verdict on every run and every machine; ``HYPOTHESIS_PROFILE=explore`` draws
fresh examples (how the two float32 rounding-tie cases in test_engine.py and
test_interpreter.py were found).

Calibrated baselines are cached per machine (evaluators.baselines): the tests
keep theirs in a folder of their own, so no test reads what another session wrote
(one folder for the session: pytest-xdist's workers inherit it).

The suite runs in two processes (pytest-xdist, ``-n 2 --dist loadgroup`` in
pyproject.toml; ``-n 0`` runs it in one). Tests that start Ray (a local instance,
a cluster, a search on Ray in a child process) form one group, run one after
another in one process, so two Ray instances never contend for the cores at once.
"""

import os
import tempfile

import pytest
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
if "OPTSEARCH_TEST_CACHE_DIR" not in os.environ:  # set once, by the first process
    os.environ["OPTSEARCH_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="optsearch-test-cache-")
os.environ["OPTSEARCH_CACHE_DIR"] = os.environ["OPTSEARCH_TEST_CACHE_DIR"]

#: Node-id prefixes of the tests that start Ray.
RAY_TESTS = (
    "tests/reliability/",
    "tests/search/test_cluster.py",
    "tests/search/test_executor.py",
    "tests/test_readme.py::test_command_runs",  # the README's searches run on Ray
    "tests/test_readme.py::test_benchmark_runs_as_the_readme_writes_it[bench_reliability.py]",
    "tests/test_readme.py::test_benchmark_runs_as_the_readme_writes_it[bench_search.py]",
)


def pytest_collection_modifyitems(config, items) -> None:
    """The Ray tests in one group, first: they take about as long as the rest
    together, so the other process runs the rest meanwhile."""
    for item in items:
        if item.nodeid.startswith(RAY_TESTS):
            item.add_marker(pytest.mark.xdist_group("ray"))
    items.sort(key=lambda item: not item.nodeid.startswith(RAY_TESTS))  # stable


def pytest_addoption(parser) -> None:
    parser.addoption("--module", action="append", metavar="PATH",
                     help="also hold this exported optimizer module (a .py file) to the "
                          "contract of tests/discovered/test_contract.py; repeatable")
