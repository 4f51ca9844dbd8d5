"""Step time of the exported Lion (discovered/lion.py) against the references.

JAX: one jitted training step of a small MLP with ``discovered.lion.lion``
against ``optax.lion``. PyTorch: ``optimizer.step()`` on the parameters of an
MLP (about 1M parameters, fixed gradients) with ``discovered.lion.Lion``
against a plain in-place PyTorch Lion step. Interleaved rounds, medians.
Goal: ratio <= 1.05.

    python benchmarks/bench_export.py [--rounds 15]

Last line: ``export_step_ratio: R`` (the worse of the two).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optax

from discovered import lion as exported


def interleaved(name: str, ours, ref, rounds: int, unit: str, scale: float) -> float:
    """Median times of two runners measured in alternation, printed; their ratio."""
    t_ours, t_ref = [], []
    for _ in range(rounds):
        t_ours.append(ours())
        t_ref.append(ref())
    m_ours, m_ref = float(np.median(t_ours)), float(np.median(t_ref))
    print(f"{name}: exported {m_ours * scale:.1f} {unit}, reference {m_ref * scale:.1f} {unit}, "
          f"ratio {m_ours / m_ref:.3f}")
    return m_ours / m_ref


def jax_ratio(rounds: int) -> float:
    import jax

    try:
        from benchmarks.bench_step import BATCH, WIDTHS, init_mlp, timed
    except ModuleNotFoundError:  # run as `python benchmarks/bench_export.py`: a sibling
        from bench_step import BATCH, WIDTHS, init_mlp, timed

    params = init_mlp(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, WIDTHS[0]))
    y = jax.random.randint(jax.random.PRNGKey(2), (BATCH,), 0, WIDTHS[-1])
    ours = timed(exported.lion(1e-4), params, x, y, 100)
    ref = timed(optax.lion(1e-4), params, x, y, 100)
    return interleaved("jax (vs optax.lion)", ours, ref, rounds, "us/step", 1e6)


def torch_ratio(rounds: int) -> float:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(),
                                   torch.nn.Linear(1024, 512))

    class ReferenceLion(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-4, b1=0.9, b2=0.99, weight_decay=0.001):
            super().__init__(params, {"lr": lr, "b1": b1, "b2": b2, "weight_decay": weight_decay})

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                lr, b1, b2, wd = group["lr"], group["b1"], group["b2"], group["weight_decay"]
                for p in group["params"]:
                    m = self.state[p].setdefault("m", torch.zeros_like(p))
                    update = (m * b1).add_(p.grad, alpha=1 - b1).sign_()
                    p.add_(update.add_(p, alpha=wd), alpha=-lr)
                    m.mul_(b2).add_(p.grad, alpha=1 - b2)

    def runner(cls):
        net = model()
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        opt = cls(net.parameters(), lr=1e-4)
        opt.step()

        def run(steps=20):
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            return (time.perf_counter() - start) / steps

        return run

    return interleaved("torch (vs in-place Lion)", runner(exported.Lion), runner(ReferenceLion),
                       rounds, "us/step", 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    ratio = max(jax_ratio(args.rounds), torch_ratio(args.rounds))
    print(f"export_step_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
