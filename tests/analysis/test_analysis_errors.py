"""Bad input to the analysis scripts: one line naming the file and what is missing, exit status 1,
no traceback (run as real commands); every script answers --help."""
import pytest

from analysis_helpers import SCRIPTS, load_script, run_command

SCRIPT_NAMES = ["acemd_thermo", "acemd_rdf", "acemd_msd", "acemd_vdos", "acemd_structure",
                "acemd_convert", "acemd_gamma"]


def _one_line_error(rc, out, err, *words):
    assert rc == 1, (out, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_msd_without_image_field(gamma_run):
    _one_line_error(*run_command("acemd_msd", gamma_run.h5), str(gamma_run.h5), "'image'",
                    "[trajectory].fields")


def test_vdos_without_velocity_field(gamma_run):
    _one_line_error(*run_command("acemd_vdos", gamma_run.h5), str(gamma_run.h5), "'velocity'")


def test_not_acemd_output(crystal, tmp_path):
    # a text file given as a trajectory, an HDF5 file that is not H5MD (the checkpoint), a binary
    # file given as a thermo log, and a missing file
    _one_line_error(*run_command("acemd_rdf", crystal.log), str(crystal.log), "not an HDF5 file")
    _one_line_error(*run_command("acemd_structure", crystal.ckpt), str(crystal.ckpt),
                    "not an acemd H5MD trajectory")
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00" * 10)
    _one_line_error(*run_command("acemd_thermo", png), str(png), "thermo log")
    missing = tmp_path / "nothing.h5"
    _one_line_error(*run_command("acemd_convert", missing, tmp_path / "o.extxyz"), str(missing), "not found")


def test_bad_options(crystal, gamma_run, tmp_path):
    _one_line_error(*run_command("acemd_rdf", crystal.h5, "--r-max", "20"), "--r-max", "half the cell")
    _one_line_error(*run_command("acemd_convert", crystal.h5, tmp_path / "o.pdb"), "o.pdb", ".extxyz")
    _one_line_error(*run_command("acemd_msd", crystal.h5, "--frames", "5:3"), "--frames", "no frame")
    _one_line_error(*run_command("acemd_gamma", crystal.h5), str(crystal.h5), "'gamma'")


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_help(name, capsys):
    assert (SCRIPTS / f"{name}.py").exists()
    with pytest.raises(SystemExit) as exc:
        load_script(name).main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {name}") and "--" in out
