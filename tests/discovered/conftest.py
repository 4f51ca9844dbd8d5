"""``name`` runs over the committed exports and those given with ``--module PATH``."""

from pathlib import Path

from tests.discovered.exports import COMMITTED


def pytest_generate_tests(metafunc) -> None:
    if "name" in metafunc.fixturenames:
        extra = [str(Path(p).resolve()) for p in metafunc.config.getoption("module") or []]
        metafunc.parametrize("name", COMMITTED + extra)
