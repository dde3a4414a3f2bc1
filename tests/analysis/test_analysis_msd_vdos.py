"""acemd_msd.py and acemd_vdos.py on real runs: the crystal's MSD saturates and the liquid's grows
linearly; the streamed multi-origin MSD and the FFT VACF equal direct numpy sums; the VDOS integrates
to 3N-3 with the thermo log's temperature; D from the MSD and from the VDOS at zero frequency agree."""
import h5py
import numpy as np
import pytest

from acemd.analysis.msd import compute_msd
from acemd.analysis.table import read_table
from acemd.analysis.trajectory import Trajectory, parse_frames
from acemd.analysis.vdos import compute_vdos
from acemd.io.thermo import read_thermo
from acemd.units import BOLTZMANN, MVV_TO_EV

from analysis_helpers import is_png, run_script


def _d_from_comments(path, name="Cu"):
    for line in path.read_text().splitlines():
        if line.startswith(f"# D_{name} = "):
            words = line.split()
            return float(words[3]), float(words[5])
    raise AssertionError(f"no D_{name} line in {path}")


@pytest.fixture(scope="module")
def msd_tables(crystal, liquid, tmp_path_factory):
    folder = tmp_path_factory.mktemp("msd")
    out = {}
    for name, run, frames in (("xtal", crystal, "20:"), ("liq", liquid, "10:")):
        prefix = folder / name
        assert run_script("acemd_msd", run.h5, "-o", prefix, "--frames", frames) == 0
        assert is_png(prefix.with_suffix(".png"))
        out[name] = (read_table(prefix.with_suffix(".csv")), _d_from_comments(prefix.with_suffix(".csv")))
    return out


def test_crystal_msd_saturates_liquid_msd_grows_linearly(msd_tables):
    (xt, (d_x, err_x)), (lq, (d_l, err_l)) = msd_tables["xtal"], msd_tables["liq"]
    m = xt["msd_Cu"]
    n = len(m)
    middle, last = m[n // 3: 2 * n // 3].mean(), m[2 * n // 3:].mean()
    assert last == pytest.approx(middle, rel=0.3)           # a plateau: 2 x <u^2>-ish
    assert m.max() < 0.1                                    # Angstrom^2: atoms stay on their sites
    t, ml = lq["lag_time"], lq["msd_Cu"]
    k = len(t) - 1
    assert ml[k] / ml[k // 2] == pytest.approx(2.0, rel=0.2)   # linear in t beyond the ballistic regime
    fit = np.polyfit(t[k // 5:], ml[k // 5:], 1, full=True)
    r2 = 1 - fit[1][0] / ((ml[k // 5:] - ml[k // 5:].mean()) ** 2).sum()
    assert r2 > 0.98
    print(f"D crystal {d_x:.3g} +- {err_x:.2g}, liquid {d_l:.4g} +- {err_l:.2g} Angstrom^2/ps; "
          f"crystal MSD middle/last third {middle:.4g}/{last:.4g} Angstrom^2")
    assert d_l > 0.2 and err_l < 0.3 * d_l
    assert abs(d_x) < 0.05 * d_l
    assert np.all(lq["n_origins"][1:] >= 1)


def test_streamed_msd_equals_direct_numpy(liquid):
    with Trajectory(liquid.h5) as traj:
        frames = parse_frames("10:60", traj.n_frames)
        res = compute_msd(traj, frames, max_lag=20, origin_every=1, n_blocks=3)
    with h5py.File(liquid.h5, "r") as f:
        pos = f["particles/all/position/value"][10:60]
        img = f["particles/all/image/value"][10:60]
        cell = f["particles/all/box/edges/value"][10:60]
    u = pos + np.einsum("fai,fij->faj", img.astype(float), cell)
    ref = [np.mean([((u[t0 + lag] - u[t0]) ** 2).sum(axis=1).mean() for t0 in range(len(u) - lag)])
           for lag in range(21)]
    assert np.allclose(res.msd["Cu"], ref, rtol=1e-12, atol=1e-14)
    # unwrapping: the wrapped positions jump by a cell length when an atom crosses the boundary,
    # the unwrapped ones move continuously
    assert np.abs(np.diff(pos, axis=0)).max() > 0.5 * cell[0, 0, 0]
    assert np.abs(np.diff(u, axis=0)).max() < 1.5


def test_vdos_integrates_to_degrees_of_freedom(crystal, tmp_path):
    log = read_thermo(crystal.log)
    t_log = log["Temp"].mean()             # thermo rows are the trajectory frames (every 5 steps)
    prefix = tmp_path / "vdos"
    assert run_script("acemd_vdos", crystal.h5, "-o", prefix, "--temperature", repr(float(t_log))) == 0
    assert is_png(prefix.with_suffix(".png"))
    table = read_table(prefix.with_suffix(".csv"))
    dof = 3 * crystal.n_atoms - 3
    integral = np.trapezoid(table["vdos"], table["frequency"])
    print(f"VDOS integral {integral:.8g} (3N-3 = {dof}) at the log's T = {t_log:.6g} K")
    assert integral == pytest.approx(dof, rel=1e-5)
    # a crystal has no diffusive (zero-frequency) weight and its modes lie below ~10 THz
    below = table["frequency"] <= 12.0
    assert np.trapezoid(table["vdos"][below], table["frequency"][below]) > 0.97 * dof
    assert table["vdos"][0] < 0.02 * table["vdos"].max()
    assert table["vacf_normalized"][0] == 1.0


def test_vacf_equals_direct_sum(crystal):
    with Trajectory(crystal.h5) as traj:
        frames = parse_frames(None, traj.n_frames)
        res = compute_vdos(traj, frames, max_lag=10, atoms_per_block=40)   # 3 blocks of atoms
    with h5py.File(crystal.h5, "r") as f:
        v = f["particles/all/velocity/value"][:]
    m = 63.546
    ref = [m * np.mean([(v[t0] * v[t0 + j]).sum() for t0 in range(len(v) - j)]) * MVV_TO_EV for j in range(11)]
    assert np.allclose(res.vacf, ref, rtol=1e-10)
    assert res.kinetic_temperature == pytest.approx(2 * ref[0] / 2 / ((3 * 108 - 3) * BOLTZMANN))


def test_liquid_diffusion_from_vdos_matches_msd(liquid, msd_tables):
    """g(0) = 12 N m D / (kB T): the zero-frequency VDOS and the MSD slope measure the same D."""
    with Trajectory(liquid.h5) as traj:
        res = compute_vdos(traj, parse_frames("10:", traj.n_frames), max_lag=60)
    d_vdos = res.vdos[0] * BOLTZMANN * res.temperature / (12 * res.n_atoms * 63.546 * MVV_TO_EV)
    d_msd = msd_tables["liq"][1][0]
    print(f"liquid D: MSD {d_msd:.4g}, VDOS g(0) {d_vdos:.4g} Angstrom^2/ps")
    assert d_vdos == pytest.approx(d_msd, rel=0.35)
