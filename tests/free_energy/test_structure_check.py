"""The liquid route's liquid/crystal check: the mean Lechner-Dellago averaged q6 (freud).

Crystals must be called crystal and liquids liquid with a margin on both sides of
CRYSTAL_Q6BAR; each case is checked independently of q6 where it matters:

* perfect fcc, bcc, hcp (nearest-neighbour distance 2.55 A, as Cu);
* Einstein crystals: independent Gaussian displacements with an RMS of 0.15 nearest-
  neighbour distances (beyond the Lindemann melting ratio ~0.1; uncorrelated, so harder
  to recognise than a thermal crystal of the same amplitude);
* thermal fcc, hcp, bcc from Langevin MD at 1200 K with a Morse pair potential (the
  atoms stay on their sites: the mean-square displacement does not grow);
* a melted cell: the same Morse fcc expanded to 13.9 A^3/atom and run at 3500 K until
  its atoms have diffused more than a nearest-neighbour distance (the independent
  evidence that it is a liquid);
* a random packing (an ideal-gas configuration).
Each prints its value; the plain q6 is printed beside it for the liquid, where it sits
close to the hot crystals' values (the reason the check averages).
"""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from acemd.free_energy.liquid import CRYSTAL_Q6BAR, mean_averaged_q6
from acemd.integrators import LangevinBAOAB

from free_energy_helpers import SELF, make_engine
from test_thermostats import MorseTerm          # the tests' cheap anharmonic Cu model

D_NN = 2.55
MARGIN = 0.05


def lattices():
    return {"fcc": bulk("Cu", "fcc", a=D_NN * 2 ** 0.5, cubic=True).repeat(4),
            "bcc": bulk("Cu", "bcc", a=D_NN * 2 / 3 ** 0.5, cubic=True).repeat(4),
            "hcp": bulk("Cu", "hcp", a=D_NN, c=D_NN * 1.633, orthorhombic=True).repeat((4, 3, 3))}


def plain_q6(atoms):
    import freud
    box = freud.box.Box.from_matrix(atoms.cell.array.T)
    ql = freud.order.Steinhardt(6)
    ql.compute((box, (atoms.get_scaled_positions(wrap=True) - 0.5) @ atoms.cell.array),
               neighbors={"num_neighbors": 12})
    return float(np.mean(ql.particle_order))


@pytest.mark.parametrize("name", ["fcc", "bcc", "hcp"])
def test_perfect_and_einstein_crystals_are_crystal(name):
    atoms = lattices()[name]
    perfect = mean_averaged_q6(atoms)
    rng = np.random.default_rng(7)
    einstein = atoms.copy()
    einstein.positions += rng.normal(0.0, 0.15 * D_NN / np.sqrt(3.0), einstein.positions.shape)
    hot = mean_averaged_q6(einstein)
    print(f"\n{name} ({len(atoms)} atoms): averaged q6 perfect {perfect:.3f}, Einstein crystal RMS 0.15 d_nn "
          f"{hot:.3f}; crystal above {CRYSTAL_Q6BAR}")
    assert perfect > CRYSTAL_Q6BAR + 0.2
    assert hot > CRYSTAL_Q6BAR + MARGIN


def _md(atoms, temperature, steps, blocks=4):
    """Langevin MD with the Morse term; per block (averaged q6, MSD from the start (A^2)) and the final Atoms."""
    engine = make_engine(SELF, lambda n: [MorseTerm()], atoms.cell.array, atoms.positions,
                         np.zeros(len(atoms), dtype=np.int64), ["Cu"], temperature=temperature, seed=3)
    integ = LangevinBAOAB(0.002, temperature, 0.1, seed=1)
    integ.setup(engine)
    st = engine.state

    def by_id(x):
        out = np.empty((st.n_atoms_total, 3))
        out[st.ids] = x
        return out

    x0 = by_id(st.positions + st.images @ st.cell)
    rows = []
    for _ in range(blocks):
        for _ in range(steps // blocks):
            integ.step(engine)
        d = by_id(st.positions + st.images @ st.cell) - x0
        d -= d.mean(0)
        final = Atoms(numbers=[29] * st.n_atoms_total, positions=by_id(st.positions), cell=st.cell, pbc=True)
        rows.append((mean_averaged_q6(final), float(np.mean((d * d).sum(1)))))
    return rows, final


@pytest.mark.parametrize("name", ["fcc", "hcp", "bcc"])
def test_thermal_crystals_from_md_are_crystal(name):
    atoms = {"fcc": bulk("Cu", "fcc", a=D_NN * 2 ** 0.5, cubic=True).repeat(3),
             "bcc": bulk("Cu", "bcc", a=D_NN * 2 / 3 ** 0.5, cubic=True).repeat(3),
             "hcp": bulk("Cu", "hcp", a=D_NN, c=D_NN * 1.633, orthorhombic=True).repeat((3, 2, 2))}[name]
    rows, _ = _md(atoms, 1200.0, 400)
    print(f"\n{name} Morse 1200 K, per 0.2 ps: averaged q6 " + ", ".join(f"{q:.3f}" for q, _ in rows)
          + "; MSD " + ", ".join(f"{m:.3f}" for _, m in rows) + " A^2")
    assert rows[-1][1] < 2.0 * rows[1][1] + 0.02          # not diffusing: a crystal
    assert all(q > CRYSTAL_Q6BAR + MARGIN for q, _ in rows)


def test_melted_cell_is_liquid():
    atoms = bulk("Cu", "fcc", a=(4 * 13.9) ** (1 / 3), cubic=True).repeat(3)
    rows, final = _md(atoms, 3500.0, 2000, blocks=5)
    q6 = plain_q6(final)
    print("\nMorse fcc at 13.9 A^3/atom, 3500 K, per 0.8 ps: averaged q6 " + ", ".join(f"{q:.3f}" for q, _ in rows)
          + "; MSD " + ", ".join(f"{m:.2f}" for _, m in rows) + f" A^2; final plain q6 {q6:.3f}")
    assert rows[-1][1] > D_NN ** 2 and rows[-1][1] - rows[-3][1] > 1.0     # diffusing: a liquid
    assert rows[-1][0] < CRYSTAL_Q6BAR - MARGIN


def test_random_packing_is_not_crystal():
    atoms = lattices()["fcc"]
    atoms.positions = np.random.default_rng(0).random((len(atoms), 3)) * atoms.cell.lengths()
    value = mean_averaged_q6(atoms)
    print(f"\nrandom packing ({len(atoms)} atoms): averaged q6 {value:.3f}")
    assert value < CRYSTAL_Q6BAR - MARGIN
