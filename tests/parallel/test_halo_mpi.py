"""Multi-rank tests of acemd.parallel (run under mpiexec with pytest-mpi):

    mpiexec -n 2 python -m pytest --with-mpi -q tests/parallel
    mpiexec -n 3 ...   mpiexec -n 4 ...

Each rank checks its own ghosts against a brute-force enumeration built from
allgathered atoms; reverse communication is compared with a serial
(``COMM_SELF``) halo; error paths must raise on every rank.  Those tests run
under a watchdog that kills the process (and so the mpiexec job) instead of
hanging if a rank got stuck in a collective.
"""

import contextlib
import itertools
import os
import sys
import threading

import numpy as np
import pytest
from ase.build import bulk, fcc100
from mpi4py import MPI

from acemd.parallel import (
    AtomLeftBoxError,
    AtomOutsideSubdomainError,
    Decomposition,
    Halo,
    LostAtomsError,
    cell_heights,
)

pytestmark = pytest.mark.mpi(min_size=2)

CUTOFF = 5.0
TEST_TIMEOUT = float(os.environ.get("ACEMD_TEST_TIMEOUT", 120.0))  # seconds per test before the watchdog kills the job


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


_CAPTURE = []  # pytest's capture manager, to report a hang past output capturing


@contextlib.contextmanager
def watchdog(seconds=30.0):
    """Kill this process if the block (and a final barrier) does not finish in time."""

    def fire():
        for capman in _CAPTURE:
            try:
                capman.suspend_global_capture(in_=False)
            except Exception:
                pass
        sys.stdout.flush()
        sys.stderr.write(f"\nwatchdog: rank {MPI.COMM_WORLD.rank} stuck for {seconds} s (collective hang)\n")
        sys.stderr.flush()
        os._exit(17)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
        MPI.COMM_WORLD.Barrier()
    finally:
        timer.cancel()


@pytest.fixture(autouse=True)
def _no_hang(request):
    """Every test ends with a barrier under a watchdog: a rank stuck in a collective kills the job."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None and not _CAPTURE:
        _CAPTURE.append(capman)
    with watchdog(TEST_TIMEOUT):
        yield


def all_ranks_agree(comm, check):
    """Run ``check()``; if it fails on any rank, fail on every rank (keeps later collectives in step)."""
    try:
        check()
        msg = None
    except AssertionError as exc:
        msg = str(exc)[:2000]
    msgs = comm.allgather(msg)
    bad = [f"[rank {r}] {m}" for r, m in enumerate(msgs) if m is not None]
    if bad:
        raise AssertionError("\n".join(bad))


def brute_region(pos, ids, cell, pbc, lo, hi, cutoff, scale):
    cell = np.asarray(cell, dtype=float)
    c = scale * cutoff / cell_heights(cell)
    s = pos @ np.linalg.inv(cell)
    ranges = [range(-(int(np.ceil(c[d])) + 2), int(np.ceil(c[d])) + 3) if pbc[d] else range(1) for d in range(3)]
    out = set()
    for n in itertools.product(*ranges):
        si = s + np.array(n, dtype=float)
        ok = ((si >= lo - c) & (si <= hi + c)).all(axis=1)
        out.update((int(ids[i]), *n) for i in np.flatnonzero(ok))
    return out


def euclid_images(pos_all, ids_all, local_pos, cell, pbc, cutoff):
    h = cell_heights(cell)
    ranges = [range(-(int(np.ceil(cutoff / h[d])) + 2), int(np.ceil(cutoff / h[d])) + 3) if pbc[d] else range(1) for d in range(3)]
    out = set()
    if len(local_pos) == 0:
        return out
    for n in itertools.product(*ranges):
        img = pos_all + np.array(n, dtype=float) @ cell
        dist = np.linalg.norm(img[:, None, :] - local_pos[None, :, :], axis=2)
        out.update((int(ids_all[i]), *n) for i in np.flatnonzero((dist < cutoff).any(axis=1)))
    return out


def gather_atoms(comm, atoms):
    pos = np.concatenate(comm.allgather(atoms["positions"]))
    ids = np.concatenate(comm.allgather(atoms["ids"]))
    return pos, ids


def check_ghosts(halo, ext_pos, ext_ids, all_pos, all_ids, local_ids, cutoff):
    dec = halo.decomp
    cell, pbc = dec.cell, dec.pbc
    keys = [(int(i), *map(int, s)) for i, s in zip(ext_ids[halo.n_local :], halo.image_shifts[halo.n_local :])]
    got = set(keys)
    assert len(got) == len(keys), "duplicate ghosts"
    own = {(int(i), 0, 0, 0) for i in local_ids}
    assert not (own & got), "own atom received as a ghost"
    inner = brute_region(all_pos, all_ids, cell, pbc, dec.frac_lo, dec.frac_hi, cutoff, 1 - 1e-7) - own
    outer = brute_region(all_pos, all_ids, cell, pbc, dec.frac_lo, dec.frac_hi, cutoff, 1 + 1e-7) - own
    assert inner <= got, f"rank {dec.rank}: missing ghosts {sorted(inner - got)[:10]}"
    assert got <= outer, f"rank {dec.rank}: ghosts outside region {sorted(got - outer)[:10]}"
    need = euclid_images(all_pos, all_ids, ext_pos[: halo.n_local], cell, pbc, cutoff) - own
    assert need <= got
    by_id = {int(i): p for i, p in zip(all_ids, all_pos)}
    if halo.n_ext:
        ref = np.array([by_id[int(i)] for i in ext_ids]) + halo.image_shifts @ cell
        np.testing.assert_allclose(ext_pos, ref, atol=1e-9, rtol=0)


def pair_terms_half(ext_pos, n_local, rc):
    """Half pair forces and per-atom virials on local + ghost atoms (each local i, all j)."""
    f = np.zeros_like(ext_pos)
    w = np.zeros((len(ext_pos), 3, 3))
    for i in range(n_local):
        rij = ext_pos - ext_pos[i]
        r = np.linalg.norm(rij, axis=1)
        m = np.flatnonzero((r > 0) & (r < rc))
        fij = (np.exp(-r[m]) * (1.0 - r[m] / rc) ** 2 / r[m])[:, None] * rij[m]
        f[i] += 0.5 * fij.sum(axis=0)
        f[m] -= 0.5 * fij
        wij = -0.25 * np.einsum("ka,kb->kab", rij[m], fij)
        w[i] += wij.sum(axis=0)
        w[m] += wij
    return f, w


# ---------------------------------------------------------------------------
# systems
# ---------------------------------------------------------------------------


def make_system(name, size):
    rng = np.random.default_rng(1234)
    if name.startswith("bulk"):
        at = bulk("Cu", "fcc", a=3.6) * (4, 4, 4)  # primitive (rhombohedral) cell, heights 8.3 A
        pbc = (True, True, True)
        at.positions += rng.normal(scale=0.1, size=at.positions.shape)
        dims = {"bulk-auto": None, "bulk-thin": (size, 1, 1), "bulk-thin-y": (1, size, 1)}[name]
    elif name.startswith("slab"):
        at = fcc100("Cu", size=(3, 3, 4), vacuum=4.0)
        pbc = (True, True, False)
        at.positions += rng.normal(scale=0.05, size=at.positions.shape)
        dims = {"slab-auto": None, "slab-z": (1, 1, size)}[name]
    else:  # mixed: open along a, split along the open axis
        at = bulk("Cu", "fcc", a=3.6, cubic=True) * (3, 2, 2)
        at.cell[0, 0] += 6.0
        at.positions += [3.0, 0.0, 0.0]
        at.positions += rng.normal(scale=0.05, size=at.positions.shape)
        pbc = (False, True, True)
        dims = (size, 1, 1)
    n = len(at)
    arrays = {
        "positions": at.positions.copy(),
        "ids": np.arange(n, dtype=np.int64) * 7 + 3,
        "species": (np.arange(n) % 3).astype(np.int64),
        "velocities": rng.normal(size=(n, 3)),
        "image": np.zeros((n, 3), dtype=np.int64),
    }
    return at.cell.array.copy(), pbc, dims, arrays


SYSTEMS = ["bulk-auto", "bulk-thin", "bulk-thin-y", "slab-auto", "slab-z", "mixed"]


def setup(name):
    comm = MPI.COMM_WORLD
    cell, pbc, dims, arrays = make_system(name, comm.size)
    halo = Halo(Decomposition(comm, cell, pbc, dims=dims))
    atoms = halo.distribute(arrays if comm.rank == 0 else None)
    return comm, halo, arrays, atoms


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SYSTEMS)
def test_distribute_partition(name):
    comm, halo, arrays, atoms = setup(name)
    dec = halo.decomp
    assert set(atoms) == set(arrays)
    all_ids = np.concatenate(comm.allgather(atoms["ids"]))
    np.testing.assert_array_equal(np.sort(all_ids), np.sort(arrays["ids"]))
    assert halo.n_total == len(arrays["ids"])
    if len(atoms["ids"]):
        np.testing.assert_array_equal(dec.owner_coords(dec.to_fractional(atoms["positions"])), [dec.coords] * len(atoms["ids"]))
    # carried data intact
    k = (atoms["ids"] - 3) // 7
    np.testing.assert_array_equal(atoms["species"], arrays["species"][k])
    np.testing.assert_array_equal(atoms["velocities"], arrays["velocities"][k])
    np.testing.assert_allclose(atoms["positions"] + atoms["image"] @ dec.cell, arrays["positions"][k], atol=1e-12)


@pytest.mark.parametrize("name", SYSTEMS)
def test_ghosts_match_brute_force(name):
    comm, halo, arrays, atoms = setup(name)
    ext_pos, ext = halo.build_ghosts(atoms["positions"], CUTOFF, {"ids": atoms["ids"], "species": atoms["species"]})
    all_pos, all_ids = gather_atoms(comm, atoms)
    check_ghosts(halo, ext_pos, ext["ids"], all_pos, all_ids, atoms["ids"], CUTOFF)
    np.testing.assert_array_equal(ext["species"], arrays["species"][(ext["ids"] - 3) // 7])
    assert halo.ghost_count == halo.n_ext - halo.n_local == len(ext_pos) - len(atoms["ids"])
    if name == "bulk-thin":
        assert halo.swaps_per_dim[0] >= 2  # subdomains thinner than the cutoff


@pytest.mark.parametrize("name", SYSTEMS)
def test_forward_after_motion(name):
    comm, halo, arrays, atoms = setup(name)
    ext_pos, ext = halo.build_ghosts(atoms["positions"], CUTOFF, {"ids": atoms["ids"]})
    rng = np.random.default_rng(comm.rank)
    new = atoms["positions"] + rng.normal(scale=0.1, size=atoms["positions"].shape)
    dec = halo.decomp
    cell1 = dec.cell.copy()
    fwd = halo.forward(new)
    all_ids = np.concatenate(comm.allgather(atoms["ids"])).tolist()
    all_new = dict(zip(all_ids, np.concatenate(comm.allgather(new))))
    vel = halo.forward_array(atoms["velocities"])
    # a changing cell (NPT): same fractional coordinates, images follow the new cell
    cell2 = cell1 @ np.diag([1.02, 0.99, 1.01])
    new2 = new @ dec.inv_cell @ cell2
    dec.set_cell(cell2)
    all_new2 = dict(zip(all_ids, np.concatenate(comm.allgather(new2))))
    fwd2 = halo.forward(new2)
    # checks (after all collectives, so a failure cannot desynchronise the ranks)
    ref = np.array([all_new[int(i)] for i in ext["ids"]]).reshape(-1, 3) + halo.image_shifts @ cell1
    np.testing.assert_allclose(fwd, ref, atol=1e-12)
    np.testing.assert_array_equal(vel, arrays["velocities"][(ext["ids"] - 3) // 7].reshape(-1, 3))
    ref2 = np.array([all_new2[int(i)] for i in ext["ids"]]).reshape(-1, 3) + halo.image_shifts @ cell2
    np.testing.assert_allclose(fwd2, ref2, atol=1e-12)


@pytest.mark.parametrize("name", SYSTEMS)
def test_reverse_equals_serial(name):
    comm, halo, arrays, atoms = setup(name)
    rc = CUTOFF
    ext_pos, ext = halo.build_ghosts(atoms["positions"], rc, {"ids": atoms["ids"]})
    f_ext, w_ext = pair_terms_half(ext_pos, halo.n_local, rc)
    f = halo.reverse(f_ext)
    w = halo.reverse(w_ext)
    count = halo.reverse(np.ones(halo.n_ext, dtype=np.int64))
    # serial reference on COMM_SELF with all atoms
    cell, pbc, _, _ = make_system(name, comm.size)
    serial = Halo(Decomposition(MPI.COMM_SELF, cell, pbc))
    sa = serial.distribute(arrays)
    sx, se = serial.build_ghosts(sa["positions"], rc, {"ids": sa["ids"]})
    sf_ext, sw_ext = pair_terms_half(sx, serial.n_local, rc)
    sf = dict(zip(sa["ids"].tolist(), serial.reverse(sf_ext)))
    sw = dict(zip(sa["ids"].tolist(), serial.reverse(sw_ext)))
    n_rows = comm.allreduce(int(count.sum()))
    n_ext = comm.allreduce(halo.n_ext)
    wtot = comm.allreduce(w.sum(axis=0))
    ftot = comm.allreduce(f.sum(axis=0))
    for k, i in enumerate(atoms["ids"].tolist()):
        np.testing.assert_allclose(f[k], sf[i], atol=1e-12)
        np.testing.assert_allclose(w[k], sw[i], atol=1e-12)
    # every ext row goes home exactly once: total copies = n_ext summed over ranks
    assert n_rows == n_ext
    # total virial and zero net force
    np.testing.assert_allclose(wtot, sum(sw.values()), atol=1e-10)
    np.testing.assert_allclose(ftot, 0.0, atol=1e-10)


def random_displacements(halo, atoms, rng, big=True):
    """Half-subdomain moves, boundary crossings, and (periodic axes) multi-cell jumps."""
    dec = halo.decomp
    n = len(atoms["ids"])
    s = dec.to_fractional(atoms["positions"])
    ds = rng.normal(size=(n, 3)) * (0.5 / np.array(dec.dims))
    for d in range(3):
        if not dec.pbc[d]:
            ds[:, d] = np.clip(s[:, d] + 0.3 * ds[:, d], 0.02, 0.98) - s[:, d]
        elif big:
            jump = rng.integers(-2, 3, size=n) * (rng.random(n) < 0.3)
            ds[:, d] += jump + (rng.random(n) < 0.2) * np.where(s[:, d] < 0.5, -s[:, d] - 0.01, 1.01 - s[:, d])
    return ds @ dec.cell


@pytest.mark.parametrize("name", SYSTEMS)
def test_migrate(name):
    comm, halo, arrays, atoms = setup(name)
    dec = halo.decomp
    rng = np.random.default_rng(100 + comm.rank)
    for step in range(3):
        unwrapped = atoms["positions"] + atoms["image"] @ dec.cell
        disp = random_displacements(halo, atoms, rng)
        moved = dict(atoms, positions=atoms["positions"] + disp)
        before = dict(zip(atoms["ids"].tolist(), unwrapped + disp))
        all_before = {}
        for d in comm.allgather(before):
            all_before.update(d)
        atoms = halo.migrate(moved)
        ext_pos, ext = halo.build_ghosts(atoms["positions"], CUTOFF, {"ids": atoms["ids"]})
        all_pos, all_ids = gather_atoms(comm, atoms)

        def checks():
            np.testing.assert_array_equal(np.sort(all_ids), np.sort(arrays["ids"]))
            if len(atoms["ids"]):
                np.testing.assert_array_equal(
                    dec.owner_coords(dec.to_fractional(atoms["positions"])), [dec.coords] * len(atoms["ids"])
                )
                ref = np.array([all_before[int(i)] for i in atoms["ids"]])
                np.testing.assert_allclose(atoms["positions"] + atoms["image"] @ dec.cell, ref, atol=1e-9)
                k = (atoms["ids"] - 3) // 7
                np.testing.assert_array_equal(atoms["species"], arrays["species"][k])
            check_ghosts(halo, ext_pos, ext["ids"], all_pos, all_ids, atoms["ids"], CUTOFF)

        all_ranks_agree(comm, checks)  # fail everywhere or nowhere before the next step's collectives


def test_migrate_far_in_thin_subdomains():
    """Atoms jump across several subdomains (dims = (size, 1, 1)) and are routed hop by hop."""
    comm, halo, arrays, atoms = setup("bulk-thin")
    dec = halo.decomp
    n = len(atoms["ids"])
    ds = np.zeros((n, 3))
    ds[:, 0] = (comm.size - 1) / comm.size + 0.37 / comm.size  # nearly a full cell along a
    moved = dict(atoms, positions=atoms["positions"] + ds @ dec.cell)
    out = halo.migrate(moved)
    total = comm.allreduce(len(out["ids"]))
    assert total == len(arrays["ids"])
    np.testing.assert_array_equal(dec.owner_coords(dec.to_fractional(out["positions"]))[:, 0], dec.coords[0])


def test_migrate_across_open_axis():
    """Non-periodic axis split in size subdomains: atoms go from the first to the last one (size-1 hops)."""
    comm, halo, arrays, atoms = setup("mixed")
    dec = halo.decomp
    s = dec.to_fractional(atoms["positions"])
    if dec.coords[0] == 0:
        s[:, 0] = 0.99 - 0.5 * s[:, 0]  # into the last subdomain along the open axis a
    moved = dict(atoms, positions=s @ dec.cell)
    out = halo.migrate(moved)
    ext_pos, ext = halo.build_ghosts(out["positions"], CUTOFF, {"ids": out["ids"]})
    all_pos, all_ids = gather_atoms(comm, out)
    moved_ids = np.concatenate(comm.allgather(atoms["ids"] if dec.coords[0] == 0 else atoms["ids"][:0]))
    np.testing.assert_array_equal(np.sort(all_ids), np.sort(arrays["ids"]))
    if dec.coords[0] == dec.dims[0] - 1:
        assert set(moved_ids.tolist()) <= set(out["ids"].tolist())
    np.testing.assert_array_equal(dec.owner_coords(dec.to_fractional(out["positions"]))[:, 0], dec.coords[0])
    check_ghosts(halo, ext_pos, ext["ids"], all_pos, all_ids, out["ids"], CUTOFF)


# ---------------------------------------------------------------------------
# errors: raised on every rank, never hang
# ---------------------------------------------------------------------------


def test_lost_atom_raises_on_all_ranks():
    comm, halo, arrays, atoms = setup("bulk-auto")
    if comm.rank == comm.size - 1:
        atoms = {k: v[1:] for k, v in atoms.items()}  # this rank silently drops one atom
    with watchdog():
        with pytest.raises(LostAtomsError, match=f"expected {len(arrays['ids'])}") as info:
            halo.migrate(atoms)
        assert info.value.expected == len(arrays["ids"])
        assert info.value.found == len(arrays["ids"]) - 1


def test_nan_position_raises_on_all_ranks():
    comm, halo, arrays, atoms = setup("bulk-thin")
    victim = None
    if comm.rank == 1:
        atoms = {k: v.copy() for k, v in atoms.items()}
        atoms["positions"][0, 1] = np.nan
        victim = int(atoms["ids"][0])
    victim = comm.bcast(victim, root=1)
    with watchdog():
        with pytest.raises(LostAtomsError, match="non-finite") as info:
            halo.migrate(atoms)
        assert victim in info.value.atom_ids


def test_atom_leaving_open_box_raises_on_all_ranks():
    comm, halo, arrays, atoms = setup("slab-z")
    victim = None
    counts = comm.allgather(len(atoms["ids"]))
    rank = max(r for r in range(comm.size) if counts[r])  # the highest rank that owns atoms
    if comm.rank == rank:
        atoms = {k: v.copy() for k, v in atoms.items()}
        atoms["positions"][0] += 30.0 * halo.decomp.cell[2] / np.linalg.norm(halo.decomp.cell[2])
        victim = int(atoms["ids"][0])
    victim = comm.bcast(victim, root=rank)
    assert victim is not None
    with watchdog():
        with pytest.raises(AtomLeftBoxError, match=f"id {victim} along axis c") as info:
            halo.migrate(atoms)
        assert info.value.atom_ids == [victim] and info.value.axes == [2]


def test_build_ghosts_errors_on_all_ranks():
    comm, halo, arrays, atoms = setup("bulk-auto")
    with watchdog():
        bad = atoms["positions"].copy()
        if comm.rank == 0 and len(bad):
            bad[0] += halo.decomp.cell[0] * 0.5 + halo.decomp.cell[1] * 0.5 + halo.decomp.cell[2] * 0.5
        with pytest.raises(AtomOutsideSubdomainError):
            halo.build_ghosts(bad, CUTOFF, {"ids": atoms["ids"]})
        with pytest.raises(ValueError, match="ghost_cutoff"):
            halo.build_ghosts(atoms["positions"], CUTOFF + 0.1 * comm.rank)
        with pytest.raises(ValueError, match="different per-atom"):
            halo.build_ghosts(atoms["positions"], CUTOFF, {"ids": atoms["ids"]} if comm.rank else {})


def test_distribute_error_on_all_ranks():
    comm = MPI.COMM_WORLD
    cell, pbc, dims, arrays = make_system("slab-z", comm.size)
    halo = Halo(Decomposition(comm, cell, pbc, dims=dims))
    arrays["positions"][3, 2] = -1.0
    with watchdog():
        with pytest.raises(AtomLeftBoxError, match="id 24 "):
            halo.distribute(arrays if comm.rank == 0 else None)
