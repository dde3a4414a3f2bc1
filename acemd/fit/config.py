"""pacemaker's ``input.yaml`` for ``acemd fit``: parsed, checked key by key, resolved into frozen settings.

acemd fits ACE models two ways: the *linear* model (linear embedding, fixed radial functions) by
exact least squares, and pacemaker's *nonlinear* model (Finnis-Sinclair embeddings with several
densities, trainable radial functions, the ladder, upfitting) iteratively.  The input is pacemaker's,
so users keep their files: ``cutoff``, ``seed``, ``metadata``, ``potential`` (the basis shape or a
potential file), ``data``, ``fit`` (``loss``, ``weighting``, optimizer, ladder, ...) and ``backend``.
acemd adds its own keys where pacemaker has none (stresses, the Bayesian solver, the committee, the
active set, ``fit.model``, ``fit.init``, Adam's mini-batches, checkpoints, the output files),
documented in docs/fitting-input.md and docs/fitting-nonlinear-input.md.

Which fit runs is ``FitOptions.model``: with ``fit.model: auto`` (the default) the linear one when
nothing in the input needs iterations, the nonlinear one as soon as a key does (a nonlinear
embedding, ``optimizer``, the ladder, trainable radial functions, ...); ``FitOptions.model_reason``
names those keys.  ``fit.model: linear`` makes any of them an error.

Every error names the file and the key path (``fit.loss.kappa``) and says what is expected; an
unknown key is an error with a close-match suggestion.  The few pacemaker keys acemd does not
support (``callbacks``, ...) are an error saying what to do instead; a few that change nothing here
(``backend: evaluator``, ...) are accepted with a warning (``FitSettings.warnings``).

Relative paths resolve against the input file's folder (pacemaker resolves them against the
working directory).  Units: Å, eV.  The keys are listed in ``acemd.fit.input_schema.FIT_SCHEMA``,
also the source of the generated reference (``acemd --help-input fit``, docs/fit-input-reference.md).
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from itertools import permutations
from pathlib import Path

import yaml

from ..config import ConfigError, Key
from .input_schema import (BOND_KEYWORDS, EMBEDDING_KEYWORDS, FIT_SCHEMA, FUNCTION_KEYWORDS, FUNCTIONS_CAP_KEY,
                           LINEAR_EMBEDDING, LINEAR_NPOT_ALIAS, NARY, PART2, REFUSED, TOP_SECTION, TRAINABLE_KINDS,
                           UPFIT_HINT, WEIGHTING_TYPES, FitSection, is_number)

__all__ = ["read_fit_input", "parse_fit_input", "format_fit_settings", "FitInputError", "FitSettings",
           "DataSettings", "FitOptions", "BackendSettings", "OutputSettings", "FIT_SCHEMA", "FitSection", "PART2",
           "REFUSED", "expand_trainable_parameters", "block_names"]

_ELEMENT = re.compile(r"[A-Z][a-z]?")


class FitInputError(ConfigError):
    """The fit input (pacemaker's ``input.yaml``) is malformed, has an unknown key, a wrong value, or a
    key acemd does not support.  A ``ConfigError``: the CLI reports it in one line."""


# -- the settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSettings:
    """``data:``: the reference structures.  Paths are absolute (resolved against the input's folder,
    then ``datapath`` as pacemaker does).  ``test_size``: 0 no split, < 1 a fraction, >= 1 a number of
    structures.  ``reference_energy``: None (the data's ``energy_corrected``), per-element free-atom
    energies in eV (optionally with ``shift``, eV/atom added to every structure), or "auto"."""

    filenames: tuple[Path, ...]
    test_filenames: tuple[Path, ...] = ()
    test_size: float = 0.0
    reference_energy: None | dict[str, float] | str = None
    datapath: Path | None = None
    aug_factor: float = 1e-4
    ignore_weights: bool = False


@dataclass(frozen=True)
class FitOptions:
    """``fit:``: which fit, the loss, the solver or optimizer, the ladder.  Defaults are pacemaker's.

    ``model`` "linear" (exact least squares, ``solver``) or "nonlinear" (iterative, ``optimizer``);
    ``model_reason`` the keys that chose it.  Loss: ``kappa`` in [0, 1] or "auto" (relative force
    weight); ``L1_coeffs``/``L2_coeffs`` penalties on the basis-function coefficients; ``w0_rad``..
    ``w2_rad`` the radial smoothness weights (acemd.fit.regularization); ``kappa_stress`` the weight of
    the stress rows (0: no stresses); ``weighting`` the validated policy mapping (None: uniform).

    Nonlinear fit: ``optimizer`` BFGS | L-BFGS-B | Adam, ``maxiter`` per round, ``optimizer_options``
    (``fit.options``, handed on unchecked here); ``init`` "pacemaker" (coefficients 0, c_nlk = delta_nk)
    or "linear" (the linear solution); ``trainable_parameters`` block name ("Al", "Al Ni", as
    ``BlockSpec.name``) -> the trained kinds, a subset of ("func", "radial"), for every possible block
    of the elements (linear: ("func",) everywhere); ``fit_cycles`` rounds per ladder step with noise
    (``noise_relative_sigma`` wins over ``noise_absolute_sigma`` when both are > 0); ``ladder`` on when
    ``ladder_step`` or an initial potential is given; ``ladder_step`` (functions, fraction), either 0
    when not given, None: every remaining function in one step; early stopping thresholds as positive
    relative decreases per iteration (None: off) over ``early_stopping_patience`` iterations;
    ``repulsion`` "auto" or None; ``batch_size`` Adam's structures per mini-batch (None: all);
    ``checkpoint_every`` iterations (0: on signals only)."""

    kappa: float | str = 0.0
    L2_coeffs: float = 0.0
    kappa_stress: float = 0.0
    stress_component_weights: tuple[float, ...] | None = None
    weighting: dict | None = None
    solver: str = "ridge"
    committee: int = 0
    active_set: bool = False
    model: str = "linear"
    model_reason: str = "nothing in the input needs iterations"
    L1_coeffs: float = 0.0
    w0_rad: float = 0.0
    w1_rad: float = 0.0
    w2_rad: float = 0.0
    optimizer: str = "BFGS"
    maxiter: int = 100
    optimizer_options: dict = field(default_factory=dict)
    init: str = "pacemaker"
    trainable_parameters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fit_cycles: int = 1
    noise_relative_sigma: float = 0.0
    noise_absolute_sigma: float = 0.0
    ladder: bool = False
    ladder_step: tuple[int, float] | None = None
    ladder_type: str = "body_order"
    min_relative_train_loss_per_iter: float | None = None
    min_relative_test_loss_per_iter: float | None = None
    early_stopping_patience: int = 200
    repulsion: str | None = None
    batch_size: int | None = None
    checkpoint_every: int = 0


@dataclass(frozen=True)
class BackendSettings:
    """``backend:``: structures per assembly batch and between progress lines."""

    batch_size: int = 100
    display_step: int = 20


@dataclass(frozen=True)
class OutputSettings:
    """``output:`` (acemd's): where the fit writes; every path absolute."""

    folder: Path
    potential_file: Path
    yace: bool = True
    yace_file: Path | None = None
    metrics_file: Path | None = None
    errors_file: Path | None = None
    checkpoint_file: Path | None = None


@dataclass(frozen=True)
class FitSettings:
    """Everything ``acemd fit`` needs, validated.  ``potential`` is the ``potential:`` mapping for
    ``acemd.fit.basis.build_basis``: keys checked, the embedding made explicit (``npot: linear`` and
    missing embedding keys become FinnisSinclairShiftedScaled, ``fs_parameters: [1, 1]``, ``ndensity:
    1``), flow-sequence block keys written as ``"(Al, Ni)"``; with ``potential_file`` (upfitting,
    ``potential: file.yaml`` or ``potential.filename``) only ``{"elements": [...]}``, the basis being the
    file's.  ``initial_potentials``: the ladder's start (files merged in order); ``reset_potential``:
    start the file's basis from pacemaker's initial values.  ``cutoff`` (Å) defaults to the largest
    bond ``rcut``.  ``warnings`` lists the accepted-but-ignored keys; ``text`` is the input file."""

    source: Path
    folder: Path
    cutoff: float | None
    seed: int
    metadata: dict[str, str]
    potential: dict
    data: DataSettings
    fit: FitOptions
    backend: BackendSettings
    output: OutputSettings
    warnings: tuple[str, ...] = ()
    text: str = ""
    potential_file: Path | None = None
    initial_potentials: tuple[Path, ...] = ()
    reset_potential: bool = False


# the keys of fit.weighting each policy type takes (EnergyBased: all but filename)
_EXTERNAL_KEYS = ("type", "filename")
_UNIFORM_KEYS = ("type",)


# -- YAML ---------------------------------------------------------------------------------------

class _FitLoader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 floats (``1e-8`` is a number, as for pacemaker's ruamel), flow-
    sequence keys as tuples, and an error for a key given twice."""


_FitLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_FitLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


class _DuplicateKey(ValueError):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list):
            key = tuple(key)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a mapping cannot be a key",
                                                    key_node.start_mark) from None
        if key in out:
            raise _DuplicateKey(f"line {key_node.start_mark.line + 1}: key '{key}' is given twice")
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_FitLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FitInputError(path, "", "input file not found") from None
    except IsADirectoryError:
        raise FitInputError(path, "", "is a folder, not an input file") from None
    except UnicodeDecodeError as exc:
        raise FitInputError(path, "", f"not a text (UTF-8) file: byte {exc.start}; give pacemaker's "
                                      "input.yaml") from None
    except OSError as exc:
        raise FitInputError(path, "", f"cannot read the input file: {exc}") from None
    try:
        tree = yaml.load(text, Loader=_FitLoader)
    except _DuplicateKey as exc:
        raise FitInputError(path, "", f"invalid YAML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FitInputError(path, "", f"invalid YAML{where}: {problem}") from None
    if tree is None:
        raise FitInputError(path, "", "the file is empty; give pacemaker's input.yaml (cutoff, potential, data, fit)")
    if not isinstance(tree, dict):
        raise FitInputError(path, "", "expected a YAML mapping (key: value lines) at the top level")
    return tree, text


# -- checking -----------------------------------------------------------------------------------

def _suggest(name, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _type_name(types) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping"}
    if float in types:
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _type_ok(value, types) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


class _Checker:
    """Walks the YAML tree: the file for error messages, the folder for paths, the warnings so far."""

    def __init__(self, path: Path):
        self.path = path
        self.folder = path.resolve().parent
        self.warnings: list[str] = []
        self.refused: list[tuple[str, str]] = []       # (key, problem): keys acemd does not support

    def error(self, key, problem) -> FitInputError:
        """The error to raise; refused keys noted so far come first in the same message."""
        if self.refused:
            (first, text), rest = self.refused[0], self.refused[1:] + [(key, problem)]
            more = "".join(f"\n{self.path}: [{k}]: {p}" for k, p in rest)
            return FitInputError(self.path, first, text + more)
        return FitInputError(self.path, key, problem)

    def part2(self, key, hint):
        """Note a key acemd does not support; ``raise_refused`` reports all of them at once."""
        if key not in (k for k, _ in self.refused):
            self.refused.append((key, f"{REFUSED}; {hint}"))

    def raise_refused(self):
        if self.refused:
            key, problem = self.refused.pop()
            raise self.error(key, problem)

    def warn(self, key, text):
        self.warnings.append(f"{self.path}: [{key}]: {text}")

    def section(self, name: str, where: str, raw, *, allowed=None, misplaced="") -> dict:
        """Check a mapping against FIT_SCHEMA[name]; defaults filled.  ``allowed`` narrows the keys,
        ``misplaced`` explains why a key of the section outside ``allowed`` is wrong here."""
        spec = FIT_SCHEMA[name]
        if not isinstance(raw, dict):
            raise self.error(where, f"must be a mapping (key: value lines, or {{key: value, ...}}), got {raw!r}")
        keys = {k: v for k, v in spec.keys.items() if allowed is None or k in allowed}
        out = {}
        for key, value in raw.items():
            dotted = f"{where}.{key}" if where else str(key)
            if key in spec.refused:
                self.part2(dotted, spec.refused[key])
                continue
            if key in spec.ignored:
                self.warn(dotted, f"ignored: {spec.ignored[key]}")
                continue
            if key not in keys:
                known = list(keys) + list(spec.refused) + list(spec.ignored)
                hint = f" ({misplaced})" if misplaced and key in spec.keys else _suggest(key, known)
                raise self.error(dotted, "unknown key" + hint + f"; allowed: {', '.join(keys)}")
            out[key] = self.value(dotted, value, keys[key])
        for key, k in keys.items():
            if key not in out:
                if k.required:
                    raise self.error(f"{where}.{key}" if where else key, "required key is missing")
                if k.default is not None:
                    out[key] = list(k.default) if isinstance(k.default, list) else k.default
        return out

    def value(self, dotted, value, k: Key):
        if value is None and dict in k.types and not k.required:
            return {}                   # `backend:` with every key commented out
        if value is None:
            raise self.error(dotted, f"has no value; expected {_type_name(k.types)}")
        if not _type_ok(value, k.types):
            shape = f" ({k.type_doc})" if k.type_doc and k.type_doc.split()[0] not in ("mapping", "path") else ""
            raise self.error(dotted, f"expected {_type_name(k.types)}{shape}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(dotted, f"must be a finite number, got {value!r}")
        if k.check is not None:
            problem = k.check(value)
            if problem and getattr(k.check, "part2", False):
                self.part2(dotted, f"{problem} (got {value!r})")
            elif problem:
                raise self.error(dotted, f"{problem} (got {value!r})")
        return value

    def path_of(self, text, folder=None) -> Path:
        p = Path(os.path.expanduser(text))
        return p if p.is_absolute() else (folder or self.folder) / p


# -- potential ------------------------------------------------------------------------------------

def _block_elements(key) -> list[str] | None:
    """The element symbols of a block key ('AlNi', 'Al Ni', '(Al, Ni)', ('Al', 'Ni')), None if the key
    is not made only of symbols and separators."""
    if isinstance(key, tuple):
        return [str(k) for k in key] if all(isinstance(k, str) and _ELEMENT.fullmatch(k) for k in key) else None
    if not isinstance(key, str):
        return None
    symbols = _ELEMENT.findall(key)
    rest = _ELEMENT.sub("", key)
    if not symbols or re.sub(r"[\s(),'\"\[\]]", "", rest):
        return None
    return symbols


def _block_name(key) -> str:
    return f"({', '.join(key)})" if isinstance(key, tuple) else str(key)


def _blocks(ck: _Checker, where: str, raw, keywords, elements, sizes, extra=()) -> dict:
    """The block keys of embeddings/bonds/functions: keywords or element combinations of the given
    sizes, made of the listed elements; flow-sequence keys become '(A, B)' strings."""
    if not isinstance(raw, dict):
        raise ck.error(where, f"must be a mapping of blocks ({', '.join(keywords)} or elements), got {raw!r}")
    out = {}
    for key, value in raw.items():
        name = _block_name(key)
        dotted = f"{where}.{name}"
        if key in keywords or key in extra:
            out[key] = value
            continue
        symbols = _block_elements(key)
        if symbols is None:
            raise ck.error(dotted, "unknown block" + _suggest(name, list(keywords) + list(extra))
                           + f"; a block is one of {', '.join(keywords)} or a combination of the elements "
                             f"{', '.join(elements)}")
        unknown = [s for s in symbols if s not in elements]
        if unknown and _suggest(name, keywords):        # a misspelt keyword (BINARI, UNARYY)
            raise ck.error(dotted, "unknown block" + _suggest(name, keywords)
                           + f"; a block is one of {', '.join(keywords)} or a combination of the elements "
                             f"{', '.join(elements)}")
        if unknown:
            raise ck.error(dotted, f"element {unknown[0]} is not in potential.elements ({', '.join(elements)})")
        if len(symbols) not in sizes:
            raise ck.error(dotted, f"a block here names {' or '.join(map(str, sizes))} element(s), got {len(symbols)}")
        if name in out:
            raise ck.error(dotted, "block given twice")
        out[name] = value
    return out


def _embeddings(ck: _Checker, raw, elements) -> tuple[dict, list[str]]:
    """The embedding blocks with the linear defaults made explicit, and the key paths that make an
    element's embedding nonlinear (empty: every element has E = rho)."""
    where = "potential.embeddings"
    blocks = _blocks(ck, where, raw, EMBEDDING_KEYWORDS, elements, (1,))
    checked = {name: ck.section("potential.embeddings", f"{where}.{name}", spec) for name, spec in blocks.items()}
    # section() filled defaults; keep only what was given so the precedence below is pacemaker's
    given = {name: {k: v for k, v in checked[name].items() if k in blocks[name]} for name in checked}
    for name, spec in given.items():          # npot: linear -> the explicit linear embedding
        if spec.get("npot") == LINEAR_NPOT_ALIAS:
            for key in ("fs_parameters", "ndensity"):
                if key in spec and spec[key] != LINEAR_EMBEDDING[key]:
                    raise ck.error(f"{where}.{name}.{key}", f"npot: linear means fs_parameters [1, 1] and ndensity "
                                                            f"1; remove {key}, or give npot: "
                                                            f"FinnisSinclairShiftedScaled for a nonlinear embedding")
            spec.update(LINEAR_EMBEDDING)
            spec["fs_parameters"] = list(LINEAR_EMBEDDING["fs_parameters"])
    normalized = {"ALL": {**LINEAR_EMBEDDING, "fs_parameters": [1, 1], **given.pop("ALL", {})}}
    normalized.update(given)
    nonlinear = []
    for el in elements:                       # the embedding each element ends with: linear?
        merged, origin = {}, {}
        for name in ("ALL", "UNARY", el):
            for k, v in normalized.get(name, {}).items():
                merged[k], origin[k] = v, name
        nd, fs = merged["ndensity"], merged["fs_parameters"]
        if len(fs) != 2 * nd:
            key = origin["fs_parameters"] if "fs_parameters" in blocks.get(origin["fs_parameters"], {}) else \
                origin["ndensity"]
            raise ck.error(f"{where}.{key}.fs_parameters",
                           f"element {el} has ndensity {nd}, which needs 2*ndensity = {2 * nd} fs_parameters "
                           f"[w_1, m_1, w_2, m_2, ...] (weight and exponent per density, e.g. [1, 1, 1, 0.5] for "
                           f"ndensity 2), got {fs}")
        if nd != 1:
            nonlinear.append(f"{where}.{origin['ndensity']}.ndensity: {nd} densities")
        elif any(float(x) != 1.0 for x in fs):
            nonlinear.append(f"{where}.{origin['fs_parameters']}.fs_parameters: {fs}")
    return normalized, list(dict.fromkeys(nonlinear))


def _bonds(ck: _Checker, raw, elements) -> tuple[dict, float]:
    """Checked bond blocks, and the largest rcut over the element pairs (each pair must have one)."""
    where = "potential.bonds"
    blocks = _blocks(ck, where, raw, BOND_KEYWORDS, elements, (1, 2))
    out = {}
    for name, spec in blocks.items():
        checked = ck.section("potential.bonds", f"{where}.{name}", spec)
        out[name] = {k: v for k, v in checked.items() if k in spec}
        cutoff_fn = out[name].get("NameOfCutoffFunction", "cos")
        if cutoff_fn != "cos":
            ck.warn(f"{where}.{name}.NameOfCutoffFunction",
                    f"'{cutoff_fn}' is not a cutoff function of the evaluators; cos is used (as pacemaker does)")
        if "r_in" in out[name] and "delta_in" in out[name] and out[name]["delta_in"] > out[name]["r_in"]:
            raise ck.error(f"{where}.{name}.delta_in", f"must not exceed r_in = {out[name]['r_in']} "
                                                       f"(got {out[name]['delta_in']})")
    rcut = {}
    for a in elements:
        for b in elements:
            pair_keys = ["ALL"] + (["UNARY"] if a == b else ["BINARY"])
            pair_keys += [n for n in out if n not in BOND_KEYWORDS and _pair(n) in ((a, b), (b, a))]
            values = [out[n]["rcut"] for n in pair_keys if n in out and "rcut" in out[n]]
            if not values:
                raise ck.error(where, f"no rcut for the pair ({a}, {b}): give it in ALL or in a block of that pair")
            rcut[(a, b)] = values[-1]
    return out, max(rcut.values())


def _pair(name) -> tuple[str, str]:
    symbols = _block_elements(name)
    return (symbols[0], symbols[0]) if len(symbols) == 1 else tuple(symbols)


def _functions(ck: _Checker, raw, elements) -> dict:
    where = "potential.functions"
    blocks = _blocks(ck, where, raw, FUNCTION_KEYWORDS, elements, range(1, 100), extra=(FUNCTIONS_CAP_KEY,))
    spec = FIT_SCHEMA["potential.functions"]
    out = {}
    for name, block in blocks.items():
        if name == FUNCTIONS_CAP_KEY:
            out[name] = ck.value(f"{where}.{name}", block, spec.keys[FUNCTIONS_CAP_KEY])
            continue
        checked = ck.section("potential.functions", f"{where}.{name}", block,
                             allowed=("nradmax_by_orders", "lmax_by_orders"),
                             misplaced=f"it goes next to the blocks, {where}.{FUNCTIONS_CAP_KEY}, not inside one")
        nrad, lmax = checked.get("nradmax_by_orders"), checked.get("lmax_by_orders")
        if nrad is not None and lmax is not None and len(nrad) != len(lmax):
            raise ck.error(f"{where}.{name}", f"nradmax_by_orders ({len(nrad)} orders) and lmax_by_orders "
                                              f"({len(lmax)} orders) must be equally long")
        out[name] = checked
    if not any(k != FUNCTIONS_CAP_KEY for k in out):
        raise ck.error(where, "no functions block: give e.g. ALL: {nradmax_by_orders: [8, 8, 4], "
                              "lmax_by_orders: [0, 4, 3]}")
    return out


def _read_potential(ck: _Checker, key, name):
    """The B-basis ``.yaml`` named at ``key`` (path resolved, read): (path, CTildePotential)."""
    path = ck.path_of(name)
    if not path.is_file():
        raise ck.error(key, f"file not found: {name} (relative paths are relative to the input file's folder "
                            f"{ck.folder})")
    if path.suffix not in (".yaml", ".yml"):
        raise ck.error(key, f"must be pacemaker's B-basis .yaml (output_potential.yaml, an interim potential): "
                            f"{path.name} has no B-basis coefficients to continue from")
    from ..potential.bbasis import read_bbasis_yaml
    try:
        pot = read_bbasis_yaml(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ck.error(key, f"cannot read the B-basis potential {path}: {exc}") from None
    return path.resolve(), pot


def _shape_elements(ck: _Checker, elements):
    if not elements or not all(isinstance(e, str) for e in elements):
        raise ck.error("potential.elements", f"must be a list of element symbols, e.g. [Cu], got {elements!r}")
    from ase.data import chemical_symbols
    for e in elements:
        if e not in chemical_symbols[1:]:
            raise ck.error("potential.elements", f"'{e}' is not an element symbol"
                           + _suggest(e, chemical_symbols[1:]))
    if len(set(elements)) != len(elements):
        raise ck.error("potential.elements", f"an element is listed twice: {elements}")


@dataclass
class _Potential:
    """What ``potential:`` resolves to: the mapping for build_basis, the largest rcut, the upfit files
    and the key paths that make the embedding nonlinear."""

    mapping: dict
    rcut_max: float
    file: Path | None = None
    initial: tuple[Path, ...] = ()
    reset: bool = False
    nonlinear: tuple[str, ...] = ()


def _potential(ck: _Checker, raw) -> _Potential:
    if isinstance(raw, str):
        raw = {"filename": raw}
    pot = ck.section("potential", "potential", raw)
    initial = ()
    if "initial_potential" in pot:
        names = pot["initial_potential"]
        names = [names] if isinstance(names, str) else names
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ck.error("potential.initial_potential", f"must be a file name or a list of file names, got "
                                                          f"{pot['initial_potential']!r}")
        initial = tuple(_read_potential(ck, "potential.initial_potential", n) for n in names)
    if "filename" in pot:
        shape = [k for k in ("elements", "embeddings", "bonds", "functions", "deltaSplineBins") if k in raw]
        if shape:
            raise ck.error(f"potential.{shape[0]}", f"{UPFIT_HINT}: with filename the basis is the file's; "
                                                    f"remove {', '.join(shape)} or filename")
        path, target = _read_potential(ck, "potential.filename", pot["filename"])
        elements = list(target.elements)
        out = _Potential({"elements": elements}, float(target.cutoff_max), file=path, reset=bool(pot["reset"]))
    else:
        if raw.get("reset"):
            raise ck.error("potential.reset", "resets the potential of potential.filename to pacemaker's initial "
                                              "values; there is no filename here: remove it")
        for key in ("elements", "bonds", "functions"):
            if key not in pot:
                raise ck.error(f"potential.{key}", "required key is missing (or give filename: a potential to "
                                                   "continue)")
        elements = pot["elements"]
        _shape_elements(ck, elements)
        for key in ("filename", "initial_potential", "reset"):
            pot.pop(key, None)
        pot["embeddings"], nonlinear = _embeddings(ck, raw.get("embeddings", {}), elements)
        pot["bonds"], rcut_max = _bonds(ck, pot["bonds"], elements)
        pot["functions"] = _functions(ck, pot["functions"], elements)
        out = _Potential(pot, rcut_max, nonlinear=tuple(nonlinear))
    for path, p in initial:
        extra = [e for e in p.elements if e not in elements]
        if extra:
            raise ck.error("potential.initial_potential", f"{path.name} has element {extra[0]}, which is not among "
                                                          f"the potential's elements ({', '.join(elements)})")
    out.initial = tuple(path for path, _ in initial)
    return out


# -- data, fit, backend, output -------------------------------------------------------------------

def _file_list(ck: _Checker, key, value, datapath) -> tuple[Path, ...]:
    names = [value] if isinstance(value, str) else value
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ck.error(key, f"must be a file name or a list of file names, got {value!r}")
    out = []
    for name in names:
        here = ck.path_of(name)
        if not here.exists() and datapath is not None and not Path(name).is_absolute():
            there = datapath / name
            here = there if there.exists() else here
        if not here.exists():
            where = f" or in datapath {datapath}" if datapath is not None else ""
            raise ck.error(key, f"file not found: {name} (looked in {ck.folder}{where}; relative paths are "
                                f"relative to the input file's folder)")
        if here.is_dir():
            raise ck.error(key, f"is a folder, not a data file: {here}")
        out.append(here.resolve())
    return tuple(out)


def _data(ck: _Checker, raw, elements) -> DataSettings:
    if isinstance(raw, str):
        raw = {"filename": raw}
    d = ck.section("data", "data", raw)
    datapath = d.get("datapath") or os.environ.get("PACEMAKERDATAPATH") or None
    datapath = ck.path_of(datapath) if datapath else None
    if "test_filename" in d and d.get("test_size", 0):
        raise ck.error("data.test_size", "give either test_filename (a test file) or test_size (a part of the "
                                         "training data), not both")
    ref = d.get("reference_energy")
    if isinstance(ref, str):
        if ref != "auto":
            raise ck.error("data.reference_energy",
                           f"'{ref}' is not available in acemd (pacemaker's tables of free-atom energies are not "
                           "shipped): give the energies per element, e.g. {Cu: -0.23}, a number, or auto")
    elif isinstance(ref, dict):
        out = {}
        for el, value in ref.items():
            if el != "shift" and el not in elements:
                raise ck.error(f"data.reference_energy.{el}", f"is not in potential.elements ({', '.join(elements)})"
                               + _suggest(el, list(elements) + ["shift"]))
            if not is_number(value):
                raise ck.error(f"data.reference_energy.{el}", f"expected a number (eV), got {value!r}")
            out[str(el)] = float(value)
        ref = out
    elif ref is not None:
        if not is_number(ref):
            raise ck.error("data.reference_energy", f"expected a number (eV), got {ref!r}")
        ref = {el: float(ref) for el in elements}
    return DataSettings(
        filenames=_file_list(ck, "data.filename", d["filename"], datapath),
        test_filenames=_file_list(ck, "data.test_filename", d["test_filename"], datapath)
        if "test_filename" in d else (),
        test_size=d["test_size"], reference_energy=ref, datapath=datapath,
        aug_factor=float(d["aug_factor"]), ignore_weights=d["ignore_weights"])


def _weighting(ck: _Checker, raw, seed: int) -> dict | None:
    where = "fit.weighting"
    if not isinstance(raw, dict):
        raise ck.error(where, f"must be a mapping with a type, e.g. {{type: EnergyBasedWeightingPolicy}}, got {raw!r}")
    kind = raw.get("type")
    if kind is None:
        raise ck.error(f"{where}.type", "required key is missing; one of " + ", ".join(WEIGHTING_TYPES))
    ck.value(f"{where}.type", kind, FIT_SCHEMA[where].keys["type"])
    if kind == "UniformWeightingPolicy":
        ck.section(where, where, raw, allowed=_UNIFORM_KEYS, misplaced="not a key of UniformWeightingPolicy")
        return None
    if kind == "ExternalWeightingPolicy":
        w = ck.section(where, where, raw, allowed=_EXTERNAL_KEYS,
                       misplaced="a key of EnergyBasedWeightingPolicy, not of ExternalWeightingPolicy")
        if "filename" not in w:
            raise ck.error(f"{where}.filename", "required with ExternalWeightingPolicy: the pickled DataFrame "
                                                "with w_energy and w_forces")
        p = ck.path_of(w["filename"])
        if not p.is_file():
            raise ck.error(f"{where}.filename", f"file not found: {w['filename']} (relative to {ck.folder})")
        w["filename"] = str(p.resolve())
        return w
    energy_keys = [k for k in FIT_SCHEMA[where].keys if k != "filename"]
    w = ck.section(where, where, raw, allowed=energy_keys,
                   misplaced="a key of ExternalWeightingPolicy, not of EnergyBasedWeightingPolicy")
    w.setdefault("seed", seed)
    if "nfit" in raw and ("n_lower" in raw or "n_upper" in raw):
        raise ck.error(f"{where}.nfit", "give either nfit or n_lower and n_upper, not both")
    if ("n_lower" in raw) != ("n_upper" in raw):
        raise ck.error(f"{where}.{'n_upper' if 'n_lower' in raw else 'n_lower'}",
                       "n_lower and n_upper go together")
    if w["DElow"] >= w["DEup"]:
        raise ck.error(f"{where}.DElow", f"must be below DEup = {w['DEup']} (got {w['DElow']})")
    wlow = raw.get("wlow")
    if isinstance(wlow, str):
        if wlow.lower() != "none":
            raise ck.error(f"{where}.wlow", f"expected a number in [0, 1] or none, got {wlow!r}")
        w.pop("wlow")
    elif wlow is not None and not 0 <= wlow <= 1:
        raise ck.error(f"{where}.wlow", f"must be in [0, 1] (got {wlow!r})")
    return w


def block_names(elements) -> list[str]:
    """Every species block pacemaker can have for these elements, as ``BlockSpec.name`` writes it: the
    central element, then the others sorted ("Al", "Ni", "Al Ni", "Ni Al", "Al Ni Cu"...)."""
    elements = sorted(elements)
    out = []
    for r in range(1, len(elements) + 1):
        out += sorted({" ".join((p[0],) + tuple(sorted(p[1:]))) for p in permutations(elements, r)},
                      key=lambda n: tuple(n.split()))
    return out


def _trainable_kinds(ck: _Checker, key, value) -> set[str]:
    items = value if isinstance(value, list) else [value]
    kinds = set()
    for v in items:
        if isinstance(v, str) and v.lower() == "all":
            kinds.update(TRAINABLE_KINDS)
        elif v in TRAINABLE_KINDS:
            kinds.add(v)
        else:
            raise ck.error(key, f"expected func, radial, all or a list of them, got {value!r}"
                           + (_suggest(v, TRAINABLE_KINDS + ("all",)) if isinstance(v, str) else ""))
    return kinds


def expand_trainable_parameters(ck: _Checker, elements, value) -> dict[str, tuple[str, ...]]:
    """pacemaker's ``trainable_parameters`` as block name -> trained kinds, for every block of the
    elements (``block_names``); blocks not named are fixed (an empty tuple).

    Forms: ALL (every block, func and radial); func or radial (every block, that kind); a keyword
    (UNARY, BINARY, ...) or an element combination (AlNi, "Al Ni", [Al, Ni]: the block with the first
    element central), or a list of them (func and radial there); a mapping of those keys to func,
    radial, all or a list.  ALL, then UNARY, BINARY, ..., then combinations in the order given: the
    later wins.  Radial functions belong to the bonds (blocks of one or two elements): blocks of three
    or more elements train func only, and the two orders of a pair must agree on radial."""
    where = "fit.trainable_parameters"
    names = block_names(elements)
    if value is None or (isinstance(value, (list, dict)) and not value):
        value = "ALL"
    if isinstance(value, str):
        value = {"ALL": value} if value in TRAINABLE_KINDS else [value]
    if isinstance(value, list):
        if not all(isinstance(v, (str, list)) for v in value):
            raise ck.error(where, f"a list names blocks (ALL, UNARY, AlNi, ...), got {value!r}")
        value = {(tuple(v) if isinstance(v, list) else v): list(TRAINABLE_KINDS) for v in value}
    by_rank = {}
    for r, n in enumerate(names):
        by_rank.setdefault(len(n.split()), []).append(n)
    order = ["ALL"] + [k for k in NARY if k in value] + [k for k in value if k != "ALL" and k not in NARY]
    out = {n: set() for n in names}
    for key in order:
        if key not in value:
            continue
        dotted = f"{where}.{_block_name(key)}"
        kinds = _trainable_kinds(ck, dotted, value[key])
        if key == "ALL":
            targets = names
        elif key in NARY:
            targets = by_rank.get(NARY[key], [])
        else:
            symbols = _block_elements(key)
            unknown = [e for e in symbols or [] if e not in elements]
            if symbols is None or (unknown and _suggest(_block_name(key), ["ALL", *NARY])):
                raise ck.error(dotted, "unknown block" + _suggest(_block_name(key), ["ALL", *NARY])
                               + f"; a block is ALL, {', '.join(NARY)}, or a combination of the elements "
                                 f"{', '.join(elements)}")
            if unknown:
                raise ck.error(dotted, f"element {unknown[0]} is not in potential.elements ({', '.join(elements)})")
            if len(set(symbols)) != len(symbols):
                raise ck.error(dotted, "a block names distinct elements (the central one first)")
            targets = [" ".join([symbols[0]] + sorted(symbols[1:]))]
        for n in targets:
            out[n] = set(kinds)
    for n, kinds in out.items():
        if len(n.split()) > 2:
            kinds.discard("radial")
    for n, kinds in out.items():
        parts = n.split()
        if len(parts) == 2:
            other = f"{parts[1]} {parts[0]}"
            if ("radial" in kinds) != ("radial" in out[other]):
                raise ck.error(where, f"the radial functions of the bond {parts[0]}-{parts[1]} are trained in one "
                                      f"order only ({n if 'radial' in kinds else other}): give radial for both "
                                      f"blocks ({parts[0]}{parts[1]} and {parts[1]}{parts[0]}) or neither")
    return {n: tuple(k for k in TRAINABLE_KINDS if k in out[n]) for n in names}


# the keys whose presence alone selects the nonlinear fit (fit.model: auto)
_NONLINEAR_KEYS = ("optimizer", "maxiter", "options", "init", "ladder_step", "min_relative_train_loss_per_iter",
                   "min_relative_test_loss_per_iter", "repulsion", "batch_size")


def _model_reasons(f: dict, given: dict, loss: dict, trainable: dict | None, potential: _Potential) -> list[str]:
    """The key paths that need the nonlinear fit, with why (empty: the linear fit can do it all)."""
    reasons = []
    if potential.file is not None:
        reasons.append("potential.filename: continuing a potential (upfitting)")
    if potential.initial:
        reasons.append("potential.initial_potential: a ladder from an initial potential")
    reasons += list(potential.nonlinear)
    reasons += [f"fit.{k}: given" for k in _NONLINEAR_KEYS if k in given]
    if f["fit_cycles"] > 1:
        reasons.append(f"fit.fit_cycles: {f['fit_cycles']}")
    for k in ("noise_relative_sigma", "noise_absolute_sigma"):
        if f[k] > 0:
            reasons.append(f"fit.{k}: {f[k]}")
    if f.get("checkpoint_every", 0) > 0:
        reasons.append(f"fit.checkpoint_every: {f['checkpoint_every']}")
    for k in ("L1_coeffs", "w0_rad", "w1_rad", "w2_rad"):
        if loss[k] > 0:
            reasons.append(f"fit.loss.{k}: {loss[k]}")
    if trainable is not None:
        radial = [n for n, k in trainable.items() if "radial" in k]
        fixed = [n for n, k in trainable.items() if "func" not in k]
        if radial:
            reasons.append(f"fit.trainable_parameters: radial functions trained ({radial[0]}"
                           + (", ..." if len(radial) > 1 else "") + ")")
        elif fixed:
            reasons.append(f"fit.trainable_parameters: fixed function coefficients ({fixed[0]}"
                           + (", ..." if len(fixed) > 1 else "") + ")")
    return reasons


def _fit(ck: _Checker, raw, seed: int, potential: _Potential) -> FitOptions:
    given = raw if isinstance(raw, dict) else {}
    f = ck.section("fit", "fit", raw if raw is not None else {})
    loss = ck.section("fit.loss", "fit.loss", f.get("loss", {}))
    if "stress_component_weights" in loss and loss["kappa_stress"] == 0:
        raise ck.error("fit.loss.stress_component_weights", "has no effect without stresses: set kappa_stress > 0 "
                                                            "(the weight of the stress rows) or remove it")
    elements = potential.mapping["elements"]
    trainable = (expand_trainable_parameters(ck, elements, f["trainable_parameters"])
                 if "trainable_parameters" in f else None)
    reasons = _model_reasons(f, given, loss, trainable, potential)
    if f["model"] == "linear" and reasons:
        lines = [f"fit.model: linear, but {len(reasons)} key(s) need the nonlinear fit: remove them, or set "
                 f"fit.model: auto (or nonlinear)"] + reasons
        raise ck.error("fit.model", "\n  ".join(lines))
    model = "nonlinear" if reasons or f["model"] == "nonlinear" else "linear"
    if model == "linear":
        reason = "nothing in the input needs iterations" + (" (fit.model: linear)" if f["model"] == "linear" else "")
        if trainable is None:
            trainable = {n: ("func",) for n in block_names(elements)}
    else:
        reason = "; ".join(reasons) if reasons else "fit.model: nonlinear"
        if trainable is None:
            trainable = expand_trainable_parameters(ck, elements, "ALL")

    if f["committee"] > 0 and f["solver"] != "bayesian":
        raise ck.error("fit.committee", "a committee is drawn from the posterior of the Bayesian solver: set "
                                        "fit.solver: bayesian (or committee: 0)")
    linear_solve = model == "linear" or f["init"] == "linear"
    if f["solver"] == "bayesian" and loss["L2_coeffs"] != 0 and linear_solve:
        ck.warn("fit.loss.L2_coeffs", "not used by solver bayesian (the prior precision comes from the evidence)")
    if model == "nonlinear":
        _check_nonlinear(ck, f, given, loss, trainable, potential)
    weights = loss.get("stress_component_weights")
    if weights is None and loss["kappa_stress"] > 0:
        weights = [1.0] * 6
    ladder_step = _ladder_pair(f["ladder_step"]) if "ladder_step" in f else None
    return FitOptions(
        kappa=loss["kappa"] if loss["kappa"] == "auto" else float(loss["kappa"]),
        L2_coeffs=float(loss["L2_coeffs"]), kappa_stress=float(loss["kappa_stress"]),
        stress_component_weights=tuple(float(w) for w in weights) if weights is not None else None,
        weighting=_weighting(ck, f["weighting"], seed) if "weighting" in f else None,
        solver=f["solver"], committee=f["committee"], active_set=f["active_set"],
        model=model, model_reason=reason,
        L1_coeffs=float(loss["L1_coeffs"]), w0_rad=float(loss["w0_rad"]), w1_rad=float(loss["w1_rad"]),
        w2_rad=float(loss["w2_rad"]),
        optimizer=f["optimizer"], maxiter=f["maxiter"], optimizer_options=dict(f.get("options", {})),
        init=f["init"], trainable_parameters=trainable, fit_cycles=f["fit_cycles"],
        noise_relative_sigma=float(f["noise_relative_sigma"]), noise_absolute_sigma=float(f["noise_absolute_sigma"]),
        ladder=ladder_step is not None or bool(potential.initial), ladder_step=ladder_step,
        ladder_type=f["ladder_type"],
        min_relative_train_loss_per_iter=_magnitude(f.get("min_relative_train_loss_per_iter")),
        min_relative_test_loss_per_iter=_magnitude(f.get("min_relative_test_loss_per_iter")),
        early_stopping_patience=f["early_stopping_patience"], repulsion=f.get("repulsion"),
        batch_size=f.get("batch_size"), checkpoint_every=f["checkpoint_every"])


def _magnitude(v):
    return None if v is None else abs(float(v))


def _ladder_pair(v) -> tuple[int, float]:
    """ladder_step as (functions per step, fraction of the current size); 0 for the one not given."""
    items = v if isinstance(v, list) else [v]
    n = next((int(x) for x in items if isinstance(x, int)), 0)
    frac = next((float(x) for x in items if isinstance(x, float)), 0.0)
    return n, frac


def _check_nonlinear(ck: _Checker, f: dict, given: dict, loss: dict, trainable: dict, potential: _Potential):
    """Combinations of the nonlinear fit's keys that cannot work or do nothing."""
    if "solver" in given and f["init"] != "linear":
        raise ck.error("fit.solver", "the nonlinear fit is iterative (fit.optimizer); solver is the linear solve, "
                                     "used there only with fit.init: linear: remove it or set init: linear")
    if f["committee"] > 0:
        raise ck.error("fit.committee", "a committee is drawn from the linear fit's Bayesian posterior; the "
                                        "nonlinear fit has none: remove it (or set committee: 0)")
    if "batch_size" in f and f["optimizer"] != "Adam":
        raise ck.error("fit.batch_size", f"mini-batches are for optimizer Adam; {f['optimizer']} needs the whole "
                                         "loss each iteration: remove batch_size or set optimizer: Adam")
    if f["init"] == "linear":
        if potential.initial:
            raise ck.error("fit.init", "linear starts from the linear fit's solution, but the ladder starts from "
                                       "potential.initial_potential's coefficients: remove one of them")
        if potential.file is not None and not potential.reset:
            raise ck.error("fit.init", "linear starts from the linear fit's solution, but potential.filename's "
                                       "coefficients are the start of an upfit: remove init, or set "
                                       "potential.reset: true")
    if f["noise_relative_sigma"] > 0 and f["noise_absolute_sigma"] > 0:
        ck.warn("fit.noise_absolute_sigma", "not used: noise_relative_sigma is given too and wins (as in pacemaker)")
    if f["fit_cycles"] == 1 and (f["noise_relative_sigma"] > 0 or f["noise_absolute_sigma"] > 0):
        ck.warn("fit.noise_relative_sigma" if f["noise_relative_sigma"] > 0 else "fit.noise_absolute_sigma",
                "no effect with fit_cycles 1 (noise is added from the second cycle on)")
    stopping = ("min_relative_train_loss_per_iter", "min_relative_test_loss_per_iter")
    if "early_stopping_patience" in given and not any(k in f for k in stopping):
        ck.warn("fit.early_stopping_patience", "no effect without min_relative_train_loss_per_iter or "
                                               "min_relative_test_loss_per_iter")
    if "ladder_type" in given and "ladder_step" not in f and not potential.initial:
        ck.warn("fit.ladder_type", "no effect without a ladder (fit.ladder_step or potential.initial_potential)")
    if not any("radial" in k for k in trainable.values()):
        for k in ("w0_rad", "w1_rad", "w2_rad"):
            if loss[k] > 0:
                ck.warn(f"fit.loss.{k}", "no effect: no radial function is trained (fit.trainable_parameters)")
    if not any(trainable.values()):
        raise ck.error("fit.trainable_parameters", "nothing is trained: name at least one block with func or "
                                                   "radial (e.g. ALL)")


def _output(ck: _Checker, raw) -> OutputSettings:
    o = ck.section("output", "output", raw if raw is not None else {})
    folder = ck.path_of(o["folder"]).resolve()
    if folder.exists() and not folder.is_dir():
        raise ck.error("output.folder", f"is a file, not a folder: {folder}")
    pot = ck.path_of(o["potential_file"], folder)
    if pot.suffix not in (".yaml", ".yml"):
        raise ck.error("output.potential_file", f"must end in .yaml (pacemaker's B-basis format; the .yace is "
                                                f"written next to it), got {o['potential_file']!r}")
    files = {"potential_file": pot, "metrics_file": ck.path_of(o["metrics_file"], folder),
             "errors_file": ck.path_of(o["errors_file"], folder),
             "checkpoint_file": ck.path_of(o["checkpoint_file"], folder)}
    if o["yace"]:
        files["yace_file"] = pot.with_suffix(".yace")
    seen = {}
    for key, p in files.items():
        if p.resolve() in seen:
            raise ck.error(f"output.{key}", f"is the same file as {seen[p.resolve()]}: {p}")
        seen[p.resolve()] = key
    return OutputSettings(folder=folder, potential_file=pot, yace=o["yace"], yace_file=files.get("yace_file"),
                          metrics_file=files["metrics_file"], errors_file=files["errors_file"],
                          checkpoint_file=files["checkpoint_file"])


def _backend(ck: _Checker, raw) -> BackendSettings:
    b = ck.section("backend", "backend", raw if raw is not None else {})
    return BackendSettings(batch_size=b["batch_size"], display_step=b["display_step"])


def _metadata(ck: _Checker, raw) -> dict[str, str]:
    out = {}
    for key, value in raw.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ck.error(f"metadata.{key}", f"expected a string (metadata are key: value strings), got {value!r}")
        out[str(key)] = str(value)
    return out


# -- entry points ---------------------------------------------------------------------------------

def parse_fit_input(tree: dict, path, text: str = "") -> FitSettings:
    """Check a parsed input.yaml (``tree``) read from ``path``; return the settings or raise FitInputError."""
    path = Path(path)
    ck = _Checker(path)
    top = ck.section(TOP_SECTION, "", tree)
    pot = _potential(ck, top["potential"])
    cutoff = float(top["cutoff"]) if "cutoff" in top else pot.rcut_max
    if cutoff < pot.rcut_max:
        raise ck.error("cutoff", f"{cutoff} Å is shorter than the largest bond rcut {pot.rcut_max} Å: the fit would "
                                 "see fewer neighbours than the potential has; set cutoff >= rcut or remove it")
    fit = _fit(ck, top.get("fit"), top["seed"], pot)
    backend = _backend(ck, top.get("backend"))
    ck.raise_refused()        # every refused key in one message, before the file checks
    data = _data(ck, top["data"], pot.mapping["elements"])
    if fit.min_relative_test_loss_per_iter is not None and not (data.test_size or data.test_filenames):
        raise ck.error("fit.min_relative_test_loss_per_iter", "early stopping on the test loss needs a test set: "
                                                              "give data.test_size or data.test_filename, or use "
                                                              "min_relative_train_loss_per_iter")
    return FitSettings(
        source=path.resolve(), folder=ck.folder, cutoff=cutoff, seed=top["seed"],
        metadata=_metadata(ck, top.get("metadata", {})), potential=pot.mapping,
        data=data, fit=fit, backend=backend, output=_output(ck, top.get("output")),
        warnings=tuple(ck.warnings), text=text, potential_file=pot.file, initial_potentials=pot.initial,
        reset_potential=pot.reset)


def read_fit_input(path) -> FitSettings:
    """Read and check pacemaker's input.yaml at ``path``; nothing is written.  Raises FitInputError
    (a ConfigError) naming the file and the key for any problem."""
    path = Path(path)
    tree, text = _load_yaml(path)
    return parse_fit_input(tree, path, text)


def _plain(value):
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.name not in ("text", "warnings")}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def format_fit_settings(settings: FitSettings) -> str:
    """The resolved settings as YAML (``acemd fit --check``): defaults filled, paths absolute."""
    return yaml.safe_dump(_plain(settings), sort_keys=False, default_flow_style=None, width=100)
