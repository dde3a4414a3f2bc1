"""acemd: molecular dynamics with Atomic Cluster Expansion (PACE) potentials.

Units are LAMMPS ``metal``: Å, eV, ps, bar, amu, K.
"""
import os as _os

__version__ = "0.1.0"

BLAS_THREAD_KEYS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _one_blas_thread_per_rank():
    """Under an MPI launcher with several ranks, one BLAS/OpenMP thread per rank unless the user
    chose otherwise.  numpy's OpenBLAS otherwise starts a thread per core in every rank: on 2 cores
    with 2 ranks, one rank's numpy work (ASE's optimisers, phonopy, the fit's solves) then competed
    with the other rank's MPI polling and ran 30 times slower (an EMT relaxation: 1.0 s -> 34.6 s).
    It must run before numpy is imported, which is why it is here."""
    size = _os.environ.get("PMI_SIZE") or _os.environ.get("OMPI_COMM_WORLD_SIZE")
    try:
        several = int(size) > 1
    except (TypeError, ValueError):
        return
    if several:
        for key in BLAS_THREAD_KEYS:
            _os.environ.setdefault(key, "1")


_one_blas_thread_per_rank()

__all__ = ["ACECalculator", "__version__"]


def __getattr__(name):
    # imported on first use, so that ``acemd`` (the command) starts fast and installs its
    # signal handlers before the heavy imports (numpy, numba, ase)
    if name == "ACECalculator":
        from .potential.calculator import ACECalculator
        return ACECalculator
    raise AttributeError(f"module 'acemd' has no attribute {name!r}")
