#!/usr/bin/env bash
# The accelerator check, in one call, under 5 minutes, on any machine that has one:
# JAX sees the device; the tests that run the engine, the interpreter and the exports
# on it pass; the evaluation benchmark's figures (the engine against optax in the same
# loop, and batched evaluation) on it. Record what it prints in docs/benchmarks.md
# with the device named.
#
#     bash benchmarks/device_check.sh     # in the project's environment, with JAX's
#                                       # accelerator build installed
#     DEVICE_CHECK_ALLOW_CPU=1 bash benchmarks/device_check.sh   # the script itself, on CPU
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
status=0

"$python" - <<'PY' || exit 1
import jax
devices = jax.devices()
print("jax", jax.__version__, "devices:", devices)
import os
if jax.default_backend() == "cpu" and not os.environ.get("DEVICE_CHECK_ALLOW_CPU"):
    raise SystemExit("no accelerator visible to JAX: install jax[cuda12] (pip install -e "
                     "'.[cuda12]') or jax[tpu]; see docs/guide.md")
PY

echo "== tests on the device"
timeout 180 "$python" -m pytest -q -p no:cacheprovider -x \
    tests/evaluators/test_engine.py tests/evaluators/test_evaluate.py \
    tests/dsl/test_interpreter.py tests/discovered/test_contract.py || status=1

echo "== evaluation benchmark on the device"
timeout 90 "$python" benchmarks/bench_eval.py --programs 20 || status=1

echo "== batched evaluation on the device (one vmapped call per bucket)"
timeout 120 "$python" - <<'PY' || status=1
import time

import jax

if jax.default_backend() == "cpu":
    print("skipped on CPU: there one by one is ~150x faster (docs/benchmarks.md)")
    raise SystemExit(0)

from dsl import library
from evaluators import evaluate, evaluate_batch
from search.mutation import mutate
from search.config import MutationConfig
import numpy as np

rng = np.random.default_rng(0)
programs = []
while len(programs) < 8:
    child, _ = mutate(library.get("warmstart"), rng, MutationConfig(), ("perturb_constant",))
    programs.append(child)
evaluate_batch(programs[:2], "mlp_mnist1d/A")  # compile
start = time.perf_counter()
evaluate_batch(programs, "mlp_mnist1d/A")
batched = time.perf_counter() - start
evaluate(programs[0], "mlp_mnist1d/A")  # compile the one-by-one path
start = time.perf_counter()
for p in programs:
    evaluate(p, "mlp_mnist1d/A")
single = time.perf_counter() - start
print(f"8 programs on mlp_mnist1d/A: batched {batched:.2f} s, one by one {single:.2f} s")
print(f"batched_over_single_ratio: {batched / single:.3f}")
PY
exit $status
