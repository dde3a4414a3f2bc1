"""pacemaker's ``fit.repulsion: auto``: a ZBL core repulsion below each pair's shortest distance in the data.

pacemaker applies it after the fit, to the fitted potential before writing it: every bond (blocks of one
or two elements) gets the inner cutoff r_in = the shortest distance of that element pair in the training
structures (within the fit's cutoff, periodic images included), delta_in = 0.1 Å,
``inner_cutoff_type: zbl`` (the ZBL repulsion takes over below r_in), core-repulsion parameters (1, 1),
and the element's ``rho_core_cut`` = ``drho_core_cut`` = 1.  A pair that never comes within the cutoff
takes the sum of the two covalent radii (ASE's table, as pacemaker).  The ACE part is unchanged, so
structures whose pairs are all at least r_in apart -- the training data -- keep their energies.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .basis import BasisSpec

__all__ = ["shortest_pair_distances", "complete_pair_distances", "with_auto_repulsion", "DELTA_IN"]

DELTA_IN = 0.1            # Å, pacemaker's width of the ACE-to-ZBL switch
RHO_CORE_CUT = 1.0        # eV, pacemaker's setting with the automatic repulsion
CORE_REPULSION = (1.0, 1.0)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def shortest_pair_distances(structures, cutoff: float) -> dict[tuple[str, str], float]:
    """Shortest distance (Å) of every element pair (a sorted tuple of symbols) over ``structures`` (ASE
    Atoms, or objects with ``.atoms``), periodic images included, among pairs closer than ``cutoff``."""
    from scipy.spatial import cKDTree

    from ..neighbors import periodic_images

    out: dict[tuple[str, str], float] = {}
    for s in structures:
        atoms = getattr(s, "atoms", s)
        n = len(atoms)
        ext, owner, _ = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        pairs = cKDTree(ext).query_pairs(cutoff, output_type="ndarray")
        if len(pairs) == 0:
            continue
        pairs = pairs[(pairs[:, 0] < n) | (pairs[:, 1] < n)]
        d = np.linalg.norm(ext[pairs[:, 0]] - ext[pairs[:, 1]], axis=1)
        numbers = atoms.get_chemical_symbols()
        zi = owner[pairs[:, 0]]
        zj = owner[pairs[:, 1]]
        kinds = {}
        for k, (i, j) in enumerate(zip(zi, zj)):
            key = _pair(numbers[i], numbers[j])
            if key not in kinds or d[k] < kinds[key]:
                kinds[key] = d[k]
        for key, value in kinds.items():
            if key not in out or value < out[key]:
                out[key] = float(value)
    return out


def complete_pair_distances(distances: dict, elements) -> dict[tuple[str, str], float]:
    """``distances`` with every pair of ``elements``: a pair missing takes the sum of the two covalent
    radii (Å), pacemaker's default."""
    from ase.data import atomic_numbers, covalent_radii

    elements = sorted(elements)
    out = {}
    for i, a in enumerate(elements):
        for b in elements[i:]:
            key = (a, b)
            out[key] = float(distances[key]) if key in distances else \
                float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])
    return out


def with_auto_repulsion(spec: BasisSpec, distances: dict) -> BasisSpec:
    """A copy of ``spec`` with pacemaker's automatic ZBL core repulsion: per bond r_in from ``distances``
    (sorted pair -> Å, complete for the elements: :func:`complete_pair_distances`), the rest as in the
    module docstring.  Functions, radial coefficients and embeddings' other settings are kept."""
    blocks = []
    for b in spec.blocks:
        nb = replace(b, functions=list(b.functions))
        if b.bond is not None and len(b.elements) <= 2:
            key = _pair(b.elements[0], b.elements[-1])
            if key not in distances:
                raise KeyError(f"no shortest distance for the pair {key[0]}-{key[1]}: complete the distances "
                               f"with complete_pair_distances")
            nb.bond = replace(b.bond, r_in=float(distances[key]), delta_in=DELTA_IN, inner_cutoff_type="zbl",
                              core_repulsion=CORE_REPULSION)
        if b.embedding is not None:
            nb.embedding = replace(b.embedding, rho_core_cut=RHO_CORE_CUT, drho_core_cut=RHO_CORE_CUT)
        blocks.append(nb)
    return BasisSpec(elements=list(spec.elements), delta_spline_bins=spec.delta_spline_bins, blocks=blocks,
                     source=spec.source)
