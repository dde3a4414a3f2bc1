"""Liquid sweeps: ``mode = "temperature_sweep"`` with ``phase = "liquid"`` continues from the
liquid route's state.

The Uhlenbeck-Ford fluid with its energy scale fixed at T0 (p kB T0, p = 10, sigma = 1 Å,
x = 0.24: soft, so that the short UF -> ideal-gas switches dissipate little) is "the
potential": at T it is the UF model of p' = p T0 / T.  The liquid route at T0 (UF
reference p = 10: the potential-to-reference work vanishes) plus the sweep to Tf = 2 T0
gives F(Tf); the direct liquid route at Tf with reference p = 5 (again the potential
itself) gives it independently, through its own UF -> ideal-gas switch.  Cross-path, at
fixed volume (the fluid is purely repulsive: NVT keeps it a fluid at any T).

Restart: SIGUSR1 inside the liquid's sweep (and inside its UF -> ideal-gas switch), --restart,
the same F(T) as the uninterrupted run.
"""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.drivers.free_energy import FreeEnergyRun
from acemd.free_energy import UhlenbeckFordTerm

from free_energy_helpers import signal_at_stage
from test_solid_route import _input

T0, TF, P_UF, SIGMA = 1000.0, 2000.0, 10.0, 1.0

BODY = """
npt = false
timestep = 0.002
damping = 0.05
melt_temperature = 3000.0
melt_steps = 300
quench_steps = 200
n_iterations = 2
equilibration_steps = 200
switching_steps = 1000
min_distance = 0.01
progress_every = 1000000
"""


def _run(tmp_path, body, stage=None, at_step=0, restart=None, base=BODY):
    """The run with the UF fluid as the potential; SIGUSR1 once ``stage`` reaches ``at_step`` (if given)."""
    from acemd import signals
    signals._received = 0
    settings, text, path = _input(tmp_path, base + body + f"uf_sigma = {SIGMA}\n")
    stream = io.StringIO()
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream, restart=restart)
    sim = run.simulation
    sim.term = UhlenbeckFordTerm(T0, p=P_UF, sigma=SIGMA)
    sim.set_terms([sim.term])
    if stage is not None:
        signal_at_stage(run, stage, at_step)
    return run.run(), stream.getvalue()


def test_liquid_sweep_equals_the_direct_liquid_route(tmp_path):
    swept, out = _run(tmp_path / "sweep", f'mode = "temperature_sweep"\nphase = "liquid"\nsweep_ensemble = "nvt"\n'
                                          f"temperature = {T0}\ntemperature_final = {TF}\nsweep_steps = 1500\n"
                                          f"sweep_points = 5\nuf_p = {P_UF}\n")
    direct, _ = _run(tmp_path / "direct", f'mode = "liquid"\ntemperature = {TF}\nuf_p = {P_UF * T0 / TF}\n')
    c = swept["temperature_sweep"]
    f_sweep, err_sweep = c["F"][-1], c["F_error"][-1]
    a = direct["acemd"]
    f_direct, err_direct = a["helmholtz_free_energy"], a["helmholtz_free_energy_error"]
    combined = float(np.hypot(err_sweep, err_direct))
    print("\n" + "\n".join(out.splitlines()[-8:-1]))
    print(f"UF fluid F({TF:g} K): liquid route at {T0:g} K + sweep {f_sweep:.5f} +- {err_sweep:.1e}, direct liquid "
          f"route {f_direct:.5f} +- {err_direct:.1e}, difference {f_sweep - f_direct:+.1e} eV/atom "
          f"(hysteresis {c['hysteresis'][-1]:+.1e})")
    assert c["phase"] == "liquid" and swept["acemd"]["mode"] == "temperature_sweep"
    assert abs(swept["results"]["work"]) < 1e-9                 # the potential is the reference at T0
    assert abs(f_sweep - f_direct) < max(4 * combined, 1e-3)
    assert not any("crystallised" in w for w in swept["acemd"]["warnings"])


@pytest.mark.parametrize("stage,at_step", [("sweep 1 2000 K -> 1000 K", 90), ("iteration 1 switch UF->ideal gas", 150)])
def test_liquid_sweep_interrupted_and_restarted_equals_the_uninterrupted_one(tmp_path, stage, at_step):
    body = (f'mode = "temperature_sweep"\nphase = "liquid"\nsweep_ensemble = "nvt"\ntemperature = {T0}\n'
            f"temperature_final = {TF}\nsweep_steps = 200\nsweep_points = 5\nuf_p = {P_UF}\nuf_switching_steps = 300\n")
    short = BODY.replace("switching_steps = 1000", "switching_steps = 200").replace("equilibration_steps = 200",
                                                                                   "equilibration_steps = 50")
    straight, _ = _run(tmp_path / "straight", body, base=short)
    stopped, _ = _run(tmp_path / "split", body, stage=stage, at_step=at_step, base=short)
    assert stopped["stopped_by"] == "signal" and stopped["stage"] == stage
    resumed, _ = _run(tmp_path / "split", body, restart=str(tmp_path / "split" / "free_energy.ckpt.h5"), base=short)
    a, b = straight["temperature_sweep"], resumed["temperature_sweep"]
    print(f"\nliquid sweep, SIGUSR1 in '{stage}': F({TF:g} K) straight {a['F'][-1]:.12f}, restarted "
          f"{b['F'][-1]:.12f} eV/atom")
    assert a["phase"] == b["phase"] == "liquid"
    assert b["F"] == pytest.approx(a["F"], abs=1e-10)
    assert b["hysteresis"] == pytest.approx(a["hysteresis"], abs=1e-10)
