"""Tests for dsl/library.py: every seed optimizer parses and checks."""

from __future__ import annotations

import pytest

from dsl import ProgramError, abstract, library

REQUIRED = {
    "sgd", "momentum", "nesterov", "adam", "adamw", "program3", "rmsprop", "adagrad",
    "adabelief", "lion", "adan", "adafactor", "lookahead_adamw", "powersign", "addsign",
    "program4", "warmstart",
}


def test_names() -> None:
    assert REQUIRED <= set(library.names())
    assert library.names() == sorted(library.names())


@pytest.mark.parametrize("name", library.names())
@pytest.mark.parametrize("shape", [(256, 128), (128,), ()])
def test_every_program_checks(name: str, shape: tuple[int, ...]) -> None:
    result = abstract.check(library.get(name), shape)
    assert result.update.shape == shape


def test_adafactor_states_are_factored() -> None:
    p = library.get("adafactor")
    for n, m in [(256, 128), (1024, 1024), (300, 4096)]:
        states = abstract.check(p, (n, m)).states
        assert sum(_size(s.shape) for s in states.values()) == n + m
    assert {k: v.shape for k, v in abstract.check(p, (128,)).states.items()} == {
        "v_row": (128,), "v_col": ()}
    # Below the threshold a matrix keeps its full second moment, as in optax.
    assert abstract.check(p, (64, 64)).states["v_row"].shape == (64, 64)


def _size(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def test_lookahead_slow_weights_start_as_w() -> None:
    p = library.get("lookahead_adamw")
    assert [s.init for s in p.states] == ["zeros", "zeros", "w"]


def test_lion_has_one_state_and_adamw_two() -> None:
    assert len(library.get("lion").states) == 1
    assert len(library.get("adamw").states) == 2


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ProgramError, match="no library program 'adamx'.*adamw"):
        library.get("adamx")


def test_source_keeps_the_reference_comment() -> None:
    assert "optax.adan" in library.source("adan")
