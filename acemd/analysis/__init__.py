"""Post-processing of acemd output: thermo logs, H5MD trajectories, extrapolation grades.

One module per analysis (``thermo``, ``rdf``, ``msd``, ``vdos``, ``structure``,
``convert``, ``gamma``), each a plain function over the streaming reader of
:mod:`acemd.analysis.trajectory`; tables are written by :mod:`.table` (CSV with
units in the header) and plots by :mod:`.plotting` (matplotlib, the optional
``plot`` extra).  :mod:`.filekind` tells acemd's outputs apart, so a script given the
wrong file names what it is; :mod:`.cli` holds what the front ends share (option
checks, output checks, one-line errors).  The command-line front ends are
``scripts/acemd_*.py`` and ``scripts/plot_*.py``.
Units are acemd's (LAMMPS metal): Å, ps, eV, amu, K, bar.
"""
from .errors import AnalysisInputError

__all__ = ["AnalysisInputError"]
