"""The nonlinear fit's keys of pacemaker's input.yaml (acemd.fit.config): which fit runs (linear or
nonlinear, and why), the resolved values and pacemaker's defaults, trainable_parameters in all of
pacemaker's forms, upfitting, and a clear error naming the key for every bad value.

The linear inputs of part 1 keep resolving to the linear fit (tests/fit/test_fit_config.py)."""
import re
from pathlib import Path

import pytest
import yaml

from acemd.cli import main
from acemd.fit.config import FitInputError, block_names, format_fit_settings, read_fit_input

DATA = Path(__file__).resolve().parent / "data" / "potentials"      # copies of the shared reference potentials


def tree_of(tmp_path, elements=("Cu",), fit=None, loss=None, embeddings=None, **top):
    (tmp_path / "d.pkl").write_bytes(b"stand-in")
    tree = {
        "cutoff": 6.0, "seed": 3,
        "potential": {"elements": list(elements),
                      "embeddings": embeddings or {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                                                           "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
                      "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}},
                      "functions": {"ALL": {"nradmax_by_orders": [6, 2, 1], "lmax_by_orders": [0, 2, 1]}}},
        "data": {"filename": "d.pkl", "test_size": 0.1},
        "fit": {"loss": {"kappa": 0.3, **(loss or {})}, **(fit or {})},
    }
    tree.update(top)
    return tree


def read(tmp_path, tree):
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return read_fit_input(path)


def error(tmp_path, tree) -> str:
    with pytest.raises(FitInputError) as exc:
        read(tmp_path, tree)
    return str(exc.value)


def potential_copy(tmp_path, name="Cu-I.yaml"):
    (tmp_path / name).write_text((DATA / name).read_text())
    return tmp_path / name


# -- which fit ----------------------------------------------------------------------------------

def test_defaults_of_a_nonlinear_input_are_pacemakers(tmp_path):
    s = read(tmp_path, tree_of(tmp_path))
    f = s.fit
    assert f.model == "nonlinear" and f.model_reason == "potential.embeddings.ALL.ndensity: 2 densities"
    assert (f.optimizer, f.maxiter, f.optimizer_options, f.init) == ("BFGS", 100, {}, "pacemaker")
    assert (f.fit_cycles, f.noise_relative_sigma, f.noise_absolute_sigma) == (1, 0.0, 0.0)
    assert (f.ladder, f.ladder_step, f.ladder_type) == (False, None, "body_order")
    assert (f.min_relative_train_loss_per_iter, f.min_relative_test_loss_per_iter, f.early_stopping_patience) == \
        (None, None, 200)
    assert (f.L1_coeffs, f.L2_coeffs, f.w0_rad, f.w1_rad, f.w2_rad) == (0.0,) * 5
    assert (f.repulsion, f.batch_size, f.checkpoint_every) == (None, None, 0)
    assert f.trainable_parameters == {"Cu": ("func", "radial")}            # pacemaker's ALL
    assert s.output.checkpoint_file == tmp_path.resolve() / "fit.ckpt.h5"
    assert s.potential["embeddings"]["ALL"]["fs_parameters"] == [1, 1, 1, 0.5]
    assert s.warnings == ()


@pytest.mark.parametrize("fit, loss, reason", [
    ({"optimizer": "L-BFGS-B"}, {}, "fit.optimizer: given"),
    ({"maxiter": 10}, {}, "fit.maxiter: given"),
    ({"options": {"gtol": 1e-8}}, {}, "fit.options: given"),
    ({"init": "linear"}, {}, "fit.init: given"),
    ({"ladder_step": 10}, {}, "fit.ladder_step: given"),
    ({"fit_cycles": 2}, {}, "fit.fit_cycles: 2"),
    ({"repulsion": "auto"}, {}, "fit.repulsion: given"),
    ({"min_relative_train_loss_per_iter": 1e-5}, {}, "fit.min_relative_train_loss_per_iter: given"),
    ({"checkpoint_every": 50}, {}, "fit.checkpoint_every: 50"),
    ({"trainable_parameters": "ALL"}, {}, "fit.trainable_parameters: radial functions trained (Cu)"),
    ({"trainable_parameters": {"Cu": "radial"}}, {}, "fit.trainable_parameters: radial functions trained (Cu)"),
    ({}, {"L1_coeffs": 1e-8}, "fit.loss.L1_coeffs: 1e-08"),
    ({}, {"w2_rad": 1e-4}, "fit.loss.w2_rad: 0.0001"),
])
def test_one_key_of_the_iterative_fit_selects_it(tmp_path, fit, loss, reason):
    """With the linear embedding, each of these alone makes the fit nonlinear and is named as the reason."""
    linear = {"ALL": {"npot": "linear"}}
    s = read(tmp_path, tree_of(tmp_path, fit=fit, loss=loss, embeddings=linear))
    assert s.fit.model == "nonlinear" and s.fit.model_reason == reason


@pytest.mark.parametrize("fit, loss", [
    ({}, {}), ({"fit_cycles": 1, "noise_relative_sigma": 0}, {"L1_coeffs": 0, "w0_rad": 0}),
    ({"trainable_parameters": "func"}, {}), ({"trainable_parameters": {"ALL": ["func"]}}, {}),
    ({"ladder_type": "power_order", "early_stopping_patience": 10}, {}),
    ({"solver": "bayesian", "committee": 4}, {}),
])
def test_inputs_with_nothing_iterative_stay_linear(tmp_path, fit, loss):
    s = read(tmp_path, tree_of(tmp_path, fit=fit, loss=loss, embeddings={"ALL": {"npot": "linear"}}))
    assert s.fit.model == "linear" and s.fit.trainable_parameters == {"Cu": ("func",)}, s.fit.model_reason


def test_model_linear_refuses_every_key_that_needs_iterations(tmp_path):
    tree = tree_of(tmp_path, fit={"model": "linear", "optimizer": "BFGS", "ladder_step": 5},
                   loss={"w0_rad": 1e-6})
    message = error(tmp_path, tree)
    print(message)
    assert "[fit.model]: fit.model: linear, but 4 key(s) need the nonlinear fit" in message
    for key in ("potential.embeddings.ALL.ndensity", "fit.optimizer", "fit.ladder_step", "fit.loss.w0_rad"):
        assert f"\n  {key}: " in message


def test_model_nonlinear_on_a_linear_model(tmp_path):
    s = read(tmp_path, tree_of(tmp_path, fit={"model": "nonlinear"}, embeddings={"ALL": {"npot": "linear"}}))
    assert s.fit.model == "nonlinear" and s.fit.model_reason == "fit.model: nonlinear"
    assert s.fit.trainable_parameters == {"Cu": ("func", "radial")}


# -- values ----------------------------------------------------------------------------------------

def test_every_key_resolves(tmp_path):
    fit = {"optimizer": "Adam", "maxiter": 500, "options": {"learning_rate": 1e-3}, "batch_size": 16,
           "fit_cycles": 3, "noise_relative_sigma": 1e-3, "ladder_step": [10, 0.02], "ladder_type": "power_order",
           "min_relative_train_loss_per_iter": -5e-5, "min_relative_test_loss_per_iter": 1e-5,
           "early_stopping_patience": 50, "repulsion": "auto", "checkpoint_every": 100, "init": "linear",
           "solver": "bayesian", "active_set": True}
    loss = {"kappa": "auto", "L1_coeffs": 1e-8, "L2_coeffs": 2e-8, "w0_rad": 1e-7, "w1_rad": 2e-7, "w2_rad": 3e-7,
            "kappa_stress": 0.1}
    s = read(tmp_path, tree_of(tmp_path, fit=fit, loss=loss, output={"checkpoint_file": "ck/fit.h5"},
                               backend={"batch_size": 30, "display_step": 5}))
    f = s.fit
    assert (f.optimizer, f.maxiter, f.optimizer_options, f.batch_size) == ("Adam", 500, {"learning_rate": 1e-3}, 16)
    assert (f.fit_cycles, f.noise_relative_sigma, f.noise_absolute_sigma) == (3, 1e-3, 0.0)
    assert (f.ladder, f.ladder_step, f.ladder_type) == (True, (10, 0.02), "power_order")
    assert (f.min_relative_train_loss_per_iter, f.min_relative_test_loss_per_iter) == (5e-5, 1e-5)   # magnitudes
    assert (f.early_stopping_patience, f.repulsion, f.checkpoint_every, f.init) == (50, "auto", 100, "linear")
    assert (f.solver, f.active_set, f.kappa, f.kappa_stress) == ("bayesian", True, "auto", 0.1)
    assert (f.L1_coeffs, f.L2_coeffs, f.w0_rad, f.w1_rad, f.w2_rad) == (1e-8, 2e-8, 1e-7, 2e-7, 3e-7)
    assert (s.backend.batch_size, s.backend.display_step) == (30, 5)
    assert s.output.checkpoint_file == tmp_path.resolve() / "ck" / "fit.h5"
    assert [w.split("]")[0].split("[")[1] for w in s.warnings] == ["fit.loss.L2_coeffs"]   # bayesian ignores L2


@pytest.mark.parametrize("step, pair", [(15, (15, 0.0)), (0.05, (0, 0.05)), ([0.02, 10], (10, 0.02)),
                                        ([200], (200, 0.0))])
def test_ladder_step_forms(tmp_path, step, pair):
    assert read(tmp_path, tree_of(tmp_path, fit={"ladder_step": step})).fit.ladder_step == pair


def test_check_prints_the_resolved_nonlinear_settings(tmp_path, capsys, monkeypatch):
    import sys
    import types
    module = types.ModuleType("acemd.fit.run")
    module.run_fit = lambda settings, check_only=False, restart=None: 0
    monkeypatch.setitem(sys.modules, "acemd.fit.run", module)
    path = tmp_path / "input.yaml"
    path.write_text(yaml.safe_dump(tree_of(tmp_path, fit={"ladder_step": [5, 0.1], "maxiter": 7})))
    assert main(["fit", str(path), "--check"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])["fit"]
    assert printed["model"] == "nonlinear" and "fit.ladder_step: given" in printed["model_reason"]
    assert printed["ladder_step"] == [5, 0.1] and printed["maxiter"] == 7 and printed["optimizer"] == "BFGS"
    assert printed["trainable_parameters"] == {"Cu": ["func", "radial"]}
    s = read_fit_input(path)
    assert yaml.safe_load(format_fit_settings(s))["fit"]["ladder"] is True


# -- trainable_parameters ---------------------------------------------------------------------

def test_block_names_are_pacemakers_tail_sorted_blocks():
    assert block_names(["Ni", "Al"]) == ["Al", "Ni", "Al Ni", "Ni Al"]
    names = block_names(["Cu", "Al", "Ni"])
    assert names[:3] == ["Al", "Cu", "Ni"] and len(names) == 3 + 6 + 3
    assert names[-3:] == ["Al Cu Ni", "Cu Al Ni", "Ni Al Cu"]


@pytest.mark.parametrize("value, expected", [
    ("ALL", {"Al": "fr", "Ni": "fr", "Al Ni": "fr", "Ni Al": "fr"}),
    ("func", {"Al": "f", "Ni": "f", "Al Ni": "f", "Ni Al": "f"}),
    ("radial", {"Al": "r", "Ni": "r", "Al Ni": "r", "Ni Al": "r"}),
    ("UNARY", {"Al": "fr", "Ni": "fr", "Al Ni": "", "Ni Al": ""}),
    (["Al", "BINARY"], {"Al": "fr", "Ni": "", "Al Ni": "fr", "Ni Al": "fr"}),
    ({"ALL": "func", "AlNi": "radial", "NiAl": ["radial"]}, {"Al": "f", "Ni": "f", "Al Ni": "r", "Ni Al": "r"}),
    ({"UNARY": "all", "Ni": []}, {"Al": "fr", "Ni": "", "Al Ni": "", "Ni Al": ""}),
    ({"BINARY": "func", "ALL": "radial"}, {"Al": "r", "Ni": "r", "Al Ni": "f", "Ni Al": "f"}),   # BINARY wins
    ({"(Ni, Al)": "func", "Al Ni": "func"}, {"Al": "", "Ni": "", "Al Ni": "f", "Ni Al": "f"}),
])
def test_trainable_parameters_forms(tmp_path, value, expected):
    s = read(tmp_path, tree_of(tmp_path, elements=("Al", "Ni"), fit={"trainable_parameters": value}))
    short = {n: "".join(k[0] for k in kinds) for n, kinds in s.fit.trainable_parameters.items()}
    assert short == expected


def test_trainable_radial_only_for_bonds_and_flow_sequence_keys(tmp_path):
    """Ternary blocks keep func only (radial functions belong to bonds); [Al, Ni] keys (YAML flow
    sequences) name the block Al Ni."""
    path = tmp_path / "input.yaml"
    tree = tree_of(tmp_path, elements=("Al", "Cu", "Ni"))
    text = yaml.safe_dump(tree, sort_keys=False) + ""
    text = text.replace("fit:\n", "fit:\n  trainable_parameters: {ALL: func, [Al, Ni]: all, [Ni, Al]: all, "
                                  "AlCuNi: all}\n")
    path.write_text(text)
    t = read_fit_input(path).fit.trainable_parameters
    assert t["Al Ni"] == t["Ni Al"] == ("func", "radial") and t["Al Cu Ni"] == ("func",) and t["Cu"] == ("func",)


@pytest.mark.parametrize("value, fragment", [
    ({"ALL": "funk"}, "[fit.trainable_parameters.ALL]: expected func, radial, all or a list of them, got 'funk' "
                      "(did you mean 'func'?)"),
    ({"UNARI": "func"}, "[fit.trainable_parameters.UNARI]: unknown block (did you mean 'UNARY'?)"),
    ({"AlCu": "func"}, "[fit.trainable_parameters.AlCu]: element Cu is not in potential.elements (Al, Ni)"),
    ({"AlAl": "func"}, "[fit.trainable_parameters.AlAl]: a block names distinct elements"),
    ({"AlNi": "radial"}, "[fit.trainable_parameters]: the radial functions of the bond Al-Ni are trained in one "
                         "order only (Al Ni)"),
    ({"ALL": []}, "[fit.trainable_parameters]: nothing is trained"),
    ([3], "[fit.trainable_parameters]: a list names blocks"),
])
def test_trainable_parameters_errors(tmp_path, value, fragment):
    message = error(tmp_path, tree_of(tmp_path, elements=("Al", "Ni"), fit={"trainable_parameters": value}))
    assert fragment in message, message


# -- upfitting and the ladder's start ----------------------------------------------------------

def test_potential_file_and_initial_potential(tmp_path):
    start = potential_copy(tmp_path)
    tree = tree_of(tmp_path)
    tree["potential"]["initial_potential"] = [start.name, start.name]
    s = read(tmp_path, tree)
    assert s.initial_potentials == (start.resolve(),) * 2 and s.fit.ladder and s.fit.ladder_step is None
    assert "potential.initial_potential" in s.fit.model_reason and s.potential_file is None
    assert "initial_potential" not in s.potential
    tree = tree_of(tmp_path, fit={"ladder_step": 20})
    tree["potential"] = {"filename": start.name, "reset": True}
    del tree["cutoff"]
    s = read(tmp_path, tree)
    assert s.potential_file == start.resolve() and s.reset_potential and s.potential == {"elements": ["Cu"]}
    assert s.cutoff > 0 and s.fit.model == "nonlinear"


@pytest.mark.parametrize("potential, fragment", [
    ({"filename": "absent.yaml"}, "[potential.filename]: file not found: absent.yaml"),
    ({"filename": "Cu-I.yaml", "functions": {}}, "[potential.functions]: give either filename"),
    ("Cu-I.yace", "[potential.filename]: must be pacemaker's B-basis .yaml"),
    ({"filename": "broken.yaml"}, "[potential.filename]: cannot read the B-basis potential"),
    ({"elements": ["Cu"], "bonds": {}, "functions": {}, "reset": True}, "[potential.reset]: resets the potential"),
    ({"elements": ["Cu"], "functions": {}}, "[potential.bonds]: required key is missing (or give filename"),
    ({"initial_potential": "Cu-I.yaml"}, "[potential.elements]: required key is missing"),
])
def test_upfit_errors(tmp_path, potential, fragment):
    potential_copy(tmp_path)
    (tmp_path / "Cu-I.yace").write_text("x")
    (tmp_path / "broken.yaml").write_text("species: 3\n")
    tree = tree_of(tmp_path)
    tree["potential"] = potential
    message = error(tmp_path, tree)
    assert fragment in message, message


def test_initial_potential_of_other_elements_is_refused(tmp_path):
    potential_copy(tmp_path)
    tree = tree_of(tmp_path, elements=("Al", "Ni"))
    tree["potential"]["initial_potential"] = "Cu-I.yaml"
    assert "[potential.initial_potential]: Cu-I.yaml has element Cu, which is not among the potential's " \
           "elements (Al, Ni)" in error(tmp_path, tree)


# -- bad values and combinations -------------------------------------------------------------------

@pytest.mark.parametrize("fit, fragment", [
    ({"optimizer": "bfgs"}, "[fit.optimizer]: must be one of 'BFGS', 'L-BFGS-B', 'Adam' (did you mean 'BFGS'?)"),
    ({"optimizer": "Nelder-Mead"}, "[fit.optimizer]: must be one of"),
    ({"maxiter": 0}, "[fit.maxiter]: must be positive"),
    ({"maxiter": 1.5}, "[fit.maxiter]: expected an integer"),
    ({"options": [1]}, "[fit.options]: expected a mapping"),
    ({"ladder_step": 0}, "[fit.ladder_step]: must be an integer >= 1"),
    ({"ladder_step": 1.5}, "[fit.ladder_step]: must be an integer >= 1"),
    ({"ladder_step": [10, 20]}, "[fit.ladder_step]: a list gives at most one integer and one fraction"),
    ({"ladder_step": [10, 0.1, 0.2]}, "[fit.ladder_step]: must be an integer"),
    ({"ladder_type": "body"}, "[fit.ladder_type]: must be one of 'body_order', 'power_order' (did you mean"),
    ({"fit_cycles": 0}, "[fit.fit_cycles]: must be positive"),
    ({"noise_relative_sigma": -1}, "[fit.noise_relative_sigma]: must be >= 0"),
    ({"min_relative_train_loss_per_iter": 0}, "[fit.min_relative_train_loss_per_iter]: must not be 0"),
    ({"early_stopping_patience": 0}, "[fit.early_stopping_patience]: must be positive"),
    ({"repulsion": "zbl"}, "[fit.repulsion]: must be one of 'auto'"),
    ({"init": "random"}, "[fit.init]: must be one of 'pacemaker', 'linear'"),
    ({"model": "nonlinar"}, "[fit.model]: must be one of 'auto', 'linear', 'nonlinear' (did you mean 'nonlinear'?)"),
    ({"batch_size": 10}, "[fit.batch_size]: mini-batches are for optimizer Adam"),
    ({"solver": "ridge"}, "[fit.solver]: the nonlinear fit is iterative"),
    ({"solver": "bayesian", "committee": 3, "init": "linear"},
     "[fit.committee]: a committee is drawn from the linear fit's"),
    ({"optimzer": "BFGS"}, "[fit.optimzer]: unknown key (did you mean 'optimizer'?)"),
    ({"ladder_stp": 5}, "[fit.ladder_stp]: unknown key (did you mean 'ladder_step'?)"),
    ({"trainable_parameter": "ALL"}, "(did you mean 'trainable_parameters'?)"),
])
def test_bad_values_name_the_key(tmp_path, fit, fragment):
    message = error(tmp_path, tree_of(tmp_path, fit=fit))
    assert message.startswith(str(tmp_path / "input.yaml")) and fragment in message, message


@pytest.mark.parametrize("loss, fragment", [
    ({"L1_coeffs": -1}, "[fit.loss.L1_coeffs]: must be >= 0"),
    ({"w1_rad": -1e-3}, "[fit.loss.w1_rad]: must be >= 0"),
    ({"w_orth": 1}, "[fit.loss.w_orth]: a non-zero value is not supported by acemd"),
    ({"w0_radd": 1}, "(did you mean 'w0_rad'?)"),
])
def test_bad_loss_values(tmp_path, loss, fragment):
    assert fragment in error(tmp_path, tree_of(tmp_path, loss=loss))


@pytest.mark.parametrize("embeddings, fragment", [
    ({"ALL": {"ndensity": 2}}, "[potential.embeddings.ALL.fs_parameters]: element Cu has ndensity 2, which needs "
                               "2*ndensity = 4 fs_parameters"),
    ({"ALL": {"ndensity": 2, "fs_parameters": [1, 1, 1, 0.5]}, "Cu": {"ndensity": 3}},
     "[potential.embeddings.ALL.fs_parameters]: element Cu has ndensity 3"),
    ({"ALL": {"npot": "FinnisSinclairShifted"}}, "(did you mean 'FinnisSinclairShiftedScaled'?)"),
    ({"ALL": {"ndensity": 0}}, "[potential.embeddings.ALL.ndensity]: must be positive"),
])
def test_bad_embeddings(tmp_path, embeddings, fragment):
    message = error(tmp_path, tree_of(tmp_path, embeddings=embeddings))
    assert fragment in message, message


@pytest.mark.parametrize("fit, potential_key, fragment", [
    ({"init": "linear"}, "initial_potential", "[fit.init]: linear starts from the linear fit's solution, but the "
                                               "ladder starts from potential.initial_potential"),
    ({"init": "linear"}, "filename", "[fit.init]: linear starts from the linear fit's solution, but "
                                     "potential.filename's coefficients"),
])
def test_init_linear_conflicts_with_a_start_potential(tmp_path, fit, potential_key, fragment):
    potential_copy(tmp_path)
    tree = tree_of(tmp_path, fit=fit)
    if potential_key == "filename":
        tree["potential"] = {"filename": "Cu-I.yaml"}
        del tree["cutoff"]
    else:
        tree["potential"]["initial_potential"] = "Cu-I.yaml"
    assert fragment in error(tmp_path, tree)


def test_test_loss_stopping_needs_a_test_set(tmp_path):
    tree = tree_of(tmp_path, fit={"min_relative_test_loss_per_iter": 1e-5})
    del tree["data"]["test_size"]
    assert "[fit.min_relative_test_loss_per_iter]: early stopping on the test loss needs a test set" in \
        error(tmp_path, tree)


def test_warnings_for_keys_without_effect(tmp_path):
    fit = {"noise_absolute_sigma": 1e-3, "early_stopping_patience": 10, "ladder_type": "power_order",
           "trainable_parameters": "func"}
    s = read(tmp_path, tree_of(tmp_path, fit=fit, loss={"w1_rad": 1e-6}))
    warned = {re.search(r"\[([\w.]+)\]", w).group(1): w for w in s.warnings}
    assert set(warned) == {"fit.noise_absolute_sigma", "fit.early_stopping_patience", "fit.ladder_type",
                           "fit.loss.w1_rad"}
    assert "fit_cycles 1" in warned["fit.noise_absolute_sigma"] and "no radial function" in warned["fit.loss.w1_rad"]
