"""Per-structure design rows of a linear ACE potential.

With a linear embedding (``ndensity: 1`` and F(rho) = w rho: pacemaker's
``FinnisSinclairShiftedScaled`` with ``fs_parameters: [w, 1]``) the energy, the
forces and the virial of a structure are linear in the B-basis coefficients c:

    E(c)      = energy . c + fixed_energy                       (eV)
    F(c)      = forces @ c + fixed_forces                       (eV/Å, 3N rows x y z per atom)
    stress(c) = (virial @ c + fixed_virial) / V                 (eV/Å³, ASE convention)

The columns are all elements' B-functions in one space: element mu's functions
(``model.bbasis[mu]``, pacemaker's sorted order) start at ``column_offsets[mu]``.
The fixed part holds what does not depend on c: the core repulsion or ZBL pair
terms, and E0.  The inner cutoffs are exact: "distance" is part of the radial
functions, "zbl" and "density" switch the site energy per atom with a factor
s_i that does not depend on c (rows s_i B_k(i), plus the derivative of s_i).

The rows come from :func:`acemd.potential.design_kernel.design_rows_kernel`,
which runs on the force kernel's per-atom passes, so the rows describe exactly
what the evaluator computes.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..potential import ACEPotential, CloseContactError
from ..potential.calculator import periodic_system
from ..potential.design_kernel import build_design_tables, design_rows_kernel
from ..potential.kernel import TOO_CLOSE
from ..potential.model import Bond, CTildePotential

__all__ = ["DesignError", "DesignRows", "StructureRows"]

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


class DesignError(ValueError):
    """The potential cannot give linear design rows (no B-basis, nonlinear embedding)."""


@dataclass
class StructureRows:
    """Design rows of one structure (see the module docstring for the equations).

    ``virial`` and ``fixed_virial`` are V times the ASE stress (eV), or None when
    the structure is not periodic in all three directions (no stress then).
    """

    natoms: int
    energy: np.ndarray               # (ncols,) eV
    forces: np.ndarray               # (3N, ncols) eV/Å, row 3*atom + (0, 1, 2)
    virial: np.ndarray | None        # (6, ncols) eV, Voigt xx yy zz yz xz xy
    fixed_energy: float              # eV
    fixed_forces: np.ndarray         # (3N,) eV/Å
    fixed_virial: np.ndarray | None  # (6,) eV
    volume: float | None             # Å³, None if not fully periodic

    @property
    def periodic(self) -> bool:
        return self.virial is not None

    def predict(self, coefficients):
        """(energy eV, forces (N, 3) eV/Å, stress (6,) eV/Å³ or None) for coefficients c."""
        c = np.asarray(coefficients, dtype=float)
        energy = float(self.energy @ c + self.fixed_energy)
        forces = (self.forces @ c + self.fixed_forces).reshape(-1, 3)
        stress = None
        if self.virial is not None:
            stress = (self.virial @ c + self.fixed_virial) / self.volume
        return energy, forces, stress


def _linear_weights(model: CTildePotential, name: str) -> np.ndarray:
    """Embedding weight w per element; DesignError unless every F(rho) = w rho."""
    weights = []
    for mu, emb in enumerate(model.embeddings):
        el = model.elements[mu]
        params = list(emb.fs_parameters)
        linear = (emb.ndensity == 1 and
                  ((emb.npoti == "FinnisSinclairShiftedScaled" and abs(params[1] - 1.0) < 1e-10) or
                   (emb.npoti == "FinnisSinclair" and params[1] == 1.0)))
        if not linear:
            raise DesignError(
                f"{name}: the embedding of {el} ({emb.npoti}, ndensity {emb.ndensity}, "
                f"parameters {params}) is not linear, so energies are not linear in the "
                "coefficients; linear fits need ndensity: 1 and npot: FinnisSinclairShiftedScaled "
                "with fs_parameters: [1, 1]")
        weights.append(float(params[0]))
    return np.array(weights)


def _fixed_model(model: CTildePotential) -> CTildePotential:
    """The model with every coefficient-dependent term removed (no functions, no R_nl), E0 = 0."""
    bonds = {}
    for key, b in model.bonds.items():
        bonds[key] = Bond(**{**b.__dict__, "nradmax": 0, "lmax": 0,
                             "radcoefficients": np.zeros((0, 1, b.nradbase)),
                             "radparameters": list(b.radparameters)})
    return CTildePotential(elements=list(model.elements), E0=np.zeros(model.nelements),
                           delta_spline_bins=model.delta_spline_bins,
                           embeddings=copy.deepcopy(model.embeddings), bonds=bonds,
                           functions=[[] for _ in model.elements],
                           source=f"{model.source} (coefficient-free part)")


class DesignRows:
    """Design rows of a B-basis ACEPotential with a linear embedding, structure by structure.

    The work buffers grow to the largest structure seen and are reused, so the
    memory does not grow with the number of structures.
    """

    def __init__(self, potential: ACEPotential):
        model = potential.model
        name = str(potential.path)
        if model.bbasis is None:
            raise DesignError(f"{name}: a C-tilde potential (.yace/.ace) has no B-basis; design rows "
                              "need the B-functions of a pacemaker .yaml (or acemd.fit.basis)")
        self.potential = potential
        self.model = model
        self.elements = list(model.elements)
        self.emb_weight = _linear_weights(model, name)
        self.tables = build_design_tables(model, potential.tables)
        self.ncols = self.tables.ncols
        self.column_offsets = self.tables.col_offsets[:-1].copy()
        self.E0 = np.asarray(model.E0, dtype=float)
        has_core = any(b.prehc != 0.0 for b in model.bonds.values())
        self._fixed = (ACEPotential.from_model(_fixed_model(model), source=f"{name} (coefficient-free part)")
                       if has_core or potential.tables.is_zbl else None)
        self._energy = np.zeros(self.ncols)
        self._virial = np.zeros((6, self.ncols))
        self._forces = np.zeros(0)

    def columns(self, element: str) -> slice:
        """The columns of one element's B-functions."""
        mu = self.elements.index(element)
        return slice(int(self.tables.col_offsets[mu]), int(self.tables.col_offsets[mu + 1]))

    def coefficients(self) -> np.ndarray:
        """The potential's own coefficients in column order (its B-functions' c)."""
        return np.concatenate([np.array([f.coeffs[0] for f in funcs], dtype=float)
                               for funcs in self.model.bbasis]) if self.ncols else np.zeros(0)

    def rows(self, atoms, copy: bool = True) -> StructureRows:
        """The design rows of one ``ase.Atoms``.

        With ``copy=False`` the arrays are views of buffers that the next call
        overwrites (no allocation per structure).
        """
        pot = self.potential
        n = len(atoms)
        if n == 0:
            raise DesignError("a structure without atoms has no design rows; remove it from the data")
        symbols = atoms.get_chemical_symbols()
        species, ext, owner, offsets, neighbors = periodic_system(
            pot, atoms.positions, atoms.cell.array, atoms.pbc, symbols)
        ext = np.ascontiguousarray(ext, dtype=np.float64)
        owner = np.ascontiguousarray(owner, dtype=np.int64)
        ext_species = np.ascontiguousarray(species[owner], dtype=np.int64)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
        size = 3 * n * self.ncols
        if self._forces.size < size:
            self._forces = np.zeros(size)
        energy = self._energy
        forces = self._forces[:size].reshape(3 * n, self.ncols)
        virial = self._virial
        energy[:] = 0.0
        forces[:] = 0.0
        virial[:] = 0.0
        t = pot.tables
        status, i, j = design_rows_kernel(
            ext, ext_species, n, offsets, neighbors, owner,
            t.nradbase, t.nradmax, t.lmax, t.ndensity_max, t.is_zbl, t.cutoff_max,
            t.force_tables, t.basis_tables, t.spline_nlut, t.spline_scale, t.bond_rcut,
            t.bond_cut_in, t.bond_dcut_in, t.rho_core_cut, t.drho_core_cut, self.emb_weight,
            t.ylm_a, t.ylm_b, *self.tables.kernel_args(), energy, forces, virial)
        if status == TOO_CLOSE:
            d = np.linalg.norm(ext[j] - ext[i])
            raise CloseContactError(
                f"atoms {int(owner[i])} and {int(owner[j])} are {d:.3g} Å apart, closer than the "
                f"radial tabulation step ({self.model.delta_spline_bins} Å) of {pot.path}; "
                "the structure is unphysical (check positions and units)")
        periodic = bool(np.all(atoms.pbc))
        fixed_energy = float(self.E0[species].sum())
        fixed_forces = np.zeros(3 * n)
        fixed_virial = np.zeros(6) if periodic else None
        if self._fixed is not None:
            res = self._fixed.compute(ext, ext_species, n, offsets, neighbors, atom_ids=owner,
                                      site_virial=False)
            fixed_energy += float(res.site_energy.sum())
            f = np.zeros((n, 3))
            np.add.at(f, owner, res.forces)
            fixed_forces = f.ravel()
            if periodic:
                w = 0.5 * (res.virial + res.virial.T)
                fixed_virial = np.array([-w[a, b] for a, b in VOIGT])
        volume = float(atoms.get_volume()) if periodic else None
        if periodic:
            v = -virial                       # V * stress = -(kernel virial W)
        if copy:
            return StructureRows(n, energy.copy(), forces.copy(), v.copy() if periodic else None,
                                 fixed_energy, fixed_forces, fixed_virial, volume)
        if periodic:
            virial *= -1.0
        return StructureRows(n, energy, forces, virial if periodic else None,
                             fixed_energy, fixed_forces, fixed_virial, volume)
