"""ASE calculator on the acemd ACE kernel (serial; periodic images as ghosts)."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import ACEPotential


class NonFiniteInputError(ValueError):
    """Positions or cell contain NaN or inf."""


def periodic_system(potential: ACEPotential, positions, cell, pbc, symbols):
    """Extended atom set (owned atoms, then periodic images within the cutoff) and neighbour list.

    Returns (species of the owned atoms, extended positions, owner of each extended
    atom, CSR offsets, neighbours).
    """
    from ..neighbors import build_neighbor_list, periodic_images

    positions = np.asarray(positions, dtype=float)
    cell = np.asarray(cell, dtype=float)
    if not np.all(np.isfinite(positions)):
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise NonFiniteInputError(f"atom {bad} has a non-finite position {positions[bad]}; "
                                  "check the structure (NaN or inf coordinates)")
    if not np.all(np.isfinite(cell)):
        raise NonFiniteInputError(f"the cell has non-finite entries: {cell.tolist()}")
    n = len(positions)
    species = potential.species_of(symbols)
    cutoff = potential.cutoff
    ext_positions, owner, _ = periodic_images(positions, cell, pbc, cutoff)
    offsets, neighbors = build_neighbor_list(ext_positions, n, cutoff)
    return species, ext_positions, owner, offsets, neighbors


def evaluate_periodic(potential: ACEPotential, positions, cell, pbc, symbols, system=None):
    """Energy (eV), per-atom energies, forces (eV/Å), virial (eV) and per-atom virial.

    Builds periodic images within the cutoff as ghost atoms (or takes ``system``
    from :func:`periodic_system`), runs the kernel on the owned atoms and folds
    ghost forces back onto their owners.
    """
    if system is None:
        system = periodic_system(potential, positions, cell, pbc, symbols)
    species, ext_positions, owner, offsets, neighbors = system
    n = len(species)
    res = potential.compute(ext_positions, species[owner], n, offsets, neighbors, atom_ids=owner)
    forces = np.zeros((n, 3))
    np.add.at(forces, owner, res.forces)
    site_virial = np.zeros((n, 3, 3))
    np.add.at(site_virial, owner, res.site_virial)
    return res.site_energy.sum(), res.site_energy, forces, res.virial, site_virial


class ACECalculator(Calculator):
    """ASE calculator for PACE potentials (``.yace``, ``.ace``, pacemaker ``.yaml``).

    Results follow ASE conventions: energy and free_energy (eV), energies (eV per
    atom), forces (eV/Å), stress (eV/Å^3, Voigt xx yy zz yz xz xy, positive when
    the cell wants to shrink) and stresses (per atom) for fully periodic cells.

    With ``active_set`` (a pacemaker ``.asi`` file; the potential must then be
    the B-basis ``.yaml`` the active set belongs to) every calculation also
    stores the per-atom extrapolation grade in ``results["gamma"]`` and its
    maximum in ``results["max_gamma"]``
    (see :mod:`acemd.potential.extrapolation`).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses",
                              "gamma", "max_gamma"]

    def __init__(self, potential, active_set=None, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential if isinstance(potential, ACEPotential) else ACEPotential(potential)
        self.extrapolation = None
        if active_set is not None:
            from .extrapolation import ActiveSetError, ExtrapolationGrade
            if self.potential.model.bbasis is None:
                raise ActiveSetError(
                    f"active set {active_set}: the potential {self.potential.path} is a C-tilde file "
                    "(.yace/.ace) and has no B-basis; the extrapolation grade needs pacemaker's "
                    "B-basis .yaml (the file the active set was built for)")
            self.extrapolation = ExtrapolationGrade(self.potential, active_set)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        system = periodic_system(self.potential, atoms.positions, atoms.cell.array, atoms.pbc,
                                 atoms.get_chemical_symbols())
        energy, energies, forces, virial, site_virial = evaluate_periodic(
            self.potential, atoms.positions, atoms.cell.array, atoms.pbc,
            atoms.get_chemical_symbols(), system=system)
        self.results = {"energy": energy, "free_energy": energy,
                        "energies": energies.copy(), "forces": forces}
        if atoms.pbc.all():
            volume = atoms.get_volume()
            voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
            sym = 0.5 * (virial + virial.T)
            self.results["stress"] = np.array([-sym[a, b] / volume for a, b in voigt])
            sv = 0.5 * (site_virial + site_virial.transpose(0, 2, 1))
            self.results["stresses"] = np.stack([-sv[:, a, b] / volume for a, b in voigt], axis=1)
        if self.extrapolation is not None:
            species, ext_positions, owner, offsets, neighbors = system
            proj = self.extrapolation.projections(ext_positions, species[owner], len(species),
                                                  offsets, neighbors, atom_ids=owner)
            gamma = self.extrapolation.gamma(proj, species)
            self.results["gamma"] = gamma
            self.results["max_gamma"] = float(gamma.max()) if len(gamma) else 0.0
