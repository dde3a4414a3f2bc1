"""Short acemd runs made once per test session, whose output the analysis tests read.

- ``crystal``: 108 Cu atoms (Cu-I.yace), fcc a = 3.6 Å, NVE from 600 K (settles near 300 K),
  dt 2 fs, 500 steps run as 250 + a restart to 500 (the trajectory and log are appended),
  thermo and trajectory (position, velocity, force, image, species, id) every 5 steps.
- ``liquid``: 108 Cu atoms at a = 4.0 Å, Langevin 3000 K from 6000 K: melts within 0.1 ps;
  1000 steps of 2 fs, frames every 10 steps.
- ``gamma``: Cu-I.yaml + Cu-I.asi with [extrapolation], 20 steps, frames with the per-atom gamma
  (and no image or velocity: the bad-input tests use it).
- ``driver_files``: the data files of a 0 K ``[elastic]`` run (4 atoms) and of a ``[free_energy]``
  solid run (32 atoms, 2 short switching iterations), and the free-energy report: files of the
  wrong kind for the scripts that read the others (about 6 s).
"""
import os
from types import SimpleNamespace

import pytest

from acemd.cli import main as acemd_main
from engine_helpers import POTENTIALS, write_input


def _fields(path, fields):
    text = path.read_text().replace("[trajectory]\n", "[trajectory]\nfields = [" +
                                    ", ".join(f'"{f}"' for f in fields) + "]\n")
    path.write_text(text)


def _run(args, folder):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert acemd_main([str(a) for a in args]) == 0
    finally:
        os.chdir(cwd)


def _outputs(folder, name):
    return SimpleNamespace(folder=folder, log=folder / f"{name}.log", h5=folder / f"{name}.h5",
                           ckpt=folder / f"{name}.ckpt.h5")


@pytest.fixture(scope="session")
def crystal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crystal")
    inp = write_input(folder, steps=250, timestep=0.002, temperature=600.0, thermo_every=5, traj_every=5,
                      name="xtal", a=3.6)
    _fields(inp, ["position", "velocity", "force", "image", "species", "id"])
    _run([inp], folder)
    inp.write_text(inp.read_text().replace("steps = 250", "steps = 500"))
    _run([inp, "--restart", folder / "xtal.ckpt.h5"], folder)
    out = _outputs(folder, "xtal")
    out.n_atoms, out.a, out.n_frames, out.dt_frame = 108, 3.6, 101, 0.01
    return out


@pytest.fixture(scope="session")
def liquid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("liquid")
    inp = write_input(folder, steps=1000, timestep=0.002, temperature=6000.0, thermo_every=10,
                      traj_every=10, name="liq", a=4.0,
                      extra="[thermostat]\ntemperature = 3000.0\ndamping = 0.05\n")
    inp.write_text(inp.read_text().replace("[md]\n", '[md]\nensemble = "nvt-langevin"\n'))
    _fields(inp, ["position", "velocity", "image", "species", "id"])
    _run([inp], folder)
    out = _outputs(folder, "liq")
    out.n_atoms, out.n_frames = 108, 101
    return out


@pytest.fixture(scope="session")
def gamma_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gamma")
    extra = (f'[extrapolation]\nactive_set = "{(POTENTIALS / "Cu-I.asi").as_posix()}"\nevery = 5\n'
             "dump_threshold = 1e30\nstop_threshold = 1e30\n")
    inp = write_input(folder, potential="Cu-I.yaml", steps=20, rattle=0.05, temperature=600.0,
                      thermo_every=5, traj_every=5, name="gam", extra=extra)
    _fields(inp, ["position", "species", "id", "gamma"])
    _run([inp], folder)
    out = _outputs(folder, "gam")
    out.n_atoms, out.n_frames = 108, 5
    return out


@pytest.fixture(scope="session")
def driver_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drivers")
    cu = (POTENTIALS / "Cu-I.yace").as_posix()
    lattice = '[structure]\nlattice = "fcc"\nelement = "Cu"\na = 3.61\n'
    (folder / "el.toml").write_text(f'[potential]\nfile = "{cu}"\n{lattice}repeat = [1, 1, 1]\n'
                                    '[elastic]\nreport = "el.json"\ndata = "el.h5"\n[thermo]\nfile = "el.log"\n')
    (folder / "fe.toml").write_text(f'[potential]\nfile = "{cu}"\n{lattice}repeat = [2, 2, 2]\n'
                                    '[free_energy]\nreport = "fe.yaml"\ndata = "fe.h5"\ntemperature = 500.0\n'
                                    'npt = false\ntimestep = 0.002\nspring_steps = 100\nn_iterations = 2\n'
                                    'equilibration_steps = 20\nswitching_steps = 50\n'
                                    '[checkpoint]\nfile = "fe.ckpt.h5"\n')
    _run([folder / "el.toml"], folder)
    _run([folder / "fe.toml"], folder)
    return SimpleNamespace(folder=folder, elastic=folder / "el.h5", elastic_report=folder / "el.json",
                           free_energy=folder / "fe.h5", free_energy_report=folder / "fe.yaml",
                           free_energy_input=folder / "fe.toml")
