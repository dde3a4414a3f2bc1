"""Shared helpers for engine tests: small inputs written to a temporary folder."""
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
POTENTIALS = DATA / "potentials"


def write_input(folder, *, potential="Cu-I.yace", lattice="fcc", element="Cu", a=3.6, repeat=(3, 3, 3),
                temperature=300.0, steps=20, timestep=0.001, thermo_every=5, traj_every=0,
                ckpt_every=0, rattle=0.0, extra="", seed=7, skin=1.0, name="run"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[structure]
lattice = "{lattice}"
element = "{element}"
a = {a}
repeat = [{repeat[0]}, {repeat[1]}, {repeat[2]}]
rattle = {rattle}

[potential]
file = "{(POTENTIALS / potential).as_posix()}"

[velocities]
temperature = {temperature}
seed = {seed}

[md]
timestep = {timestep}
steps = {steps}
skin = {skin}

[thermo]
every = {thermo_every}
file = "{name}.log"

[trajectory]
file = "{name}.h5"
every = {traj_every}

[checkpoint]
file = "{name}.ckpt.h5"
every = {ckpt_every}
{extra}
"""
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def run_driver(driver_class, path, comm=None):
    """Build a driver from an input file (on ``comm``, default one rank) and run it: (run, result)."""
    import io

    from mpi4py import MPI

    from acemd.config import parse_config
    text = Path(path).read_text()
    run = driver_class(parse_config(text, path), text, path, comm=comm or MPI.COMM_SELF,
                       stream=io.StringIO())
    return run, run.run()


def gather_by_id(comm, ids, values):
    """All atoms' values ordered by global id, on every rank."""
    all_ids = np.concatenate(comm.allgather(np.asarray(ids)))
    all_vals = np.concatenate(comm.allgather(np.asarray(values)))
    order = np.argsort(all_ids)
    return all_vals[order]


def assert_same_trajectory(a, c, atol=1e-10):
    """Two serial States hold the same unwrapped positions and velocities (matched by id)."""
    oa, oc = np.argsort(a.ids), np.argsort(c.ids)
    np.testing.assert_allclose(c.positions[oc] + c.images[oc] @ c.cell,
                               a.positions[oa] + a.images[oa] @ a.cell, atol=atol)
    np.testing.assert_allclose(c.velocities[oc], a.velocities[oa], atol=atol)
