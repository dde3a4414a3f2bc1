"""Phonons by finite displacements with phonopy, forces from any evaluator (docs/properties-phonons.md).

phonopy makes the displaced supercells and the force constants; the forces come from a plain
``forces_of(list of ase.Atoms) -> list of (n, 3) arrays`` (acemd's engine through
:mod:`acemd.properties.displaced_forces`, the driver's ``ctx.evaluate``, or an ASE calculator),
so the same protocol runs for the potential and for a reference.  The band structure follows
seekpath's standard path (HPKOT), mapped onto phonopy's primitive cell in Cartesian space so a
rotated or non-standard input cell gets the right q-points.  Imaginary modes (phonopy's negative
frequencies) are reported, never an error: an unstable structure is a result.

Units: frequencies in THz (phonopy's default for eV, Å, amu), force constants in eV/Å².
"""
from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["KEYS", "run_phonons", "auto_supercell", "make_phonopy", "force_constants",
           "band_structure", "mesh_dos", "imaginary_modes", "PhononResults", "phonons_of",
           "forces_from_calculator", "forces_from_evaluate"]

#: frequencies below -IMAGINARY_TOLERANCE_THZ (phonopy's sign convention for imaginary) are imaginary
IMAGINARY_TOLERANCE_THZ = 0.05


def _keys():
    from ..config import Key, non_negative, positive

    def mesh3(v):
        if len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            return "must be three positive integers, e.g. [20, 20, 20]"
        return None

    def supercell_spec(v):
        try:
            supercell_matrix(v)
        except ValueError as exc:
            return str(exc)
        return None

    return {
        "supercell": Key((list, str), default="auto", check=supercell_spec,
                         type_doc='"auto", [int, int, int] or 3x3 int',
                         doc="supercell of the relaxed cell for the force constants: [n1, n2, n3], a 3x3 "
                             "integer matrix, or \"auto\" (diagonal, every face height >= supercell_min_length)"),
        "supercell_min_length": Key((int, float), default=12.0, check=positive, unit="Å",
                                    doc="smallest face-to-face height of the \"auto\" supercell"),
        "displacement": Key((int, float), default=0.01, check=positive, unit="Å",
                            doc="finite displacement of one atom (phonopy's symmetry-reduced set)"),
        "mesh": Key((list,), default=[20, 20, 20], check=mesh3, type_doc="[int, int, int]",
                    doc="q-point mesh of the DOS and the thermal properties"),
        "band_points": Key((int,), default=51, check=lambda v: None if v >= 2 else "must be >= 2",
                           doc="q-points per segment of seekpath's band path (ends included)"),
        "symprec": Key((int, float), default=1e-5, check=positive, unit="Å", doc="symmetry tolerance (spglib)"),
        "subtract_residual_forces": Key((bool,), default=False,
                                        doc="subtract the forces of the undisplaced supercell (for a structure "
                                            "not exactly at a minimum; one more evaluation)"),
        "imaginary_tolerance": Key((int, float), default=IMAGINARY_TOLERANCE_THZ, check=non_negative, unit="THz",
                                   doc="modes below minus this are reported as imaginary (unstable)"),
    }


def __getattr__(name):
    # KEYS is built on first use: acemd.config imports nothing from here, and this module stays
    # importable without the driver's schema machinery.
    if name == "KEYS":
        return _keys()
    raise AttributeError(name)


# --------------------------------------------------------------------------- set-up

def supercell_matrix(spec, atoms=None, min_length=12.0):
    """A 3x3 integer supercell matrix from [n1, n2, n3], a 3x3 list, or "auto" (needs ``atoms``)."""
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError('give "auto", [n1, n2, n3] or a 3x3 integer matrix')
        if atoms is None:
            return None
        return np.diag(auto_supercell(atoms.cell.array, min_length))
    arr = np.asarray(spec)
    if arr.shape == (3,) and np.issubdtype(arr.dtype, np.integer) and (arr >= 1).all():
        return np.diag(arr.astype(int))
    if arr.shape == (3, 3) and np.issubdtype(arr.dtype, np.integer) and round(abs(np.linalg.det(arr))) >= 1:
        return arr.astype(int)
    raise ValueError('give "auto", three positive integers or a 3x3 integer matrix with non-zero determinant')


def auto_supercell(cell, min_length):
    """Repeats [n1, n2, n3] making every face-to-face height of the supercell >= ``min_length`` Å."""
    cell = np.asarray(cell, float)
    volume = abs(np.linalg.det(cell))
    heights = [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return [max(1, math.ceil(min_length / h - 1e-9)) for h in heights]


_PHONOPY_CACHE: dict = {}
_PHONOPY_CACHE_SIZE = 4


def make_phonopy(atoms, supercell, symprec=1e-5, primitive="auto"):
    """A phonopy object on the unit cell ``atoms`` (ase.Atoms) and the 3x3 ``supercell`` matrix.

    phonopy's symmetry analysis of a large supercell takes seconds; the last few objects are kept
    (without displacements or forces) and a copy is returned for the same structure and settings
    (phonons and the QHA of one phase share it).
    """
    import copy
    key = (tuple(atoms.get_chemical_symbols()), np.round(atoms.cell.array, 12).tobytes(),
           np.round(atoms.get_scaled_positions(wrap=False), 12).tobytes(), np.asarray(supercell).tobytes(),
           float(symprec), str(primitive))
    if key not in _PHONOPY_CACHE:
        if len(_PHONOPY_CACHE) >= _PHONOPY_CACHE_SIZE:
            _PHONOPY_CACHE.pop(next(iter(_PHONOPY_CACHE)))
        _PHONOPY_CACHE[key] = _new_phonopy(atoms, supercell, symprec, primitive)
    return copy.deepcopy(_PHONOPY_CACHE[key])


def _new_phonopy(atoms, supercell, symprec, primitive):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.array(atoms.cell.array),
                        scaled_positions=atoms.get_scaled_positions(wrap=False),
                        masses=atoms.get_masses())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # phonopy 4 notes that "auto" is no longer v3's identity
        return Phonopy(unit, supercell_matrix=np.asarray(supercell), primitive_matrix=primitive, symprec=symprec)


def displaced_supercells(phonon, displacement=0.01):
    """phonopy's displaced supercells (symmetry-reduced) as ase.Atoms, in phonopy's order."""
    phonon.generate_displacements(distance=displacement)
    out = []
    for sc, disp in zip(phonon.supercells_with_displacements, phonon.dataset["first_atoms"]):
        atoms = _to_ase(sc)
        # which atom moved and by how much: lets acemd's evaluator reuse the perfect supercell
        atoms.info["displaced_atom"] = int(disp["number"])
        atoms.info["displacement"] = np.asarray(disp["displacement"], float)
        out.append(atoms)
    return out


def _to_ase(cell):
    from ase import Atoms
    return Atoms(symbols=cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions,
                 masses=cell.masses, pbc=True)


def perfect_supercell(phonon):
    return _to_ase(phonon.supercell)


def force_constants(phonon, forces, residual=None):
    """Force constants (eV/Å², phonopy's full (n, n, 3, 3) layout) from the displaced supercells' forces.

    ``residual``: forces of the undisplaced supercell, subtracted from every set when given.
    """
    forces = np.array(forces, dtype=float)
    if residual is not None:
        forces = forces - np.asarray(residual, float)[None]
    phonon.forces = forces
    phonon.produce_force_constants()
    return phonon.force_constants


# --------------------------------------------------------------------------- evaluators

def forces_from_calculator(calculator):
    """``forces_of`` for an ASE calculator, evaluated serially (the plain way phonopy is driven)."""
    def forces_of(structures):
        out = []
        for atoms in structures:
            a = atoms.copy()
            a.calc = calculator
            out.append(np.array(a.get_forces()))
        return out
    return forces_of


def forces_from_evaluate(evaluate):
    """``forces_of`` from a context's ``evaluate(structures) -> list[dict]`` (acemd.properties.base)."""
    def forces_of(structures):
        return [np.asarray(r["forces"], float) for r in evaluate(list(structures))]
    return forces_of


# --------------------------------------------------------------------------- analysis

def band_path(phonon, points_per_segment=51):
    """seekpath's standard path as q-points of phonopy's primitive cell.

    Returns (list of (m, 3) fractional q arrays, list of [label_start, label_end], connections).
    seekpath standardises (and may rotate) the cell: its special points are mapped through
    Cartesian space back onto the primitive cell phonopy uses.
    """
    import seekpath
    prim = phonon.primitive
    lattice = np.array(prim.cell)
    numbers = np.array(prim.numbers)
    path = seekpath.get_path((lattice, np.array(prim.scaled_positions), numbers),
                             with_time_reversal=True, symprec=phonon.symmetry.tolerance)
    rec_std = np.array(path["reciprocal_primitive_lattice"]) / (2.0 * np.pi)   # rows, 1/Å
    rotation = np.array(path["rotation_matrix"])        # standardised = rotation @ input (Cartesian)

    def to_input(frac_std):
        q_cart = np.asarray(frac_std) @ rec_std @ rotation
        return q_cart @ lattice.T

    segments, labels, connections = [], [], []
    for k, (start, end) in enumerate(path["path"]):
        qs, qe = to_input(path["point_coords"][start]), to_input(path["point_coords"][end])
        t = np.linspace(0.0, 1.0, points_per_segment)[:, None]
        segments.append(qs + t * (qe - qs))
        labels.append([_label(start), _label(end)])
        nxt = path["path"][k + 1][0] if k + 1 < len(path["path"]) else None
        connections.append(nxt == end)
    return segments, labels, connections


def _label(name):
    return "Γ" if name == "GAMMA" else name.replace("_", "")


def band_structure(phonon, points_per_segment=51):
    """Frequencies (THz) along seekpath's path: dict of q-points, distances, frequencies, labels."""
    segments, labels, connections = band_path(phonon, points_per_segment)
    phonon.run_band_structure(segments, path_connections=connections, labels=None)
    bs = phonon.band_structure
    return {"qpoints": [np.asarray(q) for q in bs.qpoints],
            "distances": [np.asarray(d) for d in bs.distances],
            "frequencies": [np.asarray(f) for f in bs.frequencies],
            "labels": labels, "connections": connections}


def mesh_dos(phonon, mesh=(20, 20, 20), sigma=None):
    """Total DOS on a q mesh: (frequency points THz, states per THz per primitive cell), and the
    mesh's frequencies (THz, (n_q, 3 n_prim)) with their weights."""
    phonon.run_mesh(list(mesh), with_eigenvectors=False, is_mesh_symmetry=True, is_gamma_center=True)
    phonon.run_total_dos(sigma=sigma)
    dos = phonon.total_dos
    m = phonon.mesh
    return (np.asarray(dos.frequency_points), np.asarray(dos.dos),
            np.asarray(m.frequencies), np.asarray(m.weights), np.asarray(m.qpoints))


def imaginary_modes(qpoints, frequencies, tolerance=IMAGINARY_TOLERANCE_THZ):
    """[(q (fractional), frequency THz)] of the modes below -tolerance, most unstable first.

    phonopy returns an imaginary frequency iν as -ν.
    """
    out = []
    for q, freqs in zip(qpoints, frequencies):
        for f in np.atleast_1d(freqs):
            if f < -tolerance:
                out.append((np.asarray(q, float), float(f)))
    out.sort(key=lambda t: t[1])
    return out


class PhononResults:
    """Everything one phonon calculation gives (the phonopy object kept for further use)."""

    def __init__(self, phonon, bands, dos_freq, dos, mesh_freq, mesh_weights, mesh_q, imaginary, n_structures):
        self.phonon = phonon
        self.bands = bands
        self.dos_frequencies, self.dos = dos_freq, dos
        self.mesh_frequencies, self.mesh_weights, self.mesh_qpoints = mesh_freq, mesh_weights, mesh_q
        self.imaginary = imaginary
        self.n_structures = n_structures

    @property
    def stable(self):
        return not self.imaginary

    @property
    def min_frequency(self):
        lows = [float(np.min(f)) for f in self.bands["frequencies"]] + [float(np.min(self.mesh_frequencies))]
        return min(lows)


def phonons_of(atoms, forces_of, supercell="auto", supercell_min_length=12.0, displacement=0.01,
               mesh=(20, 20, 20), band_points=51, symprec=1e-5, subtract_residual_forces=False,
               imaginary_tolerance=IMAGINARY_TOLERANCE_THZ, with_analysis=True):
    """Phonons of ``atoms`` (ase.Atoms, the relaxed unit cell) with forces from ``forces_of``.

    The core of :func:`run_phonons`, usable without the driver.  Returns :class:`PhononResults`.
    """
    phonon = make_phonopy(atoms, supercell_matrix(supercell, atoms, supercell_min_length), symprec)
    structures = displaced_supercells(phonon, displacement)
    if subtract_residual_forces:
        structures = structures + [perfect_supercell(phonon)]
    forces = forces_of(structures)
    residual = forces[-1] if subtract_residual_forces else None
    force_constants(phonon, forces[:len(phonon.supercells_with_displacements)], residual)
    if not with_analysis:
        return PhononResults(phonon, None, None, None, None, None, None, [], len(structures))
    return analyse(phonon, mesh, band_points, imaginary_tolerance, len(structures))


def analyse(phonon, mesh=(20, 20, 20), band_points=51, imaginary_tolerance=IMAGINARY_TOLERANCE_THZ,
            n_structures=0):
    """Bands, DOS and imaginary modes of a phonopy object that has force constants."""
    bands = band_structure(phonon, band_points)
    dos_f, dos, mf, mw, mq = mesh_dos(phonon, mesh)
    imag = imaginary_modes([q for seg in bands["qpoints"] for q in seg],
                           [f for seg in bands["frequencies"] for f in seg], imaginary_tolerance)
    imag += imaginary_modes(mq, mf, imaginary_tolerance)
    imag.sort(key=lambda t: t[1])
    return PhononResults(phonon, bands, dos_f, dos, mf, mw, mq, imag, n_structures)


# --------------------------------------------------------------------------- driver entry

def forces_for_context(ctx):
    """The fastest ``forces_of`` the context offers: acemd's displaced-supercell evaluator when the
    context carries the ACE potential (``ctx.potential``), else ``ctx.evaluate``."""
    potential = getattr(ctx, "potential", None)
    if potential is not None and getattr(ctx, "label", "acemd") == "acemd":
        from .displaced_forces import DisplacedForces
        return DisplacedForces(potential, ctx.comm).forces_of
    return forces_from_evaluate(ctx.evaluate)


def run_phonons(ctx, settings):
    """``[properties.phonons]``: force constants, bands along seekpath's path, DOS, imaginary modes."""
    s = {k: v.default for k, v in _keys().items()}
    s.update(settings or {})
    res = phonons_of(ctx.atoms, forces_for_context(ctx), s["supercell"], s["supercell_min_length"],
                     s["displacement"], s["mesh"], s["band_points"], s["symprec"],
                     s["subtract_residual_forces"], s["imaginary_tolerance"])
    return phonon_result(res, ctx, s)


def phonon_result(res, ctx, s):
    """The :class:`~acemd.properties.base.PropertyResult` of a phonon calculation (entries, data, info)."""
    from .base import PropertyEntry, PropertyResult
    flags = []
    if not res.stable:
        q, f = res.imaginary[0]
        flags.append(f"imaginary modes: {len(res.imaginary)} below -{s['imaginary_tolerance']} THz, "
                     f"lowest {f:.3f} THz at q = ({q[0]:.3f}, {q[1]:.3f}, {q[2]:.3f}): dynamically unstable")
        ctx.say(f"# phonons ({ctx.label}): WARNING {flags[0]}")
    bands = res.bands
    mesh_f = res.mesh_frequencies
    entries = [
        PropertyEntry("phonons.max_frequency", float(np.max(mesh_f)), "THz", flags=list(flags)),
        PropertyEntry("phonons.min_frequency", res.min_frequency, "THz", flags=list(flags),
                      note="negative = imaginary"),
        PropertyEntry("phonons.mean_frequency", float(np.sum(mesh_f.mean(axis=1) * res.mesh_weights)
                                                      / np.sum(res.mesh_weights)), "THz", flags=list(flags)),
    ]
    # frequencies at the special points (the end of each segment's labels)
    seen = set()
    for seg, (lab0, lab1), freqs in zip(bands["qpoints"], bands["labels"], bands["frequencies"]):
        for lab, f in ((lab0, freqs[0]), (lab1, freqs[-1])):
            if lab in seen or lab == "Γ":
                continue
            seen.add(lab)
            for k, v in enumerate(np.sort(f)):
                entries.append(PropertyEntry(f"phonons.{lab}.{k + 1}", float(v), "THz", flags=list(flags)))
    ph = res.phonon
    data = {"force_constants": np.asarray(ph.force_constants),
            "supercell_matrix": np.asarray(ph.supercell_matrix),
            "primitive_cell": np.asarray(ph.primitive.cell),
            "dos_frequencies": res.dos_frequencies, "dos": res.dos,
            "mesh_frequencies": mesh_f, "mesh_weights": res.mesh_weights, "mesh_qpoints": res.mesh_qpoints,
            "bands": {f"segment_{k:02d}": {"qpoints": q, "distances": d, "frequencies": f}
                      for k, (q, d, f) in enumerate(zip(bands["qpoints"], bands["distances"],
                                                        bands["frequencies"]))}}
    units = {"force_constants": "eV/Å^2", "dos_frequencies": "THz", "dos": "states/THz/primitive cell",
             "mesh_frequencies": "THz", "primitive_cell": "Å"}
    info = {"supercell_matrix": np.asarray(ph.supercell_matrix).tolist(),
            "n_supercell_atoms": len(ph.supercell), "n_displacements": len(ph.supercells_with_displacements),
            "n_structures": res.n_structures, "displacement_A": s["displacement"], "mesh": list(s["mesh"]),
            "band_labels": bands["labels"], "band_connections": bands["connections"],
            "stable": res.stable,
            "imaginary_modes": [{"q": q.tolist(), "frequency_THz": f} for q, f in res.imaginary[:20]],
            "n_imaginary_modes": len(res.imaginary)}
    ctx.say(f"# phonons ({ctx.label}): {info['n_displacements']} displaced supercells of "
            f"{info['n_supercell_atoms']} atoms; frequencies {res.min_frequency:.3f} .. "
            f"{float(np.max(mesh_f)):.3f} THz; {'stable' if res.stable else 'UNSTABLE'}")
    return PropertyResult("phonons", entries, data, units, info, structures=[ctx.atoms])
