"""Sweeps: bad input is a clear error before any work; a restart inside a pressure sweep or a
temperature ramp equals the uninterrupted run."""
import io

import pytest
from mpi4py import MPI

from acemd.config import ConfigError
from acemd.drivers.free_energy import FreeEnergyRun
from acemd.simulation import InputError

from test_solid_route import RESTART_BODY, _input, _run_with_signal

PSWEEP = """
mode = "pressure_sweep"
temperature = 500.0
pressure = 0.0
pressure_final = 10000.0
sweep_steps = 100
sweep_points = 3
"""
TSWEEP = """
mode = "temperature_sweep"
temperature = 500.0
temperature_final = 800.0
sweep_steps = 100
"""


@pytest.mark.parametrize("body, error, needle", [
    (PSWEEP.replace("pressure_final = 10000.0", "pressure_final = 0.0"), InputError, "equals pressure"),
    (PSWEEP.replace("pressure_final = 10000.0\n", ""), InputError, "needs pressure_final"),
    (PSWEEP + 'sweep_ensemble = "nvt"\n', InputError, "NPT by nature"),
    (PSWEEP + 'sweep_method = "temperature_ramp"\n', InputError, "applies to temperature_sweep"),
    (PSWEEP + "temperature_final = 900.0\n", InputError, "temperature_final applies to mode"),
    (TSWEEP.replace("temperature_final = 800.0", "temperature_final = 500.0"), InputError, "equals temperature"),
    (TSWEEP + "pressure_final = 100.0\n", InputError, "pressure_final applies to mode"),
    (TSWEEP + "sweep_points = 4\n", InputError, "cannot fit fit_terms = 4"),
    (TSWEEP + "fit_terms = 7\n", ConfigError, "fit_terms"),
    (TSWEEP + 'sweep_ensemble = "npH"\n', ConfigError, "sweep_ensemble"),
    (TSWEEP + 'sweep_method = "tscale"\n', ConfigError, "sweep_method"),
    (TSWEEP.replace("temperature_final = 800.0", "temperature_final = -800.0"), ConfigError, "temperature_final"),
    ("temperature = 500.0\nphase = \"liquid\"\n", InputError, "phase applies to mode"),
])
def test_bad_sweep_input_is_a_clear_error(tmp_path, body, error, needle):
    with pytest.raises(error, match=needle) as exc:
        settings, text, path = _input(tmp_path, body)
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    assert "fe.toml" in str(exc.value)
    print(f"\n{exc.value}")


@pytest.mark.parametrize("extra, stage, at_step", [
    ('mode = "pressure_sweep"\npressure_final = 20000.0\n', "sweep 1 20000 bar -> 0 bar", 70),
    ('mode = "temperature_sweep"\ntemperature_final = 1000.0\nsweep_method = "temperature_ramp"\n',
     "sweep 2 800 K -> 1000 K", 40),
])
def test_sweep_interrupted_and_restarted_equals_the_uninterrupted_one(tmp_path, extra, stage, at_step):
    """Cu-I.yace, 32 atoms: SIGUSR1 inside a sweep, --restart, the same curve to 1e-10."""
    body = RESTART_BODY + extra + "sweep_steps = 120\nsweep_points = 5\n"
    straight = _run_with_signal(tmp_path / "straight", None, 0, body=body)
    stopped = _run_with_signal(tmp_path / "split", stage, at_step, body=body)
    assert stopped["stopped_by"] == "signal" and stopped["stage"] == stage
    resumed = _run_with_signal(tmp_path / "split", None, 0, restart=str(tmp_path / "split" / "free_energy.ckpt.h5"),
                               body=body)
    key = "pressure_sweep" if "pressure_sweep" in extra else "temperature_sweep"
    a, b = straight[key], resumed[key]
    print(f"\nSIGUSR1 in '{stage}': G at the end straight {a['G'][-1]:.12f}, restarted {b['G'][-1]:.12f} eV/atom")
    assert b["G"] == pytest.approx(a["G"], abs=1e-10)
    assert b["V"] == pytest.approx(a["V"], abs=1e-10)
    assert b["hysteresis"] == pytest.approx(a["hysteresis"], abs=1e-10)
