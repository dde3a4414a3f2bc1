"""Serial tests of acemd.parallel: grid choice, decomposition geometry, halo on one rank.

Everything runs on ``MPI.COMM_SELF`` (so the file also works under mpiexec,
where every rank runs it independently).  Ghosts are checked against an
independent brute-force enumeration of periodic images.
"""

import itertools

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.parallel import (
    AtomLeftBoxError,
    AtomOutsideSubdomainError,
    Decomposition,
    DecompositionError,
    Halo,
    LostAtomsError,
    cell_heights,
    choose_grid,
)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def surface_cost(cell, dims):
    a = np.asarray(cell, dtype=float)
    area = [np.linalg.norm(np.cross(a[(d + 1) % 3], a[(d + 2) % 3])) for d in range(3)]
    return sum(area[d] / (dims[(d + 1) % 3] * dims[(d + 2) % 3]) for d in range(3))


def all_grids(n):
    return [(i, j, n // (i * j)) for i in range(1, n + 1) for j in range(1, n + 1) if n % (i * j) == 0]


def brute_region(pos, ids, cell, pbc, lo, hi, cutoff, scale):
    """Set of (id, n0, n1, n2) images with fractional coords in [lo - c, hi + c] (c = scale * cutoff / H)."""
    cell = np.asarray(cell, dtype=float)
    inv = np.linalg.inv(cell)
    h = cell_heights(cell)
    c = scale * cutoff / h
    s = pos @ inv
    out = set()
    ranges = []
    for d in range(3):
        if pbc[d]:
            k = int(np.ceil(c[d])) + 2
            ranges.append(range(-k, k + 1))
        else:
            ranges.append(range(0, 1))
    for n in itertools.product(*ranges):
        si = s + np.array(n, dtype=float)
        ok = ((si >= lo - c) & (si <= hi + c)).all(axis=1)
        for i in np.flatnonzero(ok):
            out.add((int(ids[i]), *n))
    return out


def euclid_images(pos_all, ids_all, local_pos, cell, pbc, cutoff):
    """(id, n) of images (of all atoms) within ``cutoff`` of any local atom, excluding n = 0 self."""
    cell = np.asarray(cell, dtype=float)
    h = cell_heights(cell)
    ranges = []
    for d in range(3):
        k = int(np.ceil(cutoff / h[d])) + 2 if pbc[d] else 0
        ranges.append(range(-k, k + 1))
    out = set()
    for n in itertools.product(*ranges):
        img = pos_all + np.array(n, dtype=float) @ cell
        dist = np.linalg.norm(img[:, None, :] - local_pos[None, :, :], axis=2)
        close = (dist < cutoff).any(axis=1)
        for i in np.flatnonzero(close):
            out.add((int(ids_all[i]), *n))
    return out


def ghost_keys(halo, ext_ids):
    keys = [(int(i), *map(int, s)) for i, s in zip(ext_ids[halo.n_local :], halo.image_shifts[halo.n_local :])]
    assert len(keys) == len(set(keys)), "duplicate ghosts"
    return set(keys)


def check_ghosts(halo, ext_pos, ext_ids, all_pos, all_ids, local_ids, cutoff):
    """Compare this rank's ghosts with brute force (all_* are wrapped global positions)."""
    dec = halo.decomp
    cell, pbc = dec.cell, dec.pbc
    got = ghost_keys(halo, ext_ids)
    own = {(int(i), 0, 0, 0) for i in local_ids}
    inner = brute_region(all_pos, all_ids, cell, pbc, dec.frac_lo, dec.frac_hi, cutoff, 1 - 1e-7) - own
    outer = brute_region(all_pos, all_ids, cell, pbc, dec.frac_lo, dec.frac_hi, cutoff, 1 + 1e-7) - own
    assert inner <= got, f"missing ghosts: {sorted(inner - got)[:10]}"
    assert got <= outer, f"ghosts outside the region: {sorted(got - outer)[:10]}"
    local_pos = ext_pos[: halo.n_local]
    need = euclid_images(all_pos, all_ids, local_pos, cell, pbc, cutoff) - own
    assert need <= got
    # coordinates: owner position + shift @ cell
    by_id = {int(i): p for i, p in zip(all_ids, all_pos)}
    ref = np.array([by_id[int(i)] for i in ext_ids]) + halo.image_shifts @ cell
    np.testing.assert_allclose(ext_pos, ref, atol=1e-9, rtol=0)


def serial_halo(cell, pbc):
    return Halo(Decomposition(MPI.COMM_SELF, cell, pbc))


def setup_serial(cell, pbc, pos, cutoff, extra=None):
    halo = serial_halo(cell, pbc)
    n = len(pos)
    arrays = {"positions": pos, "ids": np.arange(n, dtype=np.int64) * 3 + 5, "image": np.zeros((n, 3), np.int64)}
    arrays.update(extra or {})
    atoms = halo.distribute(arrays)
    ext_pos, ext = halo.build_ghosts(atoms["positions"], cutoff, {"ids": atoms["ids"]})
    return halo, atoms, ext_pos, ext


TRICLINIC = np.array([[5.1, 0.0, 0.0], [1.3, 4.7, 0.0], [0.8, -0.9, 5.4]])


def rattled_triclinic(seed=3, n=9):
    rng = np.random.default_rng(seed)
    s = rng.random((n, 3)) * 2.0 - 0.5  # also outside the cell: distribute wraps
    return TRICLINIC.copy(), s @ TRICLINIC


# ---------------------------------------------------------------------------
# grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 9))
def test_choose_grid_cube_minimal(n):
    cell = np.eye(3) * 10.0
    dims = choose_grid(cell, [True] * 3, n)
    assert np.prod(dims) == n
    best = min(surface_cost(cell, g) for g in all_grids(n))
    assert surface_cost(cell, dims) == pytest.approx(best, rel=1e-12)


def test_choose_grid_cube_values():
    cube = np.eye(3) * 7.0
    assert choose_grid(cube, [True] * 3, 1) == (1, 1, 1)
    assert choose_grid(cube, [True] * 3, 2) == (1, 1, 2)
    assert choose_grid(cube, [True] * 3, 4) == (1, 2, 2)
    assert choose_grid(cube, [True] * 3, 8) == (2, 2, 2)
    assert sorted(choose_grid(cube, [True] * 3, 6)) == [1, 2, 3]
    assert choose_grid(cube, [True] * 3, 7) == (1, 1, 7)


def test_choose_grid_long_thin_cell():
    long_x = np.diag([40.0, 10.0, 10.0])
    assert choose_grid(long_x, [True] * 3, 2) == (2, 1, 1)
    assert choose_grid(long_x, [True] * 3, 4) == (4, 1, 1)
    long_y = np.diag([8.0, 50.0, 9.0])
    assert choose_grid(long_y, [True] * 3, 3) == (1, 3, 1)
    # triclinic long axis (c tilted)
    tri = np.array([[8.0, 0.0, 0.0], [2.0, 8.0, 0.0], [3.0, 1.0, 40.0]])
    assert choose_grid(tri, [True] * 3, 4) == (1, 1, 4)
    for n in range(1, 9):
        dims = choose_grid(tri, [True] * 3, n)
        best = min(surface_cost(tri, g) for g in all_grids(n))
        assert surface_cost(tri, dims) == pytest.approx(best, rel=1e-12)


def test_choose_grid_slab():
    slab = np.diag([20.0, 20.0, 6.0])
    assert choose_grid(slab, [True, True, False], 4) == (2, 2, 1)
    assert choose_grid(slab, [True, True, False], 2) in [(1, 2, 1), (2, 1, 1)]
    # tie on a cube: do not split the non-periodic axis
    cube = np.eye(3) * 10.0
    dims = choose_grid(cube, [True, True, False], 2)
    assert dims[2] == 1
    assert choose_grid(cube, [False, True, True], 2) == (1, 1, 2)


def test_choose_grid_errors():
    with pytest.raises(DecompositionError):
        choose_grid(np.zeros((3, 3)), [True] * 3, 2)
    with pytest.raises(DecompositionError):
        choose_grid(np.diag([5.0, 5.0, 0.0]), [True, True, False], 2)
    with pytest.raises(DecompositionError):
        choose_grid(np.eye(3), [True] * 3, 0)


# ---------------------------------------------------------------------------
# decomposition geometry
# ---------------------------------------------------------------------------


def test_decomposition_serial_geometry():
    dec = Decomposition(MPI.COMM_SELF, TRICLINIC, [True, True, True])
    assert dec.dims == (1, 1, 1) and dec.coords == (0, 0, 0) and dec.rank == 0
    np.testing.assert_array_equal(dec.frac_lo, 0.0)
    np.testing.assert_array_equal(dec.frac_hi, 1.0)
    vol = abs(np.linalg.det(TRICLINIC))
    for d in range(3):
        j, k = (d + 1) % 3, (d + 2) % 3
        h = vol / np.linalg.norm(np.cross(TRICLINIC[j], TRICLINIC[k]))
        assert dec.local_heights()[d] == pytest.approx(h)
        # height = distance of the plane s_d = 1 from the origin
        normal = np.cross(TRICLINIC[j], TRICLINIC[k])
        assert abs(TRICLINIC[d] @ normal) / np.linalg.norm(normal) == pytest.approx(h)
    np.testing.assert_array_equal(dec.neighbors, 0)
    assert (dec.exchange_neighbors == 0).all()
    # NPT: the cell changes, fractional bounds stay
    dec.set_cell(TRICLINIC * 1.1)
    np.testing.assert_allclose(dec.local_heights(), 1.1 * cell_heights(TRICLINIC))
    np.testing.assert_array_equal(dec.frac_hi, 1.0)
    with pytest.raises(DecompositionError):
        dec.set_cell(np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]))


def test_decomposition_slab_neighbors_and_errors():
    dec = Decomposition(MPI.COMM_SELF, np.diag([5.0, 5.0, 20.0]), [True, True, False])
    assert dec.exchange_neighbors[2, 0] == MPI.PROC_NULL
    assert dec.exchange_neighbors[2, 1] == MPI.PROC_NULL
    assert dec.exchange_neighbors[0, 0] == 0
    with pytest.raises(DecompositionError, match="does not multiply"):
        Decomposition(MPI.COMM_SELF, np.eye(3) * 5, [True] * 3, dims=(1, 2, 1))
    with pytest.raises(DecompositionError):
        Decomposition(MPI.COMM_SELF, np.zeros((3, 3)), [True] * 3)


# ---------------------------------------------------------------------------
# serial halo: ghosts against brute force
# ---------------------------------------------------------------------------


def test_ghosts_fcc_primitive_one_atom():
    at = bulk("Cu", "fcc", a=3.6)  # primitive cell, 1 atom, heights ~2.08 A
    cell = at.cell.array
    cutoff = 7.4
    halo, atoms, ext_pos, ext = setup_serial(cell, [True] * 3, at.positions, cutoff)
    assert halo.n_local == 1
    assert min(halo.swaps_per_dim) >= 4  # multi-swap: cutoff is > 3 cell heights
    assert halo.ghost_count == ext_pos.shape[0] - 1 > 200
    check_ghosts(halo, ext_pos, ext["ids"], atoms["positions"], atoms["ids"], atoms["ids"], cutoff)
    # number of neighbours within the cutoff counted from the ghosts = fcc shells
    d = np.linalg.norm(ext_pos[1:] - ext_pos[0], axis=1)
    ref = sorted(np.linalg.norm(np.array(n) @ cell) for n in itertools.product(range(-6, 7), repeat=3))
    ref = np.array(ref[1:])
    assert np.sum(d < cutoff) == np.sum(ref < cutoff)


@pytest.mark.parametrize("cutoff", [2.0, 4.5, 11.0])
def test_ghosts_rattled_triclinic(cutoff):
    cell, pos = rattled_triclinic()
    halo, atoms, ext_pos, ext = setup_serial(cell, [True] * 3, pos, cutoff)
    assert halo.n_local == 9
    s = atoms["positions"] @ np.linalg.inv(cell)
    assert ((s >= 0) & (s < 1)).all()
    # unwrapped positions preserved by the image counters
    np.testing.assert_allclose(atoms["positions"] + atoms["image"] @ cell, pos[(atoms["ids"] - 5) // 3], atol=1e-12)
    check_ghosts(halo, ext_pos, ext["ids"], atoms["positions"], atoms["ids"], atoms["ids"], cutoff)


@pytest.mark.parametrize("pbc", [(True, True, False), (True, False, True), (False, False, False)])
def test_ghosts_slab_and_open(pbc):
    rng = np.random.default_rng(7)
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.3, 0.2, 12.0]])
    s = rng.random((7, 3))
    for d in range(3):
        if not pbc[d]:
            s[:, d] = 0.3 + 0.4 * s[:, d]
    pos = s @ cell
    cutoff = 6.0
    halo, atoms, ext_pos, ext = setup_serial(cell, pbc, pos, cutoff)
    for d in range(3):
        if not pbc[d]:
            assert halo.swaps_per_dim[d] == 0
            assert (halo.image_shifts[:, d] == 0).all()
    check_ghosts(halo, ext_pos, ext["ids"], atoms["positions"], atoms["ids"], atoms["ids"], cutoff)
    if not any(pbc):
        assert halo.ghost_count == 0


def test_forward_follows_positions_and_cell():
    cell, pos = rattled_triclinic(seed=11)
    halo, atoms, ext_pos, ext = setup_serial(cell, [True] * 3, pos, 4.0)
    owner = {int(i): k for k, i in enumerate(atoms["ids"])}
    own_idx = np.array([owner[int(i)] for i in ext["ids"]])
    rng = np.random.default_rng(1)
    new = atoms["positions"] + rng.normal(scale=0.05, size=atoms["positions"].shape)
    fwd = halo.forward(new)
    np.testing.assert_allclose(fwd, new[own_idx] + halo.image_shifts @ cell, atol=1e-12)
    np.testing.assert_array_equal(fwd[: halo.n_local], new)
    # NPT-like: scale cell and coordinates, images follow the current cell
    cell2 = cell @ np.diag([1.03, 0.98, 1.01])
    new2 = new @ np.linalg.inv(cell) @ cell2
    halo.decomp.set_cell(cell2)
    fwd2 = halo.forward(new2)
    np.testing.assert_allclose(fwd2, new2[own_idx] + halo.image_shifts @ cell2, atol=1e-12)
    np.testing.assert_allclose(halo.ghost_shifts, halo.image_shifts[halo.n_local :] @ cell2)
    # forward_array: any dtype / shape, no shift
    vel = rng.normal(size=(halo.n_local, 3))
    np.testing.assert_array_equal(halo.forward_array(vel), vel[own_idx])
    spc = np.arange(halo.n_local, dtype=np.int32) % 3
    np.testing.assert_array_equal(halo.forward_array(spc), spc[own_idx])
    out = np.empty_like(fwd2)
    assert halo.forward(new2, out=out) is out


def test_reverse_sums_to_owners():
    at = bulk("Cu", "fcc", a=3.6)
    halo, atoms, ext_pos, ext = setup_serial(at.cell.array, [True] * 3, at.positions, 7.4)
    rng = np.random.default_rng(5)
    for shape in [(), (3,), (3, 3)]:
        v = rng.normal(size=(halo.n_ext,) + shape)
        expected = v.sum(axis=0)[None]
        np.testing.assert_allclose(halo.reverse(v), expected, rtol=1e-12, atol=1e-12)
    cell, pos = rattled_triclinic(seed=2)
    frac = pos @ np.linalg.inv(cell)
    frac[:, 1] = 0.1 + 0.8 * (frac[:, 1] % 1.0)  # inside the box along the open axis
    halo, atoms, ext_pos, ext = setup_serial(cell, [True, False, True], frac @ cell, 5.0)
    owner = {int(i): k for k, i in enumerate(atoms["ids"])}
    own_idx = np.array([owner[int(i)] for i in ext["ids"]])
    for shape in [(3,), (3, 3)]:
        v = rng.normal(size=(halo.n_ext,) + shape)
        expected = np.zeros((halo.n_local,) + shape)
        np.add.at(expected, own_idx, v)
        got = halo.reverse(v)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    v_int = np.ones(halo.n_ext, dtype=np.int64)
    counts = np.bincount(own_idx, minlength=halo.n_local)
    np.testing.assert_array_equal(halo.reverse(v_int), counts)


def test_pair_forces_newton_third_law_serial():
    """Half-pair forces on local and ghost atoms, reversed, equal a brute-force sum."""
    cell, pos = rattled_triclinic(seed=9, n=12)
    rc = 3.5
    halo, atoms, ext_pos, ext = setup_serial(cell, [True] * 3, pos, rc)
    f_ext = pair_forces_half(ext_pos, halo.n_local, rc)
    f = halo.reverse(f_ext)
    ref = brute_pair_forces(atoms["positions"], cell, rc)
    np.testing.assert_allclose(f, ref, atol=1e-12)


def pair_force(r):
    """Smooth short-range pair force magnitude / r (arbitrary)."""
    return np.exp(-r) * (1.0 - r / 3.5) ** 2


def pair_forces_half(ext_pos, n_local, rc):
    f = np.zeros_like(ext_pos)
    for i in range(n_local):
        rij = ext_pos - ext_pos[i]
        r = np.linalg.norm(rij, axis=1)
        m = (r > 0) & (r < rc)
        fij = (pair_force(r[m]) / r[m])[:, None] * rij[m]
        f[i] += 0.5 * fij.sum(axis=0)
        f[np.flatnonzero(m)] -= 0.5 * fij
    return f


def brute_pair_forces(pos, cell, rc):
    n = len(pos)
    h = cell_heights(cell)
    k = [int(np.ceil(rc / h[d])) + 1 for d in range(3)]
    f = np.zeros((n, 3))
    for sh in itertools.product(*[range(-kk, kk + 1) for kk in k]):
        img = pos + np.array(sh, dtype=float) @ cell
        rij = img[None, :, :] - pos[:, None, :]
        r = np.linalg.norm(rij, axis=2)
        m = (r > 0) & (r < rc)
        w = np.where(m, pair_force(np.where(m, r, 1.0)) / np.where(m, r, 1.0), 0.0)
        f += (w[:, :, None] * rij).sum(axis=1)
    return f


# ---------------------------------------------------------------------------
# serial migrate / wrap / errors
# ---------------------------------------------------------------------------


def test_migrate_serial_wraps_and_keeps_order():
    cell, pos = rattled_triclinic(seed=4)
    halo = serial_halo(cell, [True] * 3)
    n = len(pos)
    atoms = halo.distribute({"positions": pos, "ids": np.arange(n), "image": np.zeros((n, 3), np.int64)})
    unwrapped = atoms["positions"] + atoms["image"] @ cell
    disp = np.random.default_rng(0).normal(scale=3.0, size=(n, 3))
    moved = dict(atoms, positions=atoms["positions"] + disp)
    out = halo.migrate(moved)
    np.testing.assert_array_equal(out["ids"], atoms["ids"])
    s = out["positions"] @ np.linalg.inv(cell)
    assert ((s >= 0) & (s < 1)).all()
    np.testing.assert_allclose(out["positions"] + out["image"] @ cell, unwrapped + disp, atol=1e-12)
    assert halo.n_total == n
    with pytest.raises(RuntimeError, match="build_ghosts"):
        halo.forward(out["positions"])


def test_wrap_positions_exact_for_inside_atoms():
    cell, pos = rattled_triclinic(seed=8)
    halo = serial_halo(cell, [True] * 3)
    p, img = halo.wrap_positions(pos)
    inside = ((pos @ np.linalg.inv(cell) >= 0) & (pos @ np.linalg.inv(cell) < 1)).all(axis=1)
    np.testing.assert_array_equal(p[inside], pos[inside])
    np.testing.assert_allclose(p + img @ cell, pos, atol=1e-12)


def test_errors_serial():
    cell = np.diag([5.0, 5.0, 10.0])
    halo = serial_halo(cell, [True, True, False])
    pos = np.array([[1.0, 1.0, 5.0], [2.0, 2.0, 10.5]])
    with pytest.raises(AtomLeftBoxError, match=r"id 42 along axis c") as info:
        halo.wrap_positions(pos, ids=[41, 42])
    assert info.value.atom_ids == [42] and info.value.axes == [2]
    with pytest.raises(AtomLeftBoxError):
        halo.distribute({"positions": pos, "ids": np.array([41, 42])})
    ok = halo.distribute({"positions": pos[:1], "ids": np.array([41])})
    with pytest.raises(AtomLeftBoxError):
        halo.migrate({"positions": ok["positions"] - [0, 0, 6.0], "ids": ok["ids"]})
    with pytest.raises(LostAtomsError, match="non-finite"):
        halo.migrate({"positions": np.full((1, 3), np.nan), "ids": ok["ids"]})
    with pytest.raises(LostAtomsError, match="expected 1") as info:
        halo.migrate({"positions": np.zeros((0, 3)), "ids": np.zeros(0, np.int64)})
    assert info.value.expected == 1 and info.value.found == 0
    assert halo.migrate(ok, n_total=1)["positions"].shape == (1, 3)
    with pytest.raises(AtomOutsideSubdomainError, match="migrate"):
        halo.build_ghosts(np.array([[7.0, 1.0, 1.0]]), 3.0)
    with pytest.raises(ValueError):
        halo.build_ghosts(ok["positions"], -1.0)
    with pytest.raises(ValueError):
        halo.build_ghosts(ok["positions"], 3.0, {"ids": np.arange(2)})


def test_zero_cutoff_and_empty():
    halo = serial_halo(np.eye(3) * 4.0, [True] * 3)
    atoms = halo.distribute({"positions": np.zeros((0, 3))})
    ext_pos, ext = halo.build_ghosts(atoms["positions"], 5.0)
    assert ext_pos.shape == (0, 3) and halo.ghost_count == 0
    assert halo.reverse(np.zeros((0, 3))).shape == (0, 3)
    atoms = halo.distribute({"positions": np.ones((2, 3))})
    ext_pos, _ = halo.build_ghosts(atoms["positions"], 0.0)
    assert halo.ghost_count == 0 and ext_pos.shape == (2, 3)
