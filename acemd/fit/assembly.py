"""The loss as weighted least-squares rows, summed into normal equations over MPI ranks.

pacemaker's loss, with acemd's optional stress term:

    L = (1-κ) Σ_s w^E_s (ΔE_s/N_s)²  +  κ Σ_i w^F_i |ΔF_i|²  +  κ_σ Σ_s w^σ_s Σ_v u_v (ΔW_sv/N_s)²  +  L2 |c|²

E_s are the fit's target energies (after reference energies and the coefficient-free
terms such as core repulsion are taken off), F_i forces (eV/Å), W_s = σ_s V_s the
virial (eV; σ in the ASE convention), so the stress rows are virials per atom,
in the energy's unit, and κ_σ has the meaning κ has for forces; u_v weights the six
Voigt components.  Each structure contributes 1 energy row, 3N force rows and 6
stress rows; the rows are folded into the normal equations at once, so memory
does not grow with the dataset.

Structures are shared among ranks by a deterministic greedy balance of their atom
counts; the per-rank normal equations are summed, so 1, 2 or N ranks give the same
coefficients to round-off.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .solvers import NormalEquations

__all__ = ["LossSettings", "rank_shares", "assemble", "loss_rows", "auto_kappa"]


@dataclass(frozen=True)
class LossSettings:
    kappa: float                        # force share of the loss, in [0, 1]
    kappa_stress: float = 0.0           # stress term (0: no stress rows)
    stress_components: tuple = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)   # Voigt xx yy zz yz xz xy


def auto_kappa(structures) -> float:
    """pacemaker's ``kappa: auto``: σ_E² / (σ_E² + σ_F²) from the energies per atom and the force norms.

    As pacemaker computes them: σ_E the sample standard deviation (pandas' ``std``, ddof 1) of the
    energies per atom, σ_F the population one (numpy's ``std``) of the force vectors' norms.
    """
    epa = np.array([s.energy / s.natoms for s in structures])
    fnorm = np.concatenate([np.linalg.norm(s.forces, axis=1) for s in structures])
    e_var = float(np.var(epa, ddof=1)) if len(epa) > 1 else 0.0
    f_var = float(np.var(fnorm))
    if e_var + f_var == 0.0:
        return 0.5
    return e_var / (e_var + f_var)


def rank_shares(natoms, nranks: int) -> list[list[int]]:
    """Structure indices per rank: largest first onto the least-loaded rank (ties: lowest rank)."""
    order = sorted(range(len(natoms)), key=lambda k: (-natoms[k], k))
    load = [0] * nranks
    shares = [[] for _ in range(nranks)]
    for k in order:
        r = min(range(nranks), key=lambda q: (load[q], q))
        shares[r].append(k)
        load[r] += natoms[k]
    return [sorted(s) for s in shares]


def has_stress(structure) -> bool:
    return structure.stress is not None and bool(np.all(structure.atoms.pbc))


def loss_rows(rows, structure, energy_weight, force_weights, stress_weight, loss: LossSettings):
    """(rows, targets, weights) of one structure from its design rows (see module docstring)."""
    n = structure.natoms
    blocks_a = [rows.energy[None, :] / n]
    blocks_b = [np.array([(structure.energy - rows.fixed_energy) / n])]
    blocks_w = [np.array([(1.0 - loss.kappa) * energy_weight])]
    if loss.kappa > 0.0:
        blocks_a.append(rows.forces)
        blocks_b.append(np.asarray(structure.forces, dtype=float).ravel() - rows.fixed_forces)
        blocks_w.append(loss.kappa * np.repeat(np.asarray(force_weights, dtype=float), 3))
    if loss.kappa_stress > 0.0 and has_stress(structure):
        volume = structure.atoms.get_volume()
        blocks_a.append(rows.virial / n)
        blocks_b.append((np.asarray(structure.stress, dtype=float) * volume - rows.fixed_virial) / n)
        blocks_w.append(loss.kappa_stress * stress_weight * np.asarray(loss.stress_components, float))
    return np.vstack(blocks_a), np.concatenate(blocks_b), np.concatenate(blocks_w)


def assemble(design, structures, indices, energy_weights, force_weights, stress_weights,
             loss: LossSettings, progress=None) -> NormalEquations:
    """Normal equations of the structures ``indices`` (this rank's share).

    ``progress(done, total, atoms_done, atoms_total)`` is called as structures finish.
    """
    ne = NormalEquations(design.ncols)
    ne.timing = {"rows_s": 0.0, "normal_equations_s": 0.0}    # wall time of the two parts
    atoms_total = sum(structures[k].natoms for k in indices)
    atoms_done = 0
    for done, k in enumerate(indices, start=1):
        s = structures[k]
        t0 = time.perf_counter()
        rows = design.rows(s.atoms, copy=False)
        t1 = time.perf_counter()
        a, b, w = loss_rows(rows, s, energy_weights[k], force_weights[k], stress_weights[k], loss)
        ne.add(a, b, w)
        ne.timing["rows_s"] += t1 - t0
        ne.timing["normal_equations_s"] += time.perf_counter() - t1
        atoms_done += s.natoms
        if progress is not None:
            progress(done, len(indices), atoms_done, atoms_total)
    t0 = time.perf_counter()
    ne.packed()                        # flush the staged rows into G
    ne.timing["normal_equations_s"] += time.perf_counter() - t0
    return ne


class Progress:
    """Progress lines (count, elapsed, ETA) at most every ``interval_s`` seconds, and at the end."""

    def __init__(self, label, say, interval_s=5.0):
        self.label = label
        self.say = say
        self.interval_s = interval_s
        self.t0 = time.perf_counter()
        self.last = self.t0

    def __call__(self, done, total, atoms_done, atoms_total):
        from ..io.thermo import format_hms
        now = time.perf_counter()
        if done < total and now - self.last < self.interval_s:
            return
        self.last = now
        elapsed = now - self.t0
        frac = atoms_done / atoms_total if atoms_total else 1.0
        eta = elapsed * (1.0 - frac) / frac if frac > 0 else float("nan")
        self.say(f"{self.label}: {done}/{total} structures ({100 * frac:.0f} % of the atoms) | "
                 f"elapsed {format_hms(elapsed)} | ETA {format_hms(eta) if np.isfinite(eta) else '?'}")
