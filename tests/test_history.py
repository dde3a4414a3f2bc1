"""Output that does not depend on the run's history: trajectory positions always wrapped into the
cell with ``image`` (a default field), so a restarted trajectory equals an uninterrupted one; the
log has every step once after restarts; a signal's stop step gets a thermo row and the summary
counts the steps of the session."""
import io
import shutil
import signal

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers import md as md_driver
from acemd.drivers.md import MDRun

from test_bad_inputs import acemd, base_input


def run(tmp, text, restart=None, name="in.toml"):
    path = tmp / name
    path.write_text(text)
    stream = io.StringIO()
    summary = MDRun(parse_config(text, path), text, path, comm=MPI.COMM_SELF, restart=restart,
                    stream=stream).run()
    return summary, stream.getvalue()


def frames(path):
    with h5py.File(path, "r") as f:
        p = f["particles/all"]
        return {"step": p["position/step"][()], "position": p["position/value"][()],
                "image": p["image/value"][()], "cell": p["box/edges/value"][()]}


def log_table(path):
    table = np.loadtxt(path, comments="#", ndmin=2)
    return table[:, 0].astype(int), table


def inputs(steps, traj="t.h5", log="t.log", ckpt="ck.h5", every=1):
    return base_input(md={"steps": steps, "timestep": 0.004}, velocities={"temperature": 1200.0},
                      trajectory={"every": every, "file": traj}, thermo={"every": 5, "file": log},
                      checkpoint={"file": ckpt})


@pytest.mark.parametrize("nranks", [1, 2])
def test_restarted_trajectory_equals_uninterrupted(tmp_path, nranks):
    """30 steps in one go vs 13 + restart + 17, at 1200 K (atoms cross the cell faces between
    rebuilds): same positions, images and cells in every frame (1e-10), all inside the cell."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    (one / "in.toml").write_text(inputs(30))
    (two / "a.toml").write_text(inputs(13))
    (two / "b.toml").write_text(inputs(30))
    for folder, args in ((one, ["in.toml"]), (two, ["a.toml"]), (two, ["b.toml", "--restart", "ck.h5"])):
        rc, out, err = acemd(args, folder, nranks=nranks)
        assert rc == 0, err
    a, b = frames(one / "t.h5"), frames(two / "t.h5")
    assert list(a["step"]) == list(range(31)) == list(b["step"])
    assert np.max(np.abs(a["position"] - b["position"])) < 1e-10
    assert np.array_equal(a["image"], b["image"])
    frac = np.einsum("fnj,fjk->fnk", a["position"], np.linalg.inv(a["cell"]))
    assert frac.min() >= 0.0 and frac.max() < 1.0
    unwrapped = a["position"] + np.einsum("fnj,fjk->fnk", a["image"], a["cell"])
    assert np.abs(np.diff(unwrapped, axis=0)).max() < 0.5        # no jumps by a box length
    assert (np.abs(a["image"]).sum() > 0), "no atom crossed a face: the test would not see a wrap"


def test_log_has_each_step_once_after_restarts(tmp_path):
    """0..20, then 20..30, then a restart from the step-20 checkpoint to 40: numpy.loadtxt reads
    0, 5, ..., 40 once each, and the rows from 20 on are those of the last segment."""
    run(tmp_path, inputs(20, every=0))
    shutil.copy(tmp_path / "ck.h5", tmp_path / "ck20.h5")
    run(tmp_path, inputs(30, every=0), restart=str(tmp_path / "ck.h5"))
    steps, _ = log_table(tmp_path / "t.log")
    assert list(steps) == list(range(0, 31, 5))
    run(tmp_path, inputs(40, every=0), restart=str(tmp_path / "ck20.h5"))
    steps, table = log_table(tmp_path / "t.log")
    assert list(steps) == list(range(0, 41, 5))
    (tmp_path / "u").mkdir()
    run(tmp_path / "u", inputs(40, every=0))
    _, straight = log_table(tmp_path / "u" / "t.log")
    assert np.max(np.abs(table[:, 1:] - straight[:, 1:])) < 1e-6      # the 8-decimal table


def test_signal_stop_step_has_a_row_and_the_summary_counts_it(tmp_path, monkeypatch):
    """SIGTERM seen at step 37 (thermo every 5): a row at 37, '37 steps' in the summary, and the
    restart to 50 adds rows 40..50 without repeating 37."""
    class StopAt37(md_driver.StopRequested):
        @property
        def signum(self):
            return signal.SIGTERM if self.state.step >= 37 else 0

        @signum.setter
        def signum(self, value):
            pass

    original = MDRun.run

    def run_with_state(self):
        StopAt37.state = self.state
        return original(self)
    monkeypatch.setattr(md_driver, "StopRequested", StopAt37)
    monkeypatch.setattr(MDRun, "run", run_with_state)
    summary, out = run(tmp_path, inputs(100, every=0))
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] == 37
    steps, _ = log_table(tmp_path / "t.log")
    assert steps[-1] == 37 and list(steps[:-1]) == list(range(0, 36, 5))
    assert "# summary: 37 steps" in out
    monkeypatch.setattr(md_driver, "StopRequested", StopAt37.__mro__[1])     # no signal any more
    summary, out = run(tmp_path, inputs(50, every=0), restart=str(tmp_path / "ck.h5"))
    assert "# summary: 13 steps" in out
    steps, _ = log_table(tmp_path / "t.log")
    assert list(steps) == list(range(0, 36, 5)) + [37, 40, 45, 50]
