"""Step time of the exported Lion and Muon (discovered/) against the references.

JAX: one jitted training step of a small MLP with ``discovered.lion.lion`` against
``optax.lion``, and ``discovered.muon.muon`` against ``optax.contrib.muon``.
PyTorch: ``optimizer.step()`` on the parameters of an MLP (fixed gradients) with
``discovered.lion.Lion`` against a plain in-place PyTorch Lion step (about 1M
parameters), and ``discovered.muon.Muon`` against a plain PyTorch Muon step
(Newton-Schulz on the matrices, AdamW on the biases; 262k parameters: one step
orthogonalizes two 512 x 256 matrices). Interleaved rounds, medians, one thread.
Goal: ratio <= 1.05.

    python benchmarks/bench_export.py [--rounds 15]

Last line: ``export_step_ratio: R`` (the worst of the four).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optax

from discovered import lion as exported
from discovered import muon as exported_muon


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


def jax_ratio(rounds: int, muon: bool = False) -> float:
    import jax

    try:
        from benchmarks.bench_step import BATCH, WIDTHS, init_mlp, timed
    except ModuleNotFoundError:  # run as `python benchmarks/bench_export.py`: a sibling
        from bench_step import BATCH, WIDTHS, init_mlp, timed

    params = init_mlp(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, WIDTHS[0]))
    y = jax.random.randint(jax.random.PRNGKey(2), (BATCH,), 0, WIDTHS[-1])
    if muon:
        ours = timed(exported_muon.muon(1e-3), params, x, y, 20)
        ref = timed(optax.contrib.muon(1e-3), params, x, y, 20)
        return interleaved("jax muon (vs optax.contrib.muon)", ours, ref, rounds, "us/step", 1e6)
    ours = timed(exported.lion(1e-4), params, x, y, 100)
    ref = timed(optax.lion(1e-4), params, x, y, 100)
    return interleaved("jax (vs optax.lion)", ours, ref, rounds, "us/step", 1e6)


def torch_ratio(rounds: int, muon: bool = False) -> float:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    width = (256, 512) if muon else (512, 1024)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(width[0], width[1]), torch.nn.ReLU(),
                                   torch.nn.Linear(width[1], width[0]))

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

    class ReferenceMuon(torch.optim.Optimizer):
        """Muon as optax.contrib.muon computes it, by hand: bias-corrected Nesterov
        momentum, five Newton-Schulz steps and the shape scale on each matrix;
        Nesterov AdamW on the rest."""

        def __init__(self, params, lr=1e-3, beta=0.95, adam_b1=0.9, adam_b2=0.999,
                     epsilon=1e-8):
            super().__init__(params, {"lr": lr, "beta": beta, "adam_b1": adam_b1,
                                      "adam_b2": adam_b2, "epsilon": epsilon})

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                lr, b2, eps = group["lr"], group["adam_b2"], group["epsilon"]
                for p in group["params"]:
                    state, g, matrix = self.state[p], p.grad, p.ndim == 2
                    if not state:
                        state.update(t=0, m=torch.zeros_like(p))
                        if not matrix:
                            state["v"] = torch.zeros_like(p)
                    state["t"] += 1
                    t, m = state["t"], state["m"]
                    b = group["beta"] if matrix else group["adam_b1"]
                    m.lerp_(g, 1 - b)
                    u = (m * (b / (1 - b ** (t + 1)))).add_(g, alpha=(1 - b) / (1 - b ** t))
                    if not matrix:
                        v = state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                        p.addcdiv_(u, (v / (1 - b2 ** t)).sqrt_().add_(eps), value=-lr)
                        continue
                    tall = p.shape[0] > p.shape[1]
                    x = u.T if tall else u
                    x = x / (x.norm() + 1e-8)
                    for _ in range(5):
                        a = x @ x.T
                        x = torch.addmm(x, torch.addmm(a, a, a, beta=-4.775, alpha=2.0315), x,
                                        beta=3.4445)
                    p.add_(x.T if tall else x, alpha=-lr * max(1.0, p.shape[1] / p.shape[0]) ** 0.5)

    def runner(cls):
        net = model()
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        opt = cls(net.parameters(), lr=1e-4)
        opt.step()

        def run(steps=5 if muon else 20):
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            return (time.perf_counter() - start) / steps

        return run

    if muon:
        return interleaved("torch muon (vs plain PyTorch Muon)", runner(exported_muon.Muon),
                           runner(ReferenceMuon), rounds, "us/step", 1e6)
    return interleaved("torch (vs in-place Lion)", runner(exported.Lion), runner(ReferenceLion),
                       rounds, "us/step", 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    ratio = max(jax_ratio(args.rounds), torch_ratio(args.rounds),
                jax_ratio(args.rounds, muon=True), torch_ratio(args.rounds, muon=True))
    print(f"export_step_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
