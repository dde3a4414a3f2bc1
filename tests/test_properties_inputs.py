"""Bad [properties] input is refused before any work, naming the key and what to do."""
import subprocess
import sys

import pytest

from acemd.config import ConfigError, parse_config

from test_bad_inputs import POT, _env
from test_properties_eos import _text

CASES = [
    ("unknown property", {"compute": ["eos", "vacancyy"]}, "properties.compute", "did you mean 'vacancy'"),
    ("unknown table", {"compute": ["eos"], "surface": {"layers": 3}}, "properties.surface",
     "did you mean 'surfaces'"),
    ("table of a property not computed", {"compute": ["eos"], "vacancy": {"sizes": [2]}}, "properties.vacancy",
     "does not list"),
    ("unknown key", {"compute": ["eos"], "eos": {"point": 7}}, "properties.eos.point", "did you mean 'points'"),
    ("zero Miller index", {"compute": ["surfaces"], "surfaces": {"miller": [[0, 0, 0]]}},
     "properties.surfaces.miller", "all zero"),
    ("two Miller indices", {"compute": ["surfaces"], "surfaces": {"miller": [[1, 1]]}},
     "properties.surfaces.miller", "three integers"),
    ("slip direction not in the plane", {"compute": ["stacking_fault"],
                                         "stacking_fault": {"direction": [1, 1, 1]}},
     "properties.stacking_fault.direction", "not in the plane"),
    ("volume range", {"compute": ["eos"], "eos": {"volume_range": [1.1, 1.2]}}, "properties.eos.volume_range",
     "0.5 <= low < 1 < high"),
    ("unknown lattice", {"compute": ["phases"], "phases": {"lattices": ["fcc", "bcx"]}},
     "properties.phases.lattices", "did you mean 'bcc'"),
    ("reference module", {"compute": ["eos"], "reference": {"calculator": "no_such_module_xyz:Calc"}},
     "properties.reference.calculator", "cannot import module 'no_such_module_xyz'"),
    ("reference class", {"compute": ["eos"], "reference": {"calculator": "ase.calculators.emt:EMTT"}},
     "properties.reference.calculator", "did you mean 'EMT'"),
    ("reference without colon", {"compute": ["eos"], "reference": {"calculator": "ase.calculators.emt"}},
     "properties.reference.calculator", "module:Class"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_key_and_fix(case, tmp_path):
    _, section, key, hint = case
    path = tmp_path / "in.toml"
    with pytest.raises(ConfigError) as err:
        parse_config(_text({"properties": section}), path)
    message = str(err.value)
    print(f"\n{message}")
    assert f"[{key}]" in message and hint in message and str(path) in message


def test_the_command_line_refuses_before_writing_anything(tmp_path):
    text = _text({"properties": {"compute": ["eos", "surfaces"], "surfaces": {"miller": [[1, 0]]}}})
    (tmp_path / "in.toml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "acemd.cli", "in.toml"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    print(proc.stderr.strip())
    assert proc.returncode != 0 and "properties.surfaces.miller" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.toml"]


def test_good_input_fills_defaults(tmp_path):
    s = parse_config(_text({"properties": {"compute": ["eos", "stacking_fault"],
                                           "reference": {"calculator": "ase.calculators.emt:EMT"}}}),
                     tmp_path / "in.toml")["properties"]
    assert s["tables"]["eos"]["points"] == 9 and s["tables"]["stacking_fault"]["lattice"] == "fcc"
    assert s["reference"]["label"] == "EMT"
    assert POT.is_dir()
