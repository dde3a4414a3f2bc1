"""A line on stdout while numba compiles the force kernel (checked in a fresh process, where the
kernel has not been compiled or loaded yet), and none once it is."""
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
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(pot=pot)], capture_output=True, text=True,
                          timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("before: # setting up: numba is compiling the force kernels")
    assert lines[1].strip() == "after:"
