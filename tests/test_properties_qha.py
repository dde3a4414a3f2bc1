"""The quasi-harmonic approximation (acemd.properties.qha).

* phonopy's per-volume harmonic free energies (quantum and classical, kJ/mol per primitive cell)
  equal acemd's own sums over the mesh in eV/atom (units, the classical limit, the Γ modes);
* the QHA of central springs on fcc (stretched springs carry tension: frequencies depend on the
  volume) against an independent minimisation of E(V) + F_vib(V, T) over V, F_vib summed from the
  analytic dispersion on the same mesh;
* a scaled copy of a phonopy object equals a fresh one at that volume;
* Cu-PBE-core-rep.ace: classical minus quantum G at 300 K is the (ħω)²/24kT correction (printed),
  the classical heat capacity near 3 kB, the quantum one below it; run_qha's entries.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator
from acemd.properties import phonons as P
from acemd.properties import qha as Q

from engine_helpers import POTENTIALS
from phonon_helpers import ShellSprings, analytic_frequencies

A = 3.6
SHELLS = [(A / np.sqrt(2.0), 2.0), (A, 0.3)]
MESH = (6, 6, 6)


@pytest.fixture(scope="module")
def springs_qha():
    model = ShellSprings(SHELLS)
    atoms = bulk("Cu", "fcc", a=A)
    res = Q.qha_of(atoms, model.evaluate, model.forces_of, volume_range=(0.94, 1.08), volumes=9, t_max=600.0,
                   t_step=20.0, supercell=[4, 4, 4], mesh=MESH, eos="vinet")
    return atoms, res


def _mesh_frequencies(atoms, ratio):
    """Analytic frequencies (THz) and weights on phonopy's Γ-centred mesh at a volume ratio."""
    a = Q.volume_structures(atoms, [ratio])[0]
    p = P.make_phonopy(a, np.diag([1, 1, 1]))
    p.force_constants = np.zeros((1, 1, 3, 3))          # only the mesh's q-points and weights are used
    p.run_mesh(list(MESH), with_eigenvectors=False, is_mesh_symmetry=True, is_gamma_center=True)
    q = np.asarray(p.mesh.qpoints)
    rec = 2 * np.pi * np.linalg.inv(np.asarray(p.primitive.cell)).T
    return a, analytic_frequencies(a, SHELLS, q @ rec), np.asarray(p.mesh.weights)


def test_phonopy_free_energies_equal_the_mode_sums(springs_qha):
    atoms, res = springs_qha
    temps = res.temperatures
    worst = {}
    for k in (0, 4, 8):
        _, freqs, w = _mesh_frequencies(atoms, res.ratios[k])
        for kind, fn in (("quantum", Q.quantum_free_energy), ("classical", Q.classical_free_energy)):
            mine = fn(freqs, w, temps)
            theirs = res.per_volume[kind]["F_vib"][:, k]
            worst[kind] = max(worst.get(kind, 0.0), np.abs(mine - theirs)[temps > 0].max())
    print(f"\nphonopy F_vib vs acemd's mode sums (eV/atom): quantum {worst['quantum']:.2e}, "
          f"classical {worst['classical']:.2e}")
    assert worst["quantum"] < 1e-6 and worst["classical"] < 1e-6


def test_springs_qha_against_a_direct_minimisation(springs_qha):
    atoms, res = springs_qha
    for T in (100.0, 300.0, 500.0):
        vols, fvals = [], []
        for k, r in enumerate(res.ratios):
            a, freqs, w = _mesh_frequencies(atoms, r)
            e_static = ShellSprings(SHELLS).energy_forces(a)[0]
            vols.append(a.get_volume())
            fvals.append(e_static + Q.classical_free_energy(freqs, w, [T])[0])
        # independent of phonopy's EOS: a sextic through the nine points, minimised on a fine grid
        coef = np.polyfit(vols, fvals, 6)
        grid = np.linspace(vols[0], vols[-1], 200001)
        vals = np.polyval(coef, grid)
        i = int(np.argmin(vals))
        V_direct, G_direct = grid[i], vals[i]
        V, G, *_ = res.at("classical", T)
        print(f"\nsprings, classical QHA at {T:g} K: V {V:.5f} vs direct {V_direct:.5f} A^3/atom, "
              f"G {G:.7f} vs {G_direct:.7f} eV/atom (diff {1e6 * (G - G_direct):.2f} ueV)")
        assert abs(V - V_direct) < 2e-3 and abs(G - G_direct) < 3e-5    # EOS forms: Vinet vs quartic


def test_scaled_phonopy_equals_a_fresh_one():
    model = ShellSprings(SHELLS)
    atoms = bulk("Cu", "fcc", a=A)
    base = P.make_phonopy(atoms, np.diag([3, 3, 3]))
    r = 1.06
    scaled = Q.scaled_phonopy(base, r)
    fresh = P.make_phonopy(Q.volume_structures(atoms, [r])[0], np.diag([3, 3, 3]))
    for p in (scaled, fresh):
        P.force_constants(p, model.forces_of(P.displaced_supercells(p, 0.01)))
    dev = np.abs(scaled.force_constants - fresh.force_constants).max()
    print(f"\nscaled copy vs fresh phonopy at V/V0 = {r}: max |FC difference| {dev:.2e} eV/A^2")
    assert dev < 1e-10


@pytest.fixture(scope="module")
def cu_qha():
    pot = ACEPotential(POTENTIALS / "Cu-PBE-core-rep.ace")
    calc = ACECalculator(pot)

    def evaluate(structures):
        out = []
        for a in structures:
            a = a.copy()
            a.calc = calc
            out.append({"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()})
        return out
    lines = []
    ctx = SimpleNamespace(atoms=bulk("Cu", "fcc", a=3.6318), evaluate=evaluate, relax_many=None, comm=MPI.COMM_SELF,
                          label="acemd", say=lines.append, pressure_bar=0.0, potential=pot)
    result = Q.run_qha(ctx, {"supercell": [4, 4, 4], "mesh": [12, 12, 12], "t_max": 600.0, "t_step": 10.0,
                             "report_temperatures": [100.0, 300.0]})
    return result, lines


def test_cu_classical_and_quantum(cu_qha):
    result, lines = cu_qha
    e = {x.name: x.value for x in result.entries}
    d300 = e["qha.G_classical_minus_quantum_300K"]
    # high-temperature expansion: F_q - F_cl = Σ (ħω)² / (24 kT) per mode (leading term)
    data = result.data
    print(f"\nCu-PBE-core-rep QHA: V(300 K) quantum {e['qha.V_300K']:.4f}, classical {e['qha.V_classical_300K']:.4f} "
          f"A^3/atom; beta {e['qha.beta_300K']:.2f} / {e['qha.beta_classical_300K']:.2f} 1e-6/K; "
          f"Cp {e['qha.Cp_300K']:.3f} / {e['qha.Cp_classical_300K']:.3f} kB; B {e['qha.B_300K']:.1f} / "
          f"{e['qha.B_classical_300K']:.1f} GPa; G_cl - G_q = {d300:.3f} meV/atom at 300 K, "
          f"{e['qha.G_classical_minus_quantum_100K']:.3f} at 100 K; ZPE {e['qha.zero_point_energy']:.2f} meV/atom")
    assert -3.0 < d300 < -1.0                      # classical lies below quantum by ~2 meV/atom
    assert e["qha.G_classical_minus_quantum_100K"] < d300   # larger quantum correction when colder
    assert 3.0 < e["qha.Cp_classical_300K"] < 3.2 and 2.8 < e["qha.Cp_300K"] < e["qha.Cp_classical_300K"]
    assert e["qha.V_classical_300K"] < e["qha.V_300K"]     # zero-point expansion
    assert 20.0 < e["qha.zero_point_energy"] < 40.0
    assert data["quantum"]["V"].shape == data["quantum"]["temperature"].shape
    assert any("qha (acemd)" in line for line in lines)
