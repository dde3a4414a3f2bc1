"""[properties] vacancy, interstitial, surfaces and stacking faults equal the same quantities computed the usual way:
ASE structures (fcc100/fcc111 builders, ase.lattice.cubic), acemd's ACECalculator and ASE's optimisers
(BFGS; FixCartesian for the GSF point), to 1 meV per defect / surface cell / fault cell.

The driver relaxes with acemd's own minimiser (FIRE on acemd's engine); only the potential is shared."""
import numpy as np
import pytest

from acemd.potential.calculator import ACECalculator

from test_bad_inputs import POT
from test_properties_eos import _run

FMAX = 1e-5


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("battery")
    summary = _run(folder, {"properties": {
        "compute": ["vacancy", "interstitial", "surfaces", "stacking_fault"], "fmax": FMAX, "report": "p.yaml",
        "vacancy": {"sizes": [2]}, "interstitial": {"sizes": [2]},
        "surfaces": {"miller": [[1, 0, 0], [1, 1, 1]], "layers": 4, "vacuum": 10.0},
        "stacking_fault": {"layers": 9, "points": [0.0, 1.0 / 6.0]}}})
    return {r.name: r for r in summary["results"]}


@pytest.fixture(scope="module")
def calc():
    return ACECalculator(str(POT / "Cu-PBE-core-rep.ace"))


def _relax(atoms, calc, cell=False, fmax=FMAX):
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    atoms = atoms.copy()
    atoms.calc = calc
    target = FrechetCellFilter(atoms) if cell else atoms
    assert BFGS(target, logfile=None).run(fmax=fmax, steps=2000)
    return atoms, atoms.get_potential_energy()


@pytest.fixture(scope="module")
def bulk_cu(calc):
    from ase.build import bulk
    atoms, e = _relax(bulk("Cu", "fcc", a=3.6, cubic=True), calc, cell=True, fmax=1e-6)
    return atoms, e / len(atoms), atoms.cell.lengths()[0]


def _point_defect_against_ase(battery, calc, bulk_cu, kind, cell, what):
    """E_f of the driver's ``kind`` against ``cell`` relaxed by ASE's BFGS at constant volume."""
    _, e_bulk, _ = bulk_cu
    _, e = _relax(cell, calc)
    ase_ef = e - len(cell) * e_bulk
    mine = battery[kind].entry(f"{kind}.E_f").value
    print(f"\n{kind} E_f ({what}): [properties] {mine:.6f} eV, ASE BFGS {ase_ef:.6f} eV, "
          f"difference {1e3 * (mine - ase_ef):+.4f} meV")
    assert abs(mine - ase_ef) < 1e-3


def test_vacancy_formation_energy(battery, calc, bulk_cu):
    cell = bulk_cu[0].repeat((2, 2, 2))
    del cell[5]                                         # any site: all are equivalent
    _point_defect_against_ase(battery, calc, bulk_cu, "vacancy", cell, "31 atoms")


def test_interstitial_formation_energy(battery, calc, bulk_cu):
    """The octahedral interstitial (the input's default position), relaxed at constant volume: by
    symmetry it stays on its site in both minimisers, so both end at the same stationary point."""
    from ase import Atom
    unit = bulk_cu[0]
    cell = unit.repeat((2, 2, 2))
    cell.append(Atom("Cu", position=0.5 * unit.cell.lengths()))
    _point_defect_against_ase(battery, calc, bulk_cu, "interstitial", cell, "33 atoms, octahedral")


def test_surface_energies(battery, calc, bulk_cu):
    from ase.build import fcc100, fcc111
    _, e_bulk, a = bulk_cu
    result = battery["surfaces"]
    areas = dict(zip(["100", "111"], result.data["area"]))
    for name, slab in (("100", fcc100("Cu", size=(1, 1, 8), a=a, vacuum=10.0)),
                       ("111", fcc111("Cu", size=(2, 2, 4), a=a, vacuum=10.0))):
        _, e = _relax(slab, calc)
        area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
        ase_gamma_ev_a2 = (e - len(slab) * e_bulk) / (2 * area)
        mine = result.entry(f"surface.{name}").value / 16.02176634
        diff_mev = 1e3 * (mine - ase_gamma_ev_a2) * 2 * areas[name]
        print(f"\nsurface ({name}): [properties] {16.02176634 * mine:.6f} J/m^2, ASE {16.02176634 * ase_gamma_ev_a2:.6f} "
              f"J/m^2; difference {diff_mev:+.4f} meV per slab of the driver (area {areas[name]:.3f} A^2 x 2)")
        assert abs(diff_mev) < 1.0


def test_stacking_fault_energies(battery, calc, bulk_cu):
    from ase.constraints import FixCartesian
    from ase.lattice.cubic import FaceCenteredCubic
    _, _, a = bulk_cu
    perfect = FaceCenteredCubic(directions=[[1, -1, 0], [1, 1, -2], [1, 1, 1]], size=(1, 1, 3), symbol="Cu",
                                latticeconstant=a, pbc=True)
    perfect.calc = calc
    e0 = perfect.get_potential_energy()
    info = battery["stacking_fault"].info

    def tilted(shift):
        f = perfect.copy()
        c = f.cell.array.copy()
        c[2, 1] += shift
        f.set_cell(c)
        return f
    _, e_isf = _relax(tilted(a / np.sqrt(6.0)), calc)
    d_isf = 1e3 * ((info["isf_energy_eV"] - info["perfect_energy_eV"]) - (e_isf - e0))
    gsf_point = tilted(a / np.sqrt(6.0) / 2)
    gsf_point.set_constraint(FixCartesian(range(len(gsf_point)), mask=(True, True, False)))
    _, e_gsf = _relax(gsf_point, calc)
    gsf_mine_ev = battery["stacking_fault"].data["gsf"][1] / 16021.76634 * info["area_A2"]
    d_gsf = 1e3 * (gsf_mine_ev - (e_gsf - e0))
    print(f"\nISF: [properties] {battery['stacking_fault'].entry('stacking_fault.isf').value:.4f} mJ/m^2; "
          f"fault energy vs ASE {d_isf:+.4f} meV per cell ({len(perfect)} atoms); GSF at u = 1/6: "
          f"{d_gsf:+.4f} meV per cell")
    assert len(perfect) == info["n_atoms"]
    assert abs(d_isf) < 1.0 and abs(d_gsf) < 1.0
