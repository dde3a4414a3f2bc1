"""The melting protocol on a real (anharmonic) system with a stable solid and liquid: argon-like
Lennard-Jones, truncated and shifted at 2.5 sigma (acemd.free_energy.lennard_jones), injected
into every sub-run in place of the ACE term (as test_phase_diagram.py injects its harmonic
phases).  epsilon/kB = 119.8 K, sigma = 3.405 Å, m = 39.948 amu.

``mode = "melting_temperature"`` at 0 bar through the real driver, 108 atoms per phase, short
sweeps: the solid's and the liquid's G(T) cross inside the window 72-88 K (a second window is
allowed: at this size and run length the crossing moves by several K between runs), and the crossing has a
melting point, latent heat, entropy and volume of melting of the size the LJ literature gives
(kB Tm / epsilon ~ 0.6-0.7, L ~ epsilon, dS ~ 1.3 kB, dV ~ 0.1-0.2 sigma^3; see
docs/phase-diagram.md "Validation on Lennard-Jones" for the 256-atom run and the references).
"""
import io

import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.phase_diagram import PhaseDiagramRun
from acemd.free_energy.lennard_jones import ARGON, injector
from acemd.units import BOLTZMANN

from engine_helpers import POTENTIALS

EPS = ARGON["epsilon"]
SIGMA3 = ARGON["sigma"] ** 3

BODY = """
mode = "melting_temperature"
temperature = {guess}
window = {window}
attempts = 2
phases = [{{name = "solid", route = "solid"}},
          {{name = "liquid", route = "liquid", lattice = "fcc", element = "Cu", a = 5.75, repeat = [3, 3, 3]}}]
timestep = 0.01
damping = 0.2
barostat_damping = 2.0
compressibility = 5e-5
npt_steps = 1500
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 1000
n_iterations = 2
equilibration_steps = 200
switching_steps = 1500
uf_switching_steps = 3000
sweep_steps = 3000
sweep_points = 5
melt_steps = 1500
quench_steps = 1000
uf_sigma = 2.2
progress_every = 1000000
"""


def _input(tmp_path, guess, window):
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 5.48
repeat = [3, 3, 3]

[potential]
file = "{(POTENTIALS / 'Cu-I.yace').as_posix()}"

[masses]
Cu = 39.948

[free_energy]
report = "{(tmp_path / 'fe.yaml').as_posix()}"
data = "{(tmp_path / 'fe.h5').as_posix()}"
checkpoint = "{(tmp_path / 'fe.ckpt.h5').as_posix()}"
{BODY.format(guess=guess, window=window)}
"""
    path = tmp_path / "fe.toml"
    path.write_text(text)
    return parse_config(text, path), text, path


@pytest.mark.slow
def test_lennard_jones_melting_point_latent_heat_and_volume_change(tmp_path):
    settings, text, path = _input(tmp_path, guess=80.0, window=8.0)
    stream = io.StringIO()
    report = PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream,
                             prepare=injector(cutoff_sigmas=2.5)).run()
    res = report["result"]
    lo, hi = report["windows"][-1]["window_K"]
    tm, err = res["temperature_K"], res["error_K"]
    latent = res["latent_heat_eV_atom"] / EPS
    dv = res["delta_volume_A3_atom"] / SIGMA3
    print(f"\nLJTS 2.5 sigma, 108 atoms: Tm = {tm:.2f} +- {err:.2f} K (T* = {tm * BOLTZMANN / EPS:.4f}), "
          f"window {lo:g}-{hi:g} K; latent heat {latent:.3f} epsilon (fits {res['latent_heat_fit_eV_atom'] / EPS:.3f}), "
          f"dS {res['delta_entropy_kB_atom']:.3f} kB/atom, dV* {dv:+.4f} sigma^3")
    assert res["status"] == "crossing" and lo < tm < hi
    assert res["stable_below"] == "solid" and res["stable_above"] == "liquid"
    assert 0.0 < err < 0.1 * tm
    assert 0.55 < tm * BOLTZMANN / EPS < 0.80
    assert 0.6 < latent < 1.4 and 0.6 < res["latent_heat_fit_eV_atom"] / EPS < 1.4
    assert 0.9 < res["delta_entropy_kB_atom"] < 1.9
    assert 0.05 < dv < 0.30
