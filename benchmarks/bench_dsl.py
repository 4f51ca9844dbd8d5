"""Abstract execution throughput: parse + check + structural_hash + fingerprint.

Random valid programs of 10-30 statements (drawn before timing) go through the
whole screening path a mutant takes before any training. Goal: >= 2,000
programs/s on one core, so screening costs nothing next to a training run.

As a same-run reference for this noisy shared machine it also times Python's
own ``ast.parse`` on the same texts, and prints the ratio.

    python benchmarks/bench_dsl.py [--programs 2000] [--seed 0]

Last line: ``programs_per_s: N``.
"""

from __future__ import annotations

import argparse
import ast
import time

import numpy as np

from dsl import abstract, parse
from search.generate import random_program

LEAF = (256, 128)


def screen(text: str) -> None:
    program = parse(text)
    abstract.check(program, LEAF)
    abstract.structural_hash(program)
    abstract.fingerprint(program)


def best_rate(fn, texts: list[str], repeats: int) -> float:
    """Programs per second of the fastest of ``repeats`` passes (least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    texts = [
        random_program(rng, int(rng.integers(10, 31))).to_source() for _ in range(args.programs)
    ]
    screen(texts[0])  # warm the fixed fingerprint inputs
    rate = best_rate(screen, texts, args.repeats)
    ast_rate = best_rate(ast.parse, texts, args.repeats)
    print(f"programs: {len(texts)} (10-30 statements, seed {args.seed})")
    print(f"ast_parse_per_s (reference): {ast_rate:.0f}")
    print(f"cost_vs_ast_parse: {ast_rate / rate:.2f}")
    print(f"programs_per_s: {rate:.0f}")


if __name__ == "__main__":
    main()
