"""[properties] eos on fcc Cu (Cu-PBE-core-rep.ace): V0 and B0 of the Birch-Murnaghan fit equal the
volume [minimize] relaxes to and the bulk modulus (C11 + 2 C12)/3 of the [elastic] driver (0.3 %);
the Vinet fit agrees; the fit reproduces an analytic E(V) it was made from."""
import json

import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.properties.eos import birch_murnaghan, fit_eos, vinet
from acemd.units import EV_PER_A3_TO_GPA

from test_bad_inputs import POT, toml_value

CU = {"lattice": "fcc", "element": "Cu", "a": 3.60}


def _text(sections):
    s = {"structure": CU, "potential": {"file": (POT / "Cu-PBE-core-rep.ace").as_posix()}, **sections}
    out = []
    for name, keys in s.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in keys.items() if not isinstance(v, dict)]
        for k, v in keys.items():
            if isinstance(v, dict):
                out.append(f"[{name}.{k}]")
                out += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(out) + "\n"


def _run(folder, sections):
    from acemd.drivers import driver_class
    path = folder / "in.toml"
    text = _text(sections)
    path.write_text(text)
    settings = parse_config(text, path)
    return driver_class(settings)(settings, text, path, comm=MPI.COMM_WORLD, stream=None).run()


@pytest.mark.parametrize("form", ["birch_murnaghan", "vinet"])
def test_fit_recovers_the_parameters_of_an_analytic_curve(form):
    truth = (-3.7, 11.9, 140.0 / EV_PER_A3_TO_GPA, 5.1)
    v = np.linspace(0.94, 1.06, 9) * truth[1]
    e = {"birch_murnaghan": birch_murnaghan, "vinet": vinet}[form](v, *truth)
    fit = fit_eos(v, e, form)
    dev = [abs(fit["V0"] / truth[1] - 1), abs(fit["B0"] / 140.0 - 1), abs(fit["B0_prime"] - truth[3])]
    print(f"\n{form}: relative deviations V0 {dev[0]:.2e}, B0 {dev[1]:.2e}; B0' {dev[2]:.2e}")
    assert max(dev) < 1e-7


def test_eos_equals_minimize_volume_and_elastic_bulk_modulus(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "e").mkdir()
    summary = _run(tmp_path / "p", {"properties": {"compute": ["eos"], "report": "p.json",
                                                   "eos": {"points": 7, "volume_range": [0.96, 1.04]}}})
    eos = {e.name: e for r in summary["results"] for e in r.entries}
    _run(tmp_path / "m", {"minimize": {"cell": "iso", "fmax": 1e-6, "stress_tol": 0.01}})
    import ase.io
    relaxed = ase.io.read(tmp_path / "m" / "relaxed.extxyz")
    v_min = relaxed.get_volume() / len(relaxed)
    _run(tmp_path / "e", {"elastic": {"report": "elastic.json", "data": "elastic.h5"}})
    c = np.array(json.loads((tmp_path / "e" / "elastic.json").read_text())["C_symmetrized_GPa"])
    b_el = (np.mean([c[0, 0], c[1, 1], c[2, 2]]) + 2 * np.mean([c[0, 1], c[0, 2], c[1, 2]])) / 3
    dv = eos["eos.V0"].value / v_min - 1
    db = eos["eos.B0"].value / b_el - 1
    dbv = eos["eos.vinet.B0"].value / b_el - 1
    print(f"\nEOS V0 = {eos['eos.V0'].value:.5f} A^3/atom vs [minimize] {v_min:.5f}: {100 * dv:+.4f} %; "
          f"B0 = {eos['eos.B0'].value:.3f} +- {eos['eos.B0'].error:.3f} GPa vs [elastic] (C11+2C12)/3 = "
          f"{b_el:.3f}: {100 * db:+.4f} % (Vinet {100 * dbv:+.4f} %)")
    assert abs(dv) < 3e-3 and abs(db) < 3e-3 and abs(dbv) < 3e-3
    report = json.loads((tmp_path / "p" / "p.json").read_text())
    assert report["properties"]["eos"]["entries"][0]["name"] == "eos.V0"
