"""Thermodynamic switching through the lambda-mixing machinery with Langevin dynamics:
Einstein(k1) -> Einstein(k2), both with the centre of mass fixed, has the exact
Delta F = 3 (N - 1) / (2 N) kB T ln(k2/k1) per atom ((3/2) kB T ln(k2/k1) for large N).

The statistical error of the work per atom falls as 1/sqrt(N t_switch); 2048 atoms on
springs (no neighbours: a step costs what the engine's bookkeeping costs) and a 6 fs
step (BAOAB samples a harmonic configuration space exactly for omega dt < 2; here
omega dt = 0.1) make a 3000-step switch precise to ~5e-5 eV/atom (seeds 1 and 2 gave
errors -4e-5 and -8e-6)."""
import numpy as np
import pytest

from acemd.free_energy import EinsteinTerm, LambdaMixing
from acemd.free_energy.reference import fixed_com_einstein_switch
from acemd.free_energy.switching import free_energy_difference, run_at_fixed_lambda, switch
from acemd.integrators import LangevinBAOAB
from acemd.units import BOLTZMANN

from free_energy_helpers import SELF, crystal, make_engine

T, K1, K2 = 300.0, 1.0, 2.0


def _einstein_pair(repeat, seed=9):
    cell, sites, sp, names = crystal(repeat=repeat, rattle=0.0)

    def terms(n):
        return [LambdaMixing(EinsteinTerm([K1], sites, cell, name="k1"),
                             EinsteinTerm([K2], sites, cell, name="k2"), switching="smooth")]
    engine = make_engine(SELF, terms, cell, sites, sp, names, temperature=T)
    integrator = LangevinBAOAB(0.006, T, damping=0.04, seed=seed)
    integrator.setup(engine)
    return engine, integrator, engine.forcefield.terms[0]


def _cycle(engine, integrator, mix, n_switch, n_eq=500):
    run_at_fixed_lambda(engine, integrator, mix, 0.0, n_eq)
    fw = switch(engine, integrator, mix, n_switch, forward=True)
    run_at_fixed_lambda(engine, integrator, mix, 1.0, n_eq)
    bw = switch(engine, integrator, mix, n_switch, forward=False)
    return fw, bw


def test_einstein_to_einstein_free_energy_and_dissipation():
    engine, integrator, mix = _einstein_pair(repeat=8)
    n = engine.state.n_atoms_total
    exact = fixed_com_einstein_switch(T, n, K1, K2)
    assert exact == pytest.approx(1.5 * (n - 1) / n * BOLTZMANN * T * np.log(2.0), rel=1e-15)
    results = {}
    for steps in (300, 3000):
        fw, bw = _cycle(engine, integrator, mix, steps)
        df, q = free_energy_difference(fw, bw)
        results[steps] = (df / n, q / n)
        print(f"\n{n} atoms, switch {steps} steps ({steps * 0.006:.1f} ps): dF = {df / n:.6f} eV/atom, "
              f"exact {exact:.6f}, error {df / n - exact:+.1e}, dissipation {q / n:.1e} eV/atom")
        # the recorded path: f from 0 to 1, dH/dlambda = f' (U_B - U_A) vanishes at the ends
        assert fw.weight[0] == 0.0 and fw.weight[-1] == pytest.approx(1.0)
        assert fw.dh_dlambda[0] == 0.0 and bw.dh_dlambda[-1] == 0.0
    assert abs(results[3000][0] - exact) < 1e-4
    assert results[3000][1] < 0.5 * results[300][1]
    assert results[300][1] > 0.0


def test_too_few_switching_steps_is_a_clear_error():
    engine, integrator, mix = _einstein_pair(repeat=1)
    with pytest.raises(ValueError, match="at least 10 steps"):
        switch(engine, integrator, mix, 5)
