"""D-optimal selection of the structures to label among the extrapolative candidates.

The active set of the current potential is, per element, a square matrix A whose rows are the
B-basis projections of the training atoms that span the largest volume (|det A|, MaxVol).  An atom
with projections b has gamma = max |b A^-1|: the factor by which |det A| grows when b replaces the
best row.  The selection is greedy D-optimal: take the candidate structure with the largest gamma,
add its atoms to A by MaxVol (A's volume grows as much as those atoms allow), recompute the gamma
of the remaining candidates against the grown A, and repeat until ``count`` structures are taken or
no candidate exceeds ``gamma_lower``.  Only the atoms outside the initial set's hull (gamma > 1) take
part: an atom inside cannot grow the volume.  A candidate that resembles one already taken loses its gamma
with the update, so the selection covers different extrapolations, not the most extreme copies of
one.  With ``cut_radius`` > 0 a selected structure is replaced by a cluster of that radius around
its most extrapolating atom (non-periodic, in vacuum), and only the atoms whose whole environment
lies in the cluster enter A.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..potential.maxvol import MaxVolError, maxvol

__all__ = ["Candidate", "projection_rows", "select_d_optimal", "cut_cluster"]


@dataclass
class Candidate:
    """An extrapolative frame: its atoms, where it came from, and its projections per element."""

    atoms: object
    origin: str                  # "<exploration>#<frame>"
    rows: dict                   # element index -> (n_atoms_of_element, nfuncs) projections
    atom_index: dict             # element index -> indices into atoms of those rows


def projection_rows(grade, potential, atoms) -> tuple[dict, dict]:
    """Per element index: the B-basis projections of the atoms of ``atoms`` and their indices."""
    from ..potential.calculator import periodic_system
    species, ext, owner, offsets, neighbors = periodic_system(
        potential, atoms.positions, atoms.cell.array, atoms.pbc, atoms.get_chemical_symbols())
    proj = grade.projections(ext, species[owner], len(species), offsets, neighbors, atom_ids=owner)
    rows, index = {}, {}
    nfuncs = grade.ptables.nfuncs
    for mu in np.unique(species):
        idx = np.flatnonzero(species == mu)
        rows[int(mu)] = proj[idx, :int(nfuncs[mu])].copy()
        index[int(mu)] = idx
    return rows, index


def _gamma(cand: Candidate, inverses: dict) -> tuple[float, int]:
    """Largest gamma of a candidate's atoms and the atom that has it."""
    best, atom = 0.0, -1
    for mu, b in cand.rows.items():
        if mu not in inverses or len(b) == 0:
            continue
        g = np.abs(b @ inverses[mu]).max(axis=1)
        k = int(np.argmax(g))
        if g[k] > best:
            best, atom = float(g[k]), int(cand.atom_index[mu][k])
    return best, atom


def _outside(cand: Candidate, inverses: dict) -> Candidate:
    """The candidate with only its atoms outside the active set's hull (gamma > 1): an atom inside
    (every |coefficient| <= 1) cannot grow the volume by a swap, and it costs time at every step."""
    rows, index = {}, {}
    for mu, b in cand.rows.items():
        keep = (np.abs(b @ inverses[mu]).max(axis=1) > 1.0) if (mu in inverses and len(b)) else np.zeros(len(b), bool)
        rows[mu], index[mu] = b[keep], cand.atom_index[mu][keep]
    return Candidate(atoms=cand.atoms, origin=cand.origin, rows=rows, atom_index=index)


def cut_cluster(atoms, center: int, radius: float, vacuum: float):
    """The atoms within ``radius`` of atom ``center`` (minimum image, periodic images included), as a
    non-periodic cluster centred in a box with ``vacuum`` Å of empty space; returns (cluster, indices
    of the original atoms of each cluster atom, distance of each from the centre)."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list
    i, j, d, D = neighbor_list("ijdD", atoms, radius, self_interaction=False)
    sel = i == center
    pos = np.vstack([[0.0, 0.0, 0.0], D[sel]])
    src = np.concatenate([[center], j[sel]])
    dist = np.concatenate([[0.0], d[sel]])
    numbers = atoms.numbers[src]
    cluster = Atoms(numbers=numbers, positions=pos, pbc=False)
    cluster.center(vacuum=vacuum)
    return cluster, src, dist


def select_d_optimal(candidates, active_inverses: dict, count: int, gamma_lower: float, tolerance: float,
                     cut_radius: float = 0.0, cutoff: float = 0.0, vacuum: float = 6.0, grade=None,
                     potential=None) -> list[dict]:
    """Greedy D-optimal choice of at most ``count`` candidates (see the module doc).

    ``active_inverses``: element index -> A^-1 (the ``.asi`` matrices).  Returns one record per choice:
    ``atoms`` (the structure, or its cluster), ``origin``, ``gamma`` (against the grown active set at
    the time it was taken), ``gamma_initial`` (against the potential's own active set)."""
    inverses = {mu: np.array(m, dtype=float) for mu, m in active_inverses.items()}
    active = {}
    for mu, inv in inverses.items():
        try:
            active[mu] = np.linalg.inv(inv)
        except np.linalg.LinAlgError:
            raise MaxVolError(f"the active set of element index {mu} is singular") from None
    initial = [_gamma(c, inverses)[0] for c in candidates]
    candidates = [_outside(c, inverses) for c in candidates]
    remaining = list(range(len(candidates)))
    chosen = []
    while remaining and len(chosen) < count:
        scores = [(_gamma(candidates[k], inverses), k) for k in remaining]
        (g, atom), k = max(scores, key=lambda s: (s[0][0], -s[1]))
        if g <= gamma_lower:
            break
        remaining.remove(k)
        cand = candidates[k]
        atoms, update_rows = cand.atoms, cand.rows
        if cut_radius > 0 and atom >= 0:
            atoms, src, dist = cut_cluster(cand.atoms, atom, cut_radius, vacuum)
            inner = set(src[dist <= max(cut_radius - cutoff, 0.0)].tolist()) | {atom}
            update_rows = {mu: b[np.isin(cand.atom_index[mu], list(inner))] for mu, b in cand.rows.items()}
        for mu, b in update_rows.items():
            if mu not in active or len(b) == 0:
                continue
            n = active[mu].shape[0]
            stacked = np.vstack([active[mu], b])
            try:
                rows, _, _ = maxvol(stacked, tolerance, rows=np.arange(n))
            except MaxVolError:
                continue
            active[mu] = stacked[rows]
            inverses[mu] = np.linalg.inv(active[mu])
        chosen.append({"atoms": atoms, "origin": cand.origin + (f" (cluster r={cut_radius:g} Å around atom {atom})"
                                                                if cut_radius > 0 else ""),
                       "gamma": g, "gamma_initial": initial[k]})
    return chosen
