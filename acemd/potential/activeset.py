"""Build a pacemaker-compatible active set (``.asi``) from a training set.

For every element, each atom of the training structures gives a row b: its
B-basis projections ("linear", n = number of B-functions) or dE/dc, the
projections times dF/drho_p ("full", n = B-functions x ndensity).  MaxVol
picks n atoms whose square matrix A has |b A^-1| <= 1 + tolerance for every
training atom, i.e. gamma <= 1 + tolerance on the training set; the ``.asi``
stores A^-1 per element (see :mod:`acemd.potential.extrapolation`).

When the projections are nearly dependent (ill-conditioned A, common for ACE
bases), round-off in |b A^-1| can lift some training gamma above the bound:
this is reported as a warning, and as an error above ``DEGENERATE_GAMMA``.

The training set is streamed in batches of about ``batch_atoms`` atoms: each
batch is checked against the current active set and, if some atom exceeds the
bound, MaxVol runs on the active rows plus the batch, starting from the active
rows (so |det A| only grows).  Passes over the training set repeat until every
batch has been checked against the final active set without a change; memory
stays at one batch plus the active rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
import tempfile

import numpy as np

from .extrapolation import ActiveSetError, ExtrapolationGrade, projection_order
from .maxvol import MaxVolError, initial_rows, maxvol

__all__ = ["TrainingSetError", "DEFAULT_TOLERANCE", "MAX_TOLERANCE", "ElementSummary",
           "ActiveSetResult", "build_active_set", "check_output", "write_active_set"]

DEFAULT_TOLERANCE = 0.01   # issue 6: training atoms must have gamma <= 1.01
MAX_TOLERANCE = 0.01
MAX_PASSES = 50
DEGENERATE_GAMMA = 2.0     # training gamma above this (round-off) makes the active set useless


class TrainingSetError(ActiveSetError):
    """The training set cannot give an active set for the potential."""


@dataclass
class ElementSummary:
    """What the active set of one element was built from."""

    element: str
    atoms: int             # atoms of this element in the training set
    size: int              # rows/columns of its matrix (B-functions, x ndensity when full)
    swaps: int = 0         # MaxVol row swaps, all batches and passes
    max_gamma: float = 0.0  # largest |coefficient| (= gamma) over its training atoms, final set
    condition: float = 0.0  # condition number of the active-set matrix, columns scaled to ~1


@dataclass
class ActiveSetResult:
    matrices: dict          # element -> A^-1, what the .asi holds
    kind: str               # "linear" or "full"
    tolerance: float
    structures: int
    passes: int
    batches: int
    elements: list = field(default_factory=list)   # ElementSummary per element, potential order
    warnings: list = field(default_factory=list)   # training gamma above 1 + tolerance by round-off


# ---------------------------------------------------------------------------
# training structures and their projections
# ---------------------------------------------------------------------------

def _training_structures(files, fmt=None):
    """Yield (file, frame index, Atoms) for every structure of the training files."""
    from ase.io import iread
    for path in files:
        count = 0
        try:
            for atoms in iread(str(path), index=":", format=fmt, parallel=False):
                yield path, count, atoms
                count += 1
        except Exception as exc:  # noqa: BLE001 - ASE raises many types for unreadable files
            where = f" after {count} structures" if count else ""
            raise TrainingSetError(
                f"training file {path}: ASE cannot read it{where} ({type(exc).__name__}: {exc}); "
                "check the file, or give its ASE format with --format") from None
        if count == 0:
            raise TrainingSetError(f"training file {path}: contains no structures")


class _Projector:
    """Per-atom rows (projections or dE/dc) of structures, grouped by element index."""

    def __init__(self, potential, full):
        self.potential = potential
        self.grade = ExtrapolationGrade(potential)
        self.full = full
        nfuncs = self.grade.ptables.nfuncs
        ndens = [e.ndensity for e in potential.model.embeddings]
        self.sizes = [int(nfuncs[mu]) * (ndens[mu] if full else 1) for mu in range(len(nfuncs))]

    def rows(self, path, frame, atoms) -> dict[int, np.ndarray]:
        from . import CloseContactError
        from .calculator import NonFiniteInputError, periodic_system
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.potential.elements))
        if unknown:
            raise TrainingSetError(
                f"training file {path}, structure {frame}: element(s) {', '.join(unknown)} not in the "
                f"potential {self.potential.path} (it has {', '.join(self.potential.elements)}); "
                "remove those structures or use a potential fitted for them")
        try:
            species, ext, owner, offsets, neighbors = periodic_system(
                self.potential, atoms.positions, atoms.cell.array, atoms.pbc, symbols)
            proj = self.grade.projections(ext, species[owner], len(species), offsets, neighbors,
                                          atom_ids=owner)
        except (CloseContactError, NonFiniteInputError) as exc:
            raise TrainingSetError(f"training file {path}, structure {frame}: {exc}") from None
        vectors = self.grade.asi_vectors(proj, species, kind="full") if self.full else None
        out = {}
        for mu in np.unique(species):
            idx = np.flatnonzero(species == mu)
            size = self.sizes[mu]
            out[int(mu)] = (np.array([vectors[i] for i in idx]) if self.full
                            else proj[idx, :size].copy())
        return out


def _batches(structures, projector, batch_atoms):
    """Yield (structures in batch, first (file, frame), {element index: rows}) of ~batch_atoms atoms."""
    rows, count, natoms, first = {}, 0, 0, None
    for path, frame, atoms in structures:
        if len(atoms) == 0:
            continue
        if first is None:
            first = (path, frame)
        for mu, r in projector.rows(path, frame, atoms).items():
            rows.setdefault(mu, []).append(r)
        count += 1
        natoms += len(atoms)
        if natoms >= batch_atoms:
            yield count, first, {mu: np.vstack(r) for mu, r in rows.items()}
            rows, count, natoms, first = {}, 0, 0, None
    if count:
        yield count, first, {mu: np.vstack(r) for mu, r in rows.items()}


# ---------------------------------------------------------------------------
# active set of one element
# ---------------------------------------------------------------------------

class _ElementSet:
    """Active rows of one element, updated batch by batch.

    Columns are divided by ``scale`` (the power of 2 nearest to their largest
    |value| when the set is first formed) for the pivoted-QR start and the
    inverse.  Powers of 2 scale exactly, so the coefficients MaxVol sees are
    the gamma that ``|b @ A^-1|`` gives with the written A^-1, round-off included.
    """

    def __init__(self, element, size, tolerance):
        self.element = element
        self.size = size
        self.tolerance = tolerance
        self.atoms = 0              # counted by the driver, first pass only
        self.swaps = 0
        self.active = None          # (size, size) rows of the active set, unscaled
        self.pending = None         # rows kept while the set cannot be formed yet
        self.reserve = None         # rows with the largest gamma below 1, see _keep_reserve
        self.column_max = np.zeros(size)
        self.scale = None
        self.inverse = None         # inverse of active / scale
        self.max_gamma = 0.0        # largest gamma of the rows seen since the set last changed

    def gamma(self, rows) -> np.ndarray:
        return np.abs((rows / self.scale) @ self.inverse).max(axis=1)

    def add(self, rows) -> bool:
        """Take a batch's rows; returns True when the active set changed."""
        self.column_max = np.maximum(self.column_max, np.abs(rows).max(axis=0))
        if self.active is None:
            changed = self._try_to_form(rows)
        else:
            largest = self.gamma(rows).max()
            changed = largest > 1.0 + self.tolerance and self._update(rows)
            if not changed:
                self.max_gamma = max(self.max_gamma, largest)
        if changed:
            self.max_gamma = self.gamma(rows).max()
        if self.active is not None:
            self._keep_reserve(rows)
        return changed

    def _keep_reserve(self, rows):
        """Keep the ``size`` rows seen so far with the largest gamma: the likeliest next swaps.

        They join every later MaxVol, so a swap caused by one batch does not
        push rows of earlier batches over the bound unseen (fewer passes).
        """
        pool = rows if self.reserve is None else np.vstack([self.reserve, rows])
        active = {row.tobytes() for row in self.active}
        keep = []
        for i in np.argsort(self.gamma(pool))[::-1]:
            if pool[i].tobytes() not in active:             # not the active rows themselves
                keep.append(i)
                if len(keep) == self.size:
                    break
        self.reserve = pool[keep]

    def _update(self, rows) -> bool:
        parts = [self.active] + ([] if self.reserve is None else [self.reserve]) + [rows]
        candidates = np.vstack(parts) / self.scale
        try:
            selected, swaps, _ = maxvol(candidates, self.tolerance, rows=np.arange(self.size))
        except MaxVolError as exc:
            raise TrainingSetError(f"element {self.element}: MaxVol failed ({exc}); the training "
                                   "projections are numerically degenerate") from None
        if swaps == 0:              # above the bound by round-off only
            return False
        self.swaps += swaps
        self._set_active(candidates[selected] * self.scale)
        return True

    def _try_to_form(self, rows) -> bool:
        pool = rows if self.pending is None else np.vstack([self.pending, rows])
        if len(pool) < self.size or np.any(self.zero_columns()):
            self.pending = self._representatives(pool)
            return False
        scale = 2.0 ** np.round(np.log2(self.column_max))
        start = initial_rows(pool / scale)
        if _distinct_rows(pool[start]) < self.size:
            self.pending = pool[start]
            return False
        try:
            selected, swaps, _ = maxvol(pool / scale, self.tolerance, rows=start)
        except MaxVolError:
            self.pending = pool[start]
            return False
        self.scale = scale
        self.swaps += swaps
        self.pending = None
        self._set_active(pool[selected])
        return True

    def _representatives(self, pool):
        """At most ``size`` rows spanning what the pool spans (bounded memory while forming)."""
        if len(pool) <= self.size:
            return pool
        nonzero = ~self.zero_columns()
        if not np.any(nonzero):
            return pool[:self.size]
        keep = initial_rows(pool[:, nonzero] / self.column_max[nonzero], count=self.size)
        return pool[np.sort(keep)]

    def _set_active(self, active):
        self.active = active
        try:
            self.inverse = np.linalg.inv(active / self.scale)
        except np.linalg.LinAlgError:
            raise TrainingSetError(
                f"element {self.element}: the active-set matrix is singular; the training "
                "environments of this element are too similar (add rattled, strained, "
                "defected or differently composed structures)") from None

    def zero_columns(self) -> np.ndarray:
        """Mask of the columns that are exactly zero on every row seen so far (e.g. absent neighbours)."""
        return self.column_max == 0.0

    def condition(self) -> float:
        return float(np.linalg.cond(self.active / self.scale))

    def asi_matrix(self) -> np.ndarray:
        """A^-1 in the units of the projections (what gamma multiplies)."""
        return self.inverse / self.scale[:, None]


def _distinct_rows(rows, digits=9) -> int:
    """Rows that differ by more than ~1e-9 of their largest entry.

    Symmetry-equivalent atoms (equal up to round-off) count once; functions that
    vanish by symmetry (round-off ~1e-17) do not make rows distinct.
    """
    norm = np.abs(rows).max(axis=1, keepdims=True)
    return len(np.unique(np.round(rows / np.where(norm > 0, norm, 1.0), digits), axis=0))


def _formation_error(state, potential, full) -> TrainingSetError:
    """Why an element's active set could not be formed, and what to do."""
    el, n = state.element, state.size
    what = "B-functions" if not full else "entries of dE/dc (B-functions x ndensity)"
    if state.atoms < n:
        return TrainingSetError(
            f"element {el}: {state.atoms} atoms in the training set, but its active set needs at "
            f"least {n} ({n} {what} of {el} in {potential.path}); add structures with at least "
            f"{n - state.atoms} more {el} atoms in varied environments")
    distinct = _distinct_rows(state.pending)
    if distinct < n:
        return TrainingSetError(
            f"element {el}: its {state.atoms} training atoms have only {distinct} distinct environments "
            f"(atoms whose projections agree to 1e-9, e.g. symmetry-equivalent ones, count once) for "
            f"{n} {what}, so the projection matrix is "
            f"singular; add rattled, strained or defected structures with {el}")
    zero = np.flatnonzero(state.zero_columns())
    if len(zero):
        order = projection_order(potential.model)[el]
        nf = len(order)
        names = sorted({"-".join(order[k % nf]["elements"]) + f" (rank {len(order[k % nf]['ns'])})"
                        for k in zero})
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        return TrainingSetError(
            f"element {el}: {len(zero)} of its {n} {what} are zero for every training atom (functions "
            f"{shown}), so the projection matrix is singular; add structures in which {el} atoms have "
            "the neighbour elements these functions involve")
    return TrainingSetError(
        f"element {el}: the projections of its {state.atoms} training atoms span fewer than the {n} "
        f"dimensions of its {what}, so the projection matrix is singular; add rattled, strained or "
        f"defected structures with {el}")


# ---------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------

def _check_potential(potential, full):
    model = potential.model
    if model.bbasis is None:
        raise ActiveSetError(
            f"potential {potential.path}: a C-tilde file (.yace/.ace) has no B-basis; an active set "
            "is built from the B-basis projections, so give pacemaker's B-basis .yaml of this potential")
    if full:
        single = [el for el, e in zip(model.elements, model.embeddings) if e.ndensity == 1]
        if single:
            raise ActiveSetError(
                f"potential {potential.path}: element(s) {', '.join(single)} have ndensity 1, where a "
                "full active set has the size of a linear one and is read back (by acemd, pyace and "
                "LAMMPS) as linear; build the linear active set (without --full)")


def build_active_set(potential, training_files, tolerance=DEFAULT_TOLERANCE, full=False,
                     batch_atoms=20000, fmt=None, log=None) -> ActiveSetResult:
    """Active set of a B-basis potential from training structure files (any ASE format).

    ``potential``: path of a pacemaker ``.yaml`` or an :class:`ACEPotential` on
    one.  ``tolerance``: every training atom gets gamma <= 1 + tolerance
    (0 < tolerance <= 0.01).  ``log``: callable receiving progress lines.
    Raises :class:`TrainingSetError` / :class:`ActiveSetError` naming the file
    or element and what to do.
    """
    from . import ACEPotential
    say = log or (lambda line: None)
    if not 0.0 < tolerance <= MAX_TOLERANCE:
        raise ActiveSetError(f"tolerance {tolerance}: must be in (0, {MAX_TOLERANCE}] (training atoms "
                             f"get gamma <= 1 + tolerance; issue 6 requires at most 1.01)")
    if batch_atoms < 1:
        raise ActiveSetError(f"batch_atoms {batch_atoms}: must be a positive number of atoms")
    training_files = [Path(f) for f in training_files]
    if not training_files:
        raise TrainingSetError("no training files given")
    for path in training_files:        # fail before any work on a later file
        if not path.is_file():
            raise TrainingSetError(f"training file {path}: "
                                   + ("is a directory, expected a structure file" if path.is_dir()
                                      else "not found"))
    if not isinstance(potential, ACEPotential):
        potential = ACEPotential(potential)
    _check_potential(potential, full)
    projector = _Projector(potential, full)
    states = [_ElementSet(el, projector.sizes[mu], tolerance)
              for mu, el in enumerate(potential.elements)]
    kind = "full" if full else "linear"
    unit = "dE/dc entries" if full else "B-functions"
    say(f"potential {potential.path}: {', '.join(f'{s.element} {s.size}' for s in states)} {unit}; "
        f"{kind} active set, training gamma <= {1 + tolerance:g}, batches of ~{batch_atoms} atoms")

    n_batches = None                   # known after the first pass
    clean = 0                          # consecutive batches checked against an unchanged set
    structures = 0
    for npass in range(1, MAX_PASSES + 1):
        batch = 0
        for count, (path, frame), rows in _batches(_training_structures(training_files, fmt),
                                                    projector, batch_atoms):
            batch += 1
            swaps_before = [s.swaps for s in states]
            changed = False
            for mu, r in rows.items():
                if npass == 1:
                    states[mu].atoms += len(r)
                changed |= states[mu].add(r)
            if any(s.active is None for s in states):
                clean = 0
            else:
                clean = 1 if changed else clean + 1
            if npass == 1:
                structures += count
            swaps = ", ".join(f"{s.element} {s.swaps - b}" for s, b in zip(states, swaps_before))
            say(f"pass {npass}, batch {batch}: {count} structures from {path.name}#{frame}, "
                f"{sum(len(r) for r in rows.values())} atoms; MaxVol swaps {swaps}"
                + (f" ({structures} structures processed)" if npass == 1 else ""))
            if n_batches is not None and clean >= n_batches:
                break
        if n_batches is None:
            n_batches = batch
            if n_batches == 0:
                raise TrainingSetError(f"the training files ({', '.join(map(str, training_files))}) "
                                       "contain only empty structures")
            for s in states:
                if s.active is None:
                    raise _formation_error(s, potential, full)
        if clean >= n_batches:
            break
    else:
        raise TrainingSetError(f"the active set still changed after {MAX_PASSES} passes over the "
                               "training set; the projections are numerically degenerate")

    summaries = [ElementSummary(s.element, s.atoms, s.size, s.swaps, float(s.max_gamma), s.condition())
                 for s in states]
    warnings = []
    for e in summaries:
        say(f"{e.element}: {e.atoms} atoms, {e.size} {unit}, {e.swaps} MaxVol swaps, "
            f"max |c| (training gamma) {e.max_gamma:.6f}, condition number {e.condition:.2e}")
        if e.max_gamma > DEGENERATE_GAMMA:
            raise TrainingSetError(
                f"element {e.element}: its training projections are numerically degenerate (condition "
                f"number of the active set {e.condition:.1e}): round-off alone gives training atoms gamma "
                f"up to {e.max_gamma:.3g}, so the active set could not tell them from extrapolation; add "
                f"more varied structures with {e.element} (rattled by 0.1-0.3 Å, strained, other phases)")
        if e.max_gamma > 1.0 + tolerance:
            warnings.append(
                f"element {e.element}: training gamma up to {e.max_gamma:.4f} > {1 + tolerance:g} from "
                f"round-off: its projections are nearly dependent (condition number {e.condition:.1e}); "
                "more varied training structures make the bound exact")
    return ActiveSetResult(matrices={s.element: s.asi_matrix() for s in states}, kind=kind,
                           tolerance=tolerance, structures=structures, passes=npass,
                           batches=n_batches, elements=summaries, warnings=warnings)


def check_output(path) -> Path:
    """The folder of an output .asi must exist (checked before hours of projections)."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ActiveSetError(f"output {path}: folder {folder} does not exist")
    if path.is_dir():
        raise ActiveSetError(f"output {path}: is a directory, expected a file name ending in .asi")
    return folder


def write_active_set(path, matrices) -> Path:
    """Write {element: A^-1} as pacemaker's ``.asi`` (numpy .npz), atomically (temp file + rename)."""
    path = Path(path)
    folder = check_output(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **{el: np.ascontiguousarray(m, dtype=np.float64) for el, m in matrices.items()})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
