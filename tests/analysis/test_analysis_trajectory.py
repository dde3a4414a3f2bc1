"""The streaming reader: frame selection, complete frames only (a crash leaves trailing rows),
masses from the run's [masses], a restarted run read as one trajectory."""
import h5py
import numpy as np
import pytest
from mpi4py import MPI

from acemd.analysis.errors import AnalysisInputError
from acemd.analysis.trajectory import Trajectory, parse_frames
from acemd.io.h5md import H5MDWriter


def test_parse_frames():
    assert list(parse_frames(None, 5)) == [0, 1, 2, 3, 4]
    assert list(parse_frames("1:", 5, every=2)) == [1, 3]
    assert list(parse_frames("::2", 6)) == [0, 2, 4]
    assert list(parse_frames("-1,0,2", 5)) == [4, 0, 2]
    for bad in ("a:b", "7", "1:2:3:4"):
        with pytest.raises(AnalysisInputError, match="--frames"):
            parse_frames(bad, 5)
    with pytest.raises(AnalysisInputError, match="--every"):
        parse_frames(None, 5, every=0)


def _write(path, n_frames, metadata=None):
    n = 4
    w = H5MDWriter(path, MPI.COMM_SELF, n, ["Cu", "Ag"], fields=("position", "image", "species", "id"),
                   observables=["temperature"], metadata=metadata or {})
    for k in range(n_frames):
        w.write_frame(k, 0.1 * k, np.eye(3) * 5.0, np.arange(n),
                      {"position": np.full((n, 3), float(k)), "image": np.zeros((n, 3), np.int32),
                       "species": np.array([0, 1, 0, 1], np.int32)}, {"temperature": 300.0 + k})
    w.close()


def test_only_complete_frames_are_read(tmp_path):
    path = tmp_path / "t.h5"
    _write(path, 3)
    with h5py.File(path, "a") as f:          # a run killed inside frame 3: values grown, step not
        ds = f["particles/all/position/value"]
        ds.resize(4, axis=0)
        ds[3] = 99.0
    with Trajectory(path) as traj:
        assert traj.n_frames == 3 and traj.n_atoms == 4
        assert traj.species_names == ["Cu", "Ag"]
        seen = [fr["position"][0, 0] for fr in traj.frames(["position"])]
        assert seen == [0.0, 1.0, 2.0]
        assert np.allclose(traj.times(), [0.0, 0.1, 0.2])
        t, v, unit = traj.observable("temperature")
        assert list(v) == [300.0, 301.0, 302.0] and unit == "K"


def test_masses_from_the_input(tmp_path):
    path = tmp_path / "m.h5"
    _write(path, 1, metadata={"input_text": "[masses]\nAg = 100.0\n"})
    with Trajectory(path) as traj:
        assert np.allclose(traj.masses_by_species(), [63.546, 100.0])
        with pytest.raises(AnalysisInputError, match="'velocity'.*\\[trajectory\\].fields"):
            traj.require(["velocity"], "the VDOS")


def test_restarted_run_is_one_trajectory(crystal):
    with Trajectory(crystal.h5) as traj:
        assert traj.n_frames == crystal.n_frames
        assert np.array_equal(traj.steps(), np.arange(0, 501, 5))
        assert np.allclose(np.diff(traj.times()), crystal.dt_frame)


def test_msd_per_species_of_ballistic_atoms_across_the_boundary(tmp_path):
    """Ag atoms move at a constant velocity through the periodic boundary (wrapped positions and
    image flags), Cu atoms stay: MSD_Ag(t) = (v t)^2, MSD_Cu = 0, MSD_all is their mean."""
    from acemd.analysis.msd import compute_msd, diffusion
    path, n, box, dt = tmp_path / "b.h5", 4, 5.0, 0.1
    vel = np.array([[0.0, 0.0, 0.0], [3.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-2.0, 0.0, 4.0]])   # A/ps
    start = np.array([[1.0, 1.0, 1.0], [4.0, 0.5, 2.0], [2.5, 2.5, 2.5], [0.5, 4.5, 4.5]])
    species = np.array([0, 1, 0, 1], np.int32)
    w = H5MDWriter(path, MPI.COMM_SELF, n, ["Cu", "Ag"], fields=("position", "image", "species", "id"),
                   observables=["temperature"])
    for k in range(40):
        r = start + vel * dt * k
        img = np.floor(r / box)
        w.write_frame(k, dt * k, np.eye(3) * box, np.arange(n),
                      {"position": r - img * box, "image": img.astype(np.int32), "species": species},
                      {"temperature": 0.0})
    w.close()
    with Trajectory(path) as traj:
        assert traj.read("image", 39).min() < 0 and traj.read("image", 39).max() > 0
        res = compute_msd(traj, parse_frames(None, traj.n_frames), max_lag=20, origin_every=3, n_blocks=4)
    t = res.lag_time
    speed2 = (vel[species == 1] ** 2).sum(axis=1).mean()
    assert np.allclose(res.msd["Ag"], speed2 * t ** 2, rtol=1e-12, atol=1e-12)
    assert np.allclose(res.msd["Cu"], 0.0, atol=1e-20)
    assert np.allclose(res.msd["all"], 0.5 * speed2 * t ** 2, rtol=1e-12)
    fits, _ = diffusion(res, (1.0, 1.0 + 1e-9))
    assert np.isnan(fits["Ag"][0])          # a window holding fewer than 2 samples gives no D
