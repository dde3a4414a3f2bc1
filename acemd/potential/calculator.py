"""ASE calculator on the acemd ACE kernel (serial; periodic images as ghosts)."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import ACEPotential


class NonFiniteInputError(ValueError):
    """Positions or cell contain NaN or inf."""


def evaluate_periodic(potential: ACEPotential, positions, cell, pbc, symbols):
    """Energy (eV), per-atom energies, forces (eV/Å), virial (eV) and per-atom virial.

    Builds periodic images within the cutoff as ghost atoms, runs the kernel on
    the owned atoms and folds ghost forces back onto their owners.
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
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses"]

    def __init__(self, potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential if isinstance(potential, ACEPotential) else ACEPotential(potential)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        energy, energies, forces, virial, site_virial = evaluate_periodic(
            self.potential, atoms.positions, atoms.cell.array, atoms.pbc,
            atoms.get_chemical_symbols())
        self.results = {"energy": energy, "free_energy": energy,
                        "energies": energies.copy(), "forces": forces}
        if atoms.pbc.all():
            volume = atoms.get_volume()
            voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
            sym = 0.5 * (virial + virial.T)
            self.results["stress"] = np.array([-sym[a, b] / volume for a, b in voigt])
            sv = 0.5 * (site_virial + site_virial.transpose(0, 2, 1))
            self.results["stresses"] = np.stack([-sv[:, a, b] / volume for a, b in voigt], axis=1)
