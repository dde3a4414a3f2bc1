"""Under mpiexec with several ranks, acemd gives each rank one BLAS thread unless the user set one:
numpy's OpenBLAS otherwise starts a thread per core in every rank, and one rank's numpy work (ASE's
optimisers in [properties]'s reference, phonopy) ran 30 times slower beside the other rank's MPI
polling on a 2-core machine."""
import subprocess
import sys

from test_bad_inputs import _env
from test_mpi_suites import mpiexec

PROBE = ("import acemd, numpy, os; from mpi4py import MPI; c = MPI.COMM_WORLD; "
         "rows = c.gather((c.rank, os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'))); "
         "c.rank == 0 and [print('PROBE', *r) for r in rows]")       # one writer: the ranks' lines do not mix


def _probe(nranks, **extra):
    env = _env()
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)
    env.update(extra)
    out = subprocess.run([mpiexec(), "-n", str(nranks), sys.executable, "-c", PROBE], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # only the probe's lines: a launcher may print its own
    return sorted(line.split()[1:] for line in out.stdout.splitlines() if line.startswith("PROBE "))


def test_several_ranks_get_one_blas_thread_each():
    rows = _probe(2)
    print("\n2 ranks:", rows)
    assert rows == [["0", "1", "1"], ["1", "1", "1"]]


def test_one_rank_and_the_users_choice_are_left_alone():
    one = _probe(1)
    chosen = _probe(2, OPENBLAS_NUM_THREADS="2")
    print("\n1 rank:", one, "; 2 ranks with OPENBLAS_NUM_THREADS=2:", chosen)
    assert one == [["0", "None", "None"]]
    assert chosen == [["0", "2", "1"], ["1", "2", "1"]]
