"""Tests for benchmarks/bench_discovery.py's summary over search seeds."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks.bench_discovery import summary


def _row(fitness: float, b: float, held: float):
    best = SimpleNamespace(fitness=fitness)
    tiers = {"B": {"tasks": {"mlp_mnist1d/B": {"fitness": b}}},
             "held_out": {"fitness": held, "tasks": {"autoencoder_digits/A": {"fitness": held}}}}
    return best, {"tiers": tiers}


def test_the_summary_gives_each_figure_over_search_seeds(capsys) -> None:
    per_seed = [{"evolution": _row(0.10, 0.02, -0.20)}, {"evolution": _row(0.20, 0.04, 0.10)}]
    summary(per_seed, ["evolution"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # means 0.15, 0.03, -0.05; standard errors half the spreads: 0.05, 0.01, 0.15
    assert line == ("evolution  search +0.1500 ±0.0500; mlp_mnist1d/B +0.030 ±0.010; "
                    "autoencoder_digits/A -0.050 ±0.150")

