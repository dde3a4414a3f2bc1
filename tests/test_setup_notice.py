"""A line on stdout while numba compiles the force kernel: in a fresh process with an empty numba
cache; none when the kernel is cached (before the process loaded it too) or once it is loaded."""
import subprocess
import sys

from test_bad_inputs import REPO, _env

SCRIPT = """
import io, time
from mpi4py import MPI
from acemd.preflight import setup_notice
out = io.StringIO()
setup_notice(MPI.COMM_SELF, delay_s=0.0, stream=out).join()
print("before:", out.getvalue().strip())
from acemd.potential import ACEPotential
import numpy as np
pot = ACEPotential("{pot}")
pot.compute(np.zeros((1, 3)), np.zeros(1, dtype=np.int64), 1, np.zeros(2, dtype=np.int64),
            np.zeros(0, dtype=np.int64))
out = io.StringIO()
setup_notice(MPI.COMM_SELF, delay_s=0.0, stream=out).join()
print("after:", out.getvalue().strip())
"""


def test_setup_notice_only_while_the_kernel_is_not_ready():
    pot = REPO / "tests" / "data" / "potentials" / "Cu-I.yace"
    for _ in range(2):                   # the first run fills numba's cache if it was cold
        proc = subprocess.run([sys.executable, "-c", SCRIPT.format(pot=pot)], capture_output=True, text=True,
                              timeout=300, env=_env())
        assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # the kernel is in numba's cache: no notice, also before this process loaded it (it used to
    # appear on every run whose set-up took 3 s)
    assert lines[0].strip() == "before:"
    assert lines[1].strip() == "after:"


NOTICE_ONLY = """
import io
from mpi4py import MPI
from acemd.preflight import kernels_cached, setup_notice
out = io.StringIO()
setup_notice(MPI.COMM_SELF, delay_s=0.0, stream=out).join()
print(kernels_cached(), out.getvalue().strip())
"""


def test_setup_notice_when_numba_has_no_cached_kernel(tmp_path):
    """An empty numba cache (first use after installing): the compile notice appears."""
    env = _env()
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "empty-numba-cache")
    proc = subprocess.run([sys.executable, "-c", NOTICE_ONLY], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    cached, notice = proc.stdout.strip().split(" ", 1)
    assert cached == "False" and notice.startswith("# setting up: numba is compiling the force kernels")
