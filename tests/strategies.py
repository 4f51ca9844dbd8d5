"""Hypothesis strategies shared by the tests: random valid programs from a seed."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from dsl import Program
from search.generate import random_program


@st.composite
def programs(draw, min_len: int = 3, max_len: int = 20, shape=(6, 5)) -> Program:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    length = int(rng.integers(min_len, max_len + 1))
    n_states = int(rng.integers(0, 4))
    return random_program(rng, length, n_states=n_states, shape=shape)
