"""Checkpoints: everything a run needs to continue, in one HDF5 file written atomically.

Layout (format ``acemd-checkpoint``, version :data:`FORMAT_VERSION`)::

    /                 +-- format, format_version, acemd_version, created, step, time_ps
    /system           cell (3,3) Å, pbc (3,), ids (N,) sorted, positions (N,3) Å,
                      velocities (N,3) Å/ps, species (N,), images (N,3),
                      masses_by_species (S,) amu, species_names (S,)
    /metadata         free strings/numbers (input_text, potential_sha256, ...)
    /state            the nested ``state`` dict (integrator, thermostat chains, RNG states)

Atoms are gathered to rank 0 (``Gatherv`` via :func:`acemd.io.h5md.gather_by_id`)
and stored ordered by global id.  Rank 0 writes ``path + ".tmp"``, flushes and
fsyncs it, then ``os.replace``-s it over ``path`` (and fsyncs the directory):
a kill at any moment leaves either the previous checkpoint or the new one.

``state`` round-trips with its types: dict, list, tuple, str, bytes, None,
bool, int (any size: 128-bit RNG states are kept exactly), float, complex,
numpy scalars (dtype kept) and numpy arrays (numeric, bool or unicode; dtype
and shape kept).  Keys must be non-empty strings without ``/``.
"""
from __future__ import annotations

import io
import os
import time as _time
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from ..parallel.collective import agree, on_root
from ..parallel.gather import gather_by_id
from .h5md import _acemd_version

FORMAT = "acemd-checkpoint"
FORMAT_VERSION = 1

_UTF8 = h5py.string_dtype("utf-8")
_TYPE = "acemd_type"
_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read (the message names the file and the problem)."""


# --------------------------------------------------------------------------- nested state
def _put(group: h5py.Group, key: str, value, where: str):
    """Store ``value`` under ``group[key]`` with a type tag that lets :func:`_get` rebuild it."""
    if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
        raise TypeError(f"state key {key!r} at '{where}' must be a non-empty string without '/'")
    path = f"{where}.{key}" if where else key
    if isinstance(value, Mapping):
        g = group.create_group(key)
        g.attrs[_TYPE] = "dict"
        for k, v in value.items():
            _put(g, k, v, path)
        if value:   # HDF5 lists members by name; remember the insertion order
            g.attrs.create("keys", np.array(list(value.keys()), dtype=object), dtype=_UTF8)
        return
    if isinstance(value, (list, tuple)):
        g = group.create_group(key)
        g.attrs[_TYPE] = "tuple" if isinstance(value, tuple) else "list"
        g.attrs["length"] = len(value)
        for i, v in enumerate(value):
            _put(g, str(i), v, path)
        return
    if value is None:
        ds = group.create_dataset(key, data=h5py.Empty("i1"))
        ds.attrs[_TYPE] = "none"
        return
    # numpy first: np.float64, np.complex128 and np.str_ subclass Python types
    if isinstance(value, np.generic):
        if value.dtype.kind in "biufc":
            ds = group.create_dataset(key, data=value)
            ds.attrs[_TYPE] = "npscalar"
            return
        if value.dtype.kind == "U":
            ds = group.create_dataset(key, data=str(value), dtype=_UTF8)
            ds.attrs[_TYPE] = "npstr"
            return
        raise TypeError(f"state value at '{path}' has unsupported numpy type {value.dtype}")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            ds = group.create_dataset(key, data=value)
            ds.attrs[_TYPE] = "ndarray"
            return
        if value.dtype.kind == "U":
            ds = group.create_dataset(key, data=value.astype(object), dtype=_UTF8)
            ds.attrs[_TYPE] = "ndarray_str"
            ds.attrs["itemsize"] = value.dtype.itemsize // 4
            return
        raise TypeError(f"state array at '{path}' has unsupported dtype {value.dtype} "
                        "(numeric, bool and unicode arrays only)")
    if isinstance(value, str):
        ds = group.create_dataset(key, data=value, dtype=_UTF8)
        ds.attrs[_TYPE] = "str"
        return
    if isinstance(value, (bytes, bytearray)):
        ds = group.create_dataset(key, data=np.frombuffer(bytes(value), dtype=np.uint8))
        ds.attrs[_TYPE] = "bytes"
        return
    if isinstance(value, bool):
        ds = group.create_dataset(key, data=np.bool_(value))
        ds.attrs[_TYPE] = "bool"
        return
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            ds = group.create_dataset(key, data=np.int64(value))
            ds.attrs[_TYPE] = "int"
        else:
            ds = group.create_dataset(key, data=str(value), dtype=_UTF8)
            ds.attrs[_TYPE] = "bigint"
        return
    if isinstance(value, float):
        ds = group.create_dataset(key, data=np.float64(value))
        ds.attrs[_TYPE] = "float"
        return
    if isinstance(value, complex):
        ds = group.create_dataset(key, data=np.complex128(value))
        ds.attrs[_TYPE] = "complex"
        return
    raise TypeError(f"state value at '{path}' has unsupported type {type(value).__name__}")


def _str_of(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _get(obj):
    """Rebuild a value written by :func:`_put`."""
    kind = _str_of(obj.attrs.get(_TYPE, "ndarray" if isinstance(obj, h5py.Dataset) else "dict"))
    if kind == "dict":
        order = [_str_of(k) for k in obj.attrs.get("keys", [])] or list(obj.keys())
        return {k: _get(obj[k]) for k in order}
    if kind in ("list", "tuple"):
        items = [_get(obj[str(i)]) for i in range(int(obj.attrs["length"]))]
        return tuple(items) if kind == "tuple" else items
    if kind == "none":
        return None
    if kind == "str":
        return _str_of(obj[()])
    if kind == "npstr":
        return np.str_(_str_of(obj[()]))
    if kind == "bytes":
        return obj[()].tobytes()
    if kind == "bool":
        return bool(obj[()])
    if kind == "int":
        return int(obj[()])
    if kind == "bigint":
        return int(_str_of(obj[()]))
    if kind == "float":
        return float(obj[()])
    if kind == "complex":
        return complex(obj[()])
    if kind == "npscalar":
        v = obj[()]
        return v if isinstance(v, np.generic) else obj.dtype.type(v)
    if kind == "ndarray":
        return np.array(obj[()], dtype=obj.dtype).reshape(obj.shape)
    if kind == "ndarray_str":
        raw = obj[()]
        flat = [_str_of(x) for x in np.asarray(raw, dtype=object).reshape(-1)]
        itemsize = int(obj.attrs.get("itemsize", 1))
        return np.array(flat, dtype=f"<U{max(itemsize, 1)}").reshape(obj.shape)
    raise ValueError(f"unknown stored type '{kind}' at {obj.name}")


def _check_state(value, where="state"):
    """Walk ``state`` and raise TypeError for anything :func:`_put` cannot store."""
    probe = h5py.File(f"acemd-state-probe-{os.getpid()}", "w", driver="core", backing_store=False)
    try:
        _put(probe, "state", value if value is not None else {}, "")
    finally:
        probe.close()


# --------------------------------------------------------------------------- write
def _fsync_dir(directory: Path):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(path, comm, *, step: int, time_ps: float, cell, pbc, ids, positions,
                     velocities, species, images, masses_by_species, species_names,
                     state: Mapping[str, Any] | None = None,
                     metadata: Mapping[str, Any] | None = None,
                     input_text: str | None = None, potential_sha256: str | None = None) -> None:
    """Gather the atoms to rank 0 and write a checkpoint atomically (collective).

    Per-atom arrays (``ids``, ``positions``, ``velocities``, ``species``,
    ``images``) are this rank's atoms; ``step``, ``time_ps``, ``cell``, ``pbc``,
    ``masses_by_species``, ``species_names``, ``state`` and ``metadata`` are
    taken from rank 0.  ``metadata`` holds strings/numbers such as input_text,
    potential_sha256, input_file; ``input_text`` / ``potential_sha256`` may also
    be given directly.  Errors on any rank raise ``CheckpointError`` everywhere.
    """
    path = Path(path)
    err = None
    arrays = {}
    try:
        if velocities is None:
            raise ValueError("velocities are required")
        arrays = {"positions": np.asarray(positions, dtype=np.float64),
                  "velocities": np.asarray(velocities, dtype=np.float64),
                  "species": np.asarray(species),
                  "images": np.asarray(images)}
        n_local = np.shape(ids)[0] if np.ndim(ids) else -1
        for name, shape in (("positions", (3,)), ("velocities", (3,)), ("species", ()),
                            ("images", (3,))):
            a = arrays[name]
            if a.shape != (n_local,) + shape:
                raise ValueError(f"{name} has shape {a.shape}, expected {(n_local,) + shape}")
        if arrays["species"].dtype.kind not in "iu" and arrays["species"].size:
            raise ValueError(f"species must be integers, got {arrays['species'].dtype}")
        if arrays["images"].dtype.kind not in "iu" and arrays["images"].size:
            raise ValueError(f"images must be integers, got {arrays['images'].dtype}")
    except (TypeError, ValueError) as exc:
        err = str(exc)
    agree(comm, None if err is None else f"{path}: {err}", CheckpointError)
    try:
        sorted_ids, data = gather_by_id(comm, ids, arrays)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None

    def write():
        # validate rank-0 inputs before creating anything
        c = np.asarray(cell, dtype=np.float64)
        if c.shape != (3, 3):
            raise CheckpointError(f"{path}: cell must be 3x3, got shape {c.shape}")
        p = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
        names = [str(s) for s in species_names]
        masses = np.asarray(masses_by_species, dtype=np.float64)
        if masses.shape != (len(names),):
            raise CheckpointError(f"{path}: masses_by_species has shape {masses.shape}, expected "
                                  f"({len(names)},) for species {names}")
        try:
            _check_state(state)
        except TypeError as exc:
            raise CheckpointError(f"{path}: cannot store state: {exc}") from None
        meta = dict(metadata or {})
        if input_text is not None:
            meta["input_text"] = input_text
        if potential_sha256 is not None:
            meta["potential_sha256"] = potential_sha256
        for k, v in meta.items():
            if not isinstance(v, (str, int, float, bool, np.generic, Path)) and v is not None:
                raise CheckpointError(f"{path}: metadata '{k}' must be a string or number, "
                                      f"got {type(v).__name__}")

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        # built in memory, then written with plain writes: a full disk is then a clean OSError
        # on our own write, never an HDF5 library failure half-way through a file
        image = io.BytesIO()
        try:
            with h5py.File(image, "w") as f:
                f.attrs["format"] = FORMAT
                f.attrs["format_version"] = np.int64(FORMAT_VERSION)
                f.attrs["acemd_version"] = _acemd_version()
                f.attrs["created"] = _time.strftime("%Y-%m-%dT%H:%M:%S%z")
                f.attrs["step"] = np.int64(step)
                f.attrs["time_ps"] = np.float64(time_ps)
                f.attrs["n_atoms"] = np.int64(len(sorted_ids))
                f.attrs["units"] = "metal: Angstrom, ps, eV, amu, K, bar; velocities Angstrom/ps"
                s = f.create_group("system")
                s["cell"] = c
                s["pbc"] = p
                s["ids"] = sorted_ids
                s["positions"] = data["positions"]
                s["velocities"] = data["velocities"]
                s["species"] = data["species"]
                s["images"] = data["images"]
                s["masses_by_species"] = masses
                s.create_dataset("species_names", data=np.array(names, dtype=object), dtype=_UTF8)
                m = f.create_group("metadata")
                for k, v in meta.items():
                    if v is None:
                        continue
                    if isinstance(v, (str, Path)):
                        m.create_dataset(str(k), data=str(v), dtype=_UTF8)
                    else:
                        m.create_dataset(str(k), data=v)
                _put(f, "state", dict(state or {}), "")
                f.flush()
            with open(tmp, "wb") as fh:
                fh.write(image.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            _commit(tmp, path)
        except (OSError, RuntimeError) as exc:     # h5py reports a failed flush as RuntimeError
            tmp.unlink(missing_ok=True)
            kept = "the previous checkpoint is kept" if path.exists() else "no checkpoint was written"
            raise CheckpointError(f"{path}: cannot write checkpoint ({kept}; the temporary file was "
                                  f"removed): {_first_line(exc)}; free space (or fix the path) and continue with --restart") from None

    on_root(comm, write)


def _first_line(exc) -> str:
    """h5py's messages span lines; the first says what failed, errno/message say why."""
    import re
    chain = []
    while exc is not None and len(chain) < 10:     # h5py's close after a failed write hides the cause
        chain.append(exc)
        exc = exc.__context__
    for e in reversed(chain):
        why = re.search(r"error message = '([^']+)'", str(e))
        if why or getattr(e, "strerror", None):
            text = str(e)
            return text.splitlines()[0] + (f" ({why.group(1)})" if why else "")
    return str(chain[0]).splitlines()[0]


def _fsync_file(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path):
    """Atomically move the finished temporary file over the checkpoint."""
    os.replace(tmp, path)
    _fsync_dir(path.parent if str(path.parent) else Path("."))


# --------------------------------------------------------------------------- read
def read_checkpoint(path) -> dict:
    """Read a checkpoint (plain, all atoms, no communication).

    Returns a dict with ``step``, ``time`` (ps; also ``time_ps``), ``cell``,
    ``pbc``, ``ids`` (sorted), ``positions``, ``velocities``, ``species``,
    ``images``, ``masses_by_species``, ``species_names`` (list), ``state``
    (nested, types as written), ``metadata`` (dict) with its ``input_text`` and
    ``potential_sha256`` also at top level (None if absent), ``acemd_version``,
    ``format_version``.  A missing, truncated or foreign file raises
    :class:`CheckpointError` naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        hint = ""
        if Path(str(path) + ".tmp").exists():
            hint = (f"; only '{path}.tmp' exists (an interrupted write: it may be incomplete, "
                    "rename it only if you know it is whole)")
        raise CheckpointError(f"{path}: checkpoint file not found{hint}")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 file (truncated or corrupted?): {exc}") \
            from None
    try:
        with f:
            fmt = _str_of(f.attrs.get("format", ""))
            if fmt != FORMAT:
                raise CheckpointError(f"{path}: not an acemd checkpoint (format attribute is "
                                      f"{fmt or 'missing'!r}); is this a trajectory or another file?")
            version = int(f.attrs.get("format_version", -1))
            if version < 1 or version > FORMAT_VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                                      f"by this acemd (reads versions 1..{FORMAT_VERSION}); use the "
                                      "acemd version that wrote it")
            for key in ("system", "state"):
                if key not in f:
                    raise CheckpointError(f"{path}: damaged checkpoint: group /{key} is missing")
            s = f["system"]
            out: dict[str, Any] = {}
            for key in ("cell", "pbc", "ids", "positions", "velocities", "species", "images",
                        "masses_by_species", "species_names"):
                if key not in s:
                    raise CheckpointError(f"{path}: damaged checkpoint: /system/{key} is missing")
                out[key] = s[key][()]
            out["species_names"] = [_str_of(x) for x in out["species_names"]]
            out["pbc"] = np.asarray(out["pbc"], dtype=bool)
            n = len(out["ids"])
            for key, shape in (("positions", (n, 3)), ("velocities", (n, 3)), ("species", (n,)),
                               ("images", (n, 3)), ("cell", (3, 3)), ("pbc", (3,)),
                               ("masses_by_species", (len(out["species_names"]),))):
                if out[key].shape != shape:
                    raise CheckpointError(f"{path}: damaged checkpoint: /system/{key} has shape "
                                          f"{out[key].shape}, expected {shape}")
            if n != int(f.attrs.get("n_atoms", n)):
                raise CheckpointError(f"{path}: damaged checkpoint: {n} atoms stored, header says "
                                      f"{int(f.attrs['n_atoms'])}")
            _check_values(path, out)
            out["step"] = int(f.attrs["step"])
            out["time"] = out["time_ps"] = float(f.attrs["time_ps"])
            if out["step"] < 0 or not np.isfinite(out["time"]):
                raise CheckpointError(f"{path}: damaged checkpoint: step {out['step']}, time "
                                      f"{out['time']} ps (a step count is never negative, a time never "
                                      "NaN/inf; was it edited by hand?); restart from an unedited checkpoint")
            out["acemd_version"] = _str_of(f.attrs.get("acemd_version", "unknown"))
            out["format_version"] = version
            meta = {}
            if "metadata" in f:
                for k, ds in f["metadata"].items():
                    v = ds[()]
                    meta[k] = _str_of(v) if isinstance(v, (bytes, str)) else v
            out["metadata"] = meta
            out["input_text"] = meta.get("input_text")
            out["potential_sha256"] = meta.get("potential_sha256")
            out["state"] = _get(f["state"])
            bad = _first_non_finite(out["state"], "state")
            if bad:
                raise CheckpointError(f"{path}: damaged checkpoint: {bad} is NaN or inf (the run that "
                                      "wrote it had diverged); restart from an earlier checkpoint")
            return out
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds for damaged files
        raise CheckpointError(f"{path}: damaged or unreadable checkpoint: "
                              f"{type(exc).__name__}: {exc}") from None


OUTSIDE_CELLS = 1.0      # wrapped positions lie in [0, 1) of a periodic axis; farther than this is damage


def _check_values(path, out):
    """NaN/inf or out-of-range content that shapes alone do not reveal (a damaged or foreign file)."""
    for key in ("cell", "positions", "velocities", "masses_by_species"):
        a = np.asarray(out[key], dtype=np.float64)
        bad = ~np.isfinite(a)
        if bad.any():
            k = int(np.flatnonzero(bad.any(axis=-1) if a.ndim > 1 else bad)[0])
            what = f"atom id {int(out['ids'][k])}" if key in ("positions", "velocities") else f"entry {k}"
            raise CheckpointError(f"{path}: damaged checkpoint: /system/{key} has a NaN or inf value "
                                  f"({what}); restart from an earlier checkpoint")
    if not np.all(out["masses_by_species"] > 0):
        raise CheckpointError(f"{path}: damaged checkpoint: /system/masses_by_species must be positive")
    ids = np.asarray(out["ids"])
    if ids.size and np.any(np.diff(ids) <= 0):
        raise CheckpointError(f"{path}: damaged checkpoint: /system/ids are not unique and sorted")
    species = np.asarray(out["species"])
    if species.size and (species.min() < 0 or species.max() >= len(out["species_names"])):
        raise CheckpointError(f"{path}: damaged checkpoint: /system/species has values outside "
                              f"0..{len(out['species_names']) - 1}")
    pbc = np.asarray(out["pbc"], dtype=bool)
    if pbc.any() and len(ids):
        cell = np.asarray(out["cell"], dtype=np.float64)
        try:
            frac = np.linalg.solve(cell.T, np.asarray(out["positions"]).T).T
        except np.linalg.LinAlgError:
            raise CheckpointError(f"{path}: damaged checkpoint: the cell {cell.tolist()} is singular") \
                from None
        outside = np.abs(frac[:, pbc] - 0.5) > 0.5 + OUTSIDE_CELLS
        if outside.any():
            k = int(np.flatnonzero(outside.any(axis=1))[0])
            raise CheckpointError(f"{path}: damaged checkpoint: atom id {int(ids[k])} is at fractional "
                                  f"coordinates {np.round(frac[k], 3).tolist()}, far outside the periodic "
                                  "cell; restart from an earlier checkpoint")


def _first_non_finite(value, where):
    """Key path of the first NaN/inf float in a nested state (thermostat chains, barostat), or None."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            return where
        if isinstance(value, np.ndarray) and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            return where
        return None
    for k, v in items:
        bad = _first_non_finite(v, f"{where}.{k}")
        if bad:
            return bad
    return None


# --------------------------------------------------------------------------- which driver wrote it
DRIVER_STATE_KEYS = (("free_energy", "free_energy"), ("elastic_t", "elastic"), ("elastic_0k", "elastic"),
                     ("driver", None), ("integrator", "md"))


def writer_of(state) -> str | None:
    """The driver section ("md", "minimize", "elastic", "free_energy") whose run wrote a checkpoint,
    from the protocol state each driver stores; None for a checkpoint without one."""
    for key, driver in DRIVER_STATE_KEYS:
        if isinstance(state, Mapping) and key in state:
            if driver is None:              # {"driver": {"name": "minimize", ...}}
                named = state[key].get("name") if isinstance(state[key], Mapping) else None
                return str(named) if named else None
            return driver
    return None
