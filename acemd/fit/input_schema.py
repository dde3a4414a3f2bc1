"""The keys of ``acemd fit``'s input.yaml (pacemaker's format): types, defaults, checks and meanings.

``FIT_SCHEMA`` maps each mapping of the file (the top level, ``potential``, its ``embeddings``,
``bonds`` and ``functions`` blocks, ``data``, ``fit``, ``fit.loss``, ``fit.weighting``, ``backend``,
``output``) to a :class:`FitSection`: the keys acemd accepts, pacemaker's few keys it refuses (with
what to do instead), and those it accepts and ignores with a warning.  The keys of the linear and the
nonlinear fit share one schema; ``acemd.fit.config`` checks an input against it and decides which fit
runs; ``acemd.docgen`` turns it into docs/fit-input-reference.md and ``acemd --help-input fit``.
Units: Å, eV.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import NUM, Key, choice_with_suggestion, non_negative, positive
from ..potential.model import INNER_CUTOFF_TYPES, RADIAL_BASES

REFUSED = "not supported by acemd"
PART2 = REFUSED                       # the name docgen imports (the refused keys' prefix)
LINEAR_EMBEDDING = {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}
LINEAR_NPOT_ALIAS = "linear"          # acemd's name; pacemaker has none (FSSS with [1, 1], ndensity 1)
EMBEDDING_NPOTS = ("FinnisSinclair", "FinnisSinclairShiftedScaled")
NARY = {"UNARY": 1, "BINARY": 2, "TERNARY": 3, "QUATERNARY": 4, "QUINARY": 5}
EMBEDDING_KEYWORDS = ("ALL", "UNARY")
BOND_KEYWORDS = ("ALL", "UNARY", "BINARY")
FUNCTION_KEYWORDS = ("ALL",) + tuple(NARY)
FUNCTIONS_CAP_KEY = "number_of_functions_per_element"
WEIGHTING_TYPES = ("EnergyBasedWeightingPolicy", "ExternalWeightingPolicy", "UniformWeightingPolicy")
SOLVERS = ("ridge", "bayesian")
OPTIMIZERS = ("BFGS", "L-BFGS-B", "Adam")
LADDER_TYPES = ("body_order", "power_order")
MODELS = ("auto", "linear", "nonlinear")
INITS = ("pacemaker", "linear")
TRAINABLE_KINDS = ("func", "radial")
STRESS_COMPONENTS = ("xx", "yy", "zz", "yz", "xz", "xy")     # Voigt order of stress_component_weights


@dataclass(frozen=True)
class FitSection:
    """One mapping of the input: its keys (``Key``: types, default, check, doc), the keys refused
    because only the nonlinear fit has them (key -> how to run the linear fit instead), and the keys
    accepted and ignored with a warning (key -> why)."""

    summary: str
    keys: dict[str, Key]
    refused: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)


def is_number(v) -> bool:
    return isinstance(v, NUM) and not isinstance(v, bool) and math.isfinite(v)


def _unit_interval_or_auto(v):
    if v == "auto":
        return None
    if not is_number(v) or not 0 <= v <= 1:
        return "must be a number in [0, 1] (0: energies only, 1: forces only) or auto"
    return None


def _zero_only(hint):
    def check(v):
        return None if v == 0 else f"a non-zero value is {REFUSED}: {hint}"
    return check


def _ladder_step(v):
    """pacemaker's ladder_step: an integer >= 1, a fraction in (0, 1), or a list of one of each."""
    shape = ("must be an integer >= 1 (functions added per step), a fraction in (0, 1) (of the current "
             "basis size) or a list of both, e.g. [10, 0.02]")
    items = v if isinstance(v, list) else [v]
    if not items or len(items) > 2:
        return shape
    ints = fracs = 0
    for x in items:
        if isinstance(x, bool) or not is_number(x):
            return shape
        if isinstance(x, int) and x >= 1:
            ints += 1
        elif isinstance(x, float) and 0 < x < 1:
            fracs += 1
        else:
            return shape
    if ints > 1 or fracs > 1:
        return "a list gives at most one integer and one fraction, e.g. [10, 0.02]"
    return None


def _nonzero(v):
    return None if v != 0 else "must not be 0 (remove the key to switch early stopping off)"


def _one_of(*choices):
    """acemd.config's choice with a did-you-mean, its choices listed in the fit input reference; a value
    that differs only in case ('bfgs') or starts a choice ('body') suggests that choice."""
    base = choice_with_suggestion(*choices)

    def check(v):
        problem = base(v)
        if problem and "did you mean" not in problem and isinstance(v, str) and v:
            close = [c for c in choices if c.lower() == v.lower()] or [c for c in choices if c.startswith(v)]
            if len(close) == 1:
                problem += f" (did you mean '{close[0]}'?)"
        return problem
    check.choices = choices
    return check


def _numbers(n=None, minimum=None, what="numbers"):
    def check(v):
        if not isinstance(v, list) or not v or not all(is_number(x) for x in v):
            return f"must be a list of {what}"
        if n is not None and len(v) != n:
            return f"must list exactly {n} {what}, got {len(v)}"
        if minimum is not None and any(x < minimum for x in v):
            return f"every entry must be >= {minimum}"
        return None
    return check


def _ints(minimum):
    def check(v):
        if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return "must be a list of integers, one per body order, e.g. [8, 8, 4, 3, 2]"
        if any(x < minimum for x in v):
            return f"every entry must be >= {minimum}"
        return None
    return check


def _stress_weights(v):
    problem = _numbers(6, 0.0)(v)
    if problem:
        return problem + " (xx, yy, zz, yz, xz, xy)"
    return None if any(x > 0 for x in v) else "at least one weight must be positive"


def _test_size(v):
    if v < 0:
        return "must be >= 0 (0: no test set, < 1: a fraction, >= 1: a number of structures)"
    if v >= 1 and float(v) != int(v):
        return "a test set of >= 1 structures must be a whole number (or give a fraction < 1)"
    return None


_OWN_LOOP = "acemd has no Python callbacks in its fit loop: remove it"
_OPTIONS_NAME = "pacemaker does not read it either: give the optimizer's options in fit.options"
_RANDOMIZE = ("ensemble fits from random function coefficients: use fit_cycles with noise_absolute_sigma or "
              "noise_relative_sigma (perturbed restarts) instead, or remove it")
_OVERWRITE = ("blocks are not taken over from the initial potential: give the full basis shape (or "
              "filename) and initial_potential, or remove it")
UPFIT_HINT = "give either filename (the potential to continue) or the basis shape, not both"

TOP_SECTION = "(top level)"

FIT_SCHEMA: dict[str, FitSection] = {
    TOP_SECTION: FitSection(
        "The top level of input.yaml. Relative paths anywhere in the file are relative to the "
        "input file's folder.",
        {
            "cutoff": Key(NUM, check=positive, unit="Å", default_doc="the largest bond rcut",
                          doc="neighbour-list cutoff; must be at least every bond's rcut (a shorter one "
                              "would fit a different model than the one MD evaluates)"),
            "seed": Key((int,), default=42, check=non_negative,
                        doc="random seed: the train/test split (data.test_size) and, unless they give "
                            "their own, the weighting policy and the committee draws"),
            "metadata": Key((dict,), type_doc="mapping", default_doc="—",
                            doc="free key: value strings copied into the potential file's metadata"),
            "potential": Key((dict, str), required=True, type_doc="mapping or path",
                             doc="the basis shape: elements, embeddings, bonds, functions (sections "
                                 "potential, potential.embeddings, potential.bonds, potential.functions); "
                                 "a file name is potential.filename: continue fitting that B-basis .yaml "
                                 "(upfitting, the nonlinear fit)"),
            "data": Key((dict, str), required=True, type_doc="mapping or path",
                        doc="the reference data (section data); a single file name is data.filename"),
            "fit": Key((dict,), type_doc="mapping", default_doc="energies only, uniform weights",
                       doc="loss, weighting, which fit (linear or nonlinear), solver or optimizer "
                           "(sections fit, fit.loss, fit.weighting)"),
            "backend": Key((dict,), type_doc="mapping", default_doc="—",
                           doc="evaluation batches and progress (section backend)"),
            "output": Key((dict,), type_doc="mapping", default_doc="—",
                          doc="acemd's: the files the fit writes (section output)"),
        }),
    "potential": FitSection(
        "The basis shape, as pacemaker's potential section, or a potential to continue (filename). "
        "Blocks in embeddings, bonds and functions are named by a keyword (ALL, UNARY, BINARY, ...) or by "
        "elements, the more specific winning: ALL < UNARY < BINARY < TERNARY < ... < an element "
        "combination. filename, initial_potential and reset (upfitting, ladder from a start) select the "
        "nonlinear fit.",
        {
            "elements": Key((list,), type_doc="list of element symbols", default_doc="— (required without filename)",
                            doc="every element of the potential, e.g. [Cu] or [Al, Ni]"),
            "deltaSplineBins": Key(NUM, default=0.001, check=positive, unit="Å",
                                   doc="spline bin width of the radial functions in the written potential"),
            "embeddings": Key((dict,), type_doc="mapping of blocks", default_doc="the linear embedding",
                              doc="per element: ALL, UNARY or an element symbol -> section potential.embeddings"),
            "bonds": Key((dict,), type_doc="mapping of blocks", default_doc="— (required without filename)",
                         doc="per element pair: ALL, UNARY, BINARY or a pair (CuCu, AlNi, (Al, Ni)) -> "
                             "section potential.bonds"),
            "functions": Key((dict,), type_doc="mapping of blocks", default_doc="— (required without filename)",
                             doc="per element combination: ALL, UNARY, BINARY, TERNARY, QUATERNARY, QUINARY "
                                 "or a combination ((Al, Ni), Al) -> section potential.functions"),
            "filename": Key((str,), type_doc="path",
                            doc="a B-basis .yaml (pacemaker's output_potential.yaml) to continue fitting: its "
                                "basis, radial functions and coefficients are the start and the target "
                                "(no elements, embeddings, bonds, functions next to it)"),
            "initial_potential": Key((str, list), type_doc="path or list of paths",
                                     doc="B-basis .yaml the ladder starts from (its functions and coefficients; "
                                         "several files are merged); the ladder then grows it to the basis "
                                         "shape (or filename) with fit.ladder_step, all remaining functions in "
                                         "one step without it"),
            "reset": Key((bool,), default=False,
                         doc="with filename: start from pacemaker's initial values instead of the file's "
                             "coefficients (function coefficients 0, radial c_nlk = delta_nk)"),
        },
        refused={"overwrite_blocks_from_initial_bbasis": _OVERWRITE}),
    "potential.embeddings": FitSection(
        "The keys of one embedding block (inside ALL: {...}, UNARY: {...} or Cu: {...}). The embedding "
        "E_i = sum_p w_p F(rho_i,p; m_p) over ndensity densities, F the Finnis-Sinclair function of exponent "
        "m_p. The linear embedding E_i = rho_i (npot FinnisSinclairShiftedScaled or FinnisSinclair with "
        "fs_parameters [1, 1] and ndensity 1; npot linear is acemd's short name for exactly that) allows "
        "the exact linear fit; any other embedding selects the nonlinear fit.",
        {
            "npot": Key((str,), default="FinnisSinclairShiftedScaled",
                        check=_one_of(*EMBEDDING_NPOTS, LINEAR_NPOT_ALIAS),
                        doc="embedding function; linear = FinnisSinclairShiftedScaled, [1, 1], ndensity 1"),
            "fs_parameters": Key((list,), default=[1, 1], type_doc="list of numbers",
                                 check=_numbers(what="numbers"),
                                 doc="[w_1, m_1, w_2, m_2, ...]: weight and exponent per density, 2*ndensity "
                                     "numbers, e.g. [1, 1, 1, 0.5] for rho_1 + sqrt(rho_2); [1, 1] is linear"),
            "ndensity": Key((int,), default=1, check=positive,
                            doc="number of densities per atom; 1 with fs_parameters [1, 1] is linear"),
            "rho_core_cut": Key(NUM, default=100000.0, check=non_negative, unit="eV",
                                doc="energy cutoff on the core-repulsion density (pacemaker's default)"),
            "drho_core_cut": Key(NUM, default=250.0, check=non_negative, unit="eV",
                                 doc="width of that cutoff"),
        }),
    "potential.bonds": FitSection(
        "The keys of one bond block (inside ALL: {...}, UNARY, BINARY or a pair such as CuCu, AlNi or "
        "(Al, Ni), which sets both orders). The radial functions R_nl = sum_k c_nlk g_k start from "
        "pacemaker's c_nlk = delta_nk; the linear fit keeps them, the nonlinear fit trains them (unless "
        "fit.trainable_parameters says otherwise).",
        {
            "radbase": Key((str,), default="ChebExpCos", check=_one_of(*RADIAL_BASES),
                           doc="radial basis"),
            "radparameters": Key((list,), type_doc="list of numbers", check=_numbers(),
                                 doc="parameters of the radial basis, e.g. [5.25] (lambda of ChebExpCos)"),
            "rcut": Key(NUM, check=positive, unit="Å", default_doc="— (required for every pair)",
                        doc="outer cutoff"),
            "dcut": Key(NUM, check=non_negative, unit="Å", doc="width of the outer cutoff"),
            "NameOfCutoffFunction": Key((str,), default="cos",
                                        doc="outer cutoff function; cos is the only one the evaluators have "
                                            "(another name: a warning)"),
            "r_in": Key(NUM, check=non_negative, unit="Å", doc="inner cutoff (core repulsion below it)"),
            "delta_in": Key(NUM, check=non_negative, unit="Å", doc="width of the inner cutoff"),
            "inner_cutoff_type": Key((str,), default="distance", check=_one_of(*INNER_CUTOFF_TYPES),
                                     doc="how the inner cutoff is applied"),
            "core-repulsion": Key((list,), type_doc="[prefactor, lambda]", check=_numbers(2, 0.0),
                                  doc="core repulsion prefactor*exp(-lambda*r^2)/r (eV·Å, 1/Å^2)"),
            "nradbase": Key((int,), check=positive, default_doc="from the functions",
                            doc="number of radial basis functions (normally from nradmax_by_orders)"),
            "nradmax": Key((int,), check=positive, default_doc="from the functions",
                           doc="number of radial functions (normally from nradmax_by_orders)"),
            "lmax": Key((int,), check=non_negative, default_doc="from the functions",
                        doc="largest l (normally from lmax_by_orders)"),
        }),
    "potential.functions": FitSection(
        "The keys of one functions block (inside ALL: {...}, UNARY, ..., QUINARY or an element "
        "combination such as (Al, Ni)), and number_of_functions_per_element next to the blocks.",
        {
            "nradmax_by_orders": Key((list,), type_doc="list of int", check=_ints(1),
                                     doc="largest radial index n per body order (the first: rank 1)"),
            "lmax_by_orders": Key((list,), type_doc="list of int", check=_ints(0),
                                  doc="largest l per body order, as long as nradmax_by_orders"),
            FUNCTIONS_CAP_KEY: Key((int,), check=positive, default_doc="all functions",
                                   doc="next to the blocks: keep this many functions per element, chosen by "
                                       "rank as pacemaker does"),
        },
        ignored={"coefs_init": "the starting coefficients come from fit.init (pacemaker: 0, or the linear "
                               "solution)"}),
    "data": FitSection(
        "The reference data: pacemaker's pickled DataFrames (.pckl.gzip, .pkl.gzip) or any file ASE "
        "reads with energies and forces. A file not found next to the input is looked for in "
        "datapath (or $PACEMAKERDATAPATH), as pacemaker does.",
        {
            "filename": Key((str, list), required=True, type_doc="path or list of paths",
                            doc="training data file(s)"),
            "test_filename": Key((str, list), type_doc="path or list of paths",
                                 doc="test data file(s); not together with test_size"),
            "test_size": Key(NUM, default=0, check=_test_size,
                             doc="test set drawn from the training data with seed: < 1 a fraction, >= 1 a "
                                 "number of structures, 0 none"),
            "reference_energy": Key((dict, str, int, float), type_doc="mapping, number or auto",
                                    default_doc="the data's energy_corrected",
                                    doc="free-atom energies subtracted from energy (eV): {Cu: -0.2, shift: 0} "
                                        "(shift: eV/atom added), one number for every element, or auto "
                                        "(least squares over the compositions, as pacemaker)"),
            "datapath": Key((str,), type_doc="path", default_doc="$PACEMAKERDATAPATH",
                            doc="folder searched for data files not found next to the input"),
            "aug_factor": Key(NUM, default=1e-4, check=non_negative,
                              doc="weight factor of structures whose name starts with 'augmented'"),
            "ignore_weights": Key((bool,), default=False,
                                  doc="ignore the w_energy/w_forces columns of the data and apply fit.weighting"),
        }),
    "fit": FitSection(
        "Which fit runs, the loss, the weighting, the linear solver or the nonlinear optimizer, the "
        "ladder and the fit cycles. model auto (default) runs the exact linear fit when nothing needs "
        "iterations and the nonlinear fit (pacemaker's) otherwise: see docs/fitting-nonlinear-input.md. "
        "model, solver, committee, active_set, init, batch_size and checkpoint_every are acemd's; the "
        "other keys are pacemaker's, with its defaults.",
        {
            "loss": Key((dict,), type_doc="mapping", default_doc="kappa 0, L2_coeffs 0",
                        doc="section fit.loss"),
            "weighting": Key((dict,), type_doc="mapping", default_doc="uniform",
                             doc="section fit.weighting"),
            "model": Key((str,), default="auto", check=_one_of(*MODELS),
                         doc="auto: nonlinear if any key needs it (a nonlinear embedding, optimizer, maxiter, "
                             "options, ladder, fit_cycles > 1, noise, early stopping, trainable radial "
                             "functions or frozen blocks, L1_coeffs or w*_rad > 0, repulsion, batch_size, "
                             "init, upfitting), linear otherwise; linear: the exact linear fit, any key of the "
                             "nonlinear one an error; nonlinear: the iterative fit even for a linear model"),
            "solver": Key((str,), default="ridge", check=_one_of(*SOLVERS),
                          doc="the linear solve (linear fit, and fit.init: linear): ridge, weighted least "
                              "squares with the L2 penalty L2_coeffs; bayesian, Bayesian linear regression, "
                              "noise and prior precisions from the evidence (L2_coeffs is not used), with a "
                              "posterior covariance"),
            "committee": Key((int,), default=0, check=non_negative,
                             doc="linear fit: number of potentials drawn from the posterior (solver bayesian) "
                                 "for the predicted uncertainty; 0 none"),
            "active_set": Key((bool,), default=False,
                              doc="also write the active set (.asi) for the extrapolation grade"),
            "optimizer": Key((str,), default="BFGS", check=_one_of(*OPTIMIZERS),
                             doc="nonlinear fit: BFGS and L-BFGS-B (scipy's, as pacemaker) or Adam (acemd's "
                                 "first-order optimizer, with mini-batches: batch_size)"),
            "maxiter": Key((int,), default=100, check=positive,
                           doc="nonlinear fit: iterations (Adam: epochs) of each optimisation round, i.e. per "
                               "fit cycle and ladder step"),
            "options": Key((dict,), type_doc="mapping", default_doc="the optimizer's defaults",
                           doc="nonlinear fit: options handed to the optimizer (scipy's options of BFGS / "
                               "L-BFGS-B such as gtol, maxcor; Adam's learning_rate, ...), checked by it"),
            "init": Key((str,), default="pacemaker", check=_one_of(*INITS),
                        doc="nonlinear fit: starting coefficients; pacemaker: function coefficients 0 and "
                            "radial c_nlk = delta_nk (pacemaker's); linear: the linear fit's solution "
                            "(solver, with the first density) and c_nlk = delta_nk"),
            "trainable_parameters": Key((str, list, dict), type_doc="string, list or mapping",
                                        default_doc="ALL (nonlinear), func (linear)",
                                        doc="what the fit changes, per block (pacemaker's forms): ALL, func, "
                                            "radial; a keyword (UNARY, BINARY, ...) or element combination "
                                            "(AlNi) or a list of them (func and radial there); a mapping "
                                            "block -> func, radial, all or [func, radial], e.g. {ALL: func, "
                                            "AlNi: [func, radial]}; blocks not named are fixed"),
            "fit_cycles": Key((int,), default=1, check=positive,
                              doc="nonlinear fit: optimisation rounds per ladder step, each from the last "
                                  "one's coefficients with noise added"),
            "noise_relative_sigma": Key(NUM, default=0, check=non_negative,
                                        doc="from the second fit cycle: Gaussian noise of this sigma relative to "
                                            "each trainable coefficient's value (wins over noise_absolute_sigma)"),
            "noise_absolute_sigma": Key(NUM, default=0, check=non_negative,
                                        doc="from the second fit cycle: Gaussian noise of this absolute sigma on "
                                            "every trainable coefficient"),
            "ladder_step": Key((int, float, list), type_doc="int, fraction or [int, fraction]",
                               check=_ladder_step, default_doc="no ladder",
                               doc="ladder (hierarchical) fit: functions added per step, per block: an integer "
                                   ">= 1, a fraction of the current number of functions, or both (the larger "
                                   "wins), at least 1; starts from initial_potential or empty"),
            "ladder_type": Key((str,), default="body_order", check=_one_of(*LADDER_TYPES),
                               doc="order in which the ladder adds functions: body_order (rank, ns, ls, LS, "
                                   "elements) or power_order (rank + sum ns + sum ls, smallest first)"),
            "min_relative_train_loss_per_iter": Key(NUM, check=_nonzero, default_doc="no early stopping",
                                                    doc="early stopping: stop when the train loss fell by less "
                                                        "than this fraction per iteration over the last "
                                                        "early_stopping_patience iterations (sign ignored)"),
            "min_relative_test_loss_per_iter": Key(NUM, check=_nonzero, default_doc="no early stopping",
                                                   doc="early stopping on the test loss (evaluated every "
                                                       "backend.display_step iterations; needs a test set)"),
            "early_stopping_patience": Key((int,), default=200, check=positive, unit="iterations",
                                           doc="the window of the early-stopping tests"),
            "repulsion": Key((str,), check=_one_of("auto"), default_doc="as the bonds give it",
                             doc="auto: after the fit, before the potential is written (as pacemaker), a "
                                 "ZBL core repulsion per bond below the shortest distance of that pair in the "
                                 "training data (r_in = that distance, delta_in 0.1 Å, inner_cutoff_type zbl, "
                                 "rho_core_cut 1, drho_core_cut 1; acemd.fit.repulsion)"),
            "batch_size": Key((int,), check=positive, default_doc="all training structures",
                              doc="acemd's, optimizer Adam: structures per mini-batch"),
            "checkpoint_every": Key((int,), default=0, check=non_negative, unit="iterations",
                                    doc="acemd's, nonlinear fit: iterations between checkpoints (0: none on "
                                        "schedule); SIGTERM/SIGUSR1 always write one"),
        },
        refused={"optimizer_options": _OPTIONS_NAME, "randomize_func_coeffs": _RANDOMIZE,
                 "callbacks": _OWN_LOOP}),
    "fit.loss": FitSection(
        "pacemaker's loss L = (1 - kappa) sum_s wE_s (dE_s/N_s)^2 + kappa sum_i wF_i |dF_i|^2 + L1_coeffs "
        "sum |c| + L2_coeffs sum c^2 + w0_rad P0 + w1_rad P1 + w2_rad P2, the weights normalised to sum 1 "
        "each (dE_s/N_s in eV/atom, dF_i in eV/Å), c the basis-function coefficients, P0..P2 pacemaker's "
        "radial smoothness terms (docs/fitting-nonlinear-input.md), plus acemd's stress term kappa_stress "
        "sum_s wS_s sum_c w_c (V_s dsigma_sc / N_s)^2 (the virial per atom, eV/atom, Voigt components c; wS "
        "the energy weights of the structures with a stress, renormalised to sum 1).",
        {
            "kappa": Key((int, float, str), default=0, type_doc="float or auto", check=_unit_interval_or_auto,
                         doc="relative force weight: 0 energies only, 1 forces only; auto: "
                             "sigma_E^2/(sigma_E^2 + sigma_F^2), sigma_E the standard deviation of the "
                             "training energies per atom, sigma_F that of the force norms |F_i| (pacemaker's rule)"),
            "L2_coeffs": Key(NUM, default=0, check=non_negative,
                             doc="L2 (ridge) penalty on the coefficients, relative to the normalised loss"),
            "kappa_stress": Key(NUM, default=0, check=non_negative,
                                doc="acemd's: weight of the stress rows (virial per atom); 0 no stresses; "
                                    "only structures with a stress and a periodic cell"),
            "stress_component_weights": Key((list,), type_doc="list of 6 numbers", check=_stress_weights,
                                            default_doc="[1, 1, 1, 1, 1, 1]",
                                            doc="acemd's: weight w_c per Voigt component xx yy zz yz xz xy "
                                                "(needs kappa_stress > 0)"),
            "L1_coeffs": Key(NUM, default=0, check=non_negative,
                             doc="L1 penalty sum |c| on the basis-function coefficients (> 0: nonlinear fit)"),
            "w0_rad": Key(NUM, default=0, check=non_negative,
                          doc="radial smoothness P0 (the radial functions R_nl) weight (> 0: nonlinear fit)"),
            "w1_rad": Key(NUM, default=0, check=non_negative,
                          doc="radial smoothness P1 (their first derivatives) weight (> 0: nonlinear fit)"),
            "w2_rad": Key(NUM, default=0, check=non_negative,
                          doc="radial smoothness P2 (their second derivatives) weight (> 0: nonlinear fit)"),
            "w_orth": Key(NUM, default=0, check=_zero_only("pacemaker's CPU path ignores it too; remove it or "
                                                           "set 0"),
                          doc="only 0 (orthogonality of the radial functions)"),
        },
        ignored={"w1_coeffs": "pacemaker ignores it too", "w2_coeffs": "pacemaker ignores it too"}),
    "fit.weighting": FitSection(
        "pacemaker's weighting policies, by type. EnergyBasedWeightingPolicy: weights 1/(E - E_min + DE)^2 "
        "per structure and 1/(|F|^2 + DF) per atom, structures above E_min + DEup (or with a force above DFup) "
        "left out, nfit of them kept; ExternalWeightingPolicy: w_energy and w_forces from a pickled "
        "DataFrame (filename) indexed like the data; UniformWeightingPolicy (or no weighting): equal weights. "
        "Weights in the data's w_energy/w_forces columns win unless data.ignore_weights.",
        {
            "type": Key((str,), required=True, check=_one_of(*WEIGHTING_TYPES), doc="the policy"),
            "nfit": Key((int,), check=positive, default_doc="all structures",
                        doc="EnergyBased: structures kept (the low-energy ones first)"),
            "n_lower": Key((int,), check=non_negative, doc="EnergyBased: structures kept below DElow (with n_upper, "
                                                            "instead of nfit)"),
            "n_upper": Key((int,), check=non_negative, doc="EnergyBased: structures kept above DElow"),
            "DElow": Key(NUM, default=1.0, check=non_negative, unit="eV/atom",
                         doc="EnergyBased: every structure below E_min + DElow is kept first"),
            "DEup": Key(NUM, default=10.0, check=positive, unit="eV/atom",
                        doc="EnergyBased: structures at or above E_min + DEup are left out"),
            "DFup": Key(NUM, check=positive, unit="eV/Å", default_doc="no limit",
                        doc="EnergyBased: structures with a force above DFup are left out"),
            "DE": Key(NUM, default=1.0, unit="eV/atom", doc="EnergyBased: energy shift of the energy weights"),
            "DF": Key(NUM, default=1.0, unit="eV²/Å²", doc="EnergyBased: shift of the force weights"),
            "wlow": Key((int, float, str), type_doc="float or none", default_doc="none",
                        doc="EnergyBased: total energy weight of the structures below DElow (in [0, 1])"),
            "energy": Key((str,), default="convex_hull", check=_one_of("convex_hull", "cohesive"),
                          doc="EnergyBased: E_min per structure from the convex hull or the lowest energy"),
            "reftype": Key((str,), default="all", check=_one_of("all", "bulk", "cluster"),
                           doc="EnergyBased: use all structures, only periodic or only non-periodic ones"),
            "seed": Key((int,), check=non_negative, default_doc="the top-level seed",
                        doc="EnergyBased: seed of the random selection"),
            "cutoff": Key(NUM, check=positive, unit="Å", doc="EnergyBased: accepted as pacemaker does"),
            "filename": Key((str,), type_doc="path", doc="External: pickled DataFrame with w_energy, w_forces"),
        }),
    "backend": FitSection(
        "How acemd evaluates the data. pacemaker's evaluator settings are accepted and ignored with a "
        "warning: acemd always uses its own kernel.",
        {
            "batch_size": Key((int,), default=100, check=positive,
                              doc="structures evaluated per batch (memory per rank grows with it); not the "
                                  "Adam mini-batch (fit.batch_size)"),
            "display_step": Key((int,), default=20, check=positive,
                                doc="linear fit: structures between progress lines of the assembly; nonlinear "
                                    "fit: iterations between progress lines with the train/test errors"),
        },
        ignored={k: "acemd always uses its own evaluator" for k in
                 ("evaluator", "batch_size_reduction", "batch_size_reduction_factor", "gpu_config",
                  "parallel_mode", "n_workers", "imagetype")}),
    "output": FitSection(
        "acemd's: the files the fit writes (pacemaker writes them in the working directory). Paths are "
        "relative to folder, which is relative to the input's folder.",
        {
            "folder": Key((str,), default=".", type_doc="path", doc="folder of the outputs (created if needed)"),
            "potential_file": Key((str,), default="output_potential.yaml", type_doc="path",
                                  doc="the fitted potential, pacemaker's B-basis .yaml"),
            "yace": Key((bool,), default=True, doc="also write the .yace (LAMMPS) next to it, same name"),
            "metrics_file": Key((str,), default="metrics.yaml", type_doc="path",
                                doc="errors of train and test sets (YAML)"),
            "errors_file": Key((str,), default="errors.csv", type_doc="path",
                               doc="per-structure errors (CSV)"),
            "checkpoint_file": Key((str,), default="fit.ckpt.h5", type_doc="path",
                                   doc="nonlinear fit: the checkpoint (coefficients, optimizer state, ladder "
                                       "step and cycle) that acemd fit --restart continues from"),
        }),
}
