"""acemd: molecular dynamics with Atomic Cluster Expansion (PACE) potentials.

Units are LAMMPS ``metal``: Å, eV, ps, bar, amu, K.
"""
__version__ = "0.1.0"

from .potential.calculator import ACECalculator  # noqa: E402

__all__ = ["ACECalculator", "__version__"]
