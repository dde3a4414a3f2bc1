"""[properties.reference] dataset: the structures of a pacemaker dataset that are the phase scaled give
the EOS reference; other structures (another lattice, a rattled cell, another cell shape) are left out.

The dataset holds EMT energies, so its reference must equal the EMT calculator run through the
driver's own protocol (to the difference of the two sets of volumes)."""
import numpy as np
import pandas as pd
from ase.build import bulk
from ase.calculators.emt import EMT
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.properties import PropertiesRun

from test_bad_inputs import POT


def _dataset(path):
    rows = []
    for s in np.linspace(0.95, 1.05, 7):
        rows.append(bulk("Cu", "fcc", a=3.59 * s ** (1 / 3), cubic=True))
    rows.append(bulk("Cu", "bcc", a=2.87, cubic=True).repeat((2, 1, 1)))        # 4 atoms, another lattice
    rattled = bulk("Cu", "fcc", a=3.59, cubic=True)
    rattled.rattle(0.05, seed=1)
    rows.append(rattled)
    sheared = bulk("Cu", "fcc", a=3.59, cubic=True)
    sheared.set_cell(sheared.cell.array @ np.array([[1, 0.03, 0], [0, 1, 0], [0, 0, 1]]), scale_atoms=True)
    rows.append(sheared)
    energies = []
    for a in rows:
        a.calc = EMT()
        energies.append(a.get_potential_energy())
        a.calc = None
    pd.DataFrame({"ase_atoms": rows, "energy_corrected": energies}).to_pickle(path, compression="gzip")


def test_dataset_reference_equals_the_calculator_reference(tmp_path):
    _dataset(tmp_path / "data.pckl.gzip")
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
[potential]
file = "{(POT / 'Cu-PBE-core-rep.ace').as_posix()}"
[properties]
compute = ["eos"]
[properties.eos]
points = 7
volume_range = [0.95, 1.05]
[properties.reference]
calculator = "ase.calculators.emt:EMT"
dataset = "data.pckl.gzip"
"""
    (tmp_path / "in.toml").write_text(text)
    settings = parse_config(text, tmp_path / "in.toml")
    run = PropertiesRun(settings, text, tmp_path / "in.toml", comm=MPI.COMM_WORLD, stream=None)
    summary = run.run()
    from_calc = {e.name: e.value for e in summary["reference"][0].entries}
    eos = {e.name: e for e in summary["results"][0].entries}
    import yaml
    info = yaml.safe_load((tmp_path / "properties.yaml").read_text())["reference"]["dataset"]
    dv = eos["eos.V0"].reference / from_calc["eos.V0"] - 1
    db = eos["eos.B0"].reference / from_calc["eos.B0"] - 1
    print(f"\ndataset: {info['matching_structures']} of 10 structures match the phase; V0 {eos['eos.V0'].reference:.5f}"
          f" vs EMT through the driver {from_calc['eos.V0']:.5f} ({100 * dv:+.4f} %), B0 "
          f"{eos['eos.B0'].reference:.3f} vs {from_calc['eos.B0']:.3f} GPa ({100 * db:+.4f} %)")
    assert info["matching_structures"] == 7
    assert eos["eos.B0"].reference_source == "EMT (dataset)"
    assert abs(dv) < 1e-4 and abs(db) < 5e-3
