"""What the mutation operators propose: constants only, or structure?

    python benchmarks/bench_proposals.py                     # 3,000 children a setting
    python benchmarks/bench_proposals.py --children 500 --chain 20

For each setting of the mutation weights (the default, and the default with the
``fragment`` operator at a weight of 0.2 and 0.5, weights renormalized), mutate the
warm start ``--children`` times (or walk ``--chain`` mutations in a row from it) and
count, over the children: the share whose skeleton is the warm start's (other constants
only: :func:`dsl.abstract.skeleton_hash`), the share whose live update holds a function
the warm start lacks, and the share holding a live ``newton_schulz`` (Muon's) or a live
``sign`` (Lion's). No training: it measures what a search is offered, not what it finds.

Last line: ``live_muon_or_lion_with_fragments: X``, the share of children (0.2 fragment
weight) holding a live ``newton_schulz`` or ``sign``, next to the default's on the line
before.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dsl import abstract, graph, library  # noqa: E402
from search.config import MutationConfig  # noqa: E402
from search.mutation import mutate  # noqa: E402


def shares(cfg: MutationConfig, children: int, chain: int, seed: int) -> dict[str, float]:
    warm = library.get("warmstart")
    warm_ops = {st.op for st in warm.statements}
    warm_skeleton = abstract.skeleton_hash(warm)
    rng = np.random.default_rng(seed)
    counts = {"same skeleton": 0, "new live function": 0, "live newton_schulz": 0,
              "live sign": 0, "live either": 0}
    for _ in range(children):
        child = warm
        for _ in range(chain):
            child, _ = mutate(child, rng, cfg)
        live = graph.live_ops(child)
        counts["same skeleton"] += abstract.skeleton_hash(child) == warm_skeleton
        counts["new live function"] += bool(live - warm_ops)
        counts["live newton_schulz"] += "newton_schulz" in live
        counts["live sign"] += "sign" in live
        counts["live either"] += bool(live & {"newton_schulz", "sign"})
    return {k: v / children for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=3000, help="children a setting")
    parser.add_argument("--chain", type=int, default=1, help="mutations in a row a child")
    parser.add_argument("--seed", type=int, default=0, help="the random seed")
    args = parser.parse_args(argv)
    if args.children < 1 or args.chain < 1:
        parser.error("--children and --chain must be at least 1")
    settings = {"default": MutationConfig(), "fragment 0.2": MutationConfig(fragment=0.25),
                "fragment 0.5": MutationConfig(fragment=1.0)}
    # 0.25 and 1.0 beside the four default weights (summing to 1) are 0.2 and 0.5 of all
    print(f"{args.children} children of the warm start, {args.chain} mutation(s) each")
    print(f"{'setting':<14} {'same skeleton':>14} {'new function':>13} {'newton_schulz':>14} "
          f"{'sign':>7} {'either':>7} {'seconds':>8}")
    found = {}
    for name, cfg in settings.items():
        start = time.perf_counter()
        found[name] = s = shares(cfg, args.children, args.chain, args.seed)
        print(f"{name:<14} {s['same skeleton']:>14.1%} {s['new live function']:>13.1%} "
              f"{s['live newton_schulz']:>14.1%} {s['live sign']:>7.1%} "
              f"{s['live either']:>7.1%} {time.perf_counter() - start:>8.1f}", flush=True)
    print(f"live_muon_or_lion_default: {found['default']['live either']:.4f}")
    print(f"live_muon_or_lion_with_fragments: {found['fragment 0.2']['live either']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
