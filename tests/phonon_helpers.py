"""Harmonic test models for the phonon and QHA tests: central springs on a lattice, with their
analytic dynamical matrix."""
import numpy as np
from ase.neighborlist import neighbor_list

THZ_PER_SQRT_EV_A2_AMU = 15.633302  # sqrt(eV / (Å² amu)) / 2π in THz


class ShellSprings:
    """E = Σ_pairs ½ k_s (r - r_s)² for neighbour shells s (r_s the shell's perfect-lattice
    distance, pairs within r_s ± tol): forces of a list of ase.Atoms (``forces_of``)."""

    def __init__(self, shells, tol=0.2):
        self.shells = [(float(r), float(k)) for r, k in shells]
        self.tol = tol

    def energy_forces(self, atoms):
        rmax = max(r for r, _ in self.shells) + self.tol
        i, j, d, D = neighbor_list("ijdD", atoms, rmax)
        energy, forces = 0.0, np.zeros((len(atoms), 3))
        for r0, k in self.shells:
            sel = np.abs(d - r0) < self.tol
            dr = d[sel] - r0
            energy += 0.25 * k * np.sum(dr ** 2)          # each pair listed twice
            f = (k * dr / d[sel])[:, None] * D[sel]        # force on i pulls toward j when stretched
            np.add.at(forces, i[sel], f)
        return energy, forces

    def forces_of(self, structures):
        return [self.energy_forces(a)[1] for a in structures]

    def evaluate(self, structures):
        out = []
        for a in structures:
            e, f = self.energy_forces(a)
            out.append({"energy": e, "forces": f, "stress": np.zeros(6)})
        return out


def analytic_frequencies(atoms, shells, q_cart, tol=0.2):
    """Signed frequencies (THz; imaginary as negative) of a one-atom Bravais lattice with central
    springs of rest length r_s: D(q) = (1/m) Σ_δ (1 - cos q·δ) [k δ̂δ̂ᵀ + k (|δ| - r_s)/|δ| (1 - δ̂δ̂ᵀ)]
    (the second term: the tension of a stretched spring), q in 1/Å (including 2π)."""
    rmax = max(r for r, _ in shells) + tol
    _, _, d, D = neighbor_list("ijdD", atoms, rmax)
    m = atoms.get_masses()[0]
    out = []
    for q in np.atleast_2d(q_cart):
        dyn = np.zeros((3, 3))
        for r0, k in shells:
            sel = np.abs(d - r0) < tol
            for vec, dist in zip(D[sel], d[sel]):
                e = vec / dist
                tension = k * (dist - r0) / dist
                dyn += (1.0 - np.cos(q @ vec)) * (k * np.outer(e, e) + tension * (np.eye(3) - np.outer(e, e)))
        lam = np.linalg.eigvalsh(dyn / m)
        out.append(np.sort(np.sign(lam) * np.sqrt(np.abs(lam)) * THZ_PER_SQRT_EV_A2_AMU))
    return np.array(out)
