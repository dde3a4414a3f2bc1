"""Einstein springs with the centre of mass held fixed: the Frenkel-Ladd reference crystal.

U = 1/2 sum_i k_s(i) |u_i - D|^2,   u_i = x_i - x0_i,   D = sum_i m_i u_i / M

* ``k_s`` is one spring constant per species (eV/Å^2).
* The sites x0 are stored by global atom id in fractional coordinates of the cell,
  so the springs follow a deformed cell (the virial below is -dU/d(strain) with the
  sites deforming with the cell) and the displacement is the minimum image of
  ``s - s0`` along periodic axes: correct across boundaries and after migration, as
  long as no atom strays half a box length from its site (true in any solid).
* D is the mass-weighted mean displacement.  Subtracting it makes U exactly
  translation invariant, so the spring forces sum to zero and, with the
  momentum-conserving Langevin noise (``zero_momentum``), the centre of mass never
  moves: on that manifold (D = 0) U equals the plain Einstein crystal.  The term is
  the fixed-centre-of-mass Einstein crystal of Frenkel-Ladd (Polson et al., J. Chem.
  Phys. 112, 5339 (2000); Freitas et al., Comput. Mater. Sci. 112, 333 (2016)); the
  free energy lost by fixing the centre of mass is the analytic correction
  :func:`acemd.free_energy.reference.com_correction`.

Forces: F_i = -k_i (u_i - D) + (m_i/M) sum_j k_j (u_j - D); D and sum_j k_j u_j are
global sums (one reduction of 6 numbers per call).  Ghosts get no force.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI
from numba import njit

from ..forcefield import ForceTerm, TermResult


@njit(cache=True)
def _spring_sums(positions, ids, species, site_fractional, inv_cell, cell, periodic, k_of, mass_of, u):
    """Minimum-image displacements u (n, 3) Å of the local atoms from their sites, and the
    local sums (sum m u (3), sum k u (3), sum k) that the centre-of-mass constraint needs."""
    sums = np.zeros(7)
    for a in range(positions.shape[0]):
        s0 = positions[a, 0] * inv_cell[0, 0] + positions[a, 1] * inv_cell[1, 0] + positions[a, 2] * inv_cell[2, 0]
        s1 = positions[a, 0] * inv_cell[0, 1] + positions[a, 1] * inv_cell[1, 1] + positions[a, 2] * inv_cell[2, 1]
        s2 = positions[a, 0] * inv_cell[0, 2] + positions[a, 1] * inv_cell[1, 2] + positions[a, 2] * inv_cell[2, 2]
        site = ids[a]
        d = (s0 - site_fractional[site, 0], s1 - site_fractional[site, 1], s2 - site_fractional[site, 2])
        d0 = d[0] - np.round(d[0]) if periodic[0] else d[0]
        d1 = d[1] - np.round(d[1]) if periodic[1] else d[1]
        d2 = d[2] - np.round(d[2]) if periodic[2] else d[2]
        k = k_of[species[a]]
        m = mass_of[species[a]]
        for c in range(3):
            uc = d0 * cell[0, c] + d1 * cell[1, c] + d2 * cell[2, c]
            u[a, c] = uc
            sums[c] += m * uc
            sums[3 + c] += k * uc
        sums[6] += k
    return sums


@njit(cache=True)
def _spring_forces(u, species, k_of, mass_of, shift, ku_total, total_mass, site_energy, forces, virial):
    """Energies, forces and virial of springs on w = u - shift, with the reaction that keeps
    the centre of mass fixed (see the module docstring)."""
    for a in range(u.shape[0]):
        k = k_of[species[a]]
        m = mass_of[species[a]] / total_mass
        w0 = u[a, 0] - shift[0]
        w1 = u[a, 1] - shift[1]
        w2 = u[a, 2] - shift[2]
        site_energy[a] = 0.5 * k * (w0 * w0 + w1 * w1 + w2 * w2)
        w = (w0, w1, w2)
        for c in range(3):
            forces[a, c] = -k * w[c] + m * ku_total[c]
            for d in range(3):
                virial[c, d] -= k * w[c] * w[d]


class EinsteinTerm(ForceTerm):
    """Springs of constant ``spring_constants[species]`` (eV/Å^2) to sites ``sites[id]``.

    ``sites`` (N, 3) Å are the reference positions of all atoms ordered by global id,
    in the cell ``site_cell`` (rows are lattice vectors).
    """

    name = "einstein"
    cutoff = 0.0

    def __init__(self, spring_constants, sites, site_cell, name="einstein"):
        self.name = name
        self.k = np.ascontiguousarray(spring_constants, dtype=float).reshape(-1)
        if not np.all(np.isfinite(self.k)) or np.any(self.k < 0.0):
            raise ValueError(f"spring constants must be finite and non-negative (eV/Å^2): {self.k}")
        site_cell = np.asarray(site_cell, dtype=float)
        self.site_fractional = np.ascontiguousarray(np.asarray(sites, dtype=float) @ np.linalg.inv(site_cell))
        self.state = None
        self.comm = None

    @classmethod
    def at_current_positions(cls, comm, state, spring_constants, name="einstein"):
        """Sites = the atoms' present (unwrapped) positions, gathered from all ranks (collective)."""
        ids = np.concatenate(comm.allgather(state.ids))
        pos = np.concatenate(comm.allgather(state.positions + state.images @ state.cell))
        sites = np.empty((state.n_atoms_total, 3))
        sites[ids] = pos
        return cls(spring_constants, sites, state.cell, name=name)

    def bind(self, state, comm):
        if len(self.k) != len(state.masses_by_species):
            raise ValueError(f"{len(self.k)} spring constants for {len(state.masses_by_species)} species "
                             f"({', '.join(state.species_names)})")
        if len(self.site_fractional) != state.n_atoms_total:
            raise ValueError(f"{len(self.site_fractional)} Einstein sites for {state.n_atoms_total} atoms")
        self.state, self.comm = state, comm
        m = state.masses
        self.total_mass = comm.allreduce(float(m.sum()), op=MPI.SUM)

    def displacements(self, positions, ids):
        """Minimum-image displacement (Å) of atoms at ``positions`` from their sites."""
        cell = self.state.cell
        ds = positions @ np.linalg.inv(cell) - self.site_fractional[ids]
        periodic = np.asarray(self.state.pbc, dtype=bool)
        ds[:, periodic] -= np.round(ds[:, periodic])
        return ds @ cell

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        if self.state is None:
            raise RuntimeError("EinsteinTerm is not bound to a State: build the Engine with it "
                               "(Engine calls ForceField.bind) or call term.bind(state, comm)")
        sp = np.ascontiguousarray(species[:n_local])
        cell = np.ascontiguousarray(self.state.cell, dtype=float)
        u = np.empty((n_local, 3))
        local = _spring_sums(np.ascontiguousarray(positions[:n_local]), np.ascontiguousarray(ids[:n_local]),
                             sp, self.site_fractional, np.linalg.inv(cell), cell,
                             np.asarray(self.state.pbc, dtype=np.bool_), self.k,
                             np.ascontiguousarray(self.state.masses_by_species, dtype=float), u)
        glob = np.empty(7)
        self.comm.Allreduce(local, glob, op=MPI.SUM)
        shift = glob[0:3] / self.total_mass                  # D, mass-weighted mean displacement
        ku_total = glob[3:6] - glob[6] * shift              # sum_j k_j (u_j - D)
        site = np.empty(n_local)
        forces = np.zeros((len(positions), 3))
        virial = np.zeros((3, 3))
        _spring_forces(u, sp, self.k, np.ascontiguousarray(self.state.masses_by_species, dtype=float),
                       shift, ku_total, self.total_mass, site, forces, virial)
        return TermResult(site, forces, virial)
