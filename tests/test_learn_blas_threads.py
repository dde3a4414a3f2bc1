"""``acemd learn`` loads numpy's and scipy's BLAS with one thread (the selection's small matrix products
ran 3-30x slower with OpenBLAS's threads on shared cores) and gives the environment back, so that a
labeller's own processes (a DFT code) see the user's thread settings."""
import subprocess
import sys

import pytest

from acemd import BLAS_THREAD_KEYS
from test_bad_inputs import _env

PROBE = """
import ctypes, glob, json, os
from acemd.cli import numpy_single_threaded
numpy_single_threaded()
import numpy
try:
    import threadpoolctl
    blas = sorted({p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"})
except ImportError:      # numpy's own OpenBLAS (the wheels' scipy-openblas), asked directly
    libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__) + ".libs", "*openblas*"))
    blas = [ctypes.CDLL(libs[0]).scipy_openblas_get_num_threads64_()] if libs else None
print(json.dumps({"blas": blas, "env": os.environ.get("OMP_NUM_THREADS")}))
"""


def _run(**extra):
    import json
    env = _env()
    for key in BLAS_THREAD_KEYS:
        env.pop(key, None)
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_blas_thread_and_the_environment_given_back():
    plain = _run()
    if plain["blas"] is None:
        pytest.skip("neither threadpoolctl nor numpy's bundled OpenBLAS to ask for its thread count")
    chosen = _run(OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    print(f"\nBLAS threads after numpy_single_threaded: {plain['blas']} (OMP_NUM_THREADS afterwards: "
          f"{plain['env']}); with the user's 2: {chosen['blas']}")
    assert plain == {"blas": [1], "env": None}
    assert chosen["blas"] == [2] and chosen["env"] == "2"
