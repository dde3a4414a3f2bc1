"""pacemaker's input.yaml for ``acemd fit`` (acemd.fit.config, the ``acemd fit`` command, ``--help-input fit``).

pacemaker's own example inputs (examples/*/input.yaml of github:ICAMS/python-ace, read from a local
copy when there is one) must parse as nonlinear fits naming every key that chose it, and their linear
variants must parse to the values they hold as linear fits; the same checks run on inputs written here
(the nonlinear keys in detail: test_fit_config_nonlinear.py).  Unknown keys,
typos and wrong values must name the file, the key path and the value; relative paths resolve against
the input's folder; ``acemd fit --check`` writes nothing; every key is in ``acemd --help-input fit``.
"""
import copy
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from acemd import docgen
from acemd.cli import main
from acemd.config import ConfigError
from acemd.fit import config as fc
from acemd.fit.config import REFUSED, FitInputError, FitSettings, read_fit_input

PACEMAKER_EXAMPLES = [Path("/tmp/pace/examples"), Path("/work/.mirror/ICAMS+python-ace/repo")]
EXAMPLES = ("Cu-I", "Cu-II", "Ethanol", "HEA")
# the keys of pacemaker's fit section that only the nonlinear fit has (issue 24)
NONLINEAR_FIT_KEYS = ("optimizer", "maxiter", "ladder_step", "ladder_type", "fit_cycles", "noise_relative_sigma",
                      "noise_absolute_sigma", "trainable_parameters", "repulsion", "min_relative_train_loss_per_iter",
                      "early_stopping_patience", "options", "callbacks")
NONLINEAR_LOSS_KEYS = ("L1_coeffs", "w0_rad", "w1_rad", "w2_rad")


def example_text(name):
    """pacemaker's examples/<name>/input.yaml from a local copy or the git mirror; skip without one."""
    plain = PACEMAKER_EXAMPLES[0] / name / "input.yaml"
    if plain.is_file():
        return plain.read_text()
    repo = PACEMAKER_EXAMPLES[1]
    if repo.is_dir():
        proc = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:examples/{name}/input.yaml"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout
    pytest.skip("pacemaker's example inputs are not available here")


def linear_tree(tmp_path, **changes):
    """A linear Cu input written for these tests (pacemaker's layout), with its data file."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "cu.pkl.gzip").write_bytes(b"stand-in")
    tree = {
        "cutoff": 6.5, "seed": 7, "metadata": {"comment": "test", "version": 3},
        "potential": {
            "deltaSplineBins": 0.001, "elements": ["Cu"],
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
            "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 6.0, "dcut": 0.01}},
            "functions": {"ALL": {"nradmax_by_orders": [8, 8, 4, 3, 2], "lmax_by_orders": [0, 4, 3, 2, 1]}},
        },
        "data": {"filename": "data/cu.pkl.gzip", "test_size": 0.05},
        "fit": {"loss": {"kappa": "auto", "L2_coeffs": 1e-8}},
        "backend": {"batch_size": 50, "display_step": 10},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return tree


DELETE = object()
REFERENCE_POTENTIALS = Path(__file__).resolve().parents[1] / "data" / "potentials"   # copies of the shared ones


def write(tmp_path, tree, name="input.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def error_of(path) -> str:
    with pytest.raises(FitInputError) as exc:
        read_fit_input(path)
    assert isinstance(exc.value, ConfigError)          # the CLI reports it as an input error
    return str(exc.value)


# -- pacemaker's example inputs -----------------------------------------------------------------

def _expected_reasons(text):
    """Key paths in the example that select the nonlinear fit, read from its text (comments dropped):
    a nonlinear embedding (ndensity, else fs_parameters), the keys whose presence needs iterations,
    fit_cycles > 1 and non-zero L1 / radial smoothness weights."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    keys = []
    ndensity = re.search(r"ndensity:\s*(\d+)", code)
    fs = re.search(r"fs_parameters:\s*\[([^\]]*)\]", code)
    if ndensity and int(ndensity.group(1)) != 1:
        keys.append("potential.embeddings.ALL.ndensity")
    elif fs and [float(x) for x in fs.group(1).split(",")] != [1.0, 1.0]:
        keys.append("potential.embeddings.ALL.fs_parameters")
    keys += [f"fit.{k}" for k in ("optimizer", "maxiter", "options", "ladder_step", "repulsion",
                                  "min_relative_train_loss_per_iter") if re.search(rf"^\s+{k}:", code, flags=re.M)]
    cycles = re.search(r"^\s+fit_cycles:\s*(\d+)", code, flags=re.M)
    if cycles and int(cycles.group(1)) > 1:
        keys.append("fit.fit_cycles")
    for k in NONLINEAR_LOSS_KEYS:
        m = re.search(rf"\b{k}:\s*([-+.\deE]+)", code)
        if m and float(m.group(1)) != 0:
            keys.append(f"fit.loss.{k}")
    return keys


@pytest.mark.parametrize("name", EXAMPLES)
def test_pacemaker_example_is_a_nonlinear_fit_naming_every_key_that_chose_it(tmp_path, name):
    text = example_text(name)
    tree = yaml.load(text, Loader=fc._FitLoader)
    (tmp_path / tree["data"]["filename"]).write_bytes(b"stand-in")
    path = tmp_path / "input.yaml"
    path.write_text(text)
    s = read_fit_input(path)
    expected = _expected_reasons(text)
    named = re.findall(r"(?:^|; )([\w.-]+): ", s.fit.model_reason)
    print(f"{name}: model {s.fit.model} because {s.fit.model_reason}")
    assert len(expected) >= 4           # the embedding, optimizer, maxiter and the ladder at least
    assert s.fit.model == "nonlinear" and sorted(named) == sorted(expected), s.fit.model_reason
    fit = tree["fit"]
    assert (s.fit.optimizer, s.fit.maxiter, s.fit.ladder_type) == (fit["optimizer"], fit["maxiter"],
                                                                   fit["ladder_type"])
    assert s.fit.ladder and s.fit.ladder_step == (fit["ladder_step"], 0.0)
    assert s.fit.fit_cycles == fit.get("fit_cycles", 1) and s.fit.repulsion == fit.get("repulsion")
    for k in NONLINEAR_LOSS_KEYS:
        assert getattr(s.fit, k) == float(fit["loss"][k])
    assert all(v == ("func", "radial") if len(n.split()) <= 2 else v == ("func",)
               for n, v in s.fit.trainable_parameters.items())        # pacemaker's default: ALL
    emb = tree["potential"]["embeddings"]["ALL"]
    assert s.potential["embeddings"]["ALL"]["ndensity"] == emb["ndensity"]
    assert s.potential["embeddings"]["ALL"]["fs_parameters"] == emb["fs_parameters"]


def _linearize(tree):
    """The linear variant of a pacemaker input: linear embedding, nonlinear-fit keys removed."""
    tree = copy.deepcopy(tree)
    tree["potential"]["embeddings"]["ALL"].update(fs_parameters=[1, 1], ndensity=1)
    for k in NONLINEAR_FIT_KEYS:
        tree["fit"].pop(k, None)
    for k in NONLINEAR_LOSS_KEYS:
        tree["fit"]["loss"].pop(k, None)
    return tree


@pytest.mark.parametrize("name", EXAMPLES)
def test_linear_variant_of_pacemaker_example_parses_to_its_values(tmp_path, name):
    text = example_text(name)
    tree = yaml.load(text, Loader=fc._FitLoader)
    linear = _linearize(tree)
    (tmp_path / linear["data"]["filename"]).write_bytes(b"stand-in")
    s = read_fit_input(write(tmp_path, linear))
    assert s.cutoff == float(tree["cutoff"]) and s.seed == tree["seed"]
    assert s.metadata == {k: str(v) for k, v in tree["metadata"].items()}
    assert s.potential["elements"] == tree["potential"]["elements"]
    for block, spec in tree["potential"]["functions"].items():
        assert s.potential["functions"][block] == spec
    for block, spec in tree["potential"]["bonds"].items():
        assert s.potential["bonds"][block] == spec
    assert s.potential["embeddings"]["ALL"]["ndensity"] == 1
    assert s.fit.model == "linear", s.fit.model_reason
    assert s.data.filenames == ((tmp_path / linear["data"]["filename"]).resolve(),)
    kappa = re.search(r"kappa:\s*([\w.]+)", text).group(1)
    assert s.fit.kappa == (kappa if kappa == "auto" else float(kappa))
    assert s.fit.L2_coeffs == float(re.search(r"L2_coeffs:\s*([-+.\deE]+)", text).group(1))
    assert s.backend.batch_size == tree["backend"]["batch_size"]
    assert any("[backend.evaluator]: ignored" in w for w in s.warnings)
    if "weighting" in tree["fit"]:
        for key, value in tree["fit"]["weighting"].items():
            assert s.fit.weighting[key] == value
    if "test_size" in tree["data"]:
        assert s.data.test_size == tree["data"]["test_size"]


# -- the same on inputs written here (always run) ---------------------------------------------

def test_linear_input_resolves_settings(tmp_path):
    s = read_fit_input(write(tmp_path, linear_tree(tmp_path)))
    assert isinstance(s, FitSettings)
    assert s.source == (tmp_path / "input.yaml").resolve() and s.folder == tmp_path.resolve()
    assert s.cutoff == 6.5 and s.seed == 7 and s.metadata == {"comment": "test", "version": "3"}
    assert s.fit.kappa == "auto" and s.fit.L2_coeffs == 1e-8 and s.fit.kappa_stress == 0.0
    assert s.fit.stress_component_weights is None and s.fit.weighting is None
    assert (s.fit.solver, s.fit.committee, s.fit.active_set) == ("ridge", 0, False)
    assert s.fit.model == "linear" and s.fit.model_reason == "nothing in the input needs iterations"
    assert s.fit.trainable_parameters == {"Cu": ("func",)} and not s.fit.ladder
    assert s.data.test_size == 0.05 and s.data.reference_energy is None and s.data.test_filenames == ()
    assert (s.backend.batch_size, s.backend.display_step) == (50, 10)
    out = s.output
    assert out.folder == tmp_path.resolve() and out.potential_file == tmp_path.resolve() / "output_potential.yaml"
    assert out.yace_file == tmp_path.resolve() / "output_potential.yace"
    assert out.metrics_file.name == "metrics.yaml" and out.errors_file.name == "errors.csv"
    assert s.warnings == ()
    with pytest.raises(AttributeError):          # frozen
        s.seed = 1


def test_nonlinear_input_names_every_key_that_chose_it(tmp_path):
    """The keys part 1 refused now select the nonlinear fit; model_reason names each of them."""
    start = tmp_path / "start.yaml"
    start.write_text((REFERENCE_POTENTIALS / "Cu-I.yaml").read_text())
    tree = linear_tree(tmp_path, potential__embeddings__ALL__fs_parameters=[1, 1, 1, 0.5],
                       potential__embeddings__ALL__ndensity=2)
    tree["potential"]["initial_potential"] = "start.yaml"
    tree["fit"].update(optimizer="BFGS", maxiter=1000, ladder_step=[10, 0.02], ladder_type="body_order",
                       fit_cycles=2, noise_relative_sigma=1e-3, noise_absolute_sigma=1e-3, repulsion="auto",
                       trainable_parameters="ALL", min_relative_train_loss_per_iter=5e-5,
                       early_stopping_patience=200)
    tree["fit"]["loss"].update(L1_coeffs=1e-8, w0_rad=1e-8, w1_rad=0, w2_rad=1e-8)
    s = read_fit_input(write(tmp_path, tree))
    expected = ["potential.embeddings.ALL.ndensity", "potential.initial_potential", "fit.loss.L1_coeffs",
                "fit.loss.w0_rad", "fit.loss.w2_rad", "fit.trainable_parameters"]
    expected += [f"fit.{k}" for k in ("optimizer", "maxiter", "ladder_step", "fit_cycles", "noise_relative_sigma",
                                      "noise_absolute_sigma", "repulsion", "min_relative_train_loss_per_iter")]
    named = re.findall(r"(?:^|; )([\w.-]+): ", s.fit.model_reason)
    assert s.fit.model == "nonlinear" and sorted(named) == sorted(expected), s.fit.model_reason
    assert "w1_rad" not in s.fit.model_reason                      # 0 is harmless
    assert s.initial_potentials == (start.resolve(),) and s.fit.ladder_step == (10, 0.02)
    warned = sorted(re.search(r"\[([\w.-]+)\]", w).group(1) for w in s.warnings)
    assert warned == ["fit.noise_absolute_sigma"]                  # relative wins, as in pacemaker


def test_keys_acemd_does_not_support_are_listed_in_one_message(tmp_path):
    tree = linear_tree(tmp_path)
    tree["potential"]["overwrite_blocks_from_initial_bbasis"] = True
    tree["fit"].update(callbacks=["quick_validation.test_fcc_potential_callback"], randomize_func_coeffs=1e-3,
                       optimizer_options={"maxcor": 100})
    tree["fit"]["loss"]["w_orth"] = 1.0
    with pytest.raises(FitInputError) as exc:
        read_fit_input(write(tmp_path, tree))
    lines = str(exc.value).splitlines()
    keys = sorted(re.match(r".*?: \[([\w.-]+)\]: ", l).group(1) for l in lines)
    assert keys == ["fit.callbacks", "fit.loss.w_orth", "fit.optimizer_options", "fit.randomize_func_coeffs",
                    "potential.overwrite_blocks_from_initial_bbasis"], str(exc.value)
    assert all(REFUSED in l and ("remove" in l or "use" in l or "give" in l) for l in lines)


def test_upfitting_reads_the_potential_file(tmp_path):
    (tmp_path / "start.yaml").write_text((REFERENCE_POTENTIALS / "Cu-I.yaml").read_text())
    tree = linear_tree(tmp_path, potential="start.yaml", cutoff=DELETE)
    s = read_fit_input(write(tmp_path, tree))
    assert s.potential_file == (tmp_path / "start.yaml").resolve() and s.potential == {"elements": ["Cu"]}
    assert s.fit.model == "nonlinear" and "potential.filename" in s.fit.model_reason
    from acemd.potential.bbasis import read_bbasis_yaml
    assert s.cutoff == read_bbasis_yaml(tmp_path / "start.yaml").cutoff_max
    tree = linear_tree(tmp_path, potential={"filename": "start.yaml", "elements": ["Cu"]})
    assert "[potential.elements]: give either filename" in error_of(write(tmp_path, tree))


@pytest.mark.parametrize("embeddings, key", [
    ({"ALL": {"npot": "linear"}, "Cu": {"ndensity": 2, "fs_parameters": [1, 1, 1, 0.5]}},
     "potential.embeddings.Cu.ndensity"),
    ({"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [2, 1], "ndensity": 1}},
     "potential.embeddings.ALL.fs_parameters"),
    ({"UNARY": {"npot": "FinnisSinclair", "fs_parameters": [1, 0.5], "ndensity": 1}},
     "potential.embeddings.UNARY.fs_parameters"),
])
def test_nonlinear_embedding_names_the_block_that_set_it(tmp_path, embeddings, key):
    s = read_fit_input(write(tmp_path, linear_tree(tmp_path, potential__embeddings=embeddings)))
    assert s.fit.model == "nonlinear" and s.fit.model_reason.startswith(key + ": "), s.fit.model_reason


def test_linear_alias_with_more_densities_is_an_error(tmp_path):
    message = error_of(write(tmp_path, linear_tree(tmp_path, potential__embeddings={"ALL": {"npot": "linear",
                                                                                            "ndensity": 2}})))
    assert "[potential.embeddings.ALL.ndensity]: npot: linear means" in message and "remove ndensity" in message


@pytest.mark.parametrize("embeddings", [
    {"ALL": {"npot": "linear"}}, DELETE, {"Cu": {"npot": "FinnisSinclairShiftedScaled"}},
    {"ALL": {"npot": "FinnisSinclair", "fs_parameters": [1, 1], "ndensity": 1}},
    {"UNARY": {"npot": "linear", "rho_core_cut": 5000, "drho_core_cut": 250}},
])
def test_linear_embeddings_are_made_explicit(tmp_path, embeddings):
    """npot: linear (acemd's name), a missing embedding or missing keys: the explicit linear embedding,
    which every element ends with after pacemaker's precedence ALL < UNARY < element."""
    s = read_fit_input(write(tmp_path, linear_tree(tmp_path, potential__embeddings=embeddings)))
    emb = s.potential["embeddings"]
    merged = {**emb.get("ALL", {}), **emb.get("UNARY", {}), **emb.get("Cu", {})}
    assert merged["npot"] in ("FinnisSinclairShiftedScaled", "FinnisSinclair")
    assert merged["fs_parameters"] == [1, 1] and merged["ndensity"] == 1
    assert "linear" not in str(emb)
    if isinstance(embeddings, dict) and "UNARY" in embeddings:
        assert merged["rho_core_cut"] == 5000


# -- unknown keys, typos, wrong values ------------------------------------------------------------

@pytest.mark.parametrize("change, key, suggestion", [
    ({"cutof": 6.0}, "cutof", "cutoff"),
    ({"potential__bonds__ALL__rcutt": 6.0}, "potential.bonds.ALL.rcutt", "rcut"),
    ({"potential__elemnts": ["Cu"]}, "potential.elemnts", "elements"),
    ({"potential__functions__ALL__lmax_by_order": [0, 1]}, "potential.functions.ALL.lmax_by_order", "lmax_by_orders"),
    ({"potential__embeddings__ALL__ndensty": 1}, "potential.embeddings.ALL.ndensty", "ndensity"),
    ({"potential__functions__UNARYY": {"nradmax_by_orders": [3]}}, "potential.functions.UNARYY", "UNARY"),
    ({"potential__bonds__BINARI": {"rcut": 5.0}}, "potential.bonds.BINARI", "BINARY"),
    ({"data__filenme": "x"}, "data.filenme", "filename"),
    ({"fit__loss__kapa": 0.5}, "fit.loss.kapa", "kappa"),
    ({"fit__solvr": "ridge"}, "fit.solvr", "solver"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "DEloww": 1.0}}, "fit.weighting.DEloww", "DElow"),
    ({"backend__batchsize": 10}, "backend.batchsize", "batch_size"),
    ({"output__potental_file": "a.yaml"}, "output.potental_file", "potential_file"),
])
def test_unknown_key_is_named_with_a_suggestion(tmp_path, change, key, suggestion):
    message = error_of(write(tmp_path, linear_tree(tmp_path, **change)))
    assert message.startswith(f"{tmp_path / 'input.yaml'}: [{key}]: unknown")
    assert f"did you mean '{suggestion}'" in message, message


@pytest.mark.parametrize("change, key, fragment", [
    ({"potential__embeddings__Ni": {"npot": "linear"}}, "potential.embeddings.Ni", "Ni is not in potential.elements"),
    ({"potential__bonds__CuNi": {"rcut": 5.0}}, "potential.bonds.CuNi", "Ni is not in potential.elements"),
    ({"potential__functions__ALL__number_of_functions_per_element": 100},
     "potential.functions.ALL.number_of_functions_per_element", "next to the blocks"),
    ({"fit__weighting": {"type": "ExternalWeightingPolicy", "filename": "w.pkl", "nfit": 3}},
     "fit.weighting.nfit", "not of ExternalWeightingPolicy"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "filename": "w.pkl"}},
     "fit.weighting.filename", "not of EnergyBasedWeightingPolicy"),
])
def test_key_in_the_wrong_place(tmp_path, change, key, fragment):
    message = error_of(write(tmp_path, linear_tree(tmp_path, **change)))
    assert f"[{key}]" in message and fragment in message, message


@pytest.mark.parametrize("change, key, fragment", [
    ({"cutoff": "7 A"}, "cutoff", "expected a number, got '7 A'"),
    ({"cutoff": 5.0}, "cutoff", "shorter than the largest bond rcut 6.0"),
    ({"seed": 1.5}, "seed", "expected an integer, got 1.5"),
    ({"seed": True}, "seed", "expected an integer, got True"),
    ({"metadata": {"a": [1, 2]}}, "metadata.a", "expected a string"),
    ({"potential__elements": ["Cu", "Xy"]}, "potential.elements", "'Xy' is not an element symbol"),
    ({"potential__elements": ["Cu", "Cu"]}, "potential.elements", "listed twice"),
    ({"potential__bonds__ALL__rcut": "6 A"}, "potential.bonds.ALL.rcut", "expected a number, got '6 A'"),
    ({"potential__bonds__ALL__rcut": -1.0}, "potential.bonds.ALL.rcut", "must be positive (got -1.0)"),
    ({"potential__bonds__ALL__rcut": DELETE}, "potential.bonds", "no rcut for the pair (Cu, Cu)"),
    ({"potential__bonds__ALL__radbase": "SBesel"}, "potential.bonds.ALL.radbase", "did you mean 'SBessel'"),
    ({"potential__bonds__ALL__core-repulsion": [1.0]}, "potential.bonds.ALL.core-repulsion", "exactly 2"),
    ({"potential__bonds__ALL__inner_cutoff_type": "zbll"}, "potential.bonds.ALL.inner_cutoff_type", "'zbl'"),
    ({"potential__functions__ALL__lmax_by_orders": [0, 4, 3]}, "potential.functions.ALL", "equally long"),
    ({"potential__functions__ALL__nradmax_by_orders": [8, 0]}, "potential.functions.ALL.nradmax_by_orders",
     ">= 1"),
    ({"potential__functions__ALL__lmax_by_orders": [0, 1.5, 3, 2, 1]}, "potential.functions.ALL.lmax_by_orders",
     "list of integers"),
    ({"potential__functions": {"number_of_functions_per_element": 10}}, "potential.functions", "no functions block"),
    ({"potential__embeddings__ALL__npot": "FinnisSinclairScaled"}, "potential.embeddings.ALL.npot",
     "did you mean 'FinnisSinclairShiftedScaled'"),
    ({"data": DELETE}, "data", "required key is missing"),
    ({"data__filename": "missing.pkl.gzip"}, "data.filename", "file not found: missing.pkl.gzip"),
    ({"data__filename": "data"}, "data.filename", "is a folder"),
    ({"data__filename": []}, "data.filename", "file name or a list"),
    ({"data__test_size": -0.1}, "data.test_size", "must be >= 0"),
    ({"data__test_size": 2.5}, "data.test_size", "whole number"),
    ({"data__test_filename": "data/cu.pkl.gzip"}, "data.test_size", "not both"),
    ({"data__reference_energy": "VASP_PBE_500_0.125_0.1_NM"}, "data.reference_energy", "not available in acemd"),
    ({"data__reference_energy": {"Ni": -0.1}}, "data.reference_energy.Ni", "not in potential.elements"),
    ({"data__reference_energy": {"Cu": "low"}}, "data.reference_energy.Cu", "expected a number (eV)"),
    ({"fit__loss__kappa": 1.5}, "fit.loss.kappa", "[0, 1]"),
    ({"fit__loss__kappa": "automatic"}, "fit.loss.kappa", "or auto"),
    ({"fit__loss__L2_coeffs": -1e-8}, "fit.loss.L2_coeffs", "must be >= 0"),
    ({"fit__loss__stress_component_weights": [1, 1, 1, 1, 1]}, "fit.loss.stress_component_weights",
     "exactly 6"),
    ({"fit__loss__stress_component_weights": [1, 1, 1, 0, 0, 0]}, "fit.loss.stress_component_weights",
     "set kappa_stress > 0"),
    ({"fit__solver": "lasso"}, "fit.solver", "must be one of 'ridge', 'bayesian'"),
    ({"fit__committee": 8}, "fit.committee", "fit.solver: bayesian"),
    ({"fit__active_set": "yes please"}, "fit.active_set", "expected true/false"),
    ({"fit__weighting": {"DElow": 1.0}}, "fit.weighting.type", "required key is missing"),
    ({"fit__weighting": {"type": "EnergyWeighting"}}, "fit.weighting.type", "did you mean 'EnergyBasedWeightingPolicy'"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "wlow": 2}}, "fit.weighting.wlow", "[0, 1]"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "nfit": 10, "n_lower": 3, "n_upper": 3}},
     "fit.weighting.nfit", "not both"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "n_lower": 3}}, "fit.weighting.n_upper", "together"),
    ({"fit__weighting": {"type": "EnergyBasedWeightingPolicy", "DElow": 20.0}}, "fit.weighting.DElow", "below DEup"),
    ({"fit__weighting": {"type": "ExternalWeightingPolicy", "filename": "w.pkl"}}, "fit.weighting.filename",
     "file not found"),
    ({"backend__batch_size": 0}, "backend.batch_size", "must be positive"),
    ({"output__potential_file": "pot.yace"}, "output.potential_file", "must end in .yaml"),
    ({"output__metrics_file": "output_potential.yaml"}, "output.metrics_file", "same file"),
    ({"output__folder": "data/cu.pkl.gzip"}, "output.folder", "is a file"),
])
def test_wrong_value_names_key_value_and_expectation(tmp_path, change, key, fragment):
    message = error_of(write(tmp_path, linear_tree(tmp_path, **change)))
    assert message.startswith(f"{tmp_path / 'input.yaml'}: [{key}]: "), message
    assert fragment in message, message


@pytest.mark.parametrize("text, fragment", [
    ("", "the file is empty"),
    ("- a\n- b\n", "expected a YAML mapping"),
    ("cutoff: [1, 2\n", "invalid YAML at line"),
    ("cutoff: 6\ncutoff: 7\n", "key 'cutoff' is given twice"),
])
def test_malformed_file(tmp_path, text, fragment):
    path = tmp_path / "input.yaml"
    path.write_text(text)
    assert fragment in error_of(path)


def test_empty_optional_mappings_are_empty(tmp_path):
    """`fit:`, `backend:`, `output:` with every key commented out: the defaults; `data:` empty: an error."""
    path = write(tmp_path, linear_tree(tmp_path, fit=None, backend=None, output=None, metadata=None))
    s = read_fit_input(path)
    assert (s.fit.kappa, s.fit.L2_coeffs, s.backend.batch_size, s.metadata) == (0.0, 0.0, 100, {})
    assert s.output.potential_file == tmp_path.resolve() / "output_potential.yaml"
    assert "[data]: has no value" in error_of(write(tmp_path, linear_tree(tmp_path, data=None)))


def test_missing_input_file(tmp_path):
    assert "input file not found" in error_of(tmp_path / "absent.yaml")


# -- YAML as pacemaker writes it ------------------------------------------------------------------

def test_yaml_12_numbers_flow_style_and_sequence_keys(tmp_path):
    """1e-8 is a number (pacemaker reads YAML 1.2), flow mappings parse, `[Cu, Cu]:` keys become '(Cu, Cu)'."""
    (tmp_path / "d.pkl").write_bytes(b"x")
    text = """
cutoff: 6
potential:
  elements: [Cu]
  bonds: {[Cu, Cu]: {radbase: ChebExpCos, radparameters: [5.25], rcut: 5, dcut: 1e-2}}
  functions:
    (Cu): {nradmax_by_orders: [4, 2], lmax_by_orders: [0, 1]}
    number_of_functions_per_element: 20
data: d.pkl
fit: {loss: {kappa: 5E-1, L2_coeffs: 1e-8, kappa_stress: 2.5e+1, L1_coeffs: 0, w1_coeffs: 0}}
"""
    path = tmp_path / "input.yaml"
    path.write_text(text)
    s = read_fit_input(path)
    assert s.fit.L2_coeffs == 1e-8 and s.fit.kappa == 0.5 and s.fit.kappa_stress == 25.0
    assert s.fit.stress_component_weights == (1.0,) * 6
    assert s.potential["bonds"] == {"(Cu, Cu)": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5,
                                                 "dcut": 0.01}}
    assert s.potential["functions"]["(Cu)"]["nradmax_by_orders"] == [4, 2]
    assert s.potential["functions"]["number_of_functions_per_element"] == 20
    assert s.cutoff == 6.0 and s.data.filenames == ((tmp_path / "d.pkl").resolve(),)
    assert s.warnings == (f"{path}: [fit.loss.w1_coeffs]: ignored: pacemaker ignores it too",)
    assert yaml.safe_load("x: 1e-8") == {"x": "1e-8"}         # PyYAML's own loader is left as it was


def test_cutoff_defaults_to_the_largest_rcut_of_any_pair(tmp_path):
    tree = linear_tree(tmp_path, cutoff=DELETE, potential__elements=["Al", "Ni"])
    tree["potential"]["bonds"] = {"ALL": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 5.0},
                                  "BINARY": {"rcut": 5.5}, "NiNi": {"rcut": 6.25}, "(Al, Al)": {"dcut": 0.1}}
    tree["potential"]["functions"] = {"UNARY": {"nradmax_by_orders": [5, 2], "lmax_by_orders": [0, 1]},
                                      "(Al, Ni)": {"nradmax_by_orders": [3], "lmax_by_orders": [0]}}
    tree["data"]["reference_energy"] = -1.5
    s = read_fit_input(write(tmp_path, tree))
    assert s.cutoff == 6.25
    assert s.data.reference_energy == {"Al": -1.5, "Ni": -1.5}
    tree["data"]["reference_energy"] = {"Al": -0.25, "shift": 0.5}
    assert read_fit_input(write(tmp_path, tree)).data.reference_energy == {"Al": -0.25, "shift": 0.5}
    tree["cutoff"] = 6.0
    assert "shorter than the largest bond rcut 6.25" in error_of(write(tmp_path, tree))


def test_weighting_policies(tmp_path):
    tree = linear_tree(tmp_path, fit__weighting={"type": "EnergyBasedWeightingPolicy", "nfit": 20,
                                                 "DE": 1e6, "wlow": "none"})
    w = read_fit_input(write(tmp_path, tree)).fit.weighting
    assert w == {"type": "EnergyBasedWeightingPolicy", "nfit": 20, "DE": 1e6, "DElow": 1.0, "DEup": 10.0,
                 "DF": 1.0, "energy": "convex_hull", "reftype": "all", "seed": 7}    # the top-level seed
    tree["fit"]["weighting"] = {"type": "UniformWeightingPolicy"}
    assert read_fit_input(write(tmp_path, tree)).fit.weighting is None
    (tmp_path / "data" / "w.pkl").write_bytes(b"x")
    tree["fit"]["weighting"] = {"type": "ExternalWeightingPolicy", "filename": "data/w.pkl"}
    w = read_fit_input(write(tmp_path, tree)).fit.weighting
    assert w == {"type": "ExternalWeightingPolicy", "filename": str((tmp_path / "data" / "w.pkl").resolve())}


def test_acemd_keys_and_warnings(tmp_path):
    tree = linear_tree(tmp_path, fit__solver="bayesian", fit__committee=8, fit__active_set=True,
                       fit__loss__kappa_stress=0.1, fit__loss__stress_component_weights=[1, 1, 1, 2, 2, 2],
                       backend__evaluator="tensorpot", backend__gpu_config={"mem_limit": 0},
                       potential__bonds__ALL__NameOfCutoffFunction="poly",
                       potential__functions__ALL__coefs_init="random")
    s = read_fit_input(write(tmp_path, tree))
    assert (s.fit.solver, s.fit.committee, s.fit.active_set, s.fit.kappa_stress) == ("bayesian", 8, True, 0.1)
    assert s.fit.stress_component_weights == (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)
    keys = sorted(re.search(r"\[([\w.-]+)\]", w).group(1) for w in s.warnings)
    assert keys == ["backend.evaluator", "backend.gpu_config", "fit.loss.L2_coeffs",
                    "potential.bonds.ALL.NameOfCutoffFunction", "potential.functions.ALL.coefs_init"]
    assert "coefs_init" not in s.potential["functions"]["ALL"]


# -- paths ------------------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_input_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    tree = linear_tree(project, data__test_filename=["data/cu.pkl.gzip"], data__test_size=DELETE,
                       output={"folder": "../results", "potential_file": "pots/Cu.yaml", "yace": False,
                               "errors_file": "/abs/errors.csv"})
    path = write(project, tree)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = read_fit_input(Path("..") / "project" / "input.yaml")
    data_file = (project / "data" / "cu.pkl.gzip").resolve()
    assert s.folder == project.resolve() and s.source == path.resolve()
    assert s.data.filenames == (data_file,) and s.data.test_filenames == (data_file,)
    assert s.output.folder == (tmp_path / "results").resolve()
    assert s.output.potential_file == (tmp_path / "results" / "pots" / "Cu.yaml").resolve()
    assert s.output.yace_file is None and s.output.errors_file == Path("/abs/errors.csv")
    assert not (tmp_path / "results").exists()             # reading writes nothing


def test_datapath_and_pacemakerdatapath(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    (store / "big.pkl.gzip").write_bytes(b"x")
    tree = linear_tree(tmp_path, data__filename=["data/cu.pkl.gzip", "big.pkl.gzip"], data__datapath="store")
    s = read_fit_input(write(tmp_path, tree))
    assert s.data.filenames == ((tmp_path / "data" / "cu.pkl.gzip").resolve(), (store / "big.pkl.gzip").resolve())
    assert s.data.datapath == tmp_path / "store"
    del tree["data"]["datapath"]
    assert "file not found: big.pkl.gzip" in error_of(write(tmp_path, tree))
    monkeypatch.setenv("PACEMAKERDATAPATH", str(store))
    assert read_fit_input(write(tmp_path, tree)).data.filenames[1] == (store / "big.pkl.gzip").resolve()


# -- the command line -------------------------------------------------------------------------------

def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture
def stub_pipeline(monkeypatch):
    """acemd.fit.run stood in by a module whose run_fit records its calls (the real one is the lead's)."""
    calls = []
    module = types.ModuleType("acemd.fit.run")

    def run_fit(settings, *, check_only=False, restart=None):
        calls.append((settings, check_only))
        return module.status
    module.run_fit, module.status = run_fit, 0
    monkeypatch.setitem(sys.modules, "acemd.fit.run", module)
    return module, calls


def test_check_prints_resolved_settings_and_writes_nothing(tmp_path, capsys, stub_pipeline):
    module, calls = stub_pipeline
    path = write(tmp_path, linear_tree(tmp_path, backend__evaluator="tensorpot"))
    before = _listing(tmp_path)
    assert main(["fit", str(path), "--check"]) == 0
    assert _listing(tmp_path) == before
    out, err = capsys.readouterr()
    assert f"{path} is valid" in out.splitlines()[0]
    printed = yaml.safe_load(out.split("\n", 1)[1])
    assert printed["cutoff"] == 6.5 and printed["fit"]["kappa"] == "auto" and printed["fit"]["L2_coeffs"] == 1e-8
    assert printed["output"]["potential_file"] == str(tmp_path.resolve() / "output_potential.yaml")
    assert printed["potential"]["functions"]["ALL"]["lmax_by_orders"] == [0, 4, 3, 2, 1]
    assert "acemd: warning:" in err and "[backend.evaluator]" in err
    assert len(calls) == 1 and calls[0][1] is True and isinstance(calls[0][0], FitSettings)


def test_fit_dispatches_and_returns_the_pipeline_status(tmp_path, capsys, stub_pipeline):
    module, calls = stub_pipeline
    path = write(tmp_path, linear_tree(tmp_path))
    module.status = 5
    assert main(["fit", str(path)]) == 5
    assert calls[0][1] is False and calls[0][0].source == path.resolve()

    def failing(settings, **kw):
        raise ValueError("data: structure 3 has NaN forces")
    module.run_fit = failing
    assert main(["fit", str(path)]) == 1
    err = capsys.readouterr().err
    assert "acemd: error: data: structure 3 has NaN forces" in err and "Traceback" not in err


def test_input_error_exits_1_with_one_message_and_writes_nothing(tmp_path, capsys, stub_pipeline):
    module, calls = stub_pipeline
    path = write(tmp_path, linear_tree(tmp_path, fit__loss__kapa=0.5))
    before = _listing(tmp_path)
    for extra in ([], ["--check"]):
        assert main(["fit", str(path), *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("acemd: error:") == 1 and "[fit.loss.kapa]: unknown key" in err and "Traceback" not in err
    assert _listing(tmp_path) == before and calls == []


def test_usage_errors_exit_2(capsys):
    for argv in (["fit"], ["fit", "a.yaml", "--frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "usage: acemd fit" in capsys.readouterr().err


def test_every_rank_exits_under_mpiexec(tmp_path):
    """2 ranks: a bad input ends with one message and status 1 on both; --check prints the settings once."""
    from test_mpi_suites import _env, mpiexec
    bad = write(tmp_path, linear_tree(tmp_path, fit__optimizer="BFGSS"), "bad.yaml")
    good = write(tmp_path, linear_tree(tmp_path), "good.yaml")
    stub = ("import sys, types; m = types.ModuleType('acemd.fit.run'); "
            "m.run_fit = lambda s, check_only=False, restart=None: 0; sys.modules['acemd.fit.run'] = m; "
            "from acemd.cli import main; sys.exit(main(sys.argv[1:]))")
    for path, status in ((bad, 1), (good, 0)):
        proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", stub, "fit", str(path), "--check"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        assert proc.returncode == status
        if status:
            assert proc.stderr.count("acemd: error:") == 1 and "[fit.optimizer]" in proc.stderr
        else:
            assert proc.stdout.count("is valid") == 1


# -- the generated reference ------------------------------------------------------------------------

def test_help_input_fit_lists_every_key(capsys):
    assert main(["--help-input", "fit"]) == 0
    out = capsys.readouterr().out
    listed = {(section, m.group(1)) for section, body in
              re.findall(r"^(\S[^\n]*):\n(.*?)(?=^\S|\Z)", out, flags=re.M | re.S)
              for m in re.finditer(r"^  (\S+)  \(", body, flags=re.M)}
    expected = {(name, key) for name, sec in fc.FIT_SCHEMA.items()
                for key in [*sec.keys, *sec.refused, *sec.ignored]}
    assert listed == expected
    assert "kappa  (float or auto; default 0)" in out and "callbacks  (—)" in out


def test_help_input_of_every_section_points_to_fit(capsys):
    assert main(["--help-input"]) == 0
    assert "acemd --help-input fit" in capsys.readouterr().out


def test_help_input_unknown_section_mentions_fit(capsys):
    assert main(["--help-input", "fitt"]) == 2
    assert "did you mean 'fit'" in capsys.readouterr().err


def test_fit_reference_is_up_to_date_and_reads_back():
    problem = docgen.check_fit_reference(Path(__file__).resolve().parents[2] / "docs" / "fit-input-reference.md")
    assert problem is None, problem
    md = docgen.fit_reference_markdown()
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    assert sections == list(fc.FIT_SCHEMA)
    for name, sec in fc.FIT_SCHEMA.items():
        body = md.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| `([^`]+)` \|", body, flags=re.M)
        assert rows == [*sec.keys, *sec.refused, *sec.ignored], name


# -- with the pipeline's modules (basis, data): what the settings hand on --------------------------

DATA = Path(__file__).resolve().parents[1] / "data" / "fit"


def test_potential_section_handed_on_builds_pacemakers_basis(tmp_path):
    """The validated potential mapping (embedding made explicit, keys as given) gives build_basis the
    number of B-functions pacemaker builds, for every case of the shared reference (linearised)."""
    import acemd.fit.basis as basis
    import json
    cases = json.loads((DATA / "pacemaker_basis_counts.json").read_text())["cases"]
    (tmp_path / "d.pkl").write_bytes(b"x")
    for name, case in cases.items():
        pot = copy.deepcopy(case["potential"])
        for block in pot.get("embeddings", {}).values():
            block.update(fs_parameters=[1, 1], ndensity=1)
        s = read_fit_input(write(tmp_path, {"potential": pot, "data": "d.pkl"}))
        spec = basis.build_basis(s.potential, source=str(s.source))
        print(f"{name}: {sum(spec.nfuncs)} functions, pacemaker {case['total']}")
        assert sum(spec.nfuncs) == case["total"], name


def test_check_of_the_example_input_with_the_pipeline_writes_nothing(tmp_path, capsys):
    """inputs/fit_cu_linear.yaml on acemd's Cu EMT test set: --check reads the data and builds the
    notebook's 822-function basis, and leaves the folders as they were."""
    import acemd.fit.run  # noqa: F401 - the real pipeline, not a stand-in
    text = (Path(__file__).resolve().parents[2] / "inputs" / "fit_cu_linear.yaml").read_text()
    text = re.sub(r"filename: \S+", f"filename: {(DATA / 'Cu_emt.pckl.gzip').as_posix()}", text)
    path = tmp_path / "fit_cu_linear.yaml"
    path.write_text(text)
    before, data_before = _listing(tmp_path), _listing(DATA)
    assert main(["fit", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    print(out[-600:])
    assert "is valid" in out and "822 functions" in out
    assert _listing(tmp_path) == before and _listing(DATA) == data_before
