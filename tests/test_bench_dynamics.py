"""Tests for benchmarks/bench_dynamics.py: settings, their parsing and the summary."""

from __future__ import annotations

import pytest

from benchmarks.bench_dynamics import SETTINGS, config_fields, parse_settings, summarize
from search.config import SearchConfig


def test_a_dotted_name_sets_a_nested_field_and_leaves_the_base_alone() -> None:
    base = {"max_evals": 10, "mutation": {"insert": 0.3}}
    fields = config_fields(base, {"mutation.delete": 0.5, "max_evals": 20})
    assert fields == {"max_evals": 20, "mutation": {"insert": 0.3, "delete": 0.5}}
    assert base == {"max_evals": 10, "mutation": {"insert": 0.3}}
    cfg = SearchConfig.model_validate(config_fields({}, {"mutation.perturb_constant": 0.5}))
    assert cfg.mutation.perturb_constant == 0.5 and cfg.mutation.insert == 0.3


def test_every_built_in_setting_is_a_valid_config_and_the_first_is_the_defaults() -> None:
    assert next(iter(SETTINGS.items())) == ("default", {})
    for changes in SETTINGS.values():
        SearchConfig.model_validate(config_fields({}, changes))


def test_settings_parse_json_values_and_name_a_bad_item() -> None:
    assert parse_settings(None) == SETTINGS
    got = parse_settings([["ref"], ["x", "population=64", "method=random",
                                    'lr_grid={"points": 2}']])
    assert got == {"ref": {}, "x": {"population": 64, "method": "random",
                                    "lr_grid": {"points": 2}}}
    with pytest.raises(ValueError, match="'population' is not FIELD=VALUE"):
        parse_settings([["x", "population"]])
    with pytest.raises(ValueError, match="--setting x is named twice"):
        parse_settings([["x"], ["x", "tournament=4"]])


def test_the_summary_pairs_seeds_and_counts_a_failed_retest_as_the_warm_start() -> None:
    def row(setting, seed, search, retest, rounds):
        return {"setting": setting, "seed": seed, "search": search, "retest": retest,
                "rounds": rounds}

    rows = [row("ref", 0, 0.2, 0.10, 2), row("ref", 1, 0.3, 0.30, 4),
            row("new", 1, 0.5, 0.40, 3), row("new", 0, 0.4, None, 1)]
    s = summarize(rows, ["ref", "new"])
    assert s["ref"]["retest"] == pytest.approx(0.2) and s["ref"]["gain"] == 0.0
    assert s["new"]["retest"] == pytest.approx(0.2)  # (0.40 + 0) / 2
    # paired by seed: seed 0 gives 0 - 0.10, seed 1 gives 0.40 - 0.30
    assert s["new"]["gain"] == pytest.approx(0.0)
    assert s["new"]["gain_se"] == pytest.approx(0.1)
    assert s["new"]["search"] == pytest.approx(0.45) and s["new"]["rounds"] == 2.0
