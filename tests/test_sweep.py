"""acemd.sweep: a sweep point's input equals the template with the swept keys changed, reads the
template's input files and writes its outputs in its own folder."""
import math
import tomllib

import pytest

from acemd.config import ConfigError, load_config
from acemd.sweep import dumps, main, parse_value, variant

from engine_helpers import write_input


def test_toml_writer_round_trips():
    raw = {"a": {"s": 'quote " and \\ back', "f": 1e-30, "g": 0.1, "i": 3, "b": False,
                 "inf": math.inf, "l": [2, 2, 1], "u": "Å"}}
    assert tomllib.loads(dumps(raw)) == raw


@pytest.mark.parametrize("text, value", [("600", 600), ("1e-3", 1e-3), ("true", True), ("[2, 1, 1]", [2, 1, 1]),
                                         ('"nvt"', "nvt"), ("nvt-langevin", "nvt-langevin")])
def test_values_are_toml(text, value):
    assert parse_value(text) == value


def test_variant_changes_only_the_swept_keys(tmp_path):
    template = write_input(tmp_path / "template", temperature=300.0, steps=20)
    out = tmp_path / "sweep" / "1_900" / "input.toml"
    assert main([str(template), str(out), "velocities.temperature=900", "md.steps=40"]) == 0
    new, _ = load_config(out)
    old, _ = load_config(template)
    assert new["velocities"]["temperature"] == 900.0 and new["md"]["steps"] == 40
    assert new["potential"]["file"] == old["potential"]["file"]
    outputs = {"thermo": "run.log", "trajectory": "run.h5", "checkpoint": "run.ckpt.h5"}
    for section, name in outputs.items():                 # outputs land in the task's folder
        assert new[section]["file"] == str(out.parent.resolve() / name)
    for section in old:
        for key in old[section]:
            if (section, key) not in {("velocities", "temperature"), ("md", "steps"), ("thermo", "file"),
                                      ("trajectory", "file"), ("checkpoint", "file")}:
                assert new[section][key] == old[section][key], (section, key)


def test_relative_structure_file_stays_the_templates(tmp_path):
    import ase.build
    import ase.io
    (tmp_path / "t").mkdir()
    ase.io.write(tmp_path / "t" / "start.extxyz", ase.build.bulk("Cu", "fcc", a=3.6, cubic=True))
    template = write_input(tmp_path / "t")
    text = template.read_text()
    start, end = text.index("[structure]"), text.index("[potential]")
    template.write_text(text[:start] + '[structure]\nfile = "start.extxyz"\n\n' + text[end:])
    settings, _ = load_config(tmp_path / "t" / "run.toml")
    text = variant(template, {"md.steps": 5}, tmp_path / "elsewhere" / "input.toml")
    assert tomllib.loads(text)["structure"]["file"] == settings["structure"]["file"]


def test_bad_key_is_named(tmp_path, capsys):
    template = write_input(tmp_path)
    with pytest.raises(ConfigError, match="md.stepz.*did you mean 'steps'"):
        variant(template, {"md.stepz": 5}, tmp_path / "x" / "input.toml")
    assert main([str(template), str(tmp_path / "y" / "input.toml"), "velocities.temperature=hot"]) == 1
    assert "velocities.temperature" in capsys.readouterr().err
    assert not (tmp_path / "y" / "input.toml").exists()
