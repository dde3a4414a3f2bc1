"""Every example input in inputs/ is valid, and the NPT example runs (shortened)."""
import io
from pathlib import Path

import pytest
from mpi4py import MPI

from acemd.cli import main
from acemd.config import parse_config
from acemd.drivers.md import MDRun

INPUTS = Path(__file__).resolve().parents[1] / "inputs"
EXAMPLES = sorted(INPUTS.glob("*.toml"))


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"md_cu_nve.toml", "md_cu_nvt.toml", "npt_cu_mtk.toml",
                                          "minimize_cu.toml", "elastic_cu.toml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_check(path, capsys):
    assert main([str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert sum(f"[{d}]" in out for d in ("md", "minimize", "elastic", "free_energy")) == 1


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
