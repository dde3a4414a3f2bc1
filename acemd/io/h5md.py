"""H5MD 1.1 trajectories, written by rank 0 after gathering the atoms by global id.

Layout (``/particles/all``, every per-atom field a time-dependent H5MD element)::

    /h5md                      +-- version = [1, 1]
         /author               +-- name
         /creator              +-- name = "acemd", version
    /particles/all/box         +-- dimension = 3, boundary = periodic|none (x3)
                  /box/edges   step, time, value (n_frames, 3, 3)   rows are the cell vectors
                  /position    step, time, value (n_frames, n_atoms, 3)   Angstrom
                  /velocity    ...                                        Angstrom ps-1
                  /force       ...                                        eV Angstrom-1
                  /image       ...  int32, periodic image flags
                  /species     ...  int32 index into species_names (attribute)
                  /id          ...  int64 global atom id (sorted: rows are ordered by id)
                  /<extra>     e.g. energy (eV per atom), gamma (extrapolation grade)
    /observables/<name>        step, time, value (n_frames, *shape)  with a unit
    /parameters/acemd          acemd version, species names, units, input text, potential hash

All elements sample the same frames, so (as H5MD recommends and requires for
``box`` and ``image``) one ``step`` and one ``time`` dataset exist, created in
``box/edges`` and hard-linked into every other element.  ``time`` and every
dimensionful ``value`` carry a ``unit`` attribute (variable-length ASCII string,
H5MD units grammar: space-separated factors with signed integer powers).
Lengths are spelled ``Angstrom`` because that is what MDAnalysis's H5MD reader
understands (the H5MD "SI" list spells it ``Ang``); consequently the H5MD
``units`` module with ``system = "SI"`` is not declared.

Frame commit order: every ``value`` is grown and written first, then ``step``
and ``time`` are grown and written, then the file is flushed.  The number of
complete frames is therefore ``len(step)``; a crash inside a frame leaves at
most trailing ``value`` rows beyond ``len(step)``, which ``append=True``
removes.  HDF5 locks a file open for writing: to look at a trajectory while the
run is going, open it with ``h5py.File(path, "r", locking=False)`` (or
``HDF5_USE_FILE_LOCKING=FALSE``) and trust ``len(step)`` frames.

Parallel model: each rank passes the atoms it owns (global int64 ids in any
order).  Arrays are gathered to rank 0 with ``Gatherv`` of contiguous buffers
(one per field, dtype canonicalised to float64/int64 for transport), sorted by
id there and written by rank 0 only (h5py without parallel HDF5).  Every public
call is collective; an error on any rank is raised on every rank, so no rank is
left waiting in a collective.
"""
from __future__ import annotations

import getpass
import os
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from ..parallel.collective import agree, on_root
from ..parallel.gather import gather_by_id

H5MD_VERSION = (1, 1)
PARTICLES_GROUP = "all"

_ASCII = h5py.string_dtype("ascii")
_UTF8 = h5py.string_dtype("utf-8")


class H5MDError(RuntimeError):
    """A trajectory cannot be written or appended to (message names the file)."""


# --------------------------------------------------------------------------- field catalogue
@dataclass(frozen=True)
class FieldSpec:
    """A per-atom field: trailing shape per atom, stored dtype, unit (None: dimensionless)."""

    shape: tuple = ()
    dtype: str = "f8"
    unit: str | None = None
    fillvalue: Any = None


STANDARD_FIELDS: dict[str, FieldSpec] = {
    "position": FieldSpec((3,), "f8", "Angstrom"),
    "velocity": FieldSpec((3,), "f8", "Angstrom ps-1"),
    "force": FieldSpec((3,), "f8", "eV Angstrom-1"),
    "image": FieldSpec((3,), "i4", None, 0),
    "species": FieldSpec((), "i4", None, -1),
    "id": FieldSpec((), "i8", None, -1),
    "mass": FieldSpec((), "f8", "u"),
    "charge": FieldSpec((), "f8", "e"),
    # acemd extras
    "energy": FieldSpec((), "f8", "eV"),
    "gamma": FieldSpec((), "f8", None),
}

#: Units of the observables acemd knows; others need an entry in ``units``.
OBSERVABLE_UNITS: dict[str, str | None] = {
    "temperature": "K",
    "potential_energy": "eV",
    "kinetic_energy": "eV",
    "total_energy": "eV",
    "conserved": "eV",
    "conserved_energy": "eV",
    "enthalpy": "eV",
    "pressure": "bar",
    "stress": "bar",
    "volume": "Angstrom+3",
    "density": "u Angstrom-3",
    "lambda": None,
    "max_gamma": None,
}

TIME_UNIT = "ps"
LENGTH_UNIT = "Angstrom"
UNITS_DESCRIPTION = ("LAMMPS metal: length Angstrom, time ps, energy eV, velocity Angstrom/ps, "
                     "force eV/Angstrom, pressure bar, mass amu (u), temperature K")

def _set_unit(obj, unit: str | None):
    if unit:
        obj.attrs.create("unit", unit, dtype=_ASCII)


def _fixed_string(s: str) -> np.bytes_:
    return np.bytes_(s.encode("utf-8"))


def _write_value(group: h5py.Group, key: str, value):
    """Write a metadata item: str -> string dataset, dict -> group, else numeric dataset."""
    if isinstance(value, Mapping):
        sub = group.create_group(key)
        for k, v in value.items():
            _write_value(sub, str(k), v)
    elif isinstance(value, (str, Path)):
        group.create_dataset(key, data=str(value), dtype=_UTF8)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        group.create_dataset(key, data=np.array(value, dtype=object), dtype=_UTF8)
    elif value is None:
        group.create_dataset(key, data=h5py.Empty("f8"))
    else:
        group.create_dataset(key, data=np.asarray(value))


def _acemd_version() -> str:
    try:
        from .. import __version__
        return str(__version__)
    except Exception:  # noqa: BLE001
        return "unknown"


# --------------------------------------------------------------------------- writer
class H5MDWriter:
    """Collective H5MD 1.1 trajectory writer (rank 0 writes, all ranks call).

    Parameters
    ----------
    path : trajectory file.
    comm : mpi4py communicator (a 1-rank communicator works).
    n_atoms : total number of atoms (fixed).
    species_names : element of each species index, e.g. ``["Cu", "Ag"]``.
    fields : per-atom elements to write: any of ``STANDARD_FIELDS`` ("position",
        "velocity", "force", "image", "species", "id", "mass", "charge",
        "energy", "gamma") or names described in ``field_specs``.  "id" comes
        from ``ids_local``; every other field must be in ``data_local``.
    observables : names of per-frame observables, or ``(name, shape)`` pairs for
        non-scalar ones.  ``None`` (default): the set passed to the first
        ``write_frame`` (plus those already in an appended file).
    units : unit overrides/additions for fields and observables (``None`` value
        = dimensionless).  An observable without a known unit is an error.
    metadata : written to ``/parameters/acemd`` (str -> string dataset, dict ->
        group, numbers/arrays -> datasets), e.g. input_text, potential_sha256.
    pbc : periodicity of each axis -> ``box/boundary``.
    append : open an existing file and continue it (a missing file is created).
    restart_step : with ``append``, drop frames whose step is > restart_step.
    field_specs : name -> :class:`FieldSpec` for extra per-atom fields.
    author : ``/h5md/author/name`` (default: $USER).
    compression : e.g. "gzip" for the per-atom ``value`` datasets (default none).
    """

    def __init__(self, path, comm, n_atoms: int, species_names: Iterable[str],
                 fields: Iterable[str] = ("position", "velocity", "force", "species", "id"),
                 observables: Iterable | None = None, units: Mapping[str, str | None] | None = None,
                 metadata: Mapping[str, Any] | None = None, *, pbc=(True, True, True),
                 append: bool = False, restart_step: int | None = None,
                 field_specs: Mapping[str, FieldSpec] | None = None, author: str | None = None,
                 compression: str | None = None, compression_opts=None):
        self.path = Path(path)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.n_atoms = int(n_atoms)
        self.species_names = [str(s) for s in species_names]
        self.pbc = tuple(bool(p) for p in np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
        self.append = bool(append)
        self.restart_step = None if restart_step is None else int(restart_step)
        self._units = dict(units or {})
        self._metadata = dict(metadata or {})
        self._author = author or os.environ.get("USER") or _safe_user()
        self._compression = compression
        self._compression_opts = compression_opts
        self._file: h5py.File | None = None
        self._closed = False

        # ---- argument checks (identical on every rank, no communication needed)
        if self.n_atoms < 1:
            raise H5MDError(f"{self.path}: n_atoms must be >= 1, got {n_atoms}")
        specs = dict(STANDARD_FIELDS)
        specs.update(field_specs or {})
        self.fields = tuple(dict.fromkeys(fields))
        for f in self.fields:
            if f not in specs:
                raise H5MDError(f"{self.path}: unknown per-atom field '{f}'; known: "
                                f"{', '.join(sorted(specs))} (describe others with field_specs)")
        self._specs = {}
        for f in self.fields:
            s = specs[f]
            unit = self._units.get(f, s.unit)
            self._specs[f] = FieldSpec(tuple(s.shape), s.dtype, unit, s.fillvalue)
        self._obs_shapes: dict[str, tuple] | None = None
        if observables is not None:
            self._obs_shapes = {}
            for item in observables:
                name, shape = (item, ()) if isinstance(item, str) else (item[0], tuple(item[1]))
                self._obs_unit(name)  # raises for unknown units
                self._obs_shapes[name] = shape

        self.n_frames = 0
        self.last_step: int | None = None
        state = on_root(comm, self._open_root)
        self.n_frames, self.last_step, existing_obs = comm.bcast(state, root=0)
        if existing_obs and self._obs_shapes is None:
            self._obs_shapes = dict(existing_obs)

    # ------------------------------------------------------------------ helpers
    def _obs_unit(self, name: str):
        if name in self._units:
            return self._units[name]
        if name in OBSERVABLE_UNITS:
            return OBSERVABLE_UNITS[name]
        raise H5MDError(f"{self.path}: observable '{name}' has no known unit; pass units={{'{name}': "
                        "'<unit>'}} (None for dimensionless)")

    def _chunks(self, shape: tuple, dtype) -> tuple:
        per_atom = int(np.prod(shape, dtype=np.int64)) if shape else 1
        item = np.dtype(dtype).itemsize * per_atom
        atoms = max(1, min(self.n_atoms, (4 << 20) // item))   # <= 4 MiB chunks
        return (1, atoms) + tuple(shape)

    def _element(self, parent: h5py.Group, name: str, frame_shape: tuple, dtype, unit,
                 fillvalue, chunks, compress: bool) -> h5py.Dataset:
        g = parent.create_group(name)
        g["step"] = self._step_ds          # hard links: all elements share one sampling
        g["time"] = self._time_ds
        kw = {}
        if compress and self._compression:
            kw = {"compression": self._compression, "compression_opts": self._compression_opts}
        if fillvalue is None:
            fillvalue = np.nan if np.dtype(dtype).kind == "f" else 0
        ds = g.create_dataset("value", shape=(self.n_frames,) + tuple(frame_shape),
                              maxshape=(None,) + tuple(frame_shape), dtype=dtype, chunks=chunks,
                              fillvalue=fillvalue, **kw)
        _set_unit(ds, unit)
        return ds

    def _create_observable(self, name: str, shape: tuple):
        obs = self._file.require_group("observables")
        if name in obs:
            raise H5MDError(f"{self.path}: observable '{name}' already exists")
        ds = self._element(obs, name, shape, "f8", self._obs_unit(name), np.nan,
                           (1024,) + tuple(shape), False)
        self._obs_ds[name] = ds

    # ------------------------------------------------------------------ open (rank 0)
    def _open_root(self):
        exists = self.path.exists()
        if self.append and exists:
            return self._open_existing()
        return self._create_new()

    def _create_new(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            f = h5py.File(self.path, "w")
        except OSError as exc:
            raise H5MDError(f"{self.path}: cannot create trajectory file: {exc}") from None
        self._file = f
        try:
            h = f.create_group("h5md")
            h.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
            a = h.create_group("author")
            a.attrs["name"] = _fixed_string(self._author)
            c = h.create_group("creator")
            c.attrs["name"] = _fixed_string("acemd")
            c.attrs["version"] = _fixed_string(_acemd_version())

            part = f.create_group(f"particles/{PARTICLES_GROUP}")
            box = part.create_group("box")
            box.attrs["dimension"] = np.int32(3)
            box.attrs["boundary"] = np.array([b"periodic" if p else b"none" for p in self.pbc])
            edges = box.create_group("edges")
            self._step_ds = edges.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8",
                                                 chunks=(1024,))
            self._time_ds = edges.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                                                 chunks=(1024,))
            _set_unit(self._time_ds, TIME_UNIT)
            ev = edges.create_dataset("value", shape=(0, 3, 3), maxshape=(None, 3, 3), dtype="f8",
                                      chunks=(256, 3, 3), fillvalue=np.nan)
            _set_unit(ev, LENGTH_UNIT)
            self._edges_ds = ev
            self._field_ds = {}
            for name, s in self._specs.items():
                self._field_ds[name] = self._element(part, name, (self.n_atoms,) + s.shape, s.dtype,
                                                     s.unit, s.fillvalue,
                                                     self._chunks(s.shape, s.dtype), True)
            if "species" in self._field_ds:
                names = np.array(self.species_names, dtype=object)
                part["species"].attrs.create("species_names", names, dtype=_UTF8)
                self._field_ds["species"].attrs.create("species_names", names, dtype=_UTF8)
            self._obs_ds = {}
            if self._obs_shapes:
                for name, shape in self._obs_shapes.items():
                    self._create_observable(name, shape)
            params = f.create_group("parameters/acemd")
            self._write_parameters(params)
            f.flush()
        except Exception:
            f.close()
            self._file = None
            raise
        return 0, None, None

    def _write_parameters(self, params: h5py.Group):
        params.create_dataset("acemd_version", data=_acemd_version(), dtype=_UTF8)
        params.create_dataset("species_names", data=np.array(self.species_names, dtype=object),
                              dtype=_UTF8)
        params.create_dataset("units", data=UNITS_DESCRIPTION, dtype=_UTF8)
        params.create_dataset("n_atoms", data=np.int64(self.n_atoms))
        params.create_dataset("created", data=_time.strftime("%Y-%m-%dT%H:%M:%S%z"), dtype=_UTF8)
        for key, value in self._metadata.items():
            if key in params:
                del params[key]
            _write_value(params, str(key), value)

    def _open_existing(self):
        try:
            f = h5py.File(self.path, "r+")
        except OSError as exc:
            raise H5MDError(f"{self.path}: cannot open trajectory for appending "
                            f"(not HDF5, truncated, or still open elsewhere?): {exc}") from None
        self._file = f
        try:
            if "h5md" not in f or f"particles/{PARTICLES_GROUP}/box/edges/step" not in f:
                raise H5MDError(f"{self.path}: not an acemd H5MD trajectory (no /h5md or "
                                f"/particles/{PARTICLES_GROUP}/box/edges); remove it or choose another "
                                "trajectory file")
            part = f[f"particles/{PARTICLES_GROUP}"]
            edges = part["box/edges"]
            self._step_ds, self._time_ds, self._edges_ds = edges["step"], edges["time"], edges["value"]
            self._field_ds = {}
            for name, s in self._specs.items():
                if name not in part:
                    raise H5MDError(f"{self.path}: has no per-atom field '{name}' to append to "
                                    f"(it has {', '.join(k for k in part if k != 'box')})")
                ds = part[name]["value"]
                if ds.shape[1:] != (self.n_atoms,) + s.shape:
                    raise H5MDError(f"{self.path}: field '{name}' has per-frame shape {ds.shape[1:]}, "
                                    f"this run writes {(self.n_atoms,) + s.shape}")
                self._field_ds[name] = ds
            if "species_names" in f["parameters/acemd"]:
                old = [x.decode() if isinstance(x, bytes) else str(x)
                       for x in f["parameters/acemd/species_names"][()]]
                if old != self.species_names:
                    raise H5MDError(f"{self.path}: species {old} differ from this run's "
                                    f"{self.species_names}")
            self._obs_ds = {}
            existing_shapes = {}
            if "observables" in f:
                for name, g in f["observables"].items():
                    if isinstance(g, h5py.Group) and "value" in g:
                        self._obs_ds[name] = g["value"]
                        existing_shapes[name] = g["value"].shape[1:]

            # repair: complete frames are those with a step (step is written last)
            n = self._step_ds.shape[0]
            if self._time_ds.shape[0] < n:
                n = self._time_ds.shape[0]
            if n:
                steps = self._step_ds[:n]
                if self.restart_step is not None:
                    n = int(np.searchsorted(steps, self.restart_step, side="right"))
            self._resize_all(n)
            self.n_frames = n
            if self._obs_shapes:
                for name, shape in self._obs_shapes.items():
                    if name not in self._obs_ds:
                        self._create_observable(name, shape)
                    elif self._obs_ds[name].shape[1:] != tuple(shape):
                        raise H5MDError(f"{self.path}: observable '{name}' has shape "
                                        f"{self._obs_ds[name].shape[1:]}, this run writes {shape}")
            params = f["parameters/acemd"]
            k = 1
            while f"restart_{k}" in params:
                k += 1
            seg = params.create_group(f"restart_{k}")
            seg.attrs["first_frame"] = np.int64(n)
            seg.attrs["restart_step"] = np.int64(-1 if self.restart_step is None else self.restart_step)
            seg.create_dataset("acemd_version", data=_acemd_version(), dtype=_UTF8)
            for key, value in self._metadata.items():
                if str(key) in seg:
                    del seg[str(key)]
                _write_value(seg, str(key), value)
            f.flush()
            last = int(self._step_ds[n - 1]) if n else None
        except Exception:
            f.close()
            self._file = None
            raise
        self.n_frames = n
        return n, last, existing_shapes

    def _all_value_ds(self):
        return [self._edges_ds, *self._field_ds.values(), *self._obs_ds.values()]

    def _resize_all(self, n: int):
        f = self._file
        part = f[f"particles/{PARTICLES_GROUP}"]
        groups = [part[k] for k in part if isinstance(part[k], h5py.Group)]
        groups.append(part["box/edges"])
        if "observables" in f:
            groups += [g for g in f["observables"].values() if isinstance(g, h5py.Group)]
        for g in groups:
            for key in ("value", "step", "time"):
                if key in g and isinstance(g[key], h5py.Dataset):
                    ds = g[key]
                    if ds.maxshape[0] is None and ds.shape[0] > n:   # hard links: once
                        ds.resize(n, axis=0)

    # ------------------------------------------------------------------ frames
    def write_frame(self, step: int, time_ps: float, cell, ids_local, data_local: Mapping[str, Any],
                    observables: Mapping[str, Any] | None = None):
        """Append one frame (collective).

        ``cell`` (3x3, rows are cell vectors, Angstrom), ``step``, ``time_ps`` and
        ``observables`` are taken from rank 0.  ``ids_local`` and ``data_local``
        hold this rank's atoms; keys of ``data_local`` that are not fields of
        this writer are ignored, missing ones are an error.
        """
        if self._closed:
            raise H5MDError(f"{self.path}: write_frame after close()")
        err = None
        arrays = {}
        try:
            for name in self.fields:
                if name == "id":
                    continue
                if name not in data_local or data_local[name] is None:
                    raise KeyError(f"write_frame: per-atom field '{name}' is missing from data_local "
                                   f"(this writer stores {', '.join(self.fields)})")
                a = np.asarray(data_local[name])
                want = self._specs[name].shape
                if a.shape[1:] != want:
                    raise ValueError(f"write_frame: '{name}' has shape {a.shape}, expected "
                                     f"(n_local,{''.join(f' {d},' for d in want)[:-1] or ''})")
                arrays[name] = a
        except (KeyError, ValueError) as exc:
            err = exc.args[0] if exc.args else str(exc)
        agree(self.comm, err, H5MDError)
        try:
            ids, gathered = gather_by_id(self.comm, ids_local, arrays, n_expected=self.n_atoms)
        except ValueError as exc:
            raise H5MDError(f"{self.path}: {exc}") from None
        on_root(self.comm, lambda: self._write_root(step, time_ps, cell, ids, gathered, observables))
        self.n_frames += 1
        self.last_step = int(step)

    def _write_root(self, step, time_ps, cell, ids, gathered, observables):
        # ---- validate everything before touching the file
        step_i = int(step)
        if step_i != step:
            raise H5MDError(f"{self.path}: step must be an integer, got {step!r}")
        if self.last_step is not None and step_i <= self.last_step:
            raise H5MDError(f"{self.path}: frame step {step_i} is not after the last stored step "
                            f"{self.last_step} (H5MD steps increase monotonically)")
        t = float(time_ps)
        cell = np.asarray(cell, dtype=np.float64)
        if cell.shape != (3, 3):
            raise H5MDError(f"{self.path}: cell must be 3x3, got shape {cell.shape}")
        observables = dict(observables or {})
        if self._obs_shapes is None:            # fixed by the first frame
            shapes = {}
            for k, v in observables.items():
                self._obs_unit(k)
                shapes[k] = np.shape(v)
            self._obs_shapes = shapes
            for name, shape in shapes.items():
                self._create_observable(name, shape)
        obs_values = {}
        for name, shape in self._obs_shapes.items():
            if name not in observables:
                raise H5MDError(f"{self.path}: observable '{name}' missing from this frame "
                                f"(given: {', '.join(observables) or 'none'})")
            v = np.asarray(observables[name], dtype=np.float64)
            if v.shape != tuple(shape):
                raise H5MDError(f"{self.path}: observable '{name}' has shape {v.shape}, expected {shape}")
            obs_values[name] = v
        for name, ds in self._obs_ds.items():    # in the file but not requested: NaN
            if name not in obs_values:
                obs_values[name] = np.full(ds.shape[1:], np.nan)

        _check_free_space(self.path, sum(np.asarray(a).nbytes for a in gathered.values()) + 4096)
        # ---- values first ...
        n = self.n_frames
        self._edges_ds.resize(n + 1, axis=0)
        self._edges_ds[n] = cell
        for name, ds in self._field_ds.items():
            ds.resize(n + 1, axis=0)
            ds[n] = ids if name == "id" else gathered[name]
        for name, ds in self._obs_ds.items():
            ds.resize(n + 1, axis=0)
            ds[n] = obs_values[name]
        # ---- ... then the sampling, which commits the frame
        self._time_ds.resize(n + 1, axis=0)
        self._time_ds[n] = t
        self._step_ds.resize(n + 1, axis=0)
        self._step_ds[n] = step_i
        self._file.flush()

    # ------------------------------------------------------------------ lifecycle
    def flush(self):
        """Flush the file to disk (collective; no-op except on rank 0)."""
        if self._file is not None:
            on_root(self.comm, self._file.flush)

    def close(self):
        """Flush and close (collective; safe to call twice)."""
        if self._closed:
            return
        self._closed = True

        def _close():
            if self._file is not None:
                f, self._file = self._file, None
                f.flush()
                f.close()
        on_root(self.comm, _close)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:                       # do not add a collective while unwinding an error
            self._closed = True
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None
        return False


def _safe_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


FREE_SPACE_MARGIN_BYTES = 64 << 10


def _check_free_space(path: Path, frame_bytes: int):
    """Stop before HDF5 hits a full disk (it then leaves the file and the library in a bad state)."""
    import shutil
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return
    if free < 2 * frame_bytes + FREE_SPACE_MARGIN_BYTES:
        raise H5MDError(f"{path}: the disk is full ({free} bytes free; a frame needs about {frame_bytes}): "
                        "the run stopped before writing this frame; the frames so far and the last "
                        "checkpoint are kept; free space and continue with --restart")
