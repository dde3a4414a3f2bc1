"""Inputs and labellers for the ``acemd learn`` tests: a small EMT copper loop (32-atom cells, a
52-function linear ACE) and calculators that fail in known ways."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

FIT = """
[learn.fit]
test_size = 0.1
seed = 1
[learn.fit.potential]
deltaSplineBins = 0.001
elements = ["Cu"]
embeddings = {ALL = {npot = "FinnisSinclairShiftedScaled", fs_parameters = [1, 1], ndensity = 1}}
bonds = {ALL = {radbase = "SBessel", radparameters = [5.25], rcut = 4.6, dcut = 0.01}}
functions = {ALL = {nradmax_by_orders = [5, 3, 2, 1], lmax_by_orders = [0, 2, 2, 1]}}
[learn.fit.fit]
loss = {kappa = 0.5, L2_coeffs = 1e-6}
"""

EXPLORE_COLD = """
[[learn.explore]]
name = "nvt300"
structure = {lattice = "fcc", element = "Cu", a = 3.6, repeat = [2, 2, 2]}
velocities = {temperature = 300.0}
md = {steps = 200, timestep = 0.002, ensemble = "nvt-langevin"}
thermostat = {temperature = 300.0, damping = 0.05}
"""

EXPLORE_HOT = """
[[learn.explore]]
name = "nvt1500"
structure = {lattice = "fcc", element = "Cu", a = 3.7, repeat = [2, 2, 2]}
velocities = {temperature = 1500.0}
md = {steps = %(hot_steps)d, timestep = 0.002, ensemble = "nvt-langevin"}
thermostat = {temperature = 1500.0, damping = 0.05}
"""


def learn_input(folder: Path, *, labeller='calculator = "ase.calculators.emt:EMT"', hot=True, hot_steps=300,
                max_iterations=3, gamma_lower=1.5, gamma_upper=5.0, per_iteration=4, count=8, extra="",
                explore=None, name="learn.toml") -> Path:
    """Write an ``acemd learn`` input in ``folder`` and return its path."""
    text = f"""
[learn]
folder = "run"
gamma_lower = {gamma_lower}
gamma_upper = {gamma_upper}
structures_per_iteration = {per_iteration}
max_iterations = {max_iterations}
gamma_every = 10
{extra}
[learn.start]
lattice = "fcc"
element = "Cu"
a = 3.6
repeat = [2, 2, 2]
count = {count}
rattle = 0.1
strain = 0.03

[learn.labeller]
{labeller}
""" + FIT + (explore if explore is not None else EXPLORE_COLD + (EXPLORE_HOT % {"hot_steps": hot_steps} if hot else ""))
    path = Path(folder) / name
    path.write_text(text)
    return path


def _fails(atoms) -> bool:
    """A fixed property of the structure (not of the call order): about one structure in three."""
    return int(abs(atoms.positions[1, 0]) * 1e4) % 3 == 0


class FlakyEMT(EMT):
    """EMT that raises on about a third of the structures, always the same ones."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if _fails(atoms):
            raise RuntimeError("SCF did not converge (test)")
        super().calculate(atoms, properties, system_changes)


class NaNForceEMT(EMT):
    """EMT whose forces are NaN on about a third of the structures (``always``: on all)."""

    def __init__(self, always=False, **kw):
        super().__init__(**kw)
        self.always = always

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.always or _fails(atoms):
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)


class EnergyOnly(Calculator):
    """A calculator that has no forces."""

    implemented_properties = ["energy"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["energy"] = 0.0


class SignallingEMT(EMT):
    """EMT that sends SIGTERM to its own process at its ``after``-th calculation (once per process)."""

    calls = 0

    def __init__(self, after=3, **kw):
        super().__init__(**kw)
        self.after = after

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        type(self).calls += 1
        if type(self).calls == self.after and not os.environ.get("ACEMD_TEST_NO_SIGNAL"):
            os.kill(os.getpid(), signal.SIGTERM)


def final_coefficients(run_folder: Path) -> np.ndarray:
    """The B-function coefficients (``c`` of every ``nbody`` entry) of the final potential of a loop."""
    import yaml
    report = yaml.safe_load((Path(run_folder) / "report.yaml").read_text())
    pot = yaml.safe_load(Path(report["final_potential"]).read_text())
    return np.array([c for block in pot["species"] for f in block.get("nbody", []) for c in f["c"]], dtype=float)
