"""Test configuration.

Hypothesis runs derandomized by default, so the README's test command gives the
same verdict on every run and every machine; ``HYPOTHESIS_PROFILE=explore`` draws
fresh examples (how the two float32 rounding-tie cases in test_engine.py and
test_interpreter.py were found).

Calibrated baselines are cached per machine (evaluators.baselines): the tests
keep theirs in a folder of their own, so no test reads what another session wrote.
"""

import os
import tempfile

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
os.environ["OPTSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="optsearch-test-cache-")


def pytest_addoption(parser) -> None:
    parser.addoption("--module", action="append", metavar="PATH",
                     help="also hold this exported optimizer module (a .py file) to the "
                          "contract of tests/discovered/test_contract.py; repeatable")
