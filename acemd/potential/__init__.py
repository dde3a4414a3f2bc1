"""ACE potentials: file readers, kernel tables and the numba evaluator."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import CTildePotential, PotentialFileError

__all__ = ["ACEPotential", "ACEResult", "load_potential", "PotentialFileError",
           "UnknownElementError", "CloseContactError"]


class UnknownElementError(ValueError):
    """The structure contains an element the potential does not describe."""


class CloseContactError(ValueError):
    """Two atoms are closer than the radial tabulation allows."""


def reading_errors(path):
    """Turn the OS and decoding errors of reading ``path`` into a PotentialFileError naming it."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except IsADirectoryError:
            raise PotentialFileError(path, "", "is a folder, not a potential file") from None
        except UnicodeDecodeError as exc:
            raise PotentialFileError(path, f"byte {exc.start}", "not a text file (binary or damaged); "
                                     "expected a .yace, .ace or pacemaker .yaml potential") from None
        except OSError as exc:
            raise PotentialFileError(path, "", f"cannot read: {exc.strerror or exc}") from None
    return guard()


def load_potential(path) -> CTildePotential:
    """Read a potential file, choosing the reader by its extension."""
    path = Path(path)
    if not path.exists():
        raise PotentialFileError(path, "", "file not found")
    with reading_errors(path):
        return _load_potential(path)


def _load_potential(path) -> CTildePotential:
    suffix = path.suffix.lower()
    if suffix == ".yace":
        from .yace import read_yace
        return read_yace(path)
    if suffix == ".ace":
        from .ace_format import read_ace
        return read_ace(path)
    if suffix in (".yaml", ".yml"):
        from .bbasis import read_bbasis_yaml
        return read_bbasis_yaml(path)
    raise PotentialFileError(path, "", f"unknown potential format '{suffix}': "
                                       "expected .yace, .ace or .yaml (pacemaker B-basis)")


@dataclass
class ACEResult:
    site_energy: np.ndarray   # (n_local,) eV
    forces: np.ndarray        # (n_ext, 3) eV/Å, on local and ghost atoms
    virial: np.ndarray        # (3, 3) eV, sum over pairs of -r_ij (x) dE/dr_ij
    site_virial: np.ndarray | None   # (n_ext, 3, 3) eV; None if not asked for


class ACEPotential:
    """An ACE force term: reads a potential file once, evaluates it on neighbour lists.

    Knows nothing of MPI: it is given an extended atom set (owned atoms first,
    then ghosts) and a neighbour list of the owned atoms.
    """

    def __init__(self, path):
        from .tables import build_tables
        self.path = Path(path)
        self.model = load_potential(self.path)
        self.tables = build_tables(self.model)
        self.elements = list(self.model.elements)
        self.cutoff = float(self.model.cutoff_max)
        self.file_sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()

    @classmethod
    def from_model(cls, model: CTildePotential, source=None) -> "ACEPotential":
        """An ACEPotential on an in-memory model (a fitted one, or a file's model changed).

        ``source`` names it in messages (default: the model's source); the hash is
        that of the ``.yace`` text the model would be written as.
        """
        from .tables import build_tables
        from .yace_writer import format_yace
        model.validate()
        self = cls.__new__(cls)
        self.path = Path(source if source is not None else (model.source or "<in-memory potential>"))
        self.model = model
        self.tables = build_tables(model)
        self.elements = list(model.elements)
        self.cutoff = float(model.cutoff_max)
        self.file_sha256 = hashlib.sha256(format_yace(model).encode()).hexdigest()
        return self

    def species_of(self, symbols) -> np.ndarray:
        """Map chemical symbols to the potential's element indices (int64)."""
        index = {el: i for i, el in enumerate(self.elements)}
        out = np.empty(len(symbols), dtype=np.int64)
        for k, s in enumerate(symbols):
            try:
                out[k] = index[s]
            except KeyError:
                raise UnknownElementError(
                    f"element '{s}' (atom {k}) is not in the potential {self.path} "
                    f"(it has {', '.join(self.elements)}); use a potential fitted for "
                    f"'{s}' or remove those atoms") from None
        return out

    def compute(self, positions, species, n_local, offsets, neighbors, atom_ids=None,
                site_virial=True) -> ACEResult:
        """Evaluate the kernel; ``atom_ids`` (per extended atom) only label error messages.

        ``site_virial=False`` skips the per-atom virials (the result's
        ``site_virial`` is then None): MD needs only the total virial.
        """
        from .kernel import STAGE_ALL, TOO_CLOSE, ace_forces
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        species = np.ascontiguousarray(species, dtype=np.int64)
        n_ext = len(positions)
        site_energy = np.zeros(n_local)
        forces = np.zeros((n_ext, 3))
        virial = np.zeros((3, 3))
        sv = np.zeros((n_ext, 3, 3) if site_virial else (1, 3, 3))
        status, i, j = ace_forces(positions, species, n_local,
                                  np.ascontiguousarray(offsets, dtype=np.int64),
                                  np.ascontiguousarray(neighbors, dtype=np.int64),
                                  *self.tables.kernel_args(),
                                  site_energy, forces, virial, sv, bool(site_virial), STAGE_ALL)
        if status == TOO_CLOSE:
            d = np.linalg.norm(positions[j] - positions[i])
            if atom_ids is not None:
                i, j = int(atom_ids[i]), int(atom_ids[j])
            raise CloseContactError(
                f"atoms {i} and {j} are {d:.3g} Å apart, closer than the radial "
                f"tabulation step ({self.model.delta_spline_bins} Å) of {self.path}; "
                "the structure is unphysical (check positions and units)")
        return ACEResult(site_energy, forces, virial, sv if site_virial else None)
