"""Tests for dsl/skeleton.py: naming what a program is."""

from __future__ import annotations

import pytest

from dsl import abstract, library, parse
from dsl.skeleton import identify, skeleton_text

WARM = library.get("warmstart")


def _warm_with(*extra: str, replace: dict[str, str] | None = None) -> str:
    lines = WARM.to_source().splitlines()
    for old, new in (replace or {}).items():
        lines = [new if line.strip() == old else line for line in lines]
    return "\n".join(lines[:-3] + [f"  {e}" for e in extra] + lines[-3:]) + "\n"


def test_constants_do_not_change_a_skeleton_and_structure_does() -> None:
    assert abstract.skeleton_hash(library.get("adamw", b2=0.9, weight_decay=0.3)) == \
        abstract.skeleton_hash(library.get("adamw"))
    assert abstract.skeleton_hash(library.get("adamw")) != abstract.skeleton_hash(
        library.get("adam"))  # weight decay is structure
    assert abstract.structural_hash(library.get("adamw", b2=0.9)) != abstract.structural_hash(
        library.get("adamw"))


@pytest.mark.parametrize("name", ["lion", "adamw", "muon", "momentum", "adafactor"])
def test_a_library_program_with_other_constants_is_named(name: str) -> None:
    from dsl.export import hyperparameters_of

    declared = hyperparameters_of(library.source(name))
    changed = {k: 0.5 for k in ("b1", "beta", "decay_rate") if k in declared}
    identity = identify(library.get(name, **changed), WARM)
    assert identity.kind == "library" and identity.name == name
    assert identity.describe() == f"library program {name} with other constants"


def test_the_warm_start_itself_and_with_other_constants() -> None:
    same = identify(parse(WARM.to_source()), WARM)
    assert same.kind == "warm_start" and same.same_constants
    retuned = parse(_warm_with(replace={"m = interp(g, m, 0.9)": "  m = interp(g, m, 0.7)"}))
    assert identify(retuned, WARM).describe() == "the warm start with other constants"
    dead = parse(_warm_with("junk = cosh(g)"))  # dead code is no structure
    assert identify(dead, WARM).kind == "warm_start"


def test_a_new_structure_names_its_nearest_library_skeleton_and_the_diff() -> None:
    signed = parse(_warm_with(replace={
        "wd = w * 0.01": "  update = sign(update)\n  wd = w * 0.01"}))
    identity = identify(signed, WARM)
    assert identity.kind == "new" and identity.name == "warmstart"
    assert "+update = sign(update)" in identity.diff.splitlines()
    assert identity.describe() == "a new structure (nearest library skeleton: warmstart)"
    assert "wd = w * C\n" in skeleton_text(signed)


def test_a_part_a_constant_of_zero_or_one_removes_is_other_constants_not_structure() -> None:
    no_decay = parse(_warm_with(replace={"wd = w * 0.01": "  wd = w * 0.0"}))
    deleted = parse("\n".join(line for line in _warm_with().splitlines()
                              if "wd" not in line) + "\n")  # the weight decay deleted
    assert abstract.skeleton_hash(no_decay) == abstract.skeleton_hash(deleted)
    assert identify(deleted, WARM).describe() == "the warm start with other constants"
    no_momentum = parse(_warm_with(replace={"m = interp(g, m, 0.9)": "  m = interp(g, m, 0.0)"}))
    assert identify(no_momentum, WARM).kind == "warm_start"  # beta1 = 0
    assert identify(library.get("adamw", weight_decay=0.0), WARM).describe() == (
        "library program adam with other constants")
    # a constant that makes nothing vanish is still abstracted, never folded
    assert abstract.skeleton_hash(library.get("lion", b1=0.5)) == abstract.skeleton_hash(
        library.get("lion"))
