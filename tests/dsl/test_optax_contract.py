"""optax's contract tests (``optax/contrib/_common_test.py``) on ``to_optax``.

Every library program, through :func:`dsl.interpreter.to_optax`, runs every test
optax runs on its own contributed optimizers (tests/optax_suite.py reads them
from the installed optax, so a convention a later optax adds is tested here
without an edit). The learning rate is the suite's 1e-3 unless a program needs
another to converge on the suite's targets in its 30,000 steps (``LR``).

Two programs are expected to fail the convergence test on some targets, for a
reason that is theirs, not a convention's (``EXPECTED_FAILURES``); they are
marked ``xfail(strict=True)``, so the day one passes the mark must go.
"""

from __future__ import annotations

import functools

import pytest

from dsl import library
from dsl.interpreter import to_optax
from tests import optax_suite

SUITE = optax_suite.load()
CASES = optax_suite.cases(SUITE) if SUITE is not None else []

#: The test functions optax 0.2.8's suite holds; a later optax may add more.
KNOWN_TESTS = {
    "test_optimizers_accept_extra_args",
    "test_optimizers",
    "test_optimizers_can_be_wrapped_in_inject_hyperparams",
    "test_preserve_dtype",
    "test_gradient_accumulation",
    "test_state_shape_dtype_shard_stability",
    "test_optimizers_accept_learning_rate_schedule_if_type_annotated_as_such",
}

#: Learning rates other than the suite's 1e-3, each the smallest power of ten
#: that converges on every target within the suite's 30,000 steps: Adagrad's steps
#: shrink as its sum of squares grows (1e-2 stops short on the parabola); the
#: warm start and Program 3 scale lr by 0.001 themselves, Program 4 by 0.0002
#: (and clips g to [-lr, lr] before an arcsin, so lr > 1 gives NaN); Schedule-Free
#: AdamW takes the suite's own rate for optax's (1e-3 stops short on the parabola).
LR = {"adagrad": 0.1, "warmstart": 1.0, "program3": 1.0, "program4": 1.0,
      "schedule_free_adamw": 1e-2}
DEFAULT_LR = 1e-3

_ZERO_OVER_ZERO = ("divides 0 / 0 where every gradient of an entry so far is exactly zero "
                   "(the paper's program as published; warmstart adds eps): this target "
                   "has such an entry, and the parameter becomes NaN")
#: (program, suite test, target) -> why the program cannot pass it.
EXPECTED_FAILURES = {
    **{("program3", "test_optimizers", target): _ZERO_OVER_ZERO
       for target in ("_setup_parabola", "_setup_rosenbrock", "_setup_mixed_tensor_target")},
    **{("program4", "test_optimizers", target): "update = m / sqrt(m * m) " + _ZERO_OVER_ZERO
       for target in ("_setup_parabola", "_setup_rosenbrock", "_setup_mixed_tensor_target")},
    ("program4", "test_optimizers", "_setup_matrix_parabola"):
        "its weight decay (0.4602 against a sign update of 1) holds every entry at |w| <= "
        "1 / 0.4602 = 2.2, and this target's optimum has entries 3 and 4",
}


def _target(case: optax_suite.Case) -> str | None:
    target = dict(case.axes).get("target")
    return getattr(target, "__name__", None)


def _params():
    for name in library.names():
        for case in CASES:
            reason = EXPECTED_FAILURES.get((name, case.test, _target(case)))
            marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] \
                if reason else []
            yield pytest.param(name, case, id=f"{name}-{case.id}", marks=marks)


def test_the_installed_optax_ships_its_suite() -> None:
    assert SUITE is not None, (
        f"optax {optax_suite.version()} has no {optax_suite.MODULE}: the contract tests "
        "below ran on nothing")
    assert KNOWN_TESTS <= {case.test for case in CASES}
    assert len(CASES) >= 16  # 0.2.8: 7 functions over their target and dtype axes


def test_every_expected_failure_names_a_real_case() -> None:
    tests = {(case.test, _target(case)) for case in CASES}
    for name, test, target in EXPECTED_FAILURES:
        assert name in library.names() and (test, target) in tests, (name, test, target)


@pytest.mark.parametrize(("program", "case"), list(_params()))
def test_library_program_passes_optax_contract(program: str, case: optax_suite.Case,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    optax_suite.run(SUITE, case, f"optsearch_{program}",
                    functools.partial(to_optax, library.get(program)),
                    {"learning_rate": LR.get(program, DEFAULT_LR)}, monkeypatch)
