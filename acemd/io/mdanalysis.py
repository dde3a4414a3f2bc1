"""Reading acemd trajectories with MDAnalysis: forces included, atoms selectable by element.

acemd writes forces with the H5MD unit string ``eV Angstrom-1``; MDAnalysis (up to
2.11 at least) knows no eV-based force unit and refuses the file when it converts
units.  :func:`register_units` teaches it that unit (1 eV/Å = 96.485 kJ/(mol Å),
from CODATA via :data:`acemd.units`) once per process.  An H5MD file has no
topology, so :func:`universe` builds one from the trajectory itself: each atom's
species (``species`` field, ordered by id as the frames are) gives its ``names``,
``types`` and ``elements``, and ``masses`` are the run's (``[masses]`` of the stored
input, else the standard atomic masses), so ``u.select_atoms("element Cu")`` works::

    from acemd.io.mdanalysis import universe
    u = universe("trajectory.h5")                 # forces in kJ/(mol Å), MDAnalysis's base unit
    u = universe("trajectory.h5", convert_units=False)   # forces in eV/Å as stored
    cu = u.select_atoms("element Cu")
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ..units import ELECTRON_VOLT_J

AVOGADRO = 6.02214076e23
FORCE_UNIT = "eV Angstrom-1"                      # as written by acemd.io.h5md
MDA_FORCE_UNIT = "eV/Angstrom"
KJMOL_PER_EV = ELECTRON_VOLT_J * AVOGADRO / 1000.0  # 96.485 kJ/mol per eV


def register_units():
    """Add eV/Å to MDAnalysis's force units and the H5MD reader's unit names (idempotent)."""
    from MDAnalysis import units
    from MDAnalysis.coordinates.H5MD import H5MDReader
    units.forceUnit_factor.setdefault(MDA_FORCE_UNIT, 1.0 / KJMOL_PER_EV)
    units.unit_types.setdefault(MDA_FORCE_UNIT, "force")
    H5MDReader._unit_translation["force"].setdefault(FORCE_UNIT, MDA_FORCE_UNIT)


def topology(path):
    """``(n_atoms, names, masses)`` of an acemd trajectory: one species name and mass (amu) per
    atom, or ``(n_atoms, None, None)`` when the file has no ``species`` field."""
    from ..analysis.trajectory import Trajectory
    with Trajectory(path) as traj:
        if "species" not in traj.fields:
            return traj.n_atoms, None, None
        species = traj.species()
        names = traj.symbols()
        masses = traj.masses_by_species()[species]
        return traj.n_atoms, names, masses


def universe(path, **kwargs):
    """An MDAnalysis Universe of an acemd H5MD trajectory, with names/types/elements/masses per atom.

    ``kwargs`` go to ``Universe.load_new`` (e.g. ``convert_units=False``).  Without a
    ``species`` field the atoms have no names (a warning says which field to add).
    """
    import MDAnalysis as mda
    from ase.data import atomic_numbers
    register_units()
    n_atoms, names, masses = topology(Path(path))
    u = mda.Universe.empty(n_atoms, trajectory=False)
    if names is None:
        warnings.warn(f"{path}: no 'species' field, so the atoms have no names, elements or masses; add "
                      "\"species\" to [trajectory].fields of the run", stacklevel=2)
    else:
        u.add_TopologyAttr("names", names)
        u.add_TopologyAttr("types", names)
        if all(n in atomic_numbers and n != "X" for n in names):
            u.add_TopologyAttr("elements", names)
        u.add_TopologyAttr("masses", masses)
    u.load_new(str(path), format="H5MD", **kwargs)
    return u
