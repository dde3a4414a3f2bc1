"""A force field is a list of force terms whose energies, forces and virials add.

The MD engine never talks to ACE directly: it asks the force field.  Drivers add
terms (Einstein springs for Frenkel-Ladd, a reference liquid, lambda-scaled
copies of a term for free-energy switching) without touching the engine.

A term sees the extended atom set of one rank (owned atoms first, then ghosts)
and the neighbour list of the owned atoms, built with the largest cutoff of all
terms plus the Verlet skin.  It returns per-owned-atom energies, forces on all
extended atoms and its virial W = sum x (x) f (eV).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TermResult:
    site_energy: np.ndarray     # (n_local,) eV
    forces: np.ndarray          # (n_ext, 3) eV/Å
    virial: np.ndarray          # (3, 3) eV
    site_virial: np.ndarray | None = None   # (n_ext, 3, 3) eV
    parts: dict | None = None   # named local energy sums (eV) a term reports besides its total


class ForceTerm:
    """Interface of a force term."""

    name = "term"
    cutoff = 0.0                # Å; 0 for terms that need no neighbours

    def compute(self, positions, species, ids, n_local, offsets, neighbors) -> TermResult:
        raise NotImplementedError


class ACETerm(ForceTerm):
    """An ACE potential as a force term."""

    name = "ace"
    # per-atom virials cost a scattered update per pair and (n_ext, 3, 3) of memory;
    # the engine uses only the total virial, so they are off unless a caller asks
    want_site_virial = False

    def __init__(self, potential):
        from .potential import ACEPotential
        self.potential = potential if isinstance(potential, ACEPotential) else ACEPotential(potential)
        self.cutoff = self.potential.cutoff

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        res = self.potential.compute(positions, species, n_local, offsets, neighbors, atom_ids=ids,
                                     site_virial=self.want_site_virial)
        return TermResult(res.site_energy, res.forces, res.virial, res.site_virial)


class ScaledTerm(ForceTerm):
    """lambda * term: the building block of free-energy switching paths."""

    def __init__(self, term: ForceTerm, scale: float):
        self.term, self.scale = term, float(scale)
        self.name = f"{scale:g}*{term.name}"
        self.cutoff = term.cutoff

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        r = self.term.compute(positions, species, ids, n_local, offsets, neighbors)
        s = self.scale
        return TermResult(s * r.site_energy, s * r.forces, s * r.virial,
                          None if r.site_virial is None else s * r.site_virial)


class ForceField:
    """Sum of force terms; keeps each term's energy for reporting."""

    def __init__(self, terms):
        self.terms = list(terms)
        if not self.terms:
            raise ValueError("a force field needs at least one term")

    @property
    def cutoff(self) -> float:
        return max(t.cutoff for t in self.terms)

    def bind(self, state, comm):
        """Give terms that define ``bind(state, comm)`` the run's State and communicator.

        Called once by the Engine.  Terms that need the cell at compute time (Einstein
        springs anchored in fractional coordinates) or a global sum read them from here.
        """
        for term in self.terms:
            if hasattr(term, "bind"):
                term.bind(state, comm)

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        """Returns (total TermResult, {term name: local energy sum}).

        A term's ``parts`` appear as ``"<term name>.<part>"`` entries after its total.
        """
        total = None
        energies = {}
        for term in self.terms:
            r = term.compute(positions, species, ids, n_local, offsets, neighbors)
            energies[term.name] = float(r.site_energy.sum())
            for part, value in (r.parts or {}).items():
                energies[f"{term.name}.{part}"] = float(value)
            if total is None:
                total = TermResult(r.site_energy.copy(), r.forces.copy(), r.virial.copy(),
                                   None if r.site_virial is None else r.site_virial.copy())
            else:
                total.site_energy += r.site_energy
                total.forces += r.forces
                total.virial += r.virial
                if total.site_virial is not None and r.site_virial is not None:
                    total.site_virial += r.site_virial
        return total, energies
