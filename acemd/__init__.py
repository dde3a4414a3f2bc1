"""acemd: molecular dynamics with Atomic Cluster Expansion (PACE) potentials.

Units are LAMMPS ``metal``: Å, eV, ps, bar, amu, K.
"""
__version__ = "0.1.0"

__all__ = ["ACECalculator", "__version__"]


def __getattr__(name):
    # imported on first use, so that ``acemd`` (the command) starts fast and installs its
    # signal handlers before the heavy imports (numpy, numba, ase)
    if name == "ACECalculator":
        from .potential.calculator import ACECalculator
        return ACECalculator
    raise AttributeError(f"module 'acemd' has no attribute {name!r}")
