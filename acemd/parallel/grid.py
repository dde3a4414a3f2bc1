"""Processor grid and subdomain geometry for a (possibly triclinic) cell.

The simulation cell is split into ``px * py * pz`` equal subdomains along
the three *fractional* axes (LAMMPS ``comm_brick`` style, triclinic-ready):
rank with Cartesian coordinates ``(cx, cy, cz)`` owns the atoms whose
fractional coordinates ``s = x @ inv(cell)`` satisfy
``c_d / p_d <= s_d < (c_d + 1) / p_d`` for every axis ``d``.

Conventions (shared by the whole package):

* ``cell`` is a 3x3 array whose **rows** are the lattice vectors (ASE), Å;
* ``pbc`` is a bool[3];
* fractional coordinates are ``s = x @ inv(cell)`` and ``x = s @ cell``.

The cell must be invertible even along non-periodic axes: there it is the
box that atoms may not leave (see :class:`acemd.parallel.halo.Halo`).

Only the decomposition and the halo call MPI for atoms; everything here is
cheap bookkeeping except the constructor of :class:`Decomposition`, which is
collective (it creates a Cartesian communicator).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = [
    "ParallelError",
    "DecompositionError",
    "choose_grid",
    "cell_heights",
    "Decomposition",
]


class ParallelError(RuntimeError):
    """Base class of the errors raised by :mod:`acemd.parallel`."""


class DecompositionError(ParallelError):
    """The cell or the processor grid cannot be used for a decomposition.

    Examples: a singular cell (zero volume, zero or collinear vectors), a
    grid whose product is not the number of ranks, ranks that disagree on
    the cell.
    """


# ---------------------------------------------------------------------------
# geometry helpers
# ---------------------------------------------------------------------------


def _as_cell(cell) -> np.ndarray:
    c = np.array(cell, dtype=np.float64)
    if c.shape == (3,):  # orthorhombic shorthand: lengths
        c = np.diag(c)
    if c.shape != (3, 3):
        raise DecompositionError(f"cell must be a 3x3 array (rows = lattice vectors), got shape {c.shape}")
    return c


def _as_pbc(pbc) -> np.ndarray:
    p = np.array(pbc, dtype=bool)
    if p.shape == ():
        p = np.repeat(p, 3)
    if p.shape != (3,):
        raise DecompositionError(f"pbc must be a bool[3], got shape {p.shape}")
    return p


def _face_areas(cell: np.ndarray) -> np.ndarray:
    """``|a_j x a_k|`` for d = 0, 1, 2 (area of the face perpendicular-ish to axis d)."""
    return np.array(
        [
            np.linalg.norm(np.cross(cell[1], cell[2])),
            np.linalg.norm(np.cross(cell[2], cell[0])),
            np.linalg.norm(np.cross(cell[0], cell[1])),
        ]
    )


def _check_cell(cell: np.ndarray) -> None:
    """Raise :class:`DecompositionError` unless ``cell`` is finite and invertible."""
    if not np.isfinite(cell).all():
        raise DecompositionError(f"cell has non-finite entries:\n{cell}")
    lengths = np.linalg.norm(cell, axis=1)
    names = "abc"
    for d in range(3):
        if lengths[d] == 0.0:
            raise DecompositionError(
                f"cell vector {names[d]} (axis {d}) is zero; every axis needs a finite box, "
                "also non-periodic ones (give the vacuum/box size along that axis)"
            )
    vol = abs(float(np.linalg.det(cell)))
    if vol <= 1e-10 * float(np.prod(lengths)):
        raise DecompositionError(
            f"cell has (near) zero volume ({vol:.3e} Å^3; vectors coplanar or collinear):\n{cell}"
        )


def cell_heights(cell) -> np.ndarray:
    """Face-to-face heights ``H_d = V / |a_j x a_k|`` of the cell (Å), d = 0, 1, 2.

    ``H_d`` is the distance between the planes ``s_d = 0`` and ``s_d = 1``;
    a displacement ``dx`` changes ``s_d`` by at most ``|dx| / H_d``.
    """
    c = _as_cell(cell)
    _check_cell(c)
    return abs(float(np.linalg.det(c))) / _face_areas(c)


# ---------------------------------------------------------------------------
# grid choice
# ---------------------------------------------------------------------------


def _factorizations(n: int):
    """All ordered triples (px, py, pz) of positive ints with px * py * pz == n, lexicographic."""
    divs = [k for k in range(1, n + 1) if n % k == 0]
    for px in divs:
        m = n // px
        for py in divs:
            if py > m:
                break
            if m % py == 0:
                yield px, py, m // py


def choose_grid(cell, pbc, nranks: int) -> tuple[int, int, int]:
    """Processor grid ``(px, py, pz)`` for ``nranks`` ranks that minimises the ghost surface.

    Every factorisation ``px * py * pz == nranks`` is scored by the surface of
    one subdomain (the cost of its ghost shell for a short cutoff): the sum
    over the three axes of the area of the subdomain face spanned by the two
    other cell vectors,

        cost = sum_d |a_j x a_k| / (p_j * p_k),   (d, j, k) cyclic,

    which is exact for triclinic cells (the subdomain is the cell scaled by
    ``1/p_d`` along each fractional axis).  The smallest cost wins.  Costs
    equal within a relative 1e-10 are ties, broken deterministically:

    1. fewer subdomains along non-periodic axes (smaller product of ``p_d``
       over non-periodic ``d``): vacuum is usually there;
    2. the lexicographically smallest ``(px, py, pz)`` (e.g. 4 ranks on a
       cube give ``(1, 2, 2)``, 2 ranks give ``(1, 1, 2)``).

    Otherwise ``pbc`` does not enter the cost: for a slab with a lot of
    vacuum pass the grid explicitly (``Decomposition(..., dims=...)``) if
    load balance matters more than surface.

    Raises :class:`DecompositionError` for a singular cell or ``nranks < 1``.
    """
    nranks = int(nranks)
    if nranks < 1:
        raise DecompositionError(f"number of ranks must be >= 1, got {nranks}")
    c = _as_cell(cell)
    _check_cell(c)
    p = _as_pbc(pbc)
    area = _face_areas(c)
    best = None
    best_cost = np.inf
    best_key = None
    for dims in _factorizations(nranks):
        px, py, pz = dims
        cost = area[0] / (py * pz) + area[1] / (pz * px) + area[2] / (px * py)
        nonper = int(np.prod([dims[d] for d in range(3) if not p[d]])) if (~p).any() else 1
        key = (nonper, dims)
        if best is None or cost < best_cost * (1.0 - 1e-10):
            best, best_cost, best_key = dims, cost, key
        elif cost <= best_cost * (1.0 + 1e-10) and key < best_key:
            best, best_cost, best_key = dims, min(cost, best_cost), key
    return tuple(int(v) for v in best)


# ---------------------------------------------------------------------------
# decomposition
# ---------------------------------------------------------------------------


class Decomposition:
    """Regular ``px x py x pz`` split of the cell along its fractional axes.

    Parameters
    ----------
    comm : mpi4py communicator (``MPI.COMM_WORLD``, ``MPI.COMM_SELF``, ...).
        Collective: every rank of ``comm`` must construct it with the same
        ``cell``, ``pbc`` and ``dims`` (checked; mismatch raises
        :class:`DecompositionError` on all ranks).
    cell : (3, 3) rows are lattice vectors, Å.  Must be invertible.
    pbc : bool[3].
    dims : optional ``(px, py, pz)``; default :func:`choose_grid`.

    Attributes
    ----------
    cart : the Cartesian communicator (periodic in all three directions,
        ``reorder=False`` so ``cart.rank == comm.rank``).  Non-periodic
        boundaries are handled by :attr:`exchange_neighbors` (``PROC_NULL``
        across them), not by the communicator topology.
    rank, size, dims (tuple), coords (tuple), pbc (bool[3])
    neighbors : (3, 2) int, ``neighbors[d] = (lower, upper)`` neighbour rank
        along axis ``d`` (from ``cart.Shift(d, 1)``, wraps around).
    exchange_neighbors : as ``neighbors`` but ``MPI.PROC_NULL`` where the
        neighbour lies across a non-periodic boundary.
    frac_lo, frac_hi : (3,) fractional bounds ``coords/dims``, ``(coords+1)/dims``.
    cell, inv_cell : current cell and its inverse (follow :meth:`set_cell`).
    """

    def __init__(self, comm, cell, pbc, dims=None):
        from mpi4py import MPI

        self._MPI = MPI
        self.comm = comm
        cell = _as_cell(cell)
        pbc = _as_pbc(pbc)
        size = comm.Get_size()
        # validate locally (identical input on all ranks gives identical verdicts)
        err = None
        try:
            _check_cell(cell)
            if dims is None:
                dims = choose_grid(cell, pbc, size)
            dims = tuple(int(v) for v in dims)
            if len(dims) != 3 or min(dims) < 1 or int(np.prod(dims)) != size:
                raise DecompositionError(
                    f"processor grid {dims} does not multiply to the {size} ranks of the communicator"
                )
        except DecompositionError as exc:
            err = str(exc)
        # consistency of the input across ranks (one-time, cheap)
        sig = self._signature(cell, pbc, dims if err is None else (0, 0, 0))
        flags = np.array([1 if err else 0, sig, -sig], dtype=np.int64)
        comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        if flags[0]:
            msgs = [m for m in comm.allgather(err) if m]
            raise DecompositionError(msgs[0])
        if flags[1] != -flags[2]:
            raise DecompositionError("ranks disagree on the cell, pbc or processor grid")

        self.dims = dims
        self.pbc = pbc
        self.cart = comm.Create_cart(list(dims), periods=[True, True, True], reorder=False)
        self.rank = self.cart.Get_rank()
        self.size = size
        self.coords = tuple(int(c) for c in self.cart.Get_coords(self.rank))
        nb = np.empty((3, 2), dtype=np.int64)
        for d in range(3):
            lo, hi = self.cart.Shift(d, 1)
            nb[d] = (lo, hi)
        self.neighbors = nb
        ex = nb.copy()
        for d in range(3):
            if not pbc[d]:
                if self.coords[d] == 0:
                    ex[d, 0] = MPI.PROC_NULL
                if self.coords[d] == dims[d] - 1:
                    ex[d, 1] = MPI.PROC_NULL
        self.exchange_neighbors = ex
        c = np.array(self.coords, dtype=np.float64)
        p = np.array(dims, dtype=np.float64)
        self.frac_lo = c / p
        self.frac_hi = (c + 1.0) / p
        # rank of every grid point, indexed [cx, cy, cz]
        table = np.empty(dims, dtype=np.int64)
        for cx in range(dims[0]):
            for cy in range(dims[1]):
                for cz in range(dims[2]):
                    table[cx, cy, cz] = self.cart.Get_cart_rank([cx, cy, cz])
        self._rank_table = table
        self.set_cell(cell)

    @staticmethod
    def _signature(cell, pbc, dims) -> int:
        data = np.ascontiguousarray(cell, dtype=np.float64).tobytes()
        data += np.asarray(pbc, dtype=np.uint8).tobytes() + np.asarray(dims, dtype=np.int64).tobytes()
        return int(zlib.crc32(data))

    # -- cell ------------------------------------------------------------------

    def set_cell(self, cell) -> None:
        """Follow a changed cell (NPT, cell minimisation).

        The fractional bounds stay; only the Cartesian shape changes.  Not
        collective: every rank must call it with the same cell.  Raises
        :class:`DecompositionError` for a singular cell.
        """
        c = _as_cell(cell)
        _check_cell(c)
        self.cell = c
        self.inv_cell = np.linalg.inv(c)
        self.volume = abs(float(np.linalg.det(c)))

    def heights(self) -> np.ndarray:
        """Face-to-face heights of the whole cell, ``V / |a_j x a_k|`` (Å)."""
        return self.volume / _face_areas(self.cell)

    def local_heights(self) -> np.ndarray:
        """Perpendicular thickness (Å) of this subdomain along each fractional axis.

        ``V / |a_j x a_k| / p_d``: the distance between the two subdomain
        faces ``s_d = frac_lo[d]`` and ``s_d = frac_hi[d]``.
        """
        return self.heights() / np.array(self.dims, dtype=np.float64)

    # -- coordinates and ownership ------------------------------------------------

    def to_fractional(self, positions) -> np.ndarray:
        """``s = x @ inv(cell)`` for an (n, 3) array."""
        return np.asarray(positions, dtype=np.float64).reshape(-1, 3) @ self.inv_cell

    def to_cartesian(self, frac) -> np.ndarray:
        """``x = s @ cell`` for an (n, 3) array."""
        return np.asarray(frac, dtype=np.float64).reshape(-1, 3) @ self.cell

    def owner_coords(self, frac) -> np.ndarray:
        """Grid coordinates (n, 3) of the subdomains owning fractional points ``frac``.

        ``floor(s_d * p_d)`` clipped to ``[0, p_d - 1]``: points that round-off
        left just outside [0, 1) go to the boundary subdomain.  Every rank
        evaluates this identically, so ownership is unambiguous.
        """
        s = np.asarray(frac, dtype=np.float64).reshape(-1, 3)
        p = np.array(self.dims, dtype=np.int64)
        c = np.floor(s * p).astype(np.int64)
        return np.clip(c, 0, p - 1)

    def rank_of(self, coords) -> np.ndarray:
        """Ranks of grid coordinates (n, 3) (already inside the grid)."""
        c = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
        return self._rank_table[c[:, 0], c[:, 1], c[:, 2]]

    def owner_ranks(self, positions) -> np.ndarray:
        """Ranks owning Cartesian positions assumed wrapped into the cell."""
        return self.rank_of(self.owner_coords(self.to_fractional(positions)))

    def __repr__(self) -> str:
        return (
            f"Decomposition(dims={self.dims}, rank={self.rank}, coords={self.coords}, "
            f"pbc={self.pbc.tolist()})"
        )
