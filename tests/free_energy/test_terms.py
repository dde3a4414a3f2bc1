"""Force terms of the free-energy routes: Einstein springs (fixed centre of mass), the
Uhlenbeck-Ford liquid, the Lennard-Jones stand-in potential and lambda mixing.  Forces against central finite differences of
the energy, the virial against the strain derivative W = -dU/d(strain), and the
periodic/centre-of-mass properties the Frenkel-Ladd route relies on."""
import numpy as np
import pytest

from acemd.forcefield import ACETerm
from acemd.free_energy import EinsteinTerm, LambdaMixing, UhlenbeckFordTerm, switching_derivative, switching_value
from acemd.free_energy.lennard_jones import LennardJonesTerm, lj_pair_energy
from acemd.free_energy.uhlenbeck_ford import uf_pair_energy
from acemd.units import BOLTZMANN

from engine_helpers import POTENTIALS
from free_energy_helpers import SELF, crystal, energy_at, forces_by_id, make_engine, positions_by_id

K_CU_NI = np.array([1.7, 2.9])       # eV/Å^2


def _einstein(cell, sites, k):
    return lambda n: [EinsteinTerm(k, sites, cell)]


def _uf(n):
    return [UhlenbeckFordTerm(temperature=1000.0, p=50.0, sigma=1.5)]


LJ = {"epsilon": 0.0103, "sigma": 2.3, "cutoff_sigmas": 2.5}     # nearest neighbours at 1.1 sigma


def _lj(n):
    return [LennardJonesTerm(**LJ)]


def _mix_ace_einstein(cell, sites, lam=0.37, kind="smooth"):
    def make(n):
        return [LambdaMixing(ACETerm(POTENTIALS / "Cu-I.yace"), EinsteinTerm([1.3], sites, cell),
                             switching=kind, lam=lam)]
    return make


def _systems():
    cell, pos, sp, names = crystal(repeat=2, rattle=0.15, binary=True)
    sites = crystal(repeat=2, rattle=0.0)[1]
    cu_cell, cu_pos, cu_sp, cu_names = crystal(repeat=2, rattle=0.15, seed=8)
    return {
        "einstein-binary": (_einstein(cell, sites, K_CU_NI), cell, pos, sp, names),
        "uf": (_uf, cu_cell, cu_pos, cu_sp, cu_names),
        "lj": (_lj, cu_cell, cu_pos, cu_sp, cu_names),
        "mix-ace-einstein": (_mix_ace_einstein(cu_cell, sites), cu_cell, cu_pos, cu_sp, cu_names),
    }


SYSTEMS = _systems()


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_forces_are_minus_the_energy_gradient(name):
    factory, cell, pos, sp, names = SYSTEMS[name]
    engine = make_engine(SELF, factory, cell, pos, sp, names)
    f = forces_by_id(engine)
    x0 = positions_by_id(engine)
    h = 1e-5
    rng = np.random.default_rng(0)
    worst = 0.0
    for i in rng.choice(len(pos), 6, replace=False):
        for d in range(3):
            xp, xm = x0.copy(), x0.copy()
            xp[i, d] += h
            xm[i, d] -= h
            fd = -(energy_at(engine, xp) - energy_at(engine, xm)) / (2 * h)
            worst = max(worst, abs(fd - f[i, d]))
            assert fd == pytest.approx(f[i, d], abs=2e-6 * max(1.0, abs(f[i, d])))
    print(f"\n{name}: max |F - F_fd| = {worst:.1e} eV/Å")


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_virial_is_minus_the_strain_derivative(name):
    factory, cell, pos, sp, names = SYSTEMS[name]
    engine = make_engine(SELF, factory, cell, pos, sp, names)
    virial = engine.virial.copy()
    x0, c0 = positions_by_id(engine), engine.state.cell.copy()
    h = 1e-6
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for s in (h, -h):
                strain = np.eye(3)
                strain[a, b] += s
                e.append(energy_at(engine, x0 @ strain.T, c0 @ strain.T))
            fd[a, b] = -(e[0] - e[1]) / (2 * h)
    print(f"\n{name}: virial diagonal {np.diag(virial)} eV, max |W + dU/de| = {np.abs(fd - virial).max():.1e} eV")
    np.testing.assert_allclose(virial, fd, atol=2e-5 * max(1.0, np.abs(virial).max()))


def test_einstein_spring_forces_sum_to_zero_and_energy_is_translation_invariant():
    factory, cell, pos, sp, names = SYSTEMS["einstein-binary"]
    engine = make_engine(SELF, factory, cell, pos, sp, names)
    np.testing.assert_allclose(forces_by_id(engine).sum(0), 0.0, atol=1e-12)
    e0 = engine.potential_energy
    assert e0 > 0.0
    assert energy_at(engine, pos + np.array([0.31, -0.2, 0.77])) == pytest.approx(e0, rel=1e-12)


def test_einstein_energy_by_hand_with_periodic_wrap_and_centre_of_mass():
    """An atom wrapped across the boundary counts its small displacement; the energy equals
    1/2 sum k |u - D|^2 with D the mass-weighted mean displacement, computed here by hand."""
    cell, sites, sp, names = crystal(repeat=2, rattle=0.0, binary=True)
    rng = np.random.default_rng(4)
    u = rng.normal(0.0, 0.1, sites.shape)
    pos = sites + u
    frac = pos @ np.linalg.inv(cell)
    pos = (frac - np.floor(frac)) @ cell                  # wrapped into the box
    engine = make_engine(SELF, _einstein(cell, sites, K_CU_NI), cell, pos, sp, names)
    m = np.array([63.546, 58.6934])[sp]
    shift = (m[:, None] * u).sum(0) / m.sum()
    expected = 0.5 * np.sum(K_CU_NI[sp] * ((u - shift) ** 2).sum(1))
    assert np.any(np.abs(frac - np.floor(frac) - frac) > 0.5)      # some atoms really wrapped
    assert engine.potential_energy == pytest.approx(expected, rel=1e-12)


def test_einstein_rejects_wrong_number_of_spring_constants():
    cell, pos, sp, names = crystal(repeat=2, rattle=0.0, binary=True)
    with pytest.raises(ValueError, match="1 spring constants for 2 species"):
        make_engine(SELF, _einstein(cell, pos, [1.0]), cell, pos, sp, names)


def test_uf_pair_energy_and_sum_against_direct_double_loop():
    """Total UF energy equals 1/2 sum over all pairs and periodic images within the cutoff
    (7.5 Å, more than the 7.22 Å cell: images up to two cells away)."""
    _, cell, pos, sp, names = SYSTEMS["uf"]
    engine = make_engine(SELF, _uf, cell, pos, sp, names)
    term = engine.forcefield.terms[0]
    total = 0.0
    shifts = np.array([[i, j, k] for i in range(-2, 3) for j in range(-2, 3) for k in range(-2, 3)]) @ cell
    for i in range(len(pos)):
        d = (pos[None, :, :] + shifts[:, None, :]) - pos[i]
        r = np.sqrt((d ** 2).sum(-1)).ravel()
        r = r[(r > 1e-12) & (r < term.cutoff)]
        total += 0.5 * uf_pair_energy(r, 50.0, 1.5, 1000.0).sum()
    assert engine.potential_energy == pytest.approx(total, rel=1e-12)
    # phi at r = sigma is -p kB T ln(1 - 1/e), at the cutoff below 1e-10 of p kB T
    eps = 50 * BOLTZMANN * 1000.0
    assert uf_pair_energy(1.5, 50.0, 1.5, 1000.0) == pytest.approx(-eps * np.log(1 - np.exp(-1)), rel=1e-14)
    assert uf_pair_energy(term.cutoff, 50.0, 1.5, 1000.0) < 1e-10 * eps


def test_lj_pair_energy_and_sum_against_direct_double_loop():
    """Total LJTS energy equals 1/2 sum over all pairs and periodic images within the cutoff
    (5.75 Å, more than half the 7.22 Å cell); phi is 0 at the cutoff (shifted), -epsilon at
    the minimum 2^(1/6) sigma up to the shift, and 0 beyond."""
    _, cell, pos, sp, names = SYSTEMS["lj"]
    engine = make_engine(SELF, _lj, cell, pos, sp, names)
    term = engine.forcefield.terms[0]
    eps, sig, rc = LJ["epsilon"], LJ["sigma"], term.cutoff
    assert rc == pytest.approx(2.5 * sig)
    total = 0.0
    shifts = np.array([[i, j, k] for i in range(-1, 2) for j in range(-1, 2) for k in range(-1, 2)]) @ cell
    for i in range(len(pos)):
        d = (pos[None, :, :] + shifts[:, None, :]) - pos[i]
        r = np.sqrt((d ** 2).sum(-1)).ravel()
        r = r[r > 1e-12]
        total += 0.5 * lj_pair_energy(r, eps, sig, rc).sum()
    assert engine.potential_energy == pytest.approx(total, rel=1e-12)
    shift = 4 * eps * (2.5 ** -12 - 2.5 ** -6)
    assert lj_pair_energy(2 ** (1 / 6) * sig, eps, sig, rc) == pytest.approx(-eps - shift, rel=1e-13)
    assert lj_pair_energy(rc * (1 - 1e-12), eps, sig, rc) == pytest.approx(0.0, abs=1e-12 * eps)
    assert lj_pair_energy(rc * 1.01, eps, sig, rc) == 0.0
    with pytest.raises(ValueError, match="cutoff must exceed sigma"):
        LennardJonesTerm(cutoff_sigmas=0.9)


@pytest.mark.parametrize("kind", ["smooth", "linear"])
def test_switching_function_values_and_slopes(kind):
    lam = np.linspace(0.0, 1.0, 1001)
    f = switching_value(lam, kind)
    assert f[0] == 0.0 and f[-1] == pytest.approx(1.0, abs=1e-14)
    assert np.all(np.diff(f) >= 0)
    h = 1e-6
    inner = lam[1:-1]
    fd = (switching_value(inner + h, kind) - switching_value(inner - h, kind)) / (2 * h)
    np.testing.assert_allclose(switching_derivative(inner, kind), fd, atol=1e-6)
    if kind == "smooth":
        assert switching_derivative(0.0, kind) == 0.0 and switching_derivative(1.0, kind) == 0.0
        assert switching_value(0.5, kind) == pytest.approx(0.5, abs=1e-14)


def test_mixing_reports_both_energies_and_dh_dlambda():
    factory, cell, pos, sp, names = SYSTEMS["mix-ace-einstein"]
    engine = make_engine(SELF, factory, cell, pos, sp, names)
    mix = engine.forcefield.terms[0]
    ua, ub = engine.term_energies["mix.A"], engine.term_energies["mix.B"]
    f = mix.weight
    assert engine.potential_energy == pytest.approx((1 - f) * ua + f * ub, rel=1e-13)
    dh = mix.weight_derivative * (ub - ua)
    h = 1e-6
    x = positions_by_id(engine)
    lam0 = mix.lam
    mix.lam = lam0 + h
    ep = energy_at(engine, x)
    mix.lam = lam0 - h
    em = energy_at(engine, x)
    assert dh == pytest.approx((ep - em) / (2 * h), rel=1e-6)
