"""[properties] with [extrapolation]: each property's max extrapolation grade equals ACECalculator's on
its structures, properties above gamma_threshold are flagged; reference values given in the input
are paired by entry name (an unknown name is reported, not silently dropped)."""
import numpy as np
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.properties import PropertiesRun
from acemd.potential.calculator import ACECalculator

from test_bad_inputs import POT

TEXT = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
[potential]
file = "{(POT / 'Cu-I.yaml').as_posix()}"
[extrapolation]
active_set = "{(POT / 'Cu-I.asi').as_posix()}"
[properties]
compute = ["eos", "interstitial"]
gamma_threshold = 2.0
report = "g.json"
[properties.eos]
points = 5
[properties.interstitial]
sizes = [1]
[properties.reference]
label = "DFT"
values = {{"eos.B0" = 140.0, "eos.B00" = 3.0}}
"""


def test_gamma_flags_and_given_reference_values(tmp_path):
    import io
    path = tmp_path / "in.toml"
    path.write_text(TEXT)
    settings = parse_config(TEXT, path)
    out = io.StringIO()
    summary = PropertiesRun(settings, TEXT, path, comm=MPI.COMM_WORLD, stream=out).run()
    eos, inter = summary["results"]
    calc = ACECalculator(str(POT / "Cu-I.yaml"), active_set=str(POT / "Cu-I.asi"))
    from ase.build import bulk
    gammas = []
    for v in eos.data["volume"]:                       # the EOS cells: 4-atom fcc at each volume per atom
        atoms = bulk("Cu", "fcc", a=(4 * v) ** (1 / 3), cubic=True)
        atoms.calc = calc
        atoms.get_potential_energy()
        gammas.append(calc.results["max_gamma"])
    print(f"\neos max gamma: driver {eos.max_gamma:.6g}, ACECalculator {max(gammas):.6g}; interstitial "
          f"{inter.max_gamma:.4g}")
    assert abs(eos.max_gamma - max(gammas)) < 1e-6 * max(1.0, max(gammas))
    assert not any(e.flags for e in eos.entries)
    assert inter.max_gamma > 2.0 and all("extrapolating" in f for e in inter.entries for f in e.flags)
    assert inter.entries[0].flags
    b0 = eos.entry("eos.B0")
    assert b0.reference == 140.0 and abs(b0.difference - (b0.value - 140.0)) < 1e-12
    assert b0.reference_source == "DFT (values)"
    assert "'eos.B00' names no entry" in out.getvalue() and "did you mean 'eos.B0'" in out.getvalue()
