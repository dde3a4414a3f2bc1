"""MDAnalysis reads a default acemd trajectory (forces included) through acemd.io.mdanalysis."""
import io

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.md import MDRun

from test_bad_inputs import base_input

EV_PER_A_IN_KJMOL_PER_A = 96.48533212331          # CODATA 2018: e * N_A / 1000


def test_default_trajectory_reads_with_forces(tmp_path):
    pytest.importorskip("MDAnalysis")
    from acemd.io.mdanalysis import universe
    text = base_input(md={"steps": 4}, trajectory={"every": 2, "file": "t.h5"})
    path = tmp_path / "in.toml"
    path.write_text(text)
    MDRun(parse_config(text, path), text, path, comm=MPI.COMM_SELF, stream=io.StringIO()).run()
    with h5py.File(tmp_path / "t.h5", "r") as f:
        x = f["particles/all/position/value"][()]
        force = f["particles/all/force/value"][()]
        assert "image" in f["particles/all"]              # a default field
    u = universe(tmp_path / "t.h5")
    assert u.trajectory.n_frames == 3 and u.trajectory.units["force"] == "eV/Angstrom"
    for k, ts in enumerate(u.trajectory):
        np.testing.assert_allclose(ts.positions, x[k], atol=1e-5)
        np.testing.assert_allclose(ts.forces, force[k] * EV_PER_A_IN_KJMOL_PER_A, rtol=1e-5, atol=1e-4)
    raw = universe(tmp_path / "t.h5", convert_units=False)
    for k, ts in enumerate(raw.trajectory):
        np.testing.assert_allclose(ts.forces, force[k], atol=1e-5)
