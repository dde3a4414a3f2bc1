"""Atom ownership, migration and ghost (halo) exchange over a :class:`Decomposition`.

This is the only place where atoms travel between MPI ranks.  Per rank, atoms
are a dict of numpy arrays sharing their first axis: ``"positions"`` (n, 3)
float64 is required; optional ``"image"`` (n, 3) integer image counters are
updated by wrapping (unwrapped = positions + image @ cell); ``"ids"`` (global
atom ids) is used in error messages; any other per-atom array (species,
velocities, ...) just travels along.  All ranks must use the same keys,
dtypes and trailing shapes (checked in the collective calls).

Ghost exchange follows the staged scheme of LAMMPS ``comm_brick`` (an
independent implementation):

* three stages, x then y then z (fractional axes, so triclinic cells work);
  each stage sends owned atoms *and* the ghosts received in earlier stages,
  so edge and corner ghosts arrive without diagonal messages;
* per stage, swaps to the lower and to the upper neighbour; when the ghost
  cutoff exceeds the subdomain thickness (or the whole cell), several swaps
  per direction forward the atoms received in the previous swap of that
  direction (multi-swap), shifting by a cell vector whenever a message
  crosses a periodic boundary;
* the plan (send indices, integer shifts, receive counts and offsets) is
  recorded, so :meth:`Halo.forward` re-sends new coordinates every step
  (using the *current* cell: images follow an NPT cell) and
  :meth:`Halo.reverse` folds ghost forces/virials back to their owners.

Ghost region: the ghosts of a rank are exactly the images (of all atoms,
including periodic images of its own) whose fractional coordinates lie in
``[frac_lo_d - c_d, frac_hi_d + c_d]`` for every axis ``d``, minus the rank's
own atoms, with ``c_d = ghost_cutoff / H_d`` (``H_d`` the face-to-face
height of the cell) padded by a relative 1e-10 plus 1e-11.  This is a
superset of the images within ``ghost_cutoff`` (Euclidean) of any owned atom.
Non-periodic axes: nothing crosses the box boundary.

Errors are raised consistently on every rank of the communicator: each rank
evaluates its own problem, an integer flag is allreduced, and all ranks raise
the same exception class with the messages of the ranks that found a problem
(no rank is ever left waiting in a collective).  The hot per-step calls
(:meth:`Halo.forward`, :meth:`Halo.forward_array`, :meth:`Halo.reverse`)
only check shapes locally.

Message sizes: per-swap buffers are contiguous numpy arrays sent with the
upper-case (buffer) mpi4py methods; counts are exchanged first during
:meth:`Halo.build_ghosts` and :meth:`Halo.migrate`, and are known from the
plan afterwards.  Along an axis with a single subdomain the exchange is an
in-process copy (no MPI call).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .grid import Decomposition, DecompositionError, ParallelError

__all__ = [
    "Halo",
    "Swap",
    "AtomLeftBoxError",
    "LostAtomsError",
    "AtomOutsideSubdomainError",
]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


class AtomLeftBoxError(ParallelError):
    """An atom is outside [0, 1) fractional along a non-periodic axis.

    Attributes: ``atom_ids`` (global ids, or local indices when no ``"ids"``
    array is given) and ``axes`` (0, 1, 2 for a, b, c), one entry per atom.
    """

    def __init__(self, message, atom_ids=(), axes=()):
        super().__init__(message)
        self.atom_ids = [int(v) for v in atom_ids]
        self.axes = [int(v) for v in axes]

    def _attrs(self):
        return {"atom_ids": self.atom_ids, "axes": self.axes}


class LostAtomsError(ParallelError):
    """Atoms were lost (total count changed) or have non-finite positions.

    Attributes: ``expected`` and ``found`` total counts (None if the problem
    is non-finite coordinates) and ``atom_ids`` (offending atoms if known).
    """

    def __init__(self, message, expected=None, found=None, atom_ids=()):
        super().__init__(message)
        self.expected = expected
        self.found = found
        self.atom_ids = [int(v) for v in atom_ids]

    def _attrs(self):
        return {"expected": self.expected, "found": self.found, "atom_ids": self.atom_ids}


class AtomOutsideSubdomainError(ParallelError):
    """:meth:`Halo.build_ghosts` got atoms that this rank does not own.

    Call :meth:`Halo.migrate` (which wraps and redistributes atoms) first.
    """


# highest code wins when ranks report different problems
_CODES = (
    (LostAtomsError, 5),
    (AtomLeftBoxError, 4),
    (AtomOutsideSubdomainError, 3),
    (DecompositionError, 2),
    (ValueError, 1),
)
_CLASSES = {code: cls for cls, code in _CODES}


def _code(exc) -> int:
    if exc is None:
        return 0
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return 1


def _make_error(code, message, attrs):
    cls = _CLASSES[code]
    if cls is AtomLeftBoxError:
        return cls(message, attrs.get("atom_ids", ()), attrs.get("axes", ()))
    if cls is LostAtomsError:
        return cls(message, attrs.get("expected"), attrs.get("found"), attrs.get("atom_ids", ()))
    return cls(message)


# ---------------------------------------------------------------------------
# byte layout of a dict of per-atom arrays
# ---------------------------------------------------------------------------


class _Layout:
    """Fixed byte layout of a set of per-atom arrays (one message row per atom)."""

    def __init__(self, fields):
        # fields: list of (name, dtype str, trailing shape tuple), in packing order
        self.fields = [(str(k), np.dtype(t).str, tuple(int(v) for v in s)) for k, t, s in fields]
        self.nbytes = []
        for _, t, s in self.fields:
            self.nbytes.append(int(np.prod(s, dtype=np.int64)) * np.dtype(t).itemsize)
        self.offsets = np.concatenate([[0], np.cumsum(self.nbytes, dtype=np.int64)]).astype(np.int64)
        self.row_bytes = int(self.offsets[-1])

    @classmethod
    def from_arrays(cls, arrays: dict) -> "_Layout":
        return cls([(k, arrays[k].dtype, arrays[k].shape[1:]) for k in sorted(arrays)])

    def signature(self) -> int:
        return int(zlib.crc32(repr(self.fields).encode()))

    def pack(self, arrays: dict, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        m = idx.shape[0]
        out = np.empty((m, self.row_bytes), dtype=np.uint8)
        for (name, t, s), o, nb in zip(self.fields, self.offsets, self.nbytes):
            if nb == 0:
                continue
            k = nb // np.dtype(t).itemsize
            part = np.ascontiguousarray(arrays[name][idx], dtype=t).reshape(m, k)
            out[:, o : o + nb] = part.view(np.uint8)
        return out

    def unpack(self, buf: np.ndarray) -> dict:
        m = buf.shape[0]
        out = {}
        for (name, t, s), o, nb in zip(self.fields, self.offsets, self.nbytes):
            if nb == 0:
                out[name] = np.empty((m,) + s, dtype=t)
                continue
            raw = np.ascontiguousarray(buf[:, o : o + nb])
            out[name] = raw.view(np.dtype(t)).reshape((m,) + s)
        return out


def _concat(parts: list[dict], keys) -> dict:
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in keys}


# ---------------------------------------------------------------------------
# swap plan
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Swap:
    """One recorded ghost message of the plan.

    ``send_idx`` indexes the extended (local + ghost) arrays; the sent
    coordinates are ``x[send_idx] + shift * cell[dim]``; the ``n_recv``
    received atoms are stored at ``recv_offset : recv_offset + n_recv``.
    ``direction`` 0 sends to the lower neighbour along ``dim``, 1 to the
    upper; ``hop`` counts multi-swaps (0 = first).
    """

    dim: int
    direction: int
    hop: int
    send_idx: np.ndarray
    shift: int
    send_rank: int
    recv_rank: int
    recv_offset: int
    n_recv: int
    in_process: bool

    @property
    def n_send(self) -> int:
        return int(self.send_idx.shape[0])

    @property
    def shift_vector(self) -> np.ndarray:
        """Shift in units of cell vectors (int[3])."""
        v = np.zeros(3, dtype=np.int64)
        v[self.dim] = self.shift
        return v


_TAG_COUNT = 71
_TAG_DATA = 72
_TAG_FWD = 73
_TAG_REV = 74
_TAG_MIG = 75

_POS = "\x00positions"
_SHIFT = "\x00shift"


class Halo:
    """Ownership, migration and ghost exchange on a :class:`Decomposition`.

    Typical use (every call is made on every rank)::

        halo = Halo(Decomposition(comm, cell, pbc))
        atoms = halo.distribute(all_atoms if rank == 0 else None)
        ext_x, ext = halo.build_ghosts(atoms["positions"], rc + skin, {"species": atoms["species"]})
        ...                                   # each step:
        ext_x = halo.forward(atoms["positions"])
        f_local = halo.reverse(f_ext)         # forces on owned + ghost atoms -> owned
        ...                                   # on neighbour-list rebuild:
        atoms = halo.migrate(atoms); ext_x, ext = halo.build_ghosts(...)

    Attributes after :meth:`build_ghosts`: ``n_local``, ``ghost_count``
    (= ``n_ghost``), ``n_ext``, ``swaps`` (the plan), ``swaps_per_dim``,
    ``ghost_cutoff``, ``image_shifts``, ``ghost_shifts``.
    """

    def __init__(self, decomposition: Decomposition):
        from mpi4py import MPI

        self._MPI = MPI
        self.decomp = decomposition
        self.comm = decomposition.cart
        self.n_total = None  # global atom count, set by distribute / first migrate
        self.n_local = 0
        self.n_ext = 0
        self.ghost_count = 0
        self.ghost_cutoff = None
        self.swaps: tuple[Swap, ...] = ()
        self.swaps_per_dim = (0, 0, 0)
        self._image_shifts = np.zeros((0, 3), dtype=np.int64)
        self._plan_valid = False

    # -- collective error handling -------------------------------------------------

    def _collective_check(self, exc, extra=()):
        """Allreduce (MAX) ``[error code, *extra]``; raise on all ranks if any rank failed."""
        buf = np.array([_code(exc), *extra], dtype=np.int64)
        if self.comm.Get_size() > 1:
            self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.MAX)
        if buf[0]:
            self._raise_everywhere(exc)
        return buf[1:]

    def _raise_everywhere(self, exc):
        if self.comm.Get_size() == 1:
            raise exc
        info = None
        if exc is not None:
            attrs = exc._attrs() if hasattr(exc, "_attrs") else {}
            info = (_code(exc), str(exc), attrs)
        infos = self.comm.allgather(info)
        code = max(i[0] for i in infos if i is not None)
        msgs = []
        merged: dict = {}
        for r, i in enumerate(infos):
            if i is None or i[0] != code:
                continue
            msgs.append(f"[rank {r}] {i[1]}")
            for k, v in i[2].items():
                if isinstance(v, list):
                    merged.setdefault(k, []).extend(v)
                elif merged.get(k) is None:
                    merged[k] = v
        err = _make_error(code, "; ".join(msgs), merged)
        if exc is not None:
            raise err from exc
        raise err

    # -- wrapping ----------------------------------------------------------------

    def wrap_positions(self, positions, image=None, ids=None):
        """Wrap positions into the cell along periodic axes (local, not collective).

        Returns ``(positions, image)`` as new arrays: fractional coordinates in
        [0, 1) along periodic axes (up to round-off, which ownership tolerates)
        and ``image`` updated so that ``positions + image @ cell`` is unchanged
        (if ``image`` is None, the returned counters are just the shifts
        applied).  Atoms are moved only if they were outside, so wrapped atoms
        keep their exact coordinates.

        Raises :class:`AtomLeftBoxError` if an atom is outside [0, 1)
        fractional along a non-periodic axis, :class:`LostAtomsError` for
        non-finite coordinates; ``ids`` (global ids) name the atoms, else
        local indices are given.  Being local, it raises only on the ranks
        that see the problem; :meth:`migrate` and :meth:`distribute` make it
        collective.
        """
        dec = self.decomp
        pos = np.array(positions, dtype=np.float64).reshape(-1, 3)
        n = pos.shape[0]
        img = np.zeros((n, 3), dtype=np.int64) if image is None else np.array(image, dtype=np.int64).reshape(n, 3)
        names = np.arange(n) if ids is None else np.asarray(ids).reshape(-1)
        what = "local index" if ids is None else "id"
        bad = ~np.isfinite(pos).all(axis=1)
        if bad.any():
            k = np.flatnonzero(bad)
            raise LostAtomsError(
                f"{k.size} atom(s) have non-finite coordinates ({what} {names[k[:10]].tolist()}); "
                "the dynamics blew up (time step too large, bad potential or structure?)",
                atom_ids=names[k].tolist(),
            )
        s = dec.to_fractional(pos)
        out_ids, out_axes, details = [], [], []
        for d in range(3):
            if dec.pbc[d]:
                continue
            out = np.flatnonzero((s[:, d] < 0.0) | (s[:, d] >= 1.0))
            for k in out:
                out_ids.append(int(names[k]))
                out_axes.append(d)
                if len(details) < 10:
                    details.append(f"{what} {int(names[k])} along axis {'abc'[d]} (fractional {s[k, d]:.6g})")
        if out_ids:
            raise AtomLeftBoxError(
                f"{len(out_ids)} atom(s) left the box along a non-periodic axis: " + ", ".join(details),
                atom_ids=out_ids,
                axes=out_axes,
            )
        shift = np.zeros((n, 3), dtype=np.int64)
        per = np.flatnonzero(dec.pbc)
        if per.size:
            shift[:, per] = np.floor(s[:, per]).astype(np.int64)
        rows = np.flatnonzero(shift.any(axis=1))
        if rows.size:
            pos[rows] -= shift[rows].astype(np.float64) @ dec.cell
            img[rows] += shift[rows]
        return pos, img

    # -- initial distribution ---------------------------------------------------------

    def distribute(self, global_arrays: dict | None, root: int = 0) -> dict:
        """Scatter all atoms held by ``root`` to their owners (collective).

        ``root`` passes the dict of global per-atom arrays (``"positions"``
        required), the other ranks pass None.  Positions are wrapped first
        (``"image"`` updated if present).  Each rank returns the atoms it
        owns, in their original relative order, with the same keys.
        """
        MPI = self._MPI
        comm = self.comm
        dec = self.decomp
        rank = comm.Get_rank()
        size = comm.Get_size()
        info = None
        packed = None
        if rank == root:
            try:
                if not isinstance(global_arrays, dict) or "positions" not in global_arrays:
                    raise ValueError("distribute: root must pass a dict with a 'positions' array")
                arrays = {k: np.asarray(v) for k, v in global_arrays.items()}
                if arrays["positions"].ndim != 2 or arrays["positions"].shape[1] != 3:
                    raise ValueError(f"positions must be (n, 3), got {arrays['positions'].shape}")
                n = arrays["positions"].shape[0]
                for k, v in arrays.items():
                    if v.ndim == 0 or v.shape[0] != n:
                        raise ValueError(f"per-atom array {k!r} has shape {v.shape}, expected first axis {n}")
                pos, img = self.wrap_positions(arrays["positions"], arrays.get("image"), arrays.get("ids"))
                arrays["positions"] = pos
                if "image" in arrays:
                    arrays["image"] = img.astype(arrays["image"].dtype)
                owner = dec.owner_ranks(pos)
                order = np.argsort(owner, kind="stable")
                counts = np.bincount(owner, minlength=size).astype(np.int64)
                keys = list(arrays)
                layout = _Layout([(k, arrays[k].dtype, arrays[k].shape[1:]) for k in keys])
                packed = layout.pack(arrays, order)
                info = ("ok", layout.fields, counts.tolist(), int(n))
            except (ValueError, ParallelError) as exc:
                attrs = exc._attrs() if hasattr(exc, "_attrs") else {}
                info = ("error", _code(exc), str(exc), attrs)
                local_exc = exc
        if size > 1:
            info = comm.bcast(info, root=root)
        if info[0] == "error":
            if rank == root:
                raise local_exc
            raise _make_error(info[1], f"[rank {root}] {info[2]}", info[3])
        _, fields, counts, n = info
        layout = _Layout(fields)
        counts = np.asarray(counts, dtype=np.int64)
        recv = np.empty((int(counts[rank]), layout.row_bytes), dtype=np.uint8)
        if size > 1:
            nbytes = counts * layout.row_bytes
            displs = np.concatenate([[0], np.cumsum(nbytes)[:-1]])
            sendspec = [packed, (nbytes.tolist(), displs.tolist()), MPI.BYTE] if rank == root else None
            comm.Scatterv(sendspec, [recv, MPI.BYTE], root=root)
        else:
            recv = packed
        self.n_total = int(n)
        self._plan_valid = False
        return layout.unpack(recv)

    # -- migration -------------------------------------------------------------------

    def _route(self, tgt_d, d):
        """Hops (>= 0) and direction (0 lower, 1 upper) from this rank to target coords along ``d``."""
        dec = self.decomp
        c = dec.coords[d]
        p = dec.dims[d]
        if dec.pbc[d]:
            fwd = np.mod(tgt_d - c, p)
            up = fwd <= p // 2
            hops = np.where(up, fwd, p - fwd)
        else:
            diff = tgt_d - c
            up = diff > 0
            hops = np.abs(diff)
        return hops, up.astype(np.int64)

    def _sendrecv_rows(self, rows: np.ndarray, dest: int, source: int, row_bytes: int, in_process: bool):
        """Send a (m, row_bytes) uint8 block to ``dest``, receive one from ``source``."""
        if in_process:
            return rows
        MPI = self._MPI
        scount = np.array([rows.shape[0]], dtype=np.int64)
        rcount = np.zeros(1, dtype=np.int64)
        self.comm.Sendrecv(scount, dest, _TAG_COUNT, rcount, source, _TAG_COUNT)
        recv = np.empty((int(rcount[0]), row_bytes), dtype=np.uint8)
        self.comm.Sendrecv([rows, MPI.BYTE], dest, _TAG_DATA, [recv, MPI.BYTE], source, _TAG_DATA)
        return recv

    def migrate(self, arrays: dict, n_total: int | None = None) -> dict:
        """Wrap positions and send every atom to the rank that owns it (collective).

        Staged per axis (x, then y, then z): an atom leaving this subdomain
        along ``d`` goes to the neighbour along ``d`` (the shorter way round
        on periodic axes) and is forwarded hop by hop, so any displacement is
        handled, even across several thin subdomains (the number of passes
        per axis is the largest hop count, found with one allreduce).

        Afterwards the global atom count is checked against ``n_total`` (if
        given), else the count known from :meth:`distribute` or an earlier
        migrate, else the count before this call; a mismatch raises
        :class:`LostAtomsError` with the counts on every rank.  Non-finite
        coordinates raise :class:`LostAtomsError`, an atom outside a
        non-periodic box :class:`AtomLeftBoxError`, on every rank.

        Returns a new dict with the same keys (owned atoms: those kept, in
        their order, then those received).  The ghost plan is invalidated:
        call :meth:`build_ghosts` next.
        """
        dec = self.decomp
        comm = self.comm
        exc = None
        sig = 0
        maxhops = [0, 0, 0]
        n_before = 0
        keys = list(arrays) if isinstance(arrays, dict) else []
        try:
            if not isinstance(arrays, dict) or "positions" not in arrays:
                raise ValueError("migrate: pass a dict of per-atom arrays with a 'positions' entry")
            cur = {k: np.asarray(v) for k, v in arrays.items()}
            pos = cur["positions"]
            if pos.ndim != 2 or pos.shape[1] != 3:
                raise ValueError(f"positions must be (n, 3), got {pos.shape}")
            n_before = pos.shape[0]
            for k, v in cur.items():
                if v.ndim == 0 or v.shape[0] != n_before:
                    raise ValueError(f"per-atom array {k!r} has shape {v.shape}, expected first axis {n_before}")
            pos, img = self.wrap_positions(pos, cur.get("image"), cur.get("ids"))
            cur["positions"] = pos
            if "image" in cur:
                cur["image"] = img.astype(cur["image"].dtype)
            layout = _Layout.from_arrays(cur)
            sig = layout.signature()
            tgt = dec.owner_coords(dec.to_fractional(pos))
            for d in range(3):
                if n_before and dec.dims[d] > 1:
                    maxhops[d] = int(self._route(tgt[:, d], d)[0].max())
        except (ValueError, ParallelError) as e:
            exc = e
        flags = self._collective_check(exc, [sig, -sig, *maxhops])
        if flags[0] != -flags[1]:
            self._raise_everywhere(
                ValueError("migrate: ranks pass different per-atom arrays (keys, dtypes or shapes differ)")
            )
        maxhops = flags[2:]

        for d in range(3):
            lo, hi = (int(r) for r in dec.exchange_neighbors[d])
            for _ in range(int(maxhops[d])):
                pos = cur["positions"]
                tgt = dec.owner_coords(dec.to_fractional(pos))[:, d]
                hops, up = self._route(tgt, d)
                leave = hops > 0
                keep = np.flatnonzero(~leave)
                to_lo = np.flatnonzero(leave & (up == 0))
                to_hi = np.flatnonzero(leave & (up == 1))
                from_hi = self._sendrecv_rows(layout.pack(cur, to_lo), lo, hi, layout.row_bytes, False)
                from_lo = self._sendrecv_rows(layout.pack(cur, to_hi), hi, lo, layout.row_bytes, False)
                parts = [{k: v[keep] for k, v in cur.items()}, layout.unpack(from_hi), layout.unpack(from_lo)]
                cur = _concat(parts, cur.keys())

        n_after = cur["positions"].shape[0]
        counts = np.array([n_before, n_after], dtype=np.int64)
        if comm.Get_size() > 1:
            comm.Allreduce(self._MPI.IN_PLACE, counts, op=self._MPI.SUM)
        total_before, total_after = int(counts[0]), int(counts[1])
        expected = n_total if n_total is not None else self.n_total
        if expected is None:
            expected = total_before
        expected = int(expected)
        if total_after != expected:
            # identical data on every rank: all raise the same error
            raise LostAtomsError(
                f"atom count changed: expected {expected} atoms in total, found {total_after} after "
                f"migration ({total_before} before); atoms were lost or duplicated",
                expected=expected,
                found=total_after,
            )
        self.n_total = expected
        self._plan_valid = False
        return {k: cur[k] for k in keys}

    # -- ghosts -----------------------------------------------------------------------

    def build_ghosts(self, positions, ghost_cutoff: float, carry: dict | None = None):
        """Find the ghosts within ``ghost_cutoff`` (Å) and record the exchange plan (collective).

        ``positions`` (n_local, 3) must be owned by this rank (as returned by
        :meth:`distribute` / :meth:`migrate`).  ``carry`` maps names to
        per-atom arrays (species, ids, ...) that are sent along.

        Returns ``(ext_positions, ext_carry)``: ``n_local`` owned atoms first
        (unchanged order and coordinates) then ``ghost_count`` ghosts, and the
        carried arrays over the same ``n_ext`` rows.  See the module
        docstring for the exact ghost region.  ``ghost_cutoff`` must be the
        same on all ranks.
        """
        dec = self.decomp
        MPI = self._MPI
        carry = {} if carry is None else dict(carry)
        exc = None
        sig = 0
        cbits = 0
        try:
            pos = np.ascontiguousarray(positions, dtype=np.float64)
            if pos.ndim != 2 or pos.shape[1] != 3:
                raise ValueError(f"positions must be (n, 3), got {pos.shape}")
            n = pos.shape[0]
            cutoff = float(ghost_cutoff)
            if not (np.isfinite(cutoff) and cutoff >= 0.0):
                raise ValueError(f"ghost_cutoff must be finite and >= 0, got {ghost_cutoff!r}")
            cbits = int(np.float64(cutoff).view(np.int64))
            arrays = {_POS: pos, _SHIFT: np.zeros((n, 3), dtype=np.int64)}
            for k, v in carry.items():
                v = np.asarray(v)
                if v.ndim == 0 or v.shape[0] != n:
                    raise ValueError(f"carried array {k!r} has shape {v.shape}, expected first axis {n}")
                arrays[str(k)] = v
            layout = _Layout.from_arrays(arrays)
            sig = layout.signature()
            s = dec.to_fractional(pos)
            tol = 1e-12
            outside = ((s < dec.frac_lo - tol) | (s > dec.frac_hi + tol)).any(axis=1)
            if outside.any():
                k = np.flatnonzero(outside)
                names = np.asarray(carry["ids"]) if "ids" in carry else np.arange(n)
                what = "id" if "ids" in carry else "local index"
                raise AtomOutsideSubdomainError(
                    f"{k.size} atom(s) passed to build_ghosts are not owned by this rank "
                    f"({what} {names[k[:10]].tolist()}, fractional {s[k[0]].tolist()}, subdomain "
                    f"{dec.frac_lo.tolist()}..{dec.frac_hi.tolist()}); call Halo.migrate first"
                )
        except (ValueError, ParallelError) as e:
            exc = e
        flags = self._collective_check(exc, [cbits, -cbits, sig, -sig])
        if flags[0] != -flags[1]:
            self._raise_everywhere(ValueError("build_ghosts: ranks pass different ghost_cutoff values"))
        if flags[2] != -flags[3]:
            self._raise_everywhere(ValueError("build_ghosts: ranks carry different per-atom arrays"))

        dims = dec.dims
        cell = dec.cell
        inv = dec.inv_cell
        heights = dec.heights()
        cfrac = cutoff / heights * (1.0 + 1e-10) + 1e-11
        need = [0, 0, 0]
        for d in range(3):
            if cutoff > 0.0:
                need[d] = int(np.ceil(cfrac[d] * dims[d]))
                if not dec.pbc[d]:
                    need[d] = min(need[d], dims[d] - 1)

        chunks = [arrays]
        n_ext = n
        swaps = []
        for d in range(3):
            if need[d] == 0:
                continue
            base = _concat(chunks, [f[0] for f in layout.fields]) if len(chunks) > 1 else chunks[0]
            chunks = [base]
            base_s = base[_POS] @ inv[:, d]
            in_process = dims[d] == 1
            prev = [None, None]
            for hop in range(need[d]):
                for direction in (0, 1):
                    if hop == 0:
                        src, src_off, src_s = base, 0, base_s
                    else:
                        src, src_off, src_s = prev[direction]
                    send_rank = int(dec.exchange_neighbors[d, direction])
                    recv_rank = int(dec.exchange_neighbors[d, 1 - direction])
                    if send_rank == MPI.PROC_NULL:
                        sel = np.zeros(0, dtype=np.int64)
                    elif direction == 0:
                        sel = np.flatnonzero(src_s <= dec.frac_lo[d] + cfrac[d])
                    else:
                        sel = np.flatnonzero(src_s >= dec.frac_hi[d] - cfrac[d])
                    shift = 0
                    if dec.pbc[d]:
                        if direction == 0 and dec.coords[d] == 0:
                            shift = 1
                        elif direction == 1 and dec.coords[d] == dims[d] - 1:
                            shift = -1
                    out = {k: v[sel] for k, v in src.items()}
                    if shift:
                        out[_POS] = out[_POS] + shift * cell[d]
                        out[_SHIFT][:, d] += shift
                    if in_process:
                        got = out
                    else:
                        rows = self._sendrecv_rows(
                            layout.pack(out, np.arange(sel.size)), send_rank, recv_rank, layout.row_bytes, False
                        )
                        got = layout.unpack(rows)
                    nr = got[_POS].shape[0]
                    swaps.append(
                        Swap(
                            dim=d,
                            direction=direction,
                            hop=hop,
                            send_idx=(sel + src_off).astype(np.int64),
                            shift=shift,
                            send_rank=send_rank,
                            recv_rank=recv_rank,
                            recv_offset=n_ext,
                            n_recv=nr,
                            in_process=in_process,
                        )
                    )
                    prev[direction] = (got, n_ext, got[_POS] @ inv[:, d])
                    chunks.append(got)
                    n_ext += nr
        keys = [f[0] for f in layout.fields]
        ext = _concat(chunks, keys) if len(chunks) > 1 else {k: v.copy() for k, v in chunks[0].items()}

        self.n_local = n
        self.n_ext = n_ext
        self.ghost_count = n_ext - n
        self.ghost_cutoff = cutoff
        self.swaps = tuple(swaps)
        self.swaps_per_dim = tuple(need)
        self._image_shifts = ext[_SHIFT]
        self._plan_valid = True
        ext_pos = np.ascontiguousarray(ext[_POS])
        ext_carry = {k: ext[str(k)] for k in carry}
        return ext_pos, ext_carry

    # -- plan properties ------------------------------------------------------------

    @property
    def n_ghost(self) -> int:
        return self.ghost_count

    @property
    def image_shifts(self) -> np.ndarray:
        """(n_ext, 3) int: ext atom ``i`` is its owner's position + ``image_shifts[i] @ cell``.

        Zero for owned atoms; ghosts of other ranks may have zero shift too.
        """
        return self._image_shifts

    @property
    def ghost_shifts(self) -> np.ndarray:
        """(ghost_count, 3) Cartesian shifts of the ghosts for the *current* cell (Å)."""
        return self._image_shifts[self.n_local :].astype(np.float64) @ self.decomp.cell

    def _require_plan(self):
        if not self._plan_valid:
            raise RuntimeError("no valid ghost plan: call Halo.build_ghosts (after distribute/migrate) first")

    # -- per-step communication -------------------------------------------------------

    def forward(self, positions, out: np.ndarray | None = None) -> np.ndarray:
        """Positions of owned + ghost atoms with the recorded plan (collective).

        Same atoms and integer shifts as at :meth:`build_ghosts`, new
        coordinates, and the current cell (``decomposition.set_cell``) for
        the periodic shifts.  ``out`` optionally receives the (n_ext, 3)
        result.
        """
        self._require_plan()
        pos = np.asarray(positions, dtype=np.float64)
        if pos.shape != (self.n_local, 3):
            raise ValueError(f"forward: positions must be ({self.n_local}, 3), got {pos.shape}")
        ext = np.empty((self.n_ext, 3), dtype=np.float64) if out is None else out
        if ext.shape != (self.n_ext, 3) or ext.dtype != np.float64 or not ext.flags.c_contiguous:
            raise ValueError(f"forward: out must be a C-contiguous float64 ({self.n_ext}, 3) array")
        ext[: self.n_local] = pos
        cell = self.decomp.cell
        comm = self.comm
        for sw in self.swaps:
            buf = ext[sw.send_idx]
            if sw.shift:
                buf += sw.shift * cell[sw.dim]
            dst = ext[sw.recv_offset : sw.recv_offset + sw.n_recv]
            if sw.in_process:
                dst[...] = buf
            else:
                comm.Sendrecv(buf, sw.send_rank, _TAG_FWD, dst, sw.recv_rank, _TAG_FWD)
        return ext

    def forward_array(self, array) -> np.ndarray:
        """Any per-atom array (n_local, ...) extended to ghosts, without shifts (collective)."""
        self._require_plan()
        a = np.asarray(array)
        if a.ndim == 0 or a.shape[0] != self.n_local:
            raise ValueError(f"forward_array: first axis must be {self.n_local}, got shape {a.shape}")
        ext = np.empty((self.n_ext,) + a.shape[1:], dtype=a.dtype)
        ext[: self.n_local] = a
        k = int(np.prod(a.shape[1:], dtype=np.int64))
        if k == 0 or a.dtype.itemsize == 0:
            return ext
        raw = ext.reshape(self.n_ext, k).view(np.uint8)
        MPI = self._MPI
        for sw in self.swaps:
            buf = raw[sw.send_idx]
            dst = raw[sw.recv_offset : sw.recv_offset + sw.n_recv]
            if sw.in_process:
                dst[...] = buf
            else:
                self.comm.Sendrecv([buf, MPI.BYTE], sw.send_rank, _TAG_FWD, [dst, MPI.BYTE], sw.recv_rank, _TAG_FWD)
        return ext

    def reverse(self, ext_array) -> np.ndarray:
        """Sum ghost rows of an (n_ext, ...) array onto their owners (collective).

        Forces (n_ext, 3), per-atom virials (n_ext, 3, 3), energies (n_ext,)
        ...: the plan is walked backwards, so contributions to ghosts that
        were forwarded through several swaps reach the owner.  Returns a new
        (n_local, ...) array; the input is not modified.
        """
        self._require_plan()
        a = np.array(ext_array, copy=True)
        if a.ndim == 0 or a.shape[0] != self.n_ext:
            raise ValueError(f"reverse: first axis must be n_ext = {self.n_ext}, got shape {a.shape}")
        k = int(np.prod(a.shape[1:], dtype=np.int64))
        if k == 0:
            return a[: self.n_local].copy()
        acc = a.reshape(self.n_ext, k)
        MPI = self._MPI
        for sw in reversed(self.swaps):
            ghosts = acc[sw.recv_offset : sw.recv_offset + sw.n_recv]
            if sw.in_process:
                got = ghosts
            else:
                got = np.empty((sw.n_send, k), dtype=a.dtype)
                self.comm.Sendrecv(
                    [ghosts.view(np.uint8), MPI.BYTE],
                    sw.recv_rank,
                    _TAG_REV,
                    [got.view(np.uint8), MPI.BYTE],
                    sw.send_rank,
                    _TAG_REV,
                )
            acc[sw.send_idx] += got  # indices are unique within one swap
        return a[: self.n_local].copy()
