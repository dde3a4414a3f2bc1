"""Under mpiexec with several ranks, acemd gives each rank one BLAS thread unless the user set one:
numpy's OpenBLAS otherwise starts a thread per core in every rank, and one rank's numpy work (ASE's
optimisers in [properties]'s reference, phonopy) ran 30 times slower beside the other rank's MPI
polling on a 2-core machine."""
import subprocess
import sys

from test_bad_inputs import _env
from test_mpi_suites import mpiexec

PROBE = ("import acemd, numpy, os; from mpi4py import MPI; "
         "print(MPI.COMM_WORLD.rank, os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'))")


def _probe(nranks, **extra):
    env = _env()
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)
    env.update(extra)
    out = subprocess.run([mpiexec(), "-n", str(nranks), sys.executable, "-c", PROBE], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return sorted(line.split() for line in out.stdout.splitlines())


def test_several_ranks_get_one_blas_thread_each():
    rows = _probe(2)
    print("\n2 ranks:", rows)
    assert rows == [["0", "1", "1"], ["1", "1", "1"]]


def test_one_rank_and_the_users_choice_are_left_alone():
    one = _probe(1)
    print("\n1 rank:", one, "; 2 ranks with OPENBLAS_NUM_THREADS=2:", _probe(2, OPENBLAS_NUM_THREADS="2"))
    assert one == [["0", "None", "None"]]
    assert [r[1] for r in _probe(2, OPENBLAS_NUM_THREADS="2")] == ["2", "2"]
