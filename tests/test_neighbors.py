"""Tests for acemd.neighbors: periodic images + CSR cell-list neighbour list.

References: an independent brute-force O(N^2) search over explicit lattice
shifts (numpy) and ase.neighborlist.neighbor_list.
"""

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.neighborlist import neighbor_list

from acemd.neighbors import (
    build_neighbor_list,
    max_displacement_exceeds,
    periodic_images,
)

DECIMALS = 6


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _canonical(i, j, d):
    """Sorted integer array of (i, j, rounded displacement) rows (a multiset)."""
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    d = np.round(np.asarray(d, dtype=np.float64).reshape(-1, 3) * 10**DECIMALS)
    rows = np.column_stack([i, j, d.astype(np.int64)])
    if len(rows) == 0:
        return rows
    order = np.lexsort(rows.T[::-1])
    return rows[order]


def _ours(positions, cell, pbc, cutoff):
    """(i, owner(j), D) from periodic_images + build_neighbor_list, with checks."""
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    ext, owner, shift = periodic_images(positions, cell, pbc, cutoff)
    assert ext.dtype == np.float64 and ext.shape[1] == 3
    assert owner.dtype == np.int64 and shift.dtype == np.int64
    # first n rows are the atoms exactly as given; images carry their shift
    assert np.array_equal(ext[:n], positions)
    assert np.array_equal(owner[:n], np.arange(n))
    assert not shift[:n].any()
    assert shift[n:].any(axis=1).all()
    assert not shift[:, ~np.broadcast_to(np.asarray(pbc, bool), (3,))].any()
    if len(ext) > n:
        expect = positions[owner] + shift @ np.asarray(cell, dtype=np.float64)
        np.testing.assert_allclose(ext, expect, rtol=0, atol=1e-9)

    offsets, nbrs = build_neighbor_list(ext, n, float(cutoff))
    _check_csr(offsets, nbrs, n, len(ext))
    i = np.repeat(np.arange(n), np.diff(offsets))
    j = nbrs.astype(np.int64)
    d = ext[j] - ext[i]
    assert np.all(np.linalg.norm(d, axis=1) < cutoff)
    return i, owner[j], d


def _check_csr(offsets, nbrs, n_local, n_ext):
    assert offsets.dtype == np.int64 and nbrs.dtype == np.int32
    assert offsets.shape == (n_local + 1,)
    assert offsets[0] == 0 and offsets[-1] == len(nbrs)
    assert np.all(np.diff(offsets) >= 0)
    for i in range(n_local):
        row = nbrs[offsets[i] : offsets[i + 1]]
        assert np.all(np.diff(row) > 0), "row not strictly ascending"
        assert i not in row
        assert np.all((row >= 0) & (row < n_ext))


def _brute(positions, cell, pbc, cutoff):
    """O(N^2) reference over every lattice shift that could matter."""
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, bool), (3,))
    ranges = []
    for a in range(3):
        if not pbc[a]:
            ranges.append([0])
            continue
        b, c = cell[(a + 1) % 3], cell[(a + 2) % 3]
        normal = np.cross(b, c)
        height = abs(np.dot(cell[a], normal)) / np.linalg.norm(normal)
        # projected extent of the atoms along the face normal + cutoff
        proj = positions @ normal / np.linalg.norm(normal)
        nmax = int(np.ceil((cutoff + np.ptp(proj)) / height)) + 1
        ranges.append(range(-nmax, nmax + 1))
    ii, jj, dd = [], [], []
    n = len(positions)
    for s in itertools.product(*ranges):
        t = np.asarray(s, dtype=np.float64) @ cell
        d = positions[None, :, :] + t - positions[:, None, :]
        r = np.linalg.norm(d, axis=2)
        mask = r < cutoff
        if not any(s):
            mask &= ~np.eye(n, dtype=bool)
        i, j = np.nonzero(mask)
        ii.append(i)
        jj.append(j)
        dd.append(d[i, j])
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)


def _ase(atoms, cutoff):
    i, j, d = neighbor_list("ijD", atoms, cutoff)
    return i, j, d


def _assert_same(a, b):
    ca, cb = _canonical(*a), _canonical(*b)
    assert ca.shape == cb.shape, (ca.shape, cb.shape)
    assert np.array_equal(ca, cb)


def _check_all(atoms, cutoff):
    ours = _ours(atoms.positions, atoms.cell[:], atoms.pbc, cutoff)
    _assert_same(ours, _brute(atoms.positions, atoms.cell[:], atoms.pbc, cutoff))
    _assert_same(ours, _ase(atoms, cutoff))
    return ours


# ---------------------------------------------------------------------------
# systems
# ---------------------------------------------------------------------------


def _cu_conventional():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=1)
    return atoms


def _triclinic():
    rng = np.random.default_rng(7)
    cell = np.array([[4.2, 0.0, 0.0], [3.6, 3.1, 0.0], [-3.0, 2.5, 3.4]])
    return Atoms("Cu9", scaled_positions=rng.random((9, 3)), cell=cell, pbc=True)


def _slab():
    atoms = fcc111("Cu", size=(3, 3, 4), a=3.61, vacuum=6.0)
    atoms.rattle(0.05, seed=3)
    atoms.pbc = (True, True, False)
    return atoms


def _cluster():
    atoms = Icosahedron("Cu", 2)
    atoms.rattle(0.02, seed=5)
    atoms.cell = np.zeros((3, 3))
    atoms.pbc = False
    return atoms


# ---------------------------------------------------------------------------
# tests against references
# ---------------------------------------------------------------------------


def test_fcc_cu_conventional_rattled():
    atoms = _cu_conventional()
    i, _, _ = _check_all(atoms, 7.4)
    assert np.bincount(i).min() > 100


def test_strongly_triclinic_cell():
    _check_all(_triclinic(), 6.0)


def test_primitive_fcc_cell_smaller_than_cutoff():
    atoms = bulk("Cu", "fcc", a=3.61)  # 1 atom, face-to-face height ~2.08 A
    ext, owner, _ = periodic_images(atoms.positions, atoms.cell[:], atoms.pbc, 7.4)
    assert len(ext) > 300 and np.all(owner == 0)
    i, _, _ = _check_all(atoms, 7.4)
    # fcc shells up to 7.4 A: 12+6+24+12+24+8+48+6
    assert len(i) == 140


def test_slab_with_vacuum():
    atoms = _slab()
    _, _, shift = periodic_images(atoms.positions, atoms.cell[:], atoms.pbc, 7.4)
    assert not shift[:, 2].any()
    _check_all(atoms, 7.4)


def test_slab_with_zero_nonperiodic_cell_vector():
    atoms = _slab()
    cell = atoms.cell[:].copy()
    cell[2] = 0.0
    ref = _ours(atoms.positions, atoms.cell[:], atoms.pbc, 7.4)
    got = _ours(atoms.positions, cell, atoms.pbc, 7.4)
    _assert_same(got, ref)


def test_cluster_zero_cell():
    atoms = _cluster()
    ext, _, _ = periodic_images(atoms.positions, atoms.cell[:], atoms.pbc, 7.4)
    assert len(ext) == 13
    _check_all(atoms, 2.8)
    i, _, _ = _check_all(atoms, 7.4)  # all atoms in a single bin
    assert len(i) == 13 * 12


def test_atom_without_neighbours():
    atoms = _cluster()
    atoms += Atoms("Cu", positions=[[40.0, -30.0, 55.0]])
    i, _, _ = _check_all(atoms, 3.0)
    assert 13 not in i
    ext, _, _ = periodic_images(atoms.positions, atoms.cell[:], atoms.pbc, 3.0)
    offsets, _ = build_neighbor_list(ext, len(atoms), 3.0)
    assert offsets[14] == offsets[13]


@pytest.mark.parametrize("make", [_cu_conventional, _triclinic, _slab])
def test_positions_outside_cell(make):
    atoms = make()
    cutoff = 6.0
    ref = _ours(atoms.positions, atoms.cell[:], atoms.pbc, cutoff)
    rng = np.random.default_rng(11)
    n = rng.integers(-4, 5, size=(len(atoms), 3))
    n[:, ~atoms.pbc] = 0
    moved = atoms.copy()
    moved.positions = atoms.positions + n @ atoms.cell[:]
    ours = _ours(moved.positions, moved.cell[:], moved.pbc, cutoff)
    # displacements are physical, so the pair multiset is unchanged
    # (ref itself is checked against brute force in the other tests)
    _assert_same(ours, ref)
    _assert_same(ours, _ase(moved, cutoff))
    _assert_same(ref, _brute(atoms.positions, atoms.cell[:], atoms.pbc, cutoff))


# ---------------------------------------------------------------------------
# periodic_images / build_neighbor_list edge cases
# ---------------------------------------------------------------------------


def test_periodic_images_edge_cases():
    ext, owner, shift = periodic_images(np.zeros((0, 3)), np.eye(3) * 5, True, 3.0)
    assert ext.shape == (0, 3) and owner.shape == (0,) and shift.shape == (0, 3)
    pos = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    ext, owner, shift = periodic_images(pos, np.zeros((3, 3)), False, 5.0)
    assert np.array_equal(ext, pos) and np.array_equal(owner, [0, 1])
    with pytest.raises(ValueError):
        periodic_images(pos, np.zeros((3, 3)), True, 5.0)


def test_build_empty_and_single():
    offsets, nbrs = build_neighbor_list(np.zeros((0, 3)), 0, 5.0)
    assert np.array_equal(offsets, [0]) and len(nbrs) == 0
    x = np.random.default_rng(0).random((5, 3))
    offsets, nbrs = build_neighbor_list(x, 0, 5.0)
    assert np.array_equal(offsets, [0]) and len(nbrs) == 0
    offsets, nbrs = build_neighbor_list(np.zeros((1, 3)), 1, 5.0)
    assert np.array_equal(offsets, [0, 0]) and len(nbrs) == 0


def _direct_reference(x, n_local, cutoff):
    d = np.linalg.norm(x[None, :, :] - x[:n_local, None, :], axis=2)
    mask = d < cutoff
    mask[np.arange(n_local), np.arange(n_local)] = False
    return [np.nonzero(row)[0] for row in mask]


@pytest.mark.parametrize(
    "kind", ["random_ghosts", "dense_clump_far_outliers", "sparse_far_apart"]
)
def test_build_against_direct(kind):
    rng = np.random.default_rng(42)
    if kind == "random_ghosts":
        x = rng.random((2000, 3)) * np.array([30.0, 25.0, 20.0])
        n_local, cutoff = 1200, 4.5
    elif kind == "dense_clump_far_outliers":
        # density estimate from the bounding box is far too low -> buffer grows
        x = np.concatenate([rng.random((400, 3)) * 4.0, [[-1e3, 0, 0], [1e3, 5e2, 0]]])
        n_local, cutoff = 402, 6.0
    else:
        # huge bounding box, few atoms: bin count must stay bounded
        x = np.concatenate([rng.random((20, 3)) * 3.0, rng.random((20, 3)) * 3.0 + 1e6])
        n_local, cutoff = 30, 2.0
    offsets, nbrs = build_neighbor_list(x, n_local, cutoff)
    _check_csr(offsets, nbrs, n_local, len(x))
    ref = _direct_reference(x, n_local, cutoff)
    for i in range(n_local):
        assert np.array_equal(nbrs[offsets[i] : offsets[i + 1]], ref[i])


def test_build_rejects_bad_input():
    x = np.zeros((3, 3))
    with pytest.raises(ValueError):
        build_neighbor_list(x, 4, 2.0)
    with pytest.raises(ValueError):
        build_neighbor_list(x, 2, 0.0)


# ---------------------------------------------------------------------------
# Verlet skin criterion
# ---------------------------------------------------------------------------


def test_max_displacement_exceeds():
    rng = np.random.default_rng(3)
    ref = rng.random((50, 3)) * 10.0
    assert not max_displacement_exceeds(ref, ref.copy(), 0.5)
    moved = ref.copy()
    moved[17] += np.array([0.49, 0.0, 0.0])
    assert not max_displacement_exceeds(moved, ref, 0.5)
    moved[17] = ref[17] + np.array([0.3, 0.3, 0.3])  # |d| = 0.52
    assert max_displacement_exceeds(moved, ref, 0.5)
    moved = ref.copy()
    moved[-1, 2] -= 0.51
    assert max_displacement_exceeds(moved, ref, 0.5)
    assert not max_displacement_exceeds(np.zeros((0, 3)), np.zeros((0, 3)), 0.5)
