"""The keys of ``acemd fit``'s input.yaml (pacemaker's format): types, defaults, checks and meanings.

``FIT_SCHEMA`` maps each mapping of the file (the top level, ``potential``, its ``embeddings``,
``bonds`` and ``functions`` blocks, ``data``, ``fit``, ``fit.loss``, ``fit.weighting``, ``backend``,
``output``) to a :class:`FitSection`: the keys acemd accepts, pacemaker's keys it refuses because only
the nonlinear fit has them, and those it accepts and ignores with a warning.  ``acemd.fit.config``
checks an input against it; ``acemd.docgen`` turns it into docs/fit-input-reference.md and
``acemd --help-input fit``.  Units: Å, eV.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config import NUM, Key, choice_with_suggestion, non_negative, positive
from ..potential.model import INNER_CUTOFF_TYPES, RADIAL_BASES

PART2 = "supported by the nonlinear fit (not yet in acemd)"
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
        return None if v == 0 else f"a non-zero value: {hint}"
    check.part2 = True
    return check


def _one_of(*choices):
    """acemd.config's choice with a did-you-mean, its choices listed in the fit input reference."""
    check = choice_with_suggestion(*choices)
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


_OPTIMIZER_HINT = "acemd solves the linear model exactly, without iterations: remove it"
_CYCLES_HINT = "the linear least-squares solution is unique, so repeated runs add nothing: remove it"
_STOP_HINT = "the linear fit has no iterations to stop: remove it"
_LADDER_HINT = ("the linear fit uses the whole basis at once (cap its size with potential.functions."
                "number_of_functions_per_element): remove it")
UPFIT_HINT = ("upfitting an existing potential is part of the nonlinear fit; to fit a new linear "
               "potential give the basis shape (elements, embeddings, bonds, functions) instead")

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
            "potential": Key((dict, str), required=True, type_doc="mapping",
                             doc="the basis shape: elements, embeddings, bonds, functions (sections "
                                 "potential, potential.embeddings, potential.bonds, potential.functions); "
                                 "a file name (upfitting) is refused: part of the nonlinear fit"),
            "data": Key((dict, str), required=True, type_doc="mapping or path",
                        doc="the reference data (section data); a single file name is data.filename"),
            "fit": Key((dict,), type_doc="mapping", default_doc="energies only, uniform weights",
                       doc="loss, weighting and solver (sections fit, fit.loss, fit.weighting)"),
            "backend": Key((dict,), type_doc="mapping", default_doc="—",
                           doc="assembly batches and progress (section backend)"),
            "output": Key((dict,), type_doc="mapping", default_doc="—",
                          doc="acemd's: the files the fit writes (section output)"),
        }),
    "potential": FitSection(
        "The basis shape, as pacemaker's potential section. Blocks in embeddings, bonds and functions "
        "are named by a keyword (ALL, UNARY, BINARY, ...) or by elements, the more specific winning: "
        "ALL < UNARY < BINARY < TERNARY < ... < an element combination.",
        {
            "elements": Key((list,), required=True, type_doc="list of element symbols",
                            doc="every element of the potential, e.g. [Cu] or [Al, Ni]"),
            "deltaSplineBins": Key(NUM, default=0.001, check=positive, unit="Å",
                                   doc="spline bin width of the radial functions in the written potential"),
            "embeddings": Key((dict,), type_doc="mapping of blocks", default_doc="the linear embedding",
                              doc="per element: ALL, UNARY or an element symbol -> section potential.embeddings"),
            "bonds": Key((dict,), required=True, type_doc="mapping of blocks",
                         doc="per element pair: ALL, UNARY, BINARY or a pair (CuCu, AlNi, (Al, Ni)) -> "
                             "section potential.bonds"),
            "functions": Key((dict,), required=True, type_doc="mapping of blocks",
                             doc="per element combination: ALL, UNARY, BINARY, TERNARY, QUATERNARY, QUINARY "
                                 "or a combination ((Al, Ni), Al) -> section potential.functions"),
        },
        refused={"filename": UPFIT_HINT, "initial_potential": UPFIT_HINT, "reset": UPFIT_HINT,
                 "overwrite_blocks_from_initial_bbasis": UPFIT_HINT}),
    "potential.embeddings": FitSection(
        "The keys of one embedding block (inside ALL: {...}, UNARY: {...} or Cu: {...}). The linear fit "
        "needs the linear embedding E_i = rho_i: npot FinnisSinclairShiftedScaled (or FinnisSinclair) "
        "with fs_parameters [1, 1] and ndensity 1, or npot linear (acemd's short name for exactly that; "
        "pacemaker has no name for it). Anything else is nonlinear: an error, part of the nonlinear fit.",
        {
            "npot": Key((str,), default="FinnisSinclairShiftedScaled",
                        check=_one_of(*EMBEDDING_NPOTS, LINEAR_NPOT_ALIAS),
                        doc="embedding function; linear = FinnisSinclairShiftedScaled, [1, 1], ndensity 1"),
            "fs_parameters": Key((list,), default=[1, 1], type_doc="list of numbers",
                                 check=_numbers(what="numbers"),
                                 doc="[weight, exponent] per density; only [1, 1] is linear"),
            "ndensity": Key((int,), default=1, check=positive, doc="number of densities; only 1 is linear"),
            "rho_core_cut": Key(NUM, default=100000.0, check=non_negative, unit="eV",
                                doc="energy cutoff on the core-repulsion density (pacemaker's default)"),
            "drho_core_cut": Key(NUM, default=250.0, check=non_negative, unit="eV",
                                 doc="width of that cutoff"),
        }),
    "potential.bonds": FitSection(
        "The keys of one bond block (inside ALL: {...}, UNARY, BINARY or a pair such as CuCu, AlNi or "
        "(Al, Ni), which sets both orders). The radial functions are fixed in the linear fit (their "
        "coefficients are pacemaker's initial delta_nk); only the B-function coefficients are fitted.",
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
        ignored={"coefs_init": "initial coefficients: the linear fit solves for them"}),
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
        "The loss, the weighting and the solver. solver, committee and active_set are acemd's (pacemaker "
        "has no Bayesian solver).",
        {
            "loss": Key((dict,), type_doc="mapping", default_doc="kappa 0, L2_coeffs 0",
                        doc="section fit.loss"),
            "weighting": Key((dict,), type_doc="mapping", default_doc="uniform",
                             doc="section fit.weighting"),
            "solver": Key((str,), default="ridge", check=_one_of(*SOLVERS),
                          doc="ridge: weighted least squares with the L2 penalty L2_coeffs; bayesian: "
                              "Bayesian linear regression, noise and prior precisions from the evidence "
                              "(L2_coeffs is not used), with a posterior covariance"),
            "committee": Key((int,), default=0, check=non_negative,
                             doc="number of potentials drawn from the posterior (solver bayesian) for the "
                                 "predicted uncertainty; 0 none"),
            "active_set": Key((bool,), default=False,
                              doc="also write the active set (.asi) for the extrapolation grade"),
        },
        refused={"optimizer": _OPTIMIZER_HINT, "maxiter": _OPTIMIZER_HINT, "options": _OPTIMIZER_HINT,
                 "optimizer_options": _OPTIMIZER_HINT,
                 "ladder_step": _LADDER_HINT, "ladder_type": _LADDER_HINT,
                 "fit_cycles": _CYCLES_HINT, "noise_relative_sigma": _CYCLES_HINT,
                 "noise_absolute_sigma": _CYCLES_HINT, "randomize_func_coeffs": _CYCLES_HINT,
                 "trainable_parameters": "the linear fit trains every B-function coefficient and keeps the "
                                         "radial functions fixed: remove it",
                 "repulsion": "give the inner cutoff and core repulsion in potential.bonds (r_in, delta_in, "
                              "core-repulsion, inner_cutoff_type): remove it",
                 "min_relative_train_loss_per_iter": _STOP_HINT, "min_relative_test_loss_per_iter": _STOP_HINT,
                 "early_stopping_patience": _STOP_HINT,
                 "callbacks": "the linear fit has no iterations to call back from: remove it"}),
    "fit.loss": FitSection(
        "pacemaker's loss L = (1 - kappa) sum_s wE_s (dE_s/N_s)^2 + kappa sum_i wF_i |dF_i|^2 + L2_coeffs "
        "sum c^2, the weights normalised to sum 1 each (dE_s/N_s in eV/atom, dF_i in eV/Å), plus acemd's "
        "stress term kappa_stress sum_s wS_s sum_c w_c (V_s dsigma_sc / N_s)^2 (the virial per atom, eV/atom, "
        "Voigt components c; wS the energy weights of the structures with a stress, renormalised to sum 1).",
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
            "L1_coeffs": Key(NUM, default=0, check=_zero_only("the linear fit has an L2 penalty only: "
                                                              "remove it or set 0 (use L2_coeffs)"),
                             doc="only 0 (L1 is part of the nonlinear fit)"),
            "w0_rad": Key(NUM, default=0, check=_zero_only("the radial functions are not fitted in the linear "
                                                           "model: remove it or set 0"),
                          doc="only 0 (radial smoothness: nonlinear fit)"),
            "w1_rad": Key(NUM, default=0, check=_zero_only("the radial functions are not fitted in the linear "
                                                           "model: remove it or set 0"),
                          doc="only 0 (radial smoothness: nonlinear fit)"),
            "w2_rad": Key(NUM, default=0, check=_zero_only("the radial functions are not fitted in the linear "
                                                           "model: remove it or set 0"),
                          doc="only 0 (radial smoothness: nonlinear fit)"),
            "w_orth": Key(NUM, default=0, check=_zero_only("the radial functions are not fitted in the linear "
                                                           "model: remove it or set 0"),
                          doc="only 0 (orthogonality of radial functions: nonlinear fit)"),
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
        "How acemd assembles the normal equations. pacemaker's evaluator settings are accepted and "
        "ignored with a warning: acemd always uses its own kernel.",
        {
            "batch_size": Key((int,), default=100, check=positive,
                              doc="structures assembled per batch (memory per rank grows with it)"),
            "display_step": Key((int,), default=20, check=positive,
                                doc="structures between progress lines of the assembly"),
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
        }),
}
