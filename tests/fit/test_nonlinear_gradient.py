"""The nonlinear fit's model against the engine, and its exact gradients against finite differences.

For the shared B-basis potentials (several densities, distance, density and ZBL inner cutoffs, one to
three elements): the fit's passes on the file's coefficients give the engine's energies, forces and
stresses; the gradient of single energies, force components and virial components with respect to
every kind of coefficient (basis coefficients of each density, radial coefficients) equals a
fourth-order central difference; so does the gradient of the whole loss with its regularisers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from acemd.fit.basis_file import spec_from_file
from acemd.fit.batch import StructureBatch
from acemd.fit.dataset import Structure
from acemd.fit.loss import DataLoss, LossTerms, Objective
from acemd.fit.nonlinear_model import NonlinearModel
from acemd.potential import ACEPotential
from acemd.potential.calculator import evaluate_periodic

DATA = Path(__file__).resolve().parents[1] / "data" / "potentials"
POTENTIALS = ["Cu-I", "synth_W_SBessel_ZBL", "ternary_AlCuZn", "synth_NbTa_distance"]


class _SerialComm:
    def Allreduce(self, a, b):
        b[...] = a

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1


def _structures(elements, seed=0):
    """Two rattled, strained periodic cells and a small cluster (no stress)."""
    rng = np.random.default_rng(seed)
    out = []
    for k, (lat, a0) in enumerate((("fcc", 3.7), ("bcc", 3.0))):
        at = bulk("Cu", lat, a=a0, cubic=True)
        at.set_cell(at.cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))), scale_atoms=True)
        at.positions += rng.normal(0, 0.1, at.positions.shape)
        at.symbols = [elements[rng.integers(len(elements))] for _ in range(len(at))]
        out.append(at)
    cluster = Atoms([elements[rng.integers(len(elements))] for _ in range(4)],
                    positions=[[0, 0, 0], [2.4, 0.1, 0], [0.2, 2.5, 0.1], [1.1, 1.0, 2.2]], pbc=False)
    out.append(cluster)
    return out


def _model(name):
    spec, coeffs, crad = spec_from_file(DATA / f"{name}.yaml")
    return NonlinearModel(spec, coeffs, crad)


@pytest.mark.parametrize("name", POTENTIALS)
def test_forward_equals_engine(name):
    """Energies, forces and V·stress of the fit's passes equal the engine on the file (1e-10)."""
    model = _model(name)
    structs = _structures(model.elements)
    batch = StructureBatch(model.potential, structs)
    ev = model.evaluate(batch)
    engine = ACEPotential(DATA / f"{name}.yaml")
    worst = np.zeros(3)
    for s, at in enumerate(structs):
        e, _, f, w, _ = evaluate_periodic(engine, at.positions, at.cell.array, at.pbc, at.get_chemical_symbols())
        worst[0] = max(worst[0], abs(e - ev.energies[s]) / len(at))
        worst[1] = max(worst[1], np.abs(f - ev.forces[batch.first_atom[s]:batch.first_atom[s + 1]]).max())
        if at.pbc.all():
            vs = -0.5 * (w + w.T)
            ref = np.array([vs[0, 0], vs[1, 1], vs[2, 2], vs[1, 2], vs[0, 2], vs[0, 1]])
            worst[2] = max(worst[2], np.abs(ref - ev.virial_stress[s]).max() / len(at))
        else:
            assert np.all(np.isnan(ev.virial_stress[s]))
    print(f"{name}: fit passes vs engine: E {worst[0]:.1e} eV/atom, F {worst[1]:.1e} eV/Å, Vσ {worst[2]:.1e} eV/atom")
    assert worst[0] < 1e-10 and worst[1] < 1e-10 and worst[2] < 1e-10


def _fd4(fun, theta, i, h):
    e = np.zeros_like(theta)
    e[i] = h
    return (8.0 * (fun(theta + e) - fun(theta - e)) - (fun(theta + 2 * e) - fun(theta - 2 * e))) / (12.0 * h)


@pytest.mark.parametrize("name", POTENTIALS)
def test_gradient_against_finite_differences(name):
    """d/dθ of one energy, one force component and one virial component, every coefficient kind."""
    model = _model(name)
    batch = StructureBatch(model.potential, _structures(model.elements, seed=1))
    rng = np.random.default_rng(2)
    theta = model.pack()
    theta = theta * (1.0 + 0.01 * rng.standard_normal(theta.shape)) + 1e-3 * rng.standard_normal(theta.shape)
    kinds = model.parameter_kinds()
    coef_idx = np.flatnonzero(kinds == 0)
    # every density of a few functions, and radial coefficients of every pair
    picks = list(rng.choice(coef_idx, min(5, len(coef_idx)), replace=False))
    picks += list(rng.choice(np.flatnonzero(kinds == 1), min(5, model.n_crad), replace=False))
    worst = 0.0
    for what in ("energy", "force", "virial"):
        a = np.zeros(batch.nstructures)
        phi = np.zeros((batch.n_local, 3))
        h = np.zeros((batch.nstructures, 6))
        if what == "energy":
            a[0] = 1.0
        elif what == "force":
            phi[batch.first_atom[1] + 1, 2] = 1.0
        else:
            h[1, 4] = 1.0

        def G(th):
            ev = model.evaluate(batch, th)
            return a @ ev.energies + np.sum(phi * ev.forces) + np.sum(np.nan_to_num(h * ev.virial_stress))

        g_value, grad = model.gradient(batch, a, phi, h, theta=theta)
        assert abs(g_value.sum() - G(theta)) < 1e-10 * max(1.0, abs(G(theta)))
        scale = np.abs(grad).max()
        for i in picks:
            fd = _fd4(G, theta, i, 1e-4 * max(abs(theta[i]), 1e-2))
            err = abs(fd - grad[i]) / max(abs(fd), 1e-4 * scale)
            worst = max(worst, err)
    print(f"{name}: gradient vs 4th-order central differences over {len(picks)} coefficients x 3 functionals: "
          f"worst relative {worst:.1e}")
    assert worst < 1e-6


def test_loss_gradient_with_regularisers():
    """The whole objective (energies, forces, stresses, L1, L2, radial smoothness) against differences."""
    model = _model("Cu-I")
    structs = _structures(model.elements, seed=3)
    rng = np.random.default_rng(4)
    data = []
    for at in structs:
        n = len(at)
        stress = rng.normal(0, 0.01, 6) if at.pbc.all() else None
        data.append(Structure(atoms=at, energy=-3.5 * n + rng.normal(0, 0.1), forces=rng.normal(0, 0.3, (n, 3)),
                              stress=stress))
    ew = np.full(len(data), 1.0 / len(data))
    nat = sum(len(a) for a in structs)
    fw = [np.full(len(a), 1.0 / nat) for a in structs]
    terms = LossTerms(kappa=0.3, kappa_stress=0.2, L1=1e-3, L2=2e-3, w0=1e-3, w1=1e-3, w2=1e-4)
    share = DataLoss(model, data, ew, fw, [1.0] * len(data), terms)
    theta = model.pack() * (1.0 + 0.01 * rng.standard_normal(model.n_coef + model.n_crad))
    obj = Objective(model, share, np.ones(len(theta), bool), theta, terms, _SerialComm(), len(data),
                    np.arange(len(data)))
    f0, g = obj(theta)
    picks = list(rng.choice(model.n_coef, 6, replace=False)) + list(model.n_coef + rng.choice(model.n_crad, 6,
                                                                                           replace=False))
    worst = 0.0
    for i in picks:
        fd = _fd4(lambda th: obj(th)[0], theta, i, 1e-4 * max(abs(theta[i]), 1e-2))
        worst = max(worst, abs(fd - g[i]) / max(abs(fd), 1e-4 * np.abs(g).max()))
    print(f"loss {f0:.6e}: gradient vs differences, worst relative {worst:.1e}")
    assert worst < 1e-6
