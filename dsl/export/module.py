"""The generated module: its docstring, the rule functions, the optax transform
and recipe, and the PyTorch class, filled in for one program."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from dsl import graph
from dsl.export.copied import helpers_for
from dsl.export.jax_rule import LEAF, rule_source, shape_exprs
from dsl.export.split import Split, split_decay_and_lr
from dsl.export.text import (
    Site,
    _camel,
    _collision_free,
    _docstring_text,
    _free_hyperparameters,
    _names_for,
    _snake,
    _wrap,
)
from dsl.export.torch_rule import torch_rule_source
from dsl.program import Program


def _lr_doc(learning_rate: float | None, note: str, uses_lr: bool) -> list[str]:
    """The docstring's paragraph on the learning rate: its convention and its default."""
    if not uses_lr:
        text = ("Learning rate: the rule above never reads lr, so learning_rate changes "
                "nothing; its step size is its own constants'.")
    else:
        text = ("Learning rate: lr multiplies the update as the rule above computes it, its "
                "constants included; in a search lr is the task's warm-up and cosine schedule "
                "times the multiplier calibration chose (a calibrated default is a peak "
                "learning rate). ")
        if learning_rate is None:
            text += ("No calibration is known for this program: the 1e-3 of the examples is "
                     "a placeholder to tune (run_search.py funnel calibrates a run's "
                     "finalists; export --lr sets the default).")
        else:
            # the note names tasks read from a run directory: untrusted, escaped as all
            # text that enters generated code
            text += (f"The default, {learning_rate:.4g}, is what calibration chose"
                     f"{' ' + _docstring_text(note) if note else ''}.")
    return textwrap.wrap(text, 88)


@dataclass(frozen=True)
class Parts:
    """What the module template fills in for one program: its names, its core
    statements, hyperparameters and states, and both rule bodies."""

    p: Program  # dead code removed, names clear of the generated code's
    snake: str  # the module and function name
    cls: str  # the class name
    split: Split | None  # where the weight decay and learning rate are, if recognised
    core: tuple[int, ...]  # the statements the rule functions compute
    names: dict[Site, str]  # hyperparameter names by where they are used
    rule: list[str]  # the body of NAME_rule
    torch_rule: list[str]  # the body of NAME_rule_torch
    owns_direction: bool  # the PyTorch rule returns a tensor of its own
    learning_rate: float | None
    learning_rate_note: str
    origin: str

    @property
    def hyper(self) -> list[str]:
        return list(dict.fromkeys(self.names.values()))

    @property
    def defaults(self) -> dict[str, float]:
        return {n: self.p.statements[i].args[j] for (i, j), n in self.names.items()}

    @property
    def states(self) -> list[str]:
        return list(self.p.state_names)

    @property
    def wd(self) -> float | None:
        return self.split.weight_decay if self.split else None

    @property
    def uses_lr(self) -> bool:
        return any("lr" in self.p.statements[i].args for i in self.core)

    @property
    def lr_default(self) -> str:
        return "1e-3" if self.learning_rate is None else repr(float(self.learning_rate))

    @property
    def hyper_kw(self) -> list[str]:
        return [f"{h}={h}" for h in self.hyper]

    def hyper_params(self) -> list[str]:
        """The hyperparameters as keyword parameters with their defaults."""
        return [f"{h}: float = {self.defaults[h]!r}" for h in self.hyper]

    def wd_param(self) -> list[str]:
        return [f"weight_decay: float = {self.wd!r}"] if self.wd is not None else []

    @property
    def state_shapes(self) -> dict[str, str]:
        return shape_exprs(self.p, self.core)[0]

    def jax_inits(self) -> list[str]:
        """The optax state's fields at ``init``."""
        def start(s: str, init: str) -> str:
            if init == "w":
                return "jnp.asarray(w, jnp.float32)"
            return f"jnp.zeros({self.state_shapes[s].format('jnp.shape(w)')}, jnp.float32)"

        return [f"{s}=jax.tree.map(lambda w: {start(s, st.init)}, params)"
                for s, st in zip(self.states, self.p.states, strict=True)]

    def torch_inits(self, indent: str) -> list[str]:
        """The PyTorch state's tensors at the first step."""
        def start(s: str, init: str) -> str:
            if init == "w":
                return "p.detach().to(dtype).clone()"
            if self.state_shapes[s] == LEAF:
                return "torch.zeros_like(p, dtype=dtype)"
            return f"p.new_zeros({self.state_shapes[s].format('p.shape')}, dtype=dtype)"

        return [f'{indent}state["{s}"] = {start(s, st.init)}'
                for s, st in zip(self.states, self.p.states, strict=True)]


def plan(program: Program, name: str, *, hyperparameters: dict[Site, str] | None = None,
         origin: str = "a program", inplace: bool = True, learning_rate: float | None = None,
         learning_rate_note: str = "") -> Parts:
    """The :class:`Parts` of ``program``'s module (see :func:`export_source`)."""
    snake, cls = _snake(name), _camel(name)
    p, taken = _collision_free(graph.remove_dead(program), snake, cls)
    split = split_decay_and_lr(p)
    core = split.core if split else tuple(range(len(p.statements)))
    given = None
    if hyperparameters is not None:  # renumbered past the statements remove_dead dropped
        kept = {i: k for k, i in enumerate(sorted(graph.liveness(program).statements))}
        given = {(kept[i], j): n for (i, j), n in hyperparameters.items() if i in kept}
    names = _free_hyperparameters(_names_for(p, core, given), taken)
    direction = split.direction if split else p.outputs[0]
    returns = ", ".join([direction, *p.outputs[1:]]) if p.states else direction
    torch_rule, owns_direction = torch_rule_source(p, core, returns, names, inplace)
    return Parts(p, snake, cls, split, core, names, rule_source(p, core, returns, names),
                 torch_rule, owns_direction, learning_rate, learning_rate_note, origin)


def export_source(program: Program, name: str, *,
                  hyperparameters: dict[Site, str] | None = None, origin: str = "a program",
                  inplace: bool = True, learning_rate: float | None = None,
                  learning_rate_note: str = "") -> str:
    """The text of ``discovered/NAME.py`` for ``program``.

    ``learning_rate`` is the exported optimizer's default learning rate (what
    calibration chose; ``learning_rate_note`` says where, for the docstring).
    Without it the optax recipe requires one and the PyTorch class defaults to
    1e-3, and the docstring says that no calibration was known.

    ``hyperparameters`` names the constants the program's text gave names
    (:func:`hyperparameter_sites`); the exported optimizer takes exactly those.
    Without it every constant becomes a hyperparameter (``beta1``, ``c1``, ...).

    ``inplace=False`` makes the PyTorch step build a new tensor for every
    statement (slower; for comparisons and debugging).
    """
    m = plan(program, name, hyperparameters=hyperparameters, origin=origin, inplace=inplace,
             learning_rate=learning_rate, learning_rate_note=learning_rate_note)
    lines = [*docstring(m), *header(m), *rule_functions(m), *optax_part(m), *torch_part(m)]
    return "\n".join(line for line in lines if line is not None) + "\n"


def docstring(m: Parts) -> list[str]:
    """The module's docstring: the rule, its hyperparameters, the learning rate, examples."""
    p = m.p
    signature_states = [s if st.init == "zeros" else f"{s}=w"
                        for s, st in zip(m.states, p.states, strict=True)]
    hyper_doc = ", ".join(f"{h} = {m.defaults[h]!r}" for h in m.hyper) or "none"
    return [
        f'"""{m.cls}: an optimizer exported from {_docstring_text(m.origin)} by optsearch.',
        "",
        "Update rule for each parameter tensor w with gradient g at step t = 1, 2, ...",
        "(lr is the learning rate; the parameter moves by w <- w - update)::",
        "",
        f"    def train({', '.join(['w', 'g', 'lr', 't', *signature_states])}):",
        "\n".join(f"      {st.to_source()}" for st in p.statements),
        f"      return {', '.join(p.outputs)}",
        "",
        textwrap.fill(f"Hyperparameters (defaults): {hyper_doc}"
                      + (f", weight_decay = {m.wd!r}" if m.wd is not None else "") + ".", 88),
        "",
        *_lr_doc(m.learning_rate, m.learning_rate_note, m.uses_lr or m.split is not None),
        "",
        "Example (optax)::",
        "",
        "    import jax.numpy as jnp, optax",
        f"    opt = {m.snake}(learning_rate={m.lr_default})",
        '    params = {"w": jnp.ones(3)}',
        "    state = opt.init(params)",
        '    updates, state = opt.update({"w": jnp.ones(3)}, state, params)',
        "    params = optax.apply_updates(params, updates)",
        "",
        "Example (PyTorch)::",
        "",
        f"    from discovered.{m.snake} import {m.cls}",
        f"    opt = {m.cls}(model.parameters(), lr={m.lr_default})",
        '"""',
        "",
    ]


def header(m: Parts) -> list[str]:
    """Imports, the program's source, and the helpers its code calls."""
    helpers = helpers_for([*m.rule, *m.torch_rule, *m.jax_inits(), *m.torch_inits("")])
    return [
        "import functools",
        *(["import math"] if any("math." in line for line in _checks(m)) else []),
        "from typing import Any, NamedTuple",
        "",
        "import jax",
        "import jax.numpy as jnp",
        "import optax",
        "",
        "#: The program this module was generated from (optsearch's DSL), for provenance.",
        'SOURCE = """\\',
        *m.p.to_source().rstrip("\n").split("\n"),
        '"""',
        "",
        "",
        *[line for src in helpers for line in (*src.rstrip().split("\n"), "", "")],
    ]


def rule_functions(m: Parts) -> list[str]:
    """``NAME_rule`` over an array namespace and ``NAME_rule_torch`` on PyTorch tensors."""
    rule_args = ["w", "g", "lr", "t", *m.states]
    keywords = ["*", *m.hyper_params()] if m.hyper else []
    return [
        _wrap(f"def {m.snake}_rule", ["xp", *rule_args, *keywords], ":", ""),
        f'    """One step on one tensor: ({", ".join(["direction", *m.states])}).',
        "",
        f"    ``xp`` is ``jax.numpy`` or ``numpy`` (:func:`{m.snake}_rule_torch` is for PyTorch)."
        + ("\n    The weight decay and the learning rate are applied by the callers."
           if m.split else "") + '\n    """',
        *m.rule,
        "",
        "",
        _wrap(f"def {m.snake}_rule_torch", [*rule_args, *keywords], ":", ""),
        f'    """:func:`{m.snake}_rule` on PyTorch tensors, overwriting the values it no longer',
        "    needs (the states' own tensors included) instead of making new ones; w and g",
        '    are never written."""',
        *(["    import torch", ""] if any("torch" in line for line in m.torch_rule) else []),
        *m.torch_rule,
        "",
        "",
    ]


def optax_part(m: Parts) -> list[str]:
    """The optax state, ``scale_by_NAME`` and the recipe ``NAME``."""
    snake, cls, states = m.snake, m.cls, m.states
    recipe_kw = ["learning_rate: optax.ScalarOrSchedule"
                 + ("" if m.learning_rate is None else f" = {m.lr_default}"),
                 *m.hyper_params(), *m.wd_param()]
    if m.split:
        chain = [_wrap(f"scale_by_{snake}", m.hyper_kw, ",", "        ").strip()[:-1]]
        if m.wd is not None:
            chain.append("optax.add_decayed_weights(weight_decay)")
        chain.append("optax.scale_by_learning_rate(learning_rate)")
        links = "".join(f"        {c},\n" for c in chain)
        recipe_body = f"    return optax.chain(\n{links}    )"
        scale_lr = "1.0"
    else:
        recipe_body = _wrap("return optax.chain", [
            _wrap(f"scale_by_{snake}", ["learning_rate", *m.hyper_kw], "", "").strip(),
            "optax.scale(-1.0)"], "", "    ")
        scale_lr = "lr_fn(state.count)"
    return [
        f"class ScaleBy{cls}State(NamedTuple):",
        f'    """State of :func:`scale_by_{snake}`."""',
        "",
        "    count: jax.Array",
        "\n".join(f"    {s}: optax.Updates" for s in states) or "    pass",
        "",
        "",
        _wrap(f"def scale_by_{snake}",
              ([] if m.split else ["learning_rate: optax.ScalarOrSchedule = 1.0"])
              + m.hyper_params(),
              " -> optax.GradientTransformationExtraArgs:", ""),
        f'    """The {cls} direction as an optax transform (states kept in float32)."""',
        ("    lr_fn = learning_rate if callable(learning_rate) else (lambda count: learning_rate)"
         if not m.split else None),
        "",
        "    def init_fn(params: Any) -> " + f"ScaleBy{cls}State:",
        _wrap(f"return ScaleBy{cls}State", ["count=jnp.zeros([], jnp.int32)", *m.jax_inits()],
              "", "        "),
        "",
        "    def update_fn(",
        "        updates: Any, state: Any, params: Any = None, **extra_args: Any",
        "    ) -> tuple[Any, Any]:",
        "        del extra_args  # optax's convention: a chain passes them to every member",
        "        if params is None:",
        "            params = updates",
        "        t = (state.count + 1).astype(jnp.float32)",
        f"        lr = jnp.asarray({scale_lr}, jnp.float32)",
        "        leaves, treedef = jax.tree.flatten(updates)",
        "        weights = treedef.flatten_up_to(params)",
        *(f"        {s}_leaves = treedef.flatten_up_to(state.{s})" for s in states),
        "        outs = [",
        _wrap(f"{snake}_rule", ["jnp", "w", "g", "lr", "t", *[f"{s}_leaves[i]" for s in states],
                                *m.hyper_kw], "", "            "),
        "            for i, (w, g) in enumerate(zip(weights, leaves, strict=True))",
        "        ]",
        ("        outs = [o if isinstance(o, tuple) else (o,) for o in outs]"),
        "        directions = [jnp.broadcast_to(o[0], jnp.shape(g)).astype(jnp.asarray(g).dtype)",
        "                      for o, g in zip(outs, leaves, strict=True)]",
        *(f"        new_{s} = [jnp.broadcast_to(o[{k + 1}], jnp.shape(s)).astype(jnp.float32)\n"
          f"                  for o, s in zip(outs, {s}_leaves, strict=True)]"
          for k, s in enumerate(states)),
        "        return jax.tree.unflatten(treedef, directions), ScaleBy" + cls + "State(",
        "            count=optax.safe_increment(state.count),"
        + "".join(f"\n            {s}=jax.tree.unflatten(treedef, new_{s})," for s in states),
        "        )",
        "",
        "    return optax.GradientTransformationExtraArgs(init_fn, update_fn)",
        "",
        "",
        _wrap(f"def {snake}", recipe_kw, " -> optax.GradientTransformationExtraArgs:", ""),
        f'    """{cls} as an optax optimizer (see the module docstring for the rule)."""',
        recipe_body,
        "",
        "",
    ]


def torch_part(m: Parts) -> list[str]:
    """The ``torch.optim.Optimizer`` subclass, built on first use, and the module's
    ``__getattr__`` that builds it."""
    cls, states, wd = m.cls, m.states, m.wd
    torch_defaults = ["self", "params: Any", f"lr: float = {m.lr_default}",
                      *m.hyper_params(), *m.wd_param()]
    torch_hyper = [*m.hyper_kw, *(["weight_decay=weight_decay"] if wd is not None else [])]
    torch_states = ", ".join(f'state["{s}"]' for s in states)
    torch_out = ", ".join(["direction", *[f'state["{s}"]' for s in states]])
    state_init = m.torch_inits("                        ")
    return [
        "@functools.cache",
        "def _torch_optimizer() -> type:",
        "    import torch",
        "",
        f"    class {cls}(torch.optim.Optimizer):",
        f'        """{cls} for PyTorch (see the module docstring for the rule)."""',
        "",
        _wrap("def __init__", torch_defaults, " -> None:", "        "),
        "            if not lr >= 0.0:",
        '                raise ValueError(f"invalid learning rate: {lr}")',
        *_checks(m),
        _wrap("defaults = dict", ["lr=lr", *torch_hyper], "", "            "),
        "            super().__init__(params, defaults)",
        "",
        "        @torch.no_grad()",
        "        def step(self, closure: Any = None) -> Any:",
        "            loss = None",
        "            if closure is not None:",
        "                with torch.enable_grad():",
        "                    loss = closure()",
        "            for group in self.param_groups:",
        '                lr = group["lr"]',
        "                for p in group[\"params\"]:",
        "                    if p.grad is None:",
        "                        continue",
        "                    state = self.state[p]",
        "                    if not state:",
        "                        # a tensor, as torch.optim keeps it (torch.compile then does",
        "                        # not recompile as it grows)",
        '                        state["step"] = torch.zeros(()'
        ', dtype=torch.float32, device=p.device)',
        *(["                        # float32 (float64 for float64 parameters)",
           "                        dtype = torch.promote_types(p.dtype, torch.float32)",
           "\n".join(state_init)] if state_init else []),
        '                    state["step"] += 1',
        '                    t = state["step"]',
        *([] if m.split or not m.uses_lr else
          ['                    lr = torch.tensor(float(group["lr"]), device=p.device)']),
        _wrap(f"out = {m.snake}_rule_torch",
              ["p", "p.grad", "1.0" if m.split else "lr", "t",
               *([torch_states] if torch_states else []),
               *[f"{h}=group[{h!r}]" for h in m.hyper]], "", "                    "),
        f"                    {torch_out} = out",
        *([
            '                    if group["weight_decay"]:',
            f'                        direction = direction.{"add_" if m.owns_direction else "add"}'
            '(p, alpha=group["weight_decay"])',
        ] if wd is not None else []),
        ("                    p.sub_(direction.to(p.dtype), alpha=lr)" if m.split else
         "                    p.sub_(direction.to(p.dtype))"),
        "            return loss",
        "",
        "        def load_state_dict(self, state_dict: dict[str, Any]) -> None:",
        '            """As torch.optim does, but each state keeps the dtype it was saved in',
        "            (torch.optim casts states to their parameter's dtype: float32 states of",
        '            float16 parameters would lose their precision)."""',
        "            saved = {k: dict(v) for k, v in state_dict[\"state\"].items()}",
        "            super().load_state_dict(state_dict)",
        "            ids = [i for g in state_dict[\"param_groups\"] for i in g[\"params\"]]",
        "            params = [p for g in self.param_groups for p in g[\"params\"]]",
        "            for i, p in zip(ids, params, strict=True):",
        "                for key, value in saved.get(i, {}).items():",
        "                    if torch.is_tensor(value):",
        "                        self.state[p][key] = value.to(device=p.device, copy=True)",
        "",
        f"    {cls}.__module__ = __name__",
        f"    return {cls}",
        "",
        "",
        "def __getattr__(name: str) -> Any:",
        f'    if name == "{cls}":  # built on first use: importing this module needs no torch',
        "        return _torch_optimizer()",
        '    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
        "",
    ]


def _checks(m: Parts) -> list[str]:
    return _validation(m.p, m.names, m.defaults, m.wd)


def _validation(p: Program, names: dict[Site, str], defaults: dict[str, float],
                wd: float | None) -> list[str]:
    """The PyTorch constructor's checks of its arguments, as torch.optim makes them:
    an interpolation weight (a beta) whose default lies in [0, 1] must stay there,
    the weight decay must be >= 0, every other hyperparameter finite."""
    lines = []
    indent = "            "

    def check(test: str, h: str, why: str) -> None:
        message = f'f"invalid {h} value: {{{h}}}{why}"'
        raise_ = f"{indent}    raise ValueError({message})"
        if len(raise_) > 100:  # one string a line
            raise_ = (f'{indent}    raise ValueError(\n{indent}        "invalid {h} value: "\n'
                      f'{indent}        f"{{{h}}}{why}")')
        lines.extend([f"{indent}if not {test}:", raise_])

    for h in dict.fromkeys(names.values()):
        sites = [site for site, n in names.items() if n == h]
        beta = all(p.statements[i].op == "interp" and j == 2 for i, j in sites)
        if beta and 0.0 <= defaults[h] <= 1.0:  # an interpolation weight
            check(f"0.0 <= {h} <= 1.0", h, " (from 0 to 1)")
        else:
            check(f"math.isfinite({h})", h, " (not finite)")
    if wd is not None:
        check("weight_decay >= 0.0", "weight_decay", "")
    return lines
