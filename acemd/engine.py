"""The per-step machinery: ghosts, Verlet neighbour lists, forces, reductions.

The engine owns the domain decomposition of a :class:`State`, decides when the
neighbour list must be rebuilt (any atom anywhere moved more than half the skin,
decided globally), migrates atoms at rebuilds, refreshes ghost positions on the
other steps, evaluates the force field and sends ghost forces home.  Integrators
call :meth:`Engine.compute_forces` and read the global energy and virial.

Barostats change the cell through :meth:`Engine.set_cell`; the subdomains follow
the cell (they are fixed in fractional coordinates) and the rebuild test accounts
for the motion of periodic images: a ghost ``x_j + n @ cell`` moves by its owner's
displacement plus ``n @ (cell - cell_at_rebuild)``, so the list stays valid while
2 max|dx| + max_n |n @ dcell| <= skin.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from .forcefield import ForceField
from .potential import CloseContactError
from .neighbors import build_neighbor_list, max_displacement_exceeds
from .parallel import Decomposition, Halo, ParallelError
from .state import State
from .units import BOLTZMANN, EV_PER_A3_TO_BAR, MVV_TO_EV


class NonFiniteForceError(FloatingPointError):
    """Forces or energy became NaN/inf (the system exploded)."""


class Engine:
    def __init__(self, comm, state: State, forcefield: ForceField, skin: float, grid=None):
        self.comm = comm
        self.state = state
        self.forcefield = forcefield
        self.skin = float(skin)
        self.decomposition = Decomposition(comm, state.cell, state.pbc, dims=grid)
        self.halo = Halo(self.decomposition)
        self.ghost_cutoff = forcefield.cutoff + self.skin
        self.reference_positions = None
        self.reference_cell = np.array(state.cell, dtype=float)
        self.ghost_shift_set = np.zeros((0, 3))     # distinct image shifts of all ranks' ghosts
        self.forces = np.zeros((state.n_local, 3))
        self.potential_energy = 0.0          # eV, global
        self.term_energies: dict[str, float] = {}
        self.virial = np.zeros((3, 3))       # eV, global, W = sum x (x) f
        self.site_energy = np.zeros(state.n_local)
        self.n_rebuilds = 0
        self.timers = {"neighbour": 0.0, "force": 0.0, "comm": 0.0}
        forcefield.bind(state, comm)

    # ------------------------------------------------------------ neighbours
    def _needs_rebuild(self) -> bool:
        if self.reference_positions is None or len(self.reference_positions) != self.state.n_local:
            local = True
        else:
            threshold = 0.5 * self.skin
            if len(self.ghost_shift_set):
                # the same cell and shift set on every rank, so the same threshold
                dcell = self.state.cell - self.reference_cell
                if np.any(dcell):
                    threshold -= 0.5 * float(np.linalg.norm(self.ghost_shift_set @ dcell, axis=1).max())
            local = threshold <= 0.0 or bool(max_displacement_exceeds(
                self.state.positions, self.reference_positions, threshold))
        return bool(self.comm.allreduce(int(local), op=MPI.MAX))

    def set_cell(self, cell):
        """Adopt a new cell (collective, same cell on every rank).

        The caller has already moved the atoms (barostats scale positions with the
        cell); the decomposition follows and the next force call rebuilds if the
        deformation used up the skin.
        """
        # rank 0's copy, so that round-off in the reductions behind it can never make the
        # ranks disagree about the cell
        cell = np.array(self.comm.bcast(np.asarray(cell, dtype=float), root=0), dtype=float)
        self.decomposition.set_cell(cell)
        self.state.cell = cell

    def set_forcefield(self, forcefield: ForceField):
        """Use another force field (e.g. with extra terms); the next force call rebuilds."""
        self.forcefield = forcefield
        self.ghost_cutoff = forcefield.cutoff + self.skin
        forcefield.bind(self.state, self.comm)
        self.invalidate()

    def invalidate(self):
        """Force a rebuild (migration, ghosts, neighbour list) at the next force call."""
        self.reference_positions = None

    def rebuild(self):
        """Migrate atoms to their owners, rebuild ghosts and the neighbour list."""
        st = self.state
        t0 = MPI.Wtime()
        try:
            st.set_per_atom_arrays(self._spatially_sorted(self.halo.migrate(st.per_atom_arrays())))
            ext_positions, carry = self.halo.build_ghosts(
                st.positions, self.ghost_cutoff, {"species": st.species, "ids": st.ids})
        except ParallelError as exc:          # raised on every rank alike
            raise type(exc)(f"step {st.step}: {exc}") from None
        t1 = MPI.Wtime()
        self.ext_positions = ext_positions
        self.ext_species = np.ascontiguousarray(carry["species"], dtype=np.int64)
        self.ext_ids = np.ascontiguousarray(carry["ids"], dtype=np.int64)
        offsets, neighbors = build_neighbor_list(ext_positions, st.n_local, self.ghost_cutoff)
        self.offsets = offsets
        self.neighbors = neighbors.astype(np.int64)     # the kernels' index type, converted once
        self.reference_positions = st.positions.copy()
        self.reference_cell = st.cell.copy()
        # the union over ranks: an atom's displacement is tested on its owner, so every rank
        # must budget for the largest image motion of any ghost anywhere
        local = np.unique(self.halo.image_shifts[st.n_local:], axis=0).reshape(-1, 3)
        shifts = np.concatenate(self.comm.allgather(local)).reshape(-1, 3)
        self.ghost_shift_set = np.unique(shifts, axis=0).astype(float)
        self.n_rebuilds += 1
        self.timers["comm"] += t1 - t0
        self.timers["neighbour"] += MPI.Wtime() - t1

    def _spatially_sorted(self, arrays, bin_width=4.0):
        """Order owned atoms by spatial bin so that neighbours sit close in memory."""
        frac = arrays["positions"] @ np.linalg.inv(self.state.cell)
        cell = self.state.cell
        volume = abs(np.linalg.det(cell))
        heights = np.array([volume / np.linalg.norm(np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3]))
                            for d in range(3)])
        nbins = np.maximum(1, (heights / bin_width).astype(np.int64))
        idx = np.clip(np.floor(frac * nbins).astype(np.int64), 0, nbins - 1)
        order = np.argsort((idx[:, 0] * nbins[1] + idx[:, 1]) * nbins[2] + idx[:, 2], kind="stable")
        return {k: v[order] for k, v in arrays.items()}

    # ------------------------------------------------------------ forces
    def compute_forces(self, force_rebuild=False):
        st = self.state
        if force_rebuild or self._needs_rebuild():
            self.rebuild()
        else:
            t0 = MPI.Wtime()
            self.ext_positions = self.halo.forward(st.positions)
            self.timers["comm"] += MPI.Wtime() - t0
        t0 = MPI.Wtime()
        try:
            total, energies = self.forcefield.compute(self.ext_positions, self.ext_species, self.ext_ids,
                                                      st.n_local, self.offsets, self.neighbors)
        except CloseContactError as exc:
            raise CloseContactError(f"step {st.step}: {exc}") from None
        t1 = MPI.Wtime()
        self.forces = self.halo.reverse(total.forces)
        self.site_energy = total.site_energy
        names = list(energies)          # the same keys in the same order on every rank
        local = np.concatenate([[total.site_energy.sum()], total.virial.ravel(),
                                [energies[name] for name in names]])
        glob = np.empty_like(local)
        self.comm.Allreduce(local, glob, op=MPI.SUM)
        self.potential_energy = float(glob[0])
        self.virial = glob[1:10].reshape(3, 3)
        self.term_energies = {name: float(e) for name, e in zip(names, glob[10:])}
        self.timers["force"] += t1 - t0
        self.timers["comm"] += MPI.Wtime() - t1
        if not np.isfinite(self.potential_energy) or not np.all(np.isfinite(self.virial)):
            raise NonFiniteForceError(
                f"step {st.step}: the potential energy or virial is not finite "
                f"(E = {self.potential_energy}); the system exploded — reduce the timestep or "
                "check the structure")

    # ------------------------------------------------------------ observables
    def kinetic_tensor(self) -> np.ndarray:
        """Global sum of m v (x) v (eV)."""
        st = self.state
        mv = st.masses[:, None] * st.velocities
        local = (mv.T @ st.velocities) * MVV_TO_EV
        out = np.empty((3, 3))
        self.comm.Allreduce(np.ascontiguousarray(local), out, op=MPI.SUM)
        return out

    def degrees_of_freedom(self) -> int:
        return max(3 * self.state.n_atoms_total - 3, 1)

    def thermo(self) -> dict:
        """Instantaneous observables (metal units)."""
        kin = self.kinetic_tensor()
        ke = 0.5 * np.trace(kin)
        volume = self.state.volume
        temperature = 2.0 * ke / (self.degrees_of_freedom() * BOLTZMANN)
        pressure_tensor = (kin + self.virial) / volume * EV_PER_A3_TO_BAR
        return {"temperature": temperature, "kinetic_energy": ke,
                "potential_energy": self.potential_energy,
                "total_energy": ke + self.potential_energy,
                "pressure": float(np.trace(pressure_tensor) / 3.0),
                "pressure_tensor": pressure_tensor, "volume": volume}
