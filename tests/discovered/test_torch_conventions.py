"""PyTorch's optimizer conventions, kept by every exported ``torch.optim.Optimizer``.

Each test checks one convention on the export and on ``torch.optim.AdamW`` in the
same way, so what is asserted is what PyTorch's own optimizer does: schedulers
drive ``param_groups[i]["lr"]``; param groups keep their own hyperparameters
(and ``add_param_group`` works); ``state_dict`` survives ``torch.save`` and
``torch.load(weights_only=True)`` into a fresh instance and the run continues bit
for bit, states keeping their dtype; parameters without gradients are skipped and
``zero_grad(set_to_none=True)`` leaves nothing to do; a closure is called with
gradients enabled and its loss returned; ``torch.compile`` traces ``step`` with
no graph break (``fullgraph=True``), compiles no more graphs than AdamW's plus
one, and a compiled training step breaks only where AdamW's does; step hooks run.

Where PyTorch ships the same optimizer, the export matches it: ``adafactor``
against ``torch.optim.Adafactor`` (``test_adafactor_matches_torch_adafactor``).
``muon`` follows optax.contrib.muon, not torch.optim.Muon (which corrects no bias,
scales by PyTorch's (out, in) shape and takes 2-D parameters only); test_contract.py
holds it to a plain PyTorch Muon step.
"""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest

from tests.discovered.exports import load, torch_class

torch = pytest.importorskip("torch")

SHAPES = [(256, 128), (64, 32), (32,), ()]
LR = 1e-3


def classes(name: str) -> list[type]:
    """torch.optim.AdamW, then the export's class: every test treats both alike."""
    return [torch.optim.AdamW, torch_class(load(name), name)]


def parameters(dtype=torch.float32, shapes=SHAPES, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [torch.nn.Parameter(torch.tensor(0.1 * rng.standard_normal(s), dtype=dtype))
            for s in shapes]


def gradients(steps: int, dtype=torch.float32, shapes=SHAPES, seed: int = 1) -> list[list]:
    rng = np.random.default_rng(seed)
    return [[torch.tensor(rng.standard_normal(s), dtype=dtype) for s in shapes]
            for _ in range(steps)]


def train(params, opt, grads, before=None) -> list[np.ndarray]:
    """Steps with the given gradients; ``before(k)`` runs ahead of step k."""
    for k, gs in enumerate(grads):
        if before is not None:
            before(k)
        for p, g in zip(params, gs, strict=True):
            p.grad = None if g is None else g.clone()
        opt.step()
    return values(params)


def values(params) -> list[np.ndarray]:
    return [p.detach().float().numpy().copy() for p in params]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def differ(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def other_hyperparameters(cls: type) -> dict[str, object]:
    """Every hyperparameter of ``cls`` but lr, each at another value than its default."""
    if cls is torch.optim.AdamW:
        return {"betas": (0.8, 0.99), "weight_decay": 0.05}
    signature = inspect.signature(cls.__init__).parameters
    return {k: p.default * 0.5 for k, p in signature.items() if k not in ("self", "params", "lr")}


def test_a_scheduler_drives_the_learning_rate(name: str) -> None:
    for cls in classes(name):
        grads = gradients(8)
        params = parameters()
        opt = cls(params, lr=1e-2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k))

        def step_scheduler(k: int, scheduler=scheduler) -> None:
            if k:
                scheduler.step()

        scheduled = train(params, opt, grads, before=step_scheduler)
        by_hand_params = parameters()
        by_hand = cls(by_hand_params, lr=1e-2)

        def set_lr(k: int, opt=by_hand) -> None:
            opt.param_groups[0]["lr"] = 1e-2 / (1 + k)

        assert_same(scheduled, train(by_hand_params, by_hand, grads, before=set_lr))
        constant_params = parameters()
        assert differ(scheduled, train(constant_params, cls(constant_params, lr=1e-2), grads))
        assert scheduler.get_last_lr() == [1e-2 / 8]


def test_param_groups_keep_their_own_hyperparameters(name: str) -> None:
    for cls in classes(name):
        other = other_hyperparameters(cls)
        grads = gradients(6)
        params = parameters()
        opt = cls([{"params": params[:2], "lr": 1e-2, **other}, {"params": params[2:]}], lr=LR)
        grouped = train(params, opt, grads)
        first, second = parameters()[:2], parameters()[2:]
        alone_first = cls(first, lr=1e-2, **other)
        alone_second = cls(second, lr=LR)
        for gs in grads:
            for p, g in zip(first + second, gs, strict=True):
                p.grad = g.clone()
            alone_first.step()
            alone_second.step()
        assert_same(grouped, values(first + second))
        default_params = parameters()[:2]  # the group at the optimizer's defaults
        assert differ(grouped[:2], train(default_params, cls(default_params, lr=LR),
                                         [g[:2] for g in grads]))


def test_add_param_group_takes_the_defaults(name: str) -> None:
    for cls in classes(name):
        grads = gradients(4)
        params = parameters()
        opt = cls(params[:2], lr=LR)
        opt.add_param_group({"params": params[2:]})
        assert opt.param_groups[1]["lr"] == LR
        together = parameters()
        assert_same(train(params, opt, grads), train(together, cls(together, lr=LR), grads))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_state_dict_through_torch_save_continues_bit_for_bit(name: str, dtype: str) -> None:
    dtype = getattr(torch, dtype)
    for cls in classes(name):
        grads = gradients(10, dtype)
        params = parameters(dtype)
        opt = cls(params, lr=LR)
        train(params, opt, grads[:5])
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)
        snapshot = [p.detach().clone() for p in params]
        straight = train(params, opt, grads[5:])
        fresh = parameters(dtype, seed=7)
        with torch.no_grad():
            for p, s in zip(fresh, snapshot, strict=True):
                p.copy_(s)
        resumed_opt = cls(fresh, lr=LR)
        buffer.seek(0)
        resumed_opt.load_state_dict(torch.load(buffer, weights_only=True))
        for p, q in zip(params, fresh, strict=True):
            kept = {k: v.dtype for k, v in opt.state[p].items() if torch.is_tensor(v)}
            assert {k: v.dtype for k, v in resumed_opt.state[q].items()
                    if torch.is_tensor(v)} == kept
        assert_same(straight, train(fresh, resumed_opt, grads[5:]))


def test_parameters_without_gradients_are_left_alone(name: str) -> None:
    for cls in classes(name):
        params = parameters()
        opt = cls(params, lr=LR)
        frozen = values(params)[1]
        grads = [[g[0], None, g[2], g[3]] for g in gradients(3)]
        after = train(params, opt, grads)
        np.testing.assert_array_equal(after[1], frozen)
        assert params[1] not in opt.state and params[0] in opt.state
        opt.zero_grad(set_to_none=True)
        assert all(p.grad is None for p in params)
        state = {k: v.clone() for k, v in opt.state[params[0]].items() if torch.is_tensor(v)}
        opt.step()  # nothing has a gradient: nothing moves, no state changes
        assert_same(values(params), after)
        for k, v in state.items():
            assert torch.equal(opt.state[params[0]][k], v)


def test_a_closure_is_called_with_gradients_and_its_loss_returned(name: str) -> None:
    targets = [torch.ones(s) for s in SHAPES]
    for cls in classes(name):
        params = parameters()
        opt = cls(params, lr=LR)
        seen = []

        def closure(params=params, opt=opt, seen=seen):
            seen.append(torch.is_grad_enabled())
            opt.zero_grad()
            loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets, strict=True))
            loss.backward()
            return loss

        by_hand = parameters()
        reference = cls(by_hand, lr=LR)
        for _ in range(3):
            loss = opt.step(closure)
            expected = sum(((p - t) ** 2).sum() for p, t in zip(by_hand, targets, strict=True))
            assert float(loss) == pytest.approx(float(expected.detach()))
            reference.zero_grad()
            expected.backward()
            reference.step()
        assert seen == [True, True, True]
        assert_same(values(params), values(by_hand))


def counting_backend(counter: list[int]):
    def backend(graph_module, example_inputs):
        counter.append(1)
        return graph_module.forward

    return backend


def test_torch_compile_traces_step_without_a_graph_break(name: str) -> None:
    import torch._dynamo as dynamo

    graphs = {}
    adamw, exported = classes(name)
    for cls in (adamw, exported):
        ours = cls is not torch.optim.AdamW
        params, eager_params = parameters(), parameters()
        opt, eager = cls(params, lr=LR), cls(eager_params, lr=LR)
        grads = gradients(6)
        dynamo.reset()
        compiled = []
        # AdamW's step has two deliberate graph breaks (torch/optim/optimizer.py,
        # _use_grad): it cannot be traced whole; the export's can
        step = torch.compile(opt.step, fullgraph=ours, backend=counting_backend(compiled))
        counts = []
        for gs in grads:
            for p, q, g in zip(params, eager_params, gs, strict=True):
                p.grad, q.grad = g.clone(), g.clone()
            step()
            eager.step()
            counts.append(len(compiled))
        for a, b in zip(values(params), values(eager_params), strict=True):
            # AdamW's differ by rounding too (eager runs its foreach kernels)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert counts[-1] == counts[1]  # no recompilation once the state exists
        graphs[cls] = counts[-1]
    assert graphs[exported] <= graphs[adamw] + 1, graphs


def test_a_compiled_training_step_breaks_only_where_adamws_does(name: str) -> None:
    import torch._dynamo as dynamo

    reasons = {}
    for cls in classes(name):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                    torch.nn.Linear(16, 1))
        opt = cls(model.parameters(), lr=LR)
        x, y = torch.randn(32, 8), torch.randn(32, 1)

        def train_step(model=model, opt=opt, x=x, y=y):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        train_step()
        dynamo.reset()
        explained = dynamo.explain(train_step)()
        reasons[cls] = [str(b.reason).split("\n")[0] for b in explained.break_reasons]
    adamw, ours = reasons.values()
    assert ours == adamw, reasons  # torch 2.13: one break, at Tensor.backward()


def test_step_hooks_run_around_each_step(name: str) -> None:
    for cls in classes(name):
        params = parameters()
        opt = cls(params, lr=LR)
        calls = []

        def hook(kind: str, calls=calls, watched=params[2]):
            return lambda opt, args, kwargs: calls.append((kind, float(watched[0])))

        pre = opt.register_step_pre_hook(hook("pre"))
        post = opt.register_step_post_hook(hook("post"))
        train(params, opt, gradients(2))
        assert [c[0] for c in calls] == ["pre", "post", "pre", "post"]
        assert calls[0][1] != calls[1][1]  # the step ran between its two hooks
        pre.remove()
        post.remove()
        train(params, opt, gradients(1))
        assert len(calls) == 4


def test_bad_learning_rates_are_refused_as_torch_optim_does(name: str) -> None:
    for cls in classes(name):
        with pytest.raises(ValueError, match="-1"):
            cls(parameters(), lr=-1)


def test_adafactor_matches_torch_adafactor() -> None:
    """``torch.optim.Adafactor`` is Adafactor with the same decay (1 - t^-0.8), RMS
    clipping (d = 1), parameter-scale floor (eps2 = 1e-3 = min_scale) and no first
    moment; where both factor the same leaves it is this export, up to rounding.

    Where they differ, and this test shows it: PyTorch factors every tensor of two
    or more dimensions along its last two, the export (as optax.adafactor) only
    those whose two largest dimensions are >= 128; PyTorch's lr caps a relative
    step, min(lr, 1/sqrt(t)), equal to lr while t <= 1/lr^2 (10,000 steps at its
    default 1e-2); and it clamps the second moment at eps1^2 where the export adds
    1e-30 to g^2.
    """
    ours_cls = torch_class(load("adafactor"), "adafactor")
    shapes = [(256, 128), (128, 256), (300,), ()]
    grads = gradients(100, shapes=shapes)
    ours_params, torch_params = parameters(shapes=shapes), parameters(shapes=shapes)
    ours = train(ours_params, ours_cls(ours_params, lr=LR), grads)
    theirs = train(torch_params, torch.optim.Adafactor(torch_params, lr=LR), grads)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    small = [(64, 32)]
    grads = gradients(20, shapes=small)
    ours_params, torch_params = parameters(shapes=small), parameters(shapes=small)
    ours = train(ours_params, ours_cls(ours_params, lr=LR), grads)
    theirs = train(torch_params, torch.optim.Adafactor(torch_params, lr=LR), grads)
    assert not np.allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-7)
