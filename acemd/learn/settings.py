"""The ``[learn]`` section of an ``acemd learn`` input: its keys, their checks, the resolved settings.

An input is a TOML file with one ``[learn]`` table and its sub-tables::

    [learn]            folder, thresholds gamma_lower < gamma_upper, structures per iteration, stopping rule
    [learn.start]      the starting dataset (a labelled or unlabelled structure file) or a generator
                       (a lattice, strained and rattled copies)
    [learn.labeller]   an ASE calculator (``module:Class`` + kwargs) or an external command
    [learn.fit]        pacemaker's input.yaml (``input``) and/or its keys inline; ``data`` and
                       ``output`` are set by the loop for every iteration
    [learn.select]     the selection: local environments cut out of large cells (``cut_radius``)
    [[learn.explore]]  the exploration plan: one table per MD run, each an acemd input (``input``)
                       and/or its sections inline; potential, [extrapolation] and outputs come from the loop

Every key is checked here, before any work; an error names the file and the key path
(``learn.gamma_lower``) and says what to do.  Relative paths resolve against the input's folder.
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, Key, int_list3, non_negative, one_of, positive

__all__ = ["LearnSettings", "LearnInputError", "read_learn_input", "parse_learn_input", "LEARN_SCHEMA",
           "EXPLORE_RESERVED", "EXPLORE_SECTIONS"]

NUM = (int, float)


class LearnInputError(ConfigError):
    """The ``acemd learn`` input is malformed or has an unknown or invalid key."""


def _above_one(v):
    return None if v > 1.0 else "must be above 1 (training atoms have gamma <= 1)"


def _module_class(v):
    return None if ":" in v and all(v.split(":", 1)) else "must be 'module:Class', e.g. 'ase.calculators.emt:EMT'"


LEARN_SCHEMA: dict[str, dict[str, Key]] = {
    "learn": {
        "folder": Key((str,), default="learn", doc="work folder: iter_000/, iter_001/, ..., the state file "
                                                   "and the final report"),
        "gamma_lower": Key(NUM, default=1.5, check=_above_one,
                           doc="structures whose max extrapolation grade exceeds it are candidates for labelling; "
                               "the loop has converged when no exploration exceeds it"),
        "gamma_upper": Key(NUM, default=5.0, check=_above_one,
                           doc="an exploration stops when its max gamma exceeds it (the potential is then "
                               "unreliable; later frames would be wasted)"),
        "structures_per_iteration": Key((int,), default=10, check=positive,
                                        doc="at most this many structures are selected (D-optimally) and labelled "
                                            "per iteration"),
        "max_iterations": Key((int,), default=10, check=positive,
                              doc="stop after this many fit-explore iterations even if not converged"),
        "gamma_every": Key((int,), default=10, check=positive, unit="steps",
                           doc="steps between evaluations of gamma in the explorations (also their thermo rows)"),
        "max_candidates_per_run": Key((int,), default=50, check=positive,
                                      doc="extrapolative frames of one run considered by the selection "
                                          "(evenly spaced when more were dumped)"),
        "active_set_tolerance": Key(NUM, default=0.01, check=positive,
                                    doc="MaxVol tolerance of the active set and the selection (at most 0.01)"),
    },
    "learn.start": {
        "dataset": Key((str,), doc="structure file (any ASE format); frames with energies and forces are used "
                                   "as labelled, the others are labelled first"),
        "lattice": Key((str,), check=one_of("fcc", "bcc", "hcp", "diamond", "sc"),
                       doc="generator: the crystal of the starting cells"),
        "element": Key((str,), doc="generator: the element"),
        "a": Key(NUM, check=positive, unit="Å", doc="generator: lattice constant"),
        "repeat": Key((list,), default=[2, 2, 2], check=int_list3, type_doc="[int, int, int]",
                      doc="generator: unit cells along a, b, c (cubic cells)"),
        "count": Key((int,), default=10, check=positive, doc="generator: number of cells"),
        "rattle": Key(NUM, default=0.1, check=non_negative, unit="Å",
                      doc="generator: Gaussian displacement of every atom (standard deviation)"),
        "strain": Key(NUM, default=0.03, check=non_negative,
                      doc="generator: random symmetric strain, each component uniform in [-strain, strain]"),
        "seed": Key((int,), default=1, doc="generator: random seed"),
    },
    "learn.labeller": {
        "calculator": Key((str,), check=_module_class,
                          doc="ASE calculator as 'module:Class' (e.g. 'ase.calculators.emt:EMT', "
                              "'acemd:ACECalculator')"),
        "kwargs": Key((dict,), default={}, type_doc="table", doc="keyword arguments of the calculator"),
        "path_kwargs": Key((list,), default=[], type_doc="list of strings",
                           doc="kwargs that are paths, resolved against the input's folder"),
        "command": Key((str,), doc="external command; '{input}' and '{output}' are replaced by an extxyz of "
                                   "the structures to label and the extxyz it must write (energy, forces, "
                                   "optional stress per frame; frames it could not label left out)"),
        "timeout": Key(NUM, default=0.0, check=non_negative, unit="s",
                       doc="external command: kill it after this long (0: no limit)"),
        "stress": Key((bool,), default=True, doc="ASE calculator: also store the stress of periodic cells"),
    },
    "learn.fit": {
        "input": Key((str,), doc="pacemaker's input.yaml (its data and output sections are replaced); keys "
                                 "given inline here override its top-level keys"),
        "test_size": Key(NUM, default=0.1, check=non_negative,
                         doc="part of the dataset held out for the test errors (fraction < 1, or a count)"),
        "upfit": Key((bool,), default=False,
                     doc="nonlinear fit: from iteration 1 on, start from the previous iteration's potential "
                         "(pacemaker's upfitting, potential.filename) instead of refitting from scratch; the "
                         "linear fit is exact and always refits"),
    },
    "learn.select": {
        "cut_radius": Key(NUM, default=0.0, check=non_negative, unit="Å",
                          doc="0: label whole structures; > 0: cut a cluster of this radius around the most "
                              "extrapolating atom of a selected structure (at least the cutoff plus 2 Å)"),
        "vacuum": Key(NUM, default=6.0, check=positive, unit="Å", doc="vacuum around a cut cluster"),
    },
}

# sections an exploration may give inline (or in its input file); the rest is set by the loop
EXPLORE_SECTIONS = ("structure", "masses", "velocities", "md", "thermostat", "barostat", "guards", "parallel")
EXPLORE_RESERVED = ("potential", "extrapolation", "thermo", "checkpoint", "trajectory")
PACEMAKER_TOP = ("cutoff", "seed", "metadata", "potential", "data", "fit", "backend")


@dataclass(frozen=True)
class Exploration:
    """One exploration run: its name and the acemd input sections (a dict of tables, paths absolute)."""

    name: str
    sections: dict
    source: Path          # the file its keys came from (the learn input or its ``input``)


@dataclass(frozen=True)
class LearnSettings:
    """The checked ``acemd learn`` input; every path absolute."""

    source: Path
    folder: Path
    gamma_lower: float
    gamma_upper: float
    structures_per_iteration: int
    max_iterations: int
    gamma_every: int
    max_candidates_per_run: int
    active_set_tolerance: float
    start: dict
    labeller: dict
    fit_tree: dict           # pacemaker's input tree without data/output
    test_size: float
    upfit: bool
    select: dict
    explorations: tuple[Exploration, ...]
    text: str = ""
    signature: str = ""      # what a restart must match (everything but max_iterations)
    warnings: tuple = field(default_factory=tuple)


def _suggest(name, options):
    import difflib
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_table(path, where, raw, schema, free=False) -> dict:
    """Keys of one table against ``schema``: types, checks, defaults.  ``free``: unknown keys pass."""
    if not isinstance(raw, dict):
        raise LearnInputError(path, where, "must be a table")
    out = {}
    for key, value in raw.items():
        spec = schema.get(key)
        if spec is None:
            if free:
                out[key] = value
                continue
            raise LearnInputError(path, f"{where}.{key}", "unknown key" + _suggest(key, schema)
                                  + f"; allowed keys: {', '.join(schema)}")
        if (isinstance(value, bool) and bool not in spec.types) or not isinstance(value, spec.types):
            raise LearnInputError(path, f"{where}.{key}", f"expected {spec.type_doc or spec.types[0].__name__}, "
                                                          f"got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise LearnInputError(path, f"{where}.{key}", f"must be finite, got {value!r}")
        if spec.check is not None:
            problem = spec.check(value)
            if problem:
                raise LearnInputError(path, f"{where}.{key}", f"{problem} (got {value!r})")
        out[key] = float(value) if (float in spec.types and isinstance(value, int)) else value
    for key, spec in schema.items():
        if key not in out and spec.default is not None:
            out[key] = spec.default
    return out


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def _start(path, base, raw) -> dict:
    s = _check_table(path, "learn.start", raw, LEARN_SCHEMA["learn.start"])
    generator = [k for k in ("lattice", "element", "a") if k in raw]
    if "dataset" in raw:
        if generator:
            raise LearnInputError(path, "learn.start", "give either dataset (a structure file) or a generator "
                                                       "(lattice, element, a), not both")
        s["dataset"] = _path(base, s["dataset"])
        if not s["dataset"].is_file():
            raise LearnInputError(path, "learn.start.dataset", f"file not found: {s['dataset']}")
        return s
    missing = [k for k in ("lattice", "element", "a") if k not in raw]
    if missing:
        raise LearnInputError(path, "learn.start", f"missing {', '.join(missing)}: give a dataset file or the "
                                                   "generator's lattice, element and a")
    return s


def _labeller(path, base, raw) -> dict:
    lab = _check_table(path, "learn.labeller", raw, LEARN_SCHEMA["learn.labeller"])
    if ("calculator" in lab) == ("command" in lab):
        raise LearnInputError(path, "learn.labeller", "give exactly one of calculator ('module:Class') or "
                                                      "command (an external program)")
    for name in lab["path_kwargs"]:
        if name not in lab["kwargs"] or not isinstance(lab["kwargs"][name], str):
            raise LearnInputError(path, f"learn.labeller.path_kwargs", f"'{name}' is not a string in kwargs")
        lab["kwargs"] = dict(lab["kwargs"], **{name: str(_path(base, lab["kwargs"][name]))})
    if "command" in lab and ("{input}" not in lab["command"] or "{output}" not in lab["command"]):
        raise LearnInputError(path, "learn.labeller.command", "must contain {input} and {output} (the extxyz "
                                                              "files it reads and writes)")
    lab["folder"] = str(base)
    return lab


def _fit(path, base, raw) -> tuple[dict, float]:
    import yaml
    f = _check_table(path, "learn.fit", raw, LEARN_SCHEMA["learn.fit"], free=True)
    tree = {}
    if "input" in f:
        src = _path(base, f.pop("input"))
        try:
            tree = yaml.safe_load(src.read_text()) or {}
        except FileNotFoundError:
            raise LearnInputError(path, "learn.fit.input", f"file not found: {src}") from None
        except yaml.YAMLError as exc:
            raise LearnInputError(path, "learn.fit.input", f"{src} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise LearnInputError(path, "learn.fit.input", f"{src}: expected a mapping (pacemaker's input.yaml)")
        if isinstance(tree.get("data"), dict):
            f.setdefault("data_keys", {k: v for k, v in tree["data"].items()
                                       if k not in ("filename", "test_filename", "test_size", "datapath")})
        tree = {k: v for k, v in tree.items() if k not in ("data", "output")}
    test_size = f.pop("test_size")
    upfit = f.pop("upfit")
    data_keys = f.pop("data_keys", {})
    for key, value in f.items():
        if key in ("output",):
            raise LearnInputError(path, f"learn.fit.{key}", "is set by the loop (iter_NNN/fit/); remove it")
        if key == "data":
            if not isinstance(value, dict):
                raise LearnInputError(path, "learn.fit.data", "must be a table")
            for k in ("filename", "test_filename", "test_size", "datapath"):
                if k in value:
                    raise LearnInputError(path, f"learn.fit.data.{k}", "is set by the loop (the growing dataset; "
                                                                       "learn.fit.test_size for the test part)")
            data_keys.update(value)
            continue
        if key not in PACEMAKER_TOP:
            raise LearnInputError(path, f"learn.fit.{key}", "unknown key" + _suggest(key, PACEMAKER_TOP + ("input",))
                                  + f"; pacemaker's keys allowed here: {', '.join(PACEMAKER_TOP)}")
        tree[key] = value
    if "potential" not in tree:
        raise LearnInputError(path, "learn.fit", "no potential: give input = 'input.yaml' (pacemaker's) or the "
                                                 "[learn.fit.potential] keys")
    tree["data"] = data_keys
    return tree, float(test_size), bool(upfit)


def _explorations(path, base, raw) -> tuple[Exploration, ...]:
    if not isinstance(raw, list) or not raw:
        raise LearnInputError(path, "learn.explore", "give the exploration plan as one or more [[learn.explore]] "
                                                     "tables (MD runs)")
    out, names = [], set()
    for i, entry in enumerate(raw):
        where = f"learn.explore[{i}]"
        if not isinstance(entry, dict):
            raise LearnInputError(path, where, "must be a table")
        name = entry.get("name", f"run{i:02d}")
        if not isinstance(name, str) or not name or any(c in name for c in "/\\ ") or name in names:
            raise LearnInputError(path, f"{where}.name", f"must be a unique name without spaces or slashes, "
                                                         f"got {name!r}")
        names.add(name)
        sections, source = {}, path
        if "input" in entry:
            src = _path(base, entry["input"])
            try:
                sections = tomllib.loads(src.read_text())
            except FileNotFoundError:
                raise LearnInputError(path, f"{where}.input", f"file not found: {src}") from None
            except tomllib.TOMLDecodeError as exc:
                raise LearnInputError(path, f"{where}.input", f"{src} is not valid TOML: {exc}") from None
            for sec in EXPLORE_RESERVED:        # the loop sets these
                sections.pop(sec, None)
            _resolve_structure_file(sections, src.parent)
            source = src
        for key, value in entry.items():
            if key in ("name", "input"):
                continue
            if key in EXPLORE_RESERVED:
                raise LearnInputError(path, f"{where}.{key}", "is set by the loop (the iteration's potential and "
                                                              "active set, gamma thresholds, output files); remove it")
            if key not in EXPLORE_SECTIONS:
                raise LearnInputError(path, f"{where}.{key}", "unknown key" + _suggest(key, EXPLORE_SECTIONS)
                                      + f"; an exploration takes name, input and the acemd sections "
                                        f"{', '.join(EXPLORE_SECTIONS)}")
            if not isinstance(value, dict):
                raise LearnInputError(path, f"{where}.{key}", "must be a table (an acemd input section)")
            merged = dict(sections.get(key, {}))
            part = dict(value)
            _resolve_structure_file({key: part}, base)
            merged.update(part)
            sections[key] = merged
        if "md" not in sections:
            raise LearnInputError(path, where, "an exploration is an MD run: give its [md] section (steps, "
                                               "ensemble, ...) inline or in its input file")
        out.append(Exploration(name=name, sections=sections, source=source))
    return tuple(out)


def _resolve_structure_file(sections, base: Path):
    st = sections.get("structure")
    if isinstance(st, dict) and isinstance(st.get("file"), str):
        st["file"] = str(_path(base, st["file"]))


def parse_learn_input(text: str, path) -> LearnSettings:
    """Check the text of an ``acemd learn`` input read from ``path``; raise LearnInputError."""
    path = Path(path).resolve()
    base = path.parent
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LearnInputError(path, "", f"invalid TOML: {exc}") from None
    extra = [k for k in raw if k != "learn"]
    if extra:
        raise LearnInputError(path, extra[0], "unknown section: an acemd learn input has only [learn] and its "
                                              "sub-tables ([learn.start], [learn.labeller], [learn.fit], "
                                              "[learn.select], [[learn.explore]])")
    if "learn" not in raw:
        raise LearnInputError(path, "learn", "missing: an acemd learn input needs a [learn] section")
    top = dict(raw["learn"])
    subs = {k: top.pop(k) for k in ("start", "labeller", "fit", "select", "explore") if k in top}
    main = _check_table(path, "learn", top, LEARN_SCHEMA["learn"])
    if main["gamma_lower"] >= main["gamma_upper"]:
        raise LearnInputError(path, "learn.gamma_lower", f"{main['gamma_lower']:g} must be below gamma_upper = "
                                                         f"{main['gamma_upper']:g} (select above the lower, stop "
                                                         "a run above the upper)")
    if main["active_set_tolerance"] > 0.01:
        raise LearnInputError(path, "learn.active_set_tolerance", "must be at most 0.01")
    for name in ("start", "labeller", "fit"):
        if name not in subs:
            raise LearnInputError(path, f"learn.{name}", "missing section [learn." + name + "]")
    start = _start(path, base, subs["start"])
    labeller = _labeller(path, base, subs["labeller"])
    fit_tree, test_size, upfit = _fit(path, base, subs["fit"])
    select = _check_table(path, "learn.select", subs.get("select", {}), LEARN_SCHEMA["learn.select"])
    explorations = _explorations(path, base, subs.get("explore"))
    folder = _path(base, main["folder"])
    if folder.exists() and not folder.is_dir():
        raise LearnInputError(path, "learn.folder", f"is a file, not a folder: {folder}")
    signature_data = {k: v for k, v in main.items() if k != "max_iterations"}
    signature_data.update(start=start, labeller=labeller, fit=fit_tree, test_size=test_size, upfit=upfit,
                          select=select,
                          explore=[(e.name, e.sections) for e in explorations])
    signature = hashlib.sha256(json.dumps(signature_data, sort_keys=True, default=str).encode()).hexdigest()
    return LearnSettings(source=path, folder=folder, gamma_lower=float(main["gamma_lower"]),
                         gamma_upper=float(main["gamma_upper"]),
                         structures_per_iteration=main["structures_per_iteration"],
                         max_iterations=main["max_iterations"], gamma_every=main["gamma_every"],
                         max_candidates_per_run=main["max_candidates_per_run"],
                         active_set_tolerance=float(main["active_set_tolerance"]), start=start,
                         labeller=labeller, fit_tree=fit_tree, test_size=test_size, upfit=upfit, select=select,
                         explorations=explorations, text=text, signature=signature)


def read_learn_input(path) -> LearnSettings:
    """Read and check an ``acemd learn`` input file (nothing is written)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LearnInputError(path, "", "input file not found") from None
    except IsADirectoryError:
        raise LearnInputError(path, "", "is a folder, not an input file") from None
    except UnicodeDecodeError:
        raise LearnInputError(path, "", "not a text (UTF-8) file; give the TOML input") from None
    return parse_learn_input(text, path)
