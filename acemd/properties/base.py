"""The contract between the ``[properties]`` driver and its property modules.

A property module exposes one function ``run_<name>(ctx, settings) -> PropertyResult``
(``run_eos``, ``run_defects``, ``run_surfaces``, ``run_faults``; P2's ``run_phonons``,
``run_qha``).  ``settings`` is the checked sub-table of ``[properties]`` for that property
(``[properties.eos]``, ``[properties.phonons]``, ...): a plain dict with every default filled in.

The driver calls each selected property once with the potential's context (acemd's engine and
minimiser) and, when a reference calculator is given, once more with the reference's context
(the same protocol through an ASE calculator and ASE's optimisers).  A module never knows which
one it runs with: it only uses the context below.  The driver then pairs the two results entry by
entry (by ``PropertyEntry.name``) into value / reference / difference.

:class:`PropertyContext` (what a module receives)
    ``atoms``        the relaxed 0 K structure of the phase (``ase.Atoms``, the same on every
                     rank; cell and positions relaxed at ``[properties].pressure``; its calculator
                     is None: a module copies it and never assigns a calculator of its own).
    ``evaluate(structures) -> list[dict]``  energies of a list of ``ase.Atoms`` (collective:
                     every rank passes the same list and gets every result).  Each dict holds
                     ``energy`` (eV), ``forces`` ((n, 3) eV/Å) and, for periodic cells, ``stress``
                     ((6,) eV/Å³, ASE sign and Voigt order xx yy zz yz xz xy).  The structures may
                     be distributed over the MPI ranks; the order of the results is that of
                     ``structures``.
    ``relax(atoms, cell="fixed", fmax=None) -> (ase.Atoms, float)``  a relaxed copy of ``atoms``
                     and its energy (eV) (collective).  ``cell`` is one of "fixed", "iso", "aniso",
                     "triclinic" as in ``[minimize]``.  Raises :class:`RelaxationError` when it does
                     not converge.
    ``relax_many(structures, cell="fixed", fmax=None) -> list[(ase.Atoms, float)]``  the same for
                     several independent structures (spread over the ranks).
    ``calculator()`` an ASE calculator of this context's model (acemd's ``ACECalculator`` or a new
                     reference calculator) for code that needs one (phonopy driven serially, a
                     cross-check); prefer ``evaluate`` for anything large.
    ``comm``         the MPI communicator; ``rank``.
    ``label``        "acemd" or "reference" (for messages and file names only).
    ``output_dir``   the folder of the report (``pathlib.Path``): a module writing files of its
                     own puts them there, prefixed with ``label``.
    ``saved``        what this property stored with ``checkpoint`` before a stop (a dict, empty on a
                     fresh start): a module continues from it.
    ``checkpoint(progress)``  store ``progress`` (a dict of str/int/float/list/numpy arrays)
                     for this property and context in the run's checkpoint (collective; every rank
                     passes the same dict).  Call it after each completed structure when a
                     property has many expensive ones.
    ``stop_requested() -> bool``  True once SIGTERM/SIGUSR1 arrived (collective; the same on every
                     rank).  A module that sees True after a ``checkpoint`` raises
                     :class:`PropertyStopped`; the driver writes the checkpoint and exits 75.
    ``gamma(structures) -> list[float] | None``  the maximum extrapolation grade of each structure
                     (None when no active set is given); ``flag_gamma(result, structures)``
                     records it in a result (see below).  The driver also computes it for the
                     structures a module lists in ``PropertyResult.structures``.
    ``say(line)``    print a line on rank 0 (the stdout log).
    ``potential``    acemd's :class:`~acemd.potential.ACEPotential` in the acemd context (for a
                     module's own fast path, e.g. displaced supercells), None in the reference's.

:class:`PropertyResult` (what a module returns; the same on every rank)
    ``name``         the property (``"eos"``, ``"phonons"``, ...): the report's section and the
                     HDF5 group.
    ``entries``      a list of :class:`PropertyEntry`: the scalar results the table and the
                     scorecard show (``eos.B0`` in GPa, ``vacancy.E_f`` in eV, ...).
    ``data``         raw arrays for HDF5 (``{"volume": array, ...}``; a nested dict is a subgroup;
                     a string attribute ``"<key>.unit"`` in ``units`` gives the unit).
    ``units``        ``{data key: unit}``.
    ``info``         anything else for the YAML/JSON report (JSON-able: numbers, strings, lists, dicts).
    ``structures``   the structures whose energies the entries rest on (``ase.Atoms``), for the
                     extrapolation grade; may be left empty.

The property sub-table keys: a module defines ``KEYS`` (a dict ``{key: acemd.config.Key}``)
that the driver's schema (:mod:`acemd.properties.settings`) imports to check
``[properties.<name>]``; an optional ``check(settings, path)`` raises
``acemd.config.ConfigError`` for what a single key cannot say.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..drivers.minimize import NotConvergedError


class RelaxationError(NotConvergedError):
    """A relaxation of the property protocol did not converge (or a blow-up guard stopped it)."""


class PropertyStopped(Exception):
    """A stop signal arrived; the module has stored its progress with ``ctx.checkpoint``."""


@dataclass
class PropertyEntry:
    """One scalar result: ``name`` (e.g. ``"eos.B0"``), value, unit, and what it is compared with."""

    name: str
    value: float
    unit: str
    error: float | None = None                 # uncertainty of value (fit error, spread), same unit
    reference: float | None = None             # filled by the driver (reference run or given values)
    reference_error: float | None = None
    reference_source: str = ""
    flags: list[str] = field(default_factory=list)   # e.g. "extrapolating (gamma 7.2)", "imaginary modes"
    note: str = ""

    @property
    def difference(self) -> float | None:
        if self.reference is None or self.value is None:
            return None
        return float(self.value) - float(self.reference)

    @property
    def relative_difference(self) -> float | None:
        d = self.difference
        if d is None or not math.isfinite(self.reference) or abs(self.reference) < 1e-9:
            return None
        return d / abs(float(self.reference))

    def as_dict(self) -> dict:
        return {"name": self.name, "value": _plain(self.value), "unit": self.unit,
                "error": _plain(self.error), "reference": _plain(self.reference),
                "reference_error": _plain(self.reference_error), "reference_source": self.reference_source,
                "difference": _plain(self.difference), "relative_difference": _plain(self.relative_difference),
                "flags": list(self.flags), "note": self.note}


@dataclass
class PropertyResult:
    """What a property module returns (see the module doc)."""

    name: str
    entries: list[PropertyEntry] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    structures: list = field(default_factory=list)
    max_gamma: float | None = None

    def entry(self, name) -> PropertyEntry | None:
        return next((e for e in self.entries if e.name == name), None)


@dataclass
class PropertyContext:
    """What a property module receives (see the module doc)."""

    atoms: Any
    evaluate: Callable[[list], list]
    relax: Callable[..., tuple]
    relax_many: Callable[..., list]
    calculator: Callable[[], Any]
    comm: Any
    label: str = "acemd"
    output_dir: Path = Path(".")
    saved: dict = field(default_factory=dict)
    checkpoint: Callable[[dict], None] = lambda progress: None
    stop_requested: Callable[[], bool] = lambda: False
    gamma: Callable[[list], Any] | None = None
    say: Callable[[str], None] = lambda line: None
    pressure_bar: float = 0.0
    fmax: float = 1e-4                 # eV/Å: the force tolerance of relax (for a module's own relaxations)
    potential: Any = None              # the ACEPotential in acemd's context (None in the reference's)

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    def checkpoint_or_stop(self, progress: dict):
        """Store ``progress``; raise :class:`PropertyStopped` if a stop signal arrived."""
        if self.stop_requested():
            self.checkpoint(progress)
            raise PropertyStopped(self.label)


def _plain(x):
    """A JSON-able float (None stays None; numpy scalars become floats)."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return x
