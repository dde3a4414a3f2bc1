"""Neighbour lists over an extended (local + ghost) set of atoms.

The engine follows LAMMPS: the force kernel sees ``n_local`` owned atoms
followed by ghost atoms (periodic images or atoms of neighbouring MPI
subdomains).  Only local atoms get a neighbour list; forces on ghosts are
folded back onto their owners by the caller.

* :func:`periodic_images` builds the extended set for the serial case.
* :func:`build_neighbor_list` bins the extended atoms (cell list, bins >=
  cutoff, 27-bin stencil) and returns a CSR full neighbour list.
* :func:`max_displacement_exceeds` is the Verlet-skin rebuild criterion.

All lengths are in Angstrom.
"""

import numba
import numpy as np

__all__ = ["periodic_images", "build_neighbor_list", "max_displacement_exceeds"]


# ---------------------------------------------------------------------------
# periodic images (serial case, vectorised numpy, called once per evaluation)
# ---------------------------------------------------------------------------


def _complete_cell(cell, pbc):
    """Cell whose non-periodic vectors are replaced by orthonormal completions.

    Only periodic vectors make images; the others just need an invertible
    basis.  Making them orthogonal to the periodic ones also gives the
    tightest fractional margins (e.g. slab with a tilted or zero c vector).
    """
    cell = np.array(cell, dtype=np.float64).reshape(3, 3)
    per = [a for a in range(3) if pbc[a]]
    non = [a for a in range(3) if not pbc[a]]
    scale = max(float(np.abs(cell[per]).max()), 1e-300)
    for a in per:
        if np.linalg.norm(cell[a]) <= 1e-10 * scale or not np.isfinite(cell[a]).all():
            raise ValueError(f"cell vector {a} is zero along a periodic axis")
    if len(per) == 2:
        w = np.cross(cell[per[0]], cell[per[1]])
        nw = np.linalg.norm(w)
        if nw <= 1e-10 * scale**2:
            raise ValueError("periodic cell vectors are collinear")
        cell[non[0]] = w / nw
    elif len(per) == 1:
        a = cell[per[0]] / np.linalg.norm(cell[per[0]])
        e = np.eye(3)[np.argmin(np.abs(a))]
        u = e - np.dot(e, a) * a
        u /= np.linalg.norm(u)
        cell[non[0]] = u
        cell[non[1]] = np.cross(a, u)
    elif abs(np.linalg.det(cell)) <= 1e-10 * scale**3:
        raise ValueError("periodic cell is singular")
    return cell


def periodic_images(positions, cell, pbc, cutoff):
    """Original atoms followed by all periodic images needed within ``cutoff``.

    Returns ``(ext_positions (n_ext,3) float64, owner (n_ext,) int64,
    image_shift (n_ext,3) int64)``.  The first ``n`` rows are ``positions``
    unchanged (no wrapping); each appended row is ``x + shift @ cell`` with
    a non-zero integer ``shift`` (non-zero only along periodic axes) whose
    fractional coordinate lies within the fractional margin
    ``cutoff / h_j`` (``h_j`` = face-to-face height) of the fractional
    bounding box of the original atoms.  Any image within ``cutoff`` of an
    original atom is therefore included.  Cost and memory are proportional
    to the output size (works for cells much smaller than the cutoff).
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
    n = pos.shape[0]
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    cutoff = float(cutoff)
    if not cutoff >= 0.0:
        raise ValueError("cutoff must be non-negative")

    if n == 0 or not pbc.any():
        return pos.copy(), np.arange(n, dtype=np.int64), np.zeros((n, 3), np.int64)

    full = _complete_cell(cell, pbc)
    # reciprocal vectors (rows) without 2*pi: frac = pos @ recip.T
    recip = np.linalg.inv(full).T
    frac = pos @ recip.T
    # |b_j| = 1/h_j with h_j = V/|a_k x a_l|; small relative pad for round-off
    margin = cutoff * np.linalg.norm(recip, axis=1) * (1.0 + 1e-10) + 1e-10
    smin = frac.min(axis=0)
    smax = frac.max(axis=0)

    lo = np.zeros((n, 3), dtype=np.int64)
    hi = np.zeros((n, 3), dtype=np.int64)
    for a in range(3):
        if pbc[a]:
            lo[:, a] = np.ceil(smin[a] - margin[a] - frac[:, a])
            hi[:, a] = np.floor(smax[a] + margin[a] - frac[:, a])
    # shift 0 is always in range since smin <= frac <= smax
    lo = np.minimum(lo, 0)
    hi = np.maximum(hi, 0)
    cnt = hi - lo + 1
    per_atom = cnt[:, 0] * cnt[:, 1] * cnt[:, 2]  # includes the zero shift
    total = int(per_atom.sum())

    atom = np.repeat(np.arange(n, dtype=np.int64), per_atom)
    start = np.cumsum(per_atom) - per_atom
    t = np.arange(total, dtype=np.int64) - np.repeat(start, per_atom)
    c1 = cnt[atom, 1]
    c2 = cnt[atom, 2]
    shift = np.empty((total, 3), dtype=np.int64)
    shift[:, 0] = lo[atom, 0] + t // (c1 * c2)
    shift[:, 1] = lo[atom, 1] + (t // c2) % c1
    shift[:, 2] = lo[atom, 2] + t % c2

    nonzero = shift.any(axis=1)
    img_owner = atom[nonzero]
    img_shift = shift[nonzero]
    cell_p = np.where(pbc[:, None], full, 0.0)  # only periodic vectors shift
    img_pos = pos[img_owner] + img_shift.astype(np.float64) @ cell_p

    ext_positions = np.concatenate([pos, img_pos], axis=0)
    owner = np.concatenate([np.arange(n, dtype=np.int64), img_owner])
    image_shift = np.concatenate([np.zeros((n, 3), np.int64), img_shift], axis=0)
    return np.ascontiguousarray(ext_positions), owner, image_shift


# ---------------------------------------------------------------------------
# cell-list neighbour list (numba)
# ---------------------------------------------------------------------------


@numba.njit(cache=True)
def _bin_grid(x, cutoff):
    """Bin grid over the bounding box of ``x``: bins >= cutoff, total bins capped.

    The cap (~4 bins per atom) keeps memory O(N) when atoms are sparse in a
    huge box (e.g. an isolated far-away atom); it only enlarges bins.
    """
    n = x.shape[0]
    lo = np.empty(3)
    ext = np.empty(3)
    for d in range(3):
        mn = x[0, d]
        mx = x[0, d]
        for k in range(1, n):
            v = x[k, d]
            if v < mn:
                mn = v
            if v > mx:
                mx = v
        lo[d] = mn
        ext[d] = mx - mn
    nb = np.ones(3, dtype=np.int64)
    for d in range(3):
        if cutoff > 0.0:
            q = ext[d] / cutoff
            if q > 1.0e6:
                q = 1.0e6
            if q >= 1.0:
                nb[d] = np.int64(q)
    limit = 4.0 * n + 27.0
    while float(nb[0]) * float(nb[1]) * float(nb[2]) > limit:
        d = 0
        if nb[1] > nb[d]:
            d = 1
        if nb[2] > nb[d]:
            d = 2
        nb[d] = max(np.int64(1), nb[d] // 2)
    inv = np.zeros(3)
    for d in range(3):
        if ext[d] > 0.0:
            inv[d] = nb[d] / ext[d]
    return lo, inv, nb


@numba.njit(cache=True)
def _bin_index(v, lo, inv, nb):
    """Bin index of coordinate ``v`` along one axis, clamped to the grid."""
    b = np.int64((v - lo) * inv)
    if b < 0:
        b = 0
    elif b >= nb:
        b = nb - 1
    return b


@numba.njit(cache=True)
def _sort_row(a, tmp, runs):
    """Sort int32 ``a`` ascending in place (natural merge sort).

    A row is the concatenation of a few ascending runs (bins are filled in
    index order and atom numbering is usually spatially correlated), so
    merging the runs is cheaper than a generic quicksort.  ``tmp`` and
    ``runs`` are scratch arrays of length >= len(a) and >= len(a) + 1.
    """
    n = a.shape[0]
    nr = 0
    runs[0] = 0
    for k in range(1, n):
        if a[k] < a[k - 1]:
            nr += 1
            runs[nr] = k
    nr += 1
    runs[nr] = n
    if nr == 1:
        return
    src = a
    dst = tmp
    in_tmp = False
    while nr > 1:
        w = 0
        k = 0
        while k < nr:
            lo = runs[k]
            if k + 1 < nr:
                mid = runs[k + 1]
                hi = runs[k + 2]
                u = lo
                v = mid
                o = lo
                while u < mid and v < hi:  # branch-free merge step
                    su = src[u]
                    sv = src[v]
                    tv = sv < su
                    dst[o] = sv if tv else su
                    v += np.int64(tv)
                    u += 1 - np.int64(tv)
                    o += 1
                while u < mid:
                    dst[o] = src[u]
                    u += 1
                    o += 1
                while v < hi:
                    dst[o] = src[v]
                    v += 1
                    o += 1
                k += 2
            else:
                for o in range(lo, runs[k + 1]):
                    dst[o] = src[o]
                k += 1
            runs[w] = lo
            w += 1
        runs[w] = n
        nr = w
        src, dst = dst, src
        in_tmp = not in_tmp
    if in_tmp:
        for k in range(n):  # explicit loops: slice assignment compiles slowly
            a[k] = src[k]


@numba.njit(cache=True)
def build_neighbor_list(ext_positions, n_local, cutoff):
    """Full CSR neighbour list of the local atoms over the extended set.

    Neighbours of local atom ``i < n_local`` are
    ``neighbors[offsets[i]:offsets[i+1]]``: every index ``j != i`` of
    ``ext_positions`` with ``|x_j - x_i| < cutoff``, sorted ascending.
    Returns ``(offsets (n_local+1,) int64, neighbors (n_pairs,) int32)``.

    O(N): counting sort of all atoms into bins of size >= cutoff over their
    bounding box (bin_count, bin_start, atoms_sorted), then a 27-bin stencil
    scan done as 9 contiguous runs of 3 bins.  Single pass into a growing
    buffer (initial size from the mean density, grown x1.5 when a run might
    not fit, trimmed at the end), so each distance is computed once; the
    candidate compaction is branch-free (always write, advance if kept).
    """
    x = ext_positions
    n_ext = x.shape[0]
    if n_ext > 0 and x.shape[1] != 3:
        raise ValueError("ext_positions must have shape (n, 3)")
    if n_local < 0 or n_local > n_ext:
        raise ValueError("n_local must be in [0, len(ext_positions)]")
    if not cutoff > 0.0:
        raise ValueError("cutoff must be positive")
    if n_ext >= 2147483647:
        raise ValueError("too many atoms for int32 neighbour indices")

    offsets = np.zeros(n_local + 1, dtype=np.int64)
    if n_local == 0:
        return offsets, np.empty(0, dtype=np.int32)
    for k in range(n_ext):
        for d in range(3):
            if not np.isfinite(x[k, d]):
                raise ValueError("non-finite position")

    lo, inv, nb = _bin_grid(x, cutoff)
    nbx, nby, nbz = nb[0], nb[1], nb[2]
    nbins = nbx * nby * nbz

    # counting sort of all extended atoms into bins (stable: ascending index)
    atom_bin = np.empty(n_ext, dtype=np.int64)
    bin_count = np.zeros(nbins, dtype=np.int64)
    for k in range(n_ext):
        bx = _bin_index(x[k, 0], lo[0], inv[0], nbx)
        by = _bin_index(x[k, 1], lo[1], inv[1], nby)
        bz = _bin_index(x[k, 2], lo[2], inv[2], nbz)
        b = (bx * nby + by) * nbz + bz
        atom_bin[k] = b
        bin_count[b] += 1
    bin_start = np.zeros(nbins + 1, dtype=np.int64)
    for b in range(nbins):
        bin_start[b + 1] = bin_start[b] + bin_count[b]
    fill = bin_start[:-1].copy()
    atoms_sorted = np.empty(n_ext, dtype=np.int32)
    spos = np.empty((n_ext, 3))  # positions in bin order, for locality
    for k in range(n_ext):
        b = atom_bin[k]
        s = fill[b]
        fill[b] = s + 1
        atoms_sorted[s] = k
        spos[s, 0] = x[k, 0]
        spos[s, 1] = x[k, 1]
        spos[s, 2] = x[k, 2]

    # initial buffer from the mean density of the bounding box
    vol = 1.0
    for d in range(3):
        span = nb[d] / inv[d] if inv[d] > 0.0 else 0.0
        vol *= max(span, cutoff)
    est = n_ext / vol * (4.0 / 3.0) * np.pi * cutoff**3 * 1.2 + 8.0
    cap = np.int64(min(est * n_local, float(n_local) * n_ext)) + 64
    buf = np.empty(cap, dtype=np.int32)
    tmp = np.empty(256, dtype=np.int32)
    runs = np.empty(257, dtype=np.int64)

    rc2 = cutoff * cutoff
    p = 0
    for i in range(n_local):
        xi0 = x[i, 0]
        xi1 = x[i, 1]
        xi2 = x[i, 2]
        bi = atom_bin[i]
        bz = bi % nbz
        by = (bi // nbz) % nby
        bx = bi // (nbz * nby)
        z0 = max(bz - 1, 0)
        z1 = min(bz + 1, nbz - 1)
        start = p
        for ix in range(max(bx - 1, 0), min(bx + 2, nbx)):
            for iy in range(max(by - 1, 0), min(by + 2, nby)):
                row = (ix * nby + iy) * nbz
                s0 = bin_start[row + z0]
                s1 = bin_start[row + z1 + 1]
                if p + (s1 - s0) > cap:
                    cap = max(cap + cap // 2, p + (s1 - s0)) + 64
                    nbuf = np.empty(cap, dtype=np.int32)
                    for k in range(p):
                        nbuf[k] = buf[k]
                    buf = nbuf
                for s in range(s0, s1):
                    dx = spos[s, 0] - xi0
                    dy = spos[s, 1] - xi1
                    dz = spos[s, 2] - xi2
                    j = atoms_sorted[s]
                    buf[p] = j
                    p += np.int64((dx * dx + dy * dy + dz * dz < rc2) & (j != i))
        m = p - start
        if m > 1:
            if m > tmp.shape[0]:
                tmp = np.empty(2 * m, dtype=np.int32)
                runs = np.empty(2 * m + 1, dtype=np.int64)
            _sort_row(buf[start:p], tmp, runs)
        offsets[i + 1] = p
    return offsets, buf[:p].copy()


@numba.njit(cache=True)
def max_displacement_exceeds(positions, reference_positions, half_skin):
    """True if any atom moved more than ``half_skin`` since the last build.

    Verlet-skin criterion: with a list built at ``cutoff + skin`` no pair can
    enter the cutoff before some atom has moved more than ``skin / 2``.
    """
    n = positions.shape[0]
    if reference_positions.shape[0] != n:
        raise ValueError("positions and reference_positions differ in length")
    lim2 = half_skin * half_skin
    for k in range(n):
        dx = positions[k, 0] - reference_positions[k, 0]
        dy = positions[k, 1] - reference_positions[k, 1]
        dz = positions[k, 2] - reference_positions[k, 2]
        if dx * dx + dy * dy + dz * dz > lim2:
            return True
    return False
