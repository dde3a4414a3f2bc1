"""Every example input in inputs/ is valid, and the NPT example runs (shortened)."""
import io
from pathlib import Path

import pytest
from mpi4py import MPI

from acemd.cli import main
from acemd.config import parse_config
from acemd.drivers.md import MDRun

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
EXAMPLES = sorted(p for p in INPUTS.glob("*.toml") if not p.name.startswith("learn_"))  # learn_*: tests/test_learn.py


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"md_cu_nve.toml", "md_cu_nvt.toml", "npt_cu_mtk.toml",
                                          "minimize_cu.toml", "elastic_cu.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path, capsys):
    assert main([str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert sum(f"[{d}]" in out for d in ("md", "minimize", "elastic", "free_energy", "properties")) == 1


def test_npt_example_runs(tmp_path):
    """inputs/npt_cu_mtk.toml for 20 steps in a scratch folder: the cell moves, the log says npt-mtk."""
    text = (INPUTS / "npt_cu_mtk.toml").read_text()
    text = text.replace('"../tests/data/', f'"{(INPUTS.parent / "tests" / "data").as_posix()}/')
    text = text.replace("steps = 2000", "steps = 20")
    path = tmp_path / "npt.toml"
    path.write_text(text)
    settings = parse_config(text, path)
    run = MDRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    volume = run.state.volume
    run.run()
    assert run.state.step == 20
    assert run.state.volume != pytest.approx(volume, rel=1e-6)
    assert (tmp_path / "runs" / "npt_cu_mtk.ckpt.h5").exists()


@pytest.mark.parametrize("extra, needle", [
    ('mode = "solid"\ntemperature_final = 800.0', "temperature_final applies to mode"),
    ('mode = "melting_temperature"\nphase = "liquid"', "does not apply to mode"),
    ('mode = "temperature_sweep"\ntemperature_final = 500.0', "temperature_final"),
])
def test_check_runs_the_drivers_own_checks(tmp_path, capsys, extra, needle):
    """--check refuses what the driver would refuse at start-up (checks beyond the schema)."""
    pot = (INPUTS.parent / "tests" / "data" / "potentials" / "Cu-I.yace").as_posix()
    path = tmp_path / "fe.toml"
    path.write_text(f'[structure]\nlattice = "fcc"\nelement = "Cu"\na = 3.63\nrepeat = [2, 2, 2]\n'
                    f'[potential]\nfile = "{pot}"\n[free_energy]\ntemperature = 500.0\n{extra}\n')
    assert main([str(path), "--check"]) == 1
    assert needle in capsys.readouterr().err
