"""The ``[properties]`` sub-tables: their keys, defaults and checks.

``[properties]`` itself (``compute``, the relaxation keys, outputs) is in
:data:`acemd.config.SCHEMA`; each property has an optional sub-table
``[properties.<name>]`` whose keys are listed here (:data:`PROPERTY_KEYS`), or, for
phonons and the quasi-harmonic approximation, in their own modules (``KEYS`` of
:mod:`acemd.properties.phonons` and :mod:`acemd.properties.qha`).  :func:`resolve` checks
them all before any work: unknown properties and keys with a did-you-mean, Miller indices,
a reference calculator that cannot be imported.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..config import NUM, ConfigError, Key, _non_finite, _suggest, _type_name, non_negative, positive

PROPERTIES = ("eos", "phases", "elastic", "vacancy", "interstitial", "surfaces", "stacking_fault",
              "phonons", "qha")
DEFAULT_COMPUTE = ["eos", "phases", "elastic", "vacancy", "surfaces", "stacking_fault"]
EXTERNAL = {"phonons": "acemd.properties.phonons", "qha": "acemd.properties.qha"}   # P2's modules
LATTICES = ("fcc", "hcp", "bcc", "sc", "diamond")


def _range2(v):
    if (len(v) != 2 or not all(isinstance(x, NUM) and not isinstance(x, bool) for x in v)
            or not 0.5 <= v[0] < 1.0 < v[1] <= 1.5):
        return "must be [low, high] with 0.5 <= low < 1 < high <= 1.5 (fractions of the relaxed volume)"
    return None


def _sizes(v):
    for s in v:
        if isinstance(s, int) and not isinstance(s, bool) and s >= 1:
            continue
        if (isinstance(s, list) and len(s) == 3
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in s)):
            continue
        return "every size must be a positive integer n (an n x n x n supercell) or [n1, n2, n3]"
    return None if v else "must list at least one supercell size, e.g. [2, 3]"


def _millers(v):
    if not v:
        return "must list at least one plane, e.g. [[1, 0, 0], [1, 1, 1]]"
    for m in v:
        if (not isinstance(m, list) or len(m) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in m)):
            return f"every plane must be three integers (Miller indices), e.g. [1, 1, 0]; got {m!r}"
        if not any(m):
            return f"Miller indices {m} are all zero: a plane needs at least one non-zero index"
    return None


def _vector3(v):
    if len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v) or not any(v):
        return "must be three integers, not all zero, e.g. [1, 1, -2]"
    return None


def _lattice_list(v):
    bad = [x for x in v if x not in LATTICES]
    if bad:
        return f"unknown lattice {bad[0]!r}; choose from {', '.join(LATTICES)}" + _suggest(str(bad[0]), LATTICES)
    return None


def _fractions(v):
    for f in v:
        if isinstance(f, bool) or not isinstance(f, NUM) or not 0.0 <= f <= 1.0:
            return "every point must be a fraction in [0, 1] of the period along the slip direction"
    return None if v else "must list at least one point"


MINIMIZER_NOTE = "the relaxation keys of [properties] (method, fmax, max_steps, ...) apply"

PROPERTY_KEYS: dict[str, dict[str, Key]] = {
    "eos": {
        "volume_range": Key((list,), default=[0.94, 1.06], check=_range2, type_doc="[float, float]",
                            doc="volumes as fractions of the relaxed volume"),
        "points": Key((int,), default=9, check=lambda v: None if v >= 5 else "must be >= 5 (a 4-parameter fit)",
                      doc="volumes, evenly spaced in the range"),
        "relax_ions": Key((bool,), default=True, doc="relax the atoms at each volume (cell fixed)"),
    },
    "phases": {
        "lattices": Key((list,), default=["fcc", "hcp", "bcc", "sc", "diamond"], check=_lattice_list,
                        type_doc="[string, ...]",
                        doc="lattices built for the element of an elemental structure (ASE's bulk)"),
        "files": Key((list,), default=[], type_doc="[string, ...]",
                     doc="further phases as structure files (any composition of the potential's elements)"),
        "cell": Key((str,), default="auto",
                    check=lambda v: None if v in ("auto", "iso", "aniso", "triclinic") else
                    "must be one of 'auto', 'iso', 'aniso', 'triclinic'" + _suggest(v, ("auto", "iso", "aniso", "triclinic")),
                    doc="cell relaxation of each phase: auto is iso for cubic lattices (keeps bcc, sc unstrained), "
                        "aniso for hcp, triclinic for files"),
    },
    "elastic": {
        "strains": Key((list,), default=[0.0025, 0.005, 0.01], type_doc="[float, ...]",
                       doc="strain magnitudes of the [elastic] protocol (0 K), each applied at +e and -e"),
        "relax_ions": Key((bool,), default=True, doc="relax atoms in each strained cell"),
    },
    "vacancy": {
        "sizes": Key((list,), default=[2, 3], check=_sizes, type_doc="[int or [int, int, int], ...]",
                     doc="supercells of the input cell; the energy at each is printed (convergence)"),
        "relax_cell": Key((bool,), default=False,
                          doc="false: atoms relaxed at the bulk cell (constant volume); true: cell relaxed too"),
        "site": Key((int,), default=0, check=non_negative, doc="index of the removed atom in the input cell"),
    },
    "interstitial": {
        "sizes": Key((list,), default=[2, 3], check=_sizes, type_doc="[int or [int, int, int], ...]",
                     doc="supercells of the input cell; the energy at each is printed (convergence)"),
        "position": Key((list,), default=[0.5, 0.5, 0.5], type_doc="[float, float, float]",
                        check=lambda v: None if len(v) == 3 and all(isinstance(x, NUM) and not isinstance(x, bool)
                                                                    for x in v) else "must be three numbers",
                        doc="fractional coordinates of the added atom in the input cell (fcc cubic: "
                            "octahedral site [0.5, 0.5, 0.5])"),
        "element": Key((str,), default_doc="the first element of the structure", doc="element of the added atom"),
        "relax_cell": Key((bool,), default=False, doc="as for the vacancy"),
    },
    "surfaces": {
        "miller": Key((list,), default=[[1, 0, 0], [1, 1, 0], [1, 1, 1]], check=_millers,
                      type_doc="[[int, int, int], ...]",
                      doc="Miller indices (of the input cell's lattice vectors, ASE's surface())"),
        "layers": Key((int,), default=8, check=positive, doc="repeats of the surface cell along the normal"),
        "vacuum": Key(NUM, default=12.0, check=positive, unit="Å", doc="vacuum on each side of the slab"),
        "relax": Key((bool,), default=True, doc="relax the atoms of the slab (cell fixed)"),
    },
    "stacking_fault": {
        "lattice": Key((str,), check=lambda v: None if v in ("fcc", "bcc", "diamond") else
                       "must be one of 'fcc', 'bcc', 'diamond'" + _suggest(v, ("fcc", "bcc", "diamond")),
                       default_doc="[structure].lattice", doc="cubic lattice of the crystal"),
        "plane": Key((list,), default=[1, 1, 1], check=_vector3, type_doc="[int, int, int]",
                     doc="fault plane (Miller indices of the cubic cell)"),
        "direction": Key((list,), default=[1, 1, -2], check=_vector3, type_doc="[int, int, int]",
                         doc="slip direction (in the plane)"),
        "layers": Key((int,), default=12, check=positive,
                      doc="atomic planes per period normal to the fault (rounded up to the stacking period)"),
        "points": Key((list,), default=[i / 12 for i in range(13)], check=_fractions, type_doc="[float, ...]",
                      default_doc="0, 1/12, ..., 1",
                      doc="GSF points: fractions of the period along the slip direction"),
        "intrinsic": Key(NUM, default=1.0 / 3.0, check=lambda v: None if 0 < v < 1 else "must be in (0, 1)",
                         doc="fraction of the period at the intrinsic fault (fcc <112>: 1/3); set 0.5 for bcc"),
        "relax": Key((bool,), default=True,
                     doc="relax the atoms normal to the fault plane at every GSF point; the intrinsic fault "
                         "fully"),
    },
}

REFERENCE_KEYS: dict[str, Key] = {
    "calculator": Key((str,), doc="an ASE calculator 'module:Class', e.g. 'ase.calculators.emt:EMT'"),
    "kwargs": Key((dict,), default={}, type_doc="table", doc="arguments of the calculator's constructor"),
    "label": Key((str,), default_doc="the calculator's class, 'reference' for values",
                 doc="name of the reference in the report"),
    "values": Key((dict,), default={}, type_doc="table",
                  doc="reference values by entry name, e.g. {\"eos.B0\" = 140.0} (in the report's units)"),
    "dataset": Key((str,), doc="a pacemaker dataset (.pckl.gzip): EOS and phase energies of its structures "
                               "that are the input phase (or a lattice of `phases`) scaled"),
}


def check_table(given, keys, path, where) -> dict:
    """Check a sub-table like a section of acemd.config (types, checks, defaults)."""
    if not isinstance(given, dict):
        raise ConfigError(path, where, "must be a table, e.g. [" + where + "]")
    out = {}
    for key, value in given.items():
        if key not in keys:
            raise ConfigError(path, f"{where}.{key}", "unknown key" + _suggest(key, keys)
                              + f"; allowed keys: {', '.join(keys)}")
        spec = keys[key]
        if (isinstance(value, bool) and bool not in spec.types) or not isinstance(value, spec.types):
            raise ConfigError(path, f"{where}.{key}", f"expected {_type_name(spec.types)}, got {value!r}")
        problem = _non_finite(value, (where, key))
        if problem:
            raise ConfigError(path, f"{where}.{key}", f"{problem} (got {value!r})")
        if spec.check is not None:
            problem = spec.check(value)
            if problem:
                raise ConfigError(path, f"{where}.{key}", f"{problem} (got {value!r})")
        if float in spec.types and isinstance(value, int):
            value = float(value)
        out[key] = value
    for key, spec in keys.items():
        if key not in out and spec.default is not None:
            out[key] = spec.default
    return out


def external_keys(name) -> tuple[dict, object]:
    """KEYS and check() of an external property module (phonons, qha), or empty when not there yet."""
    try:
        module = importlib.import_module(EXTERNAL[name])
    except ImportError:
        return None, None
    return getattr(module, "KEYS", {}), getattr(module, "check", None)


def load_reference_class(spec, path):
    """The class named by 'module:Class' (ConfigError naming the key when it cannot be imported)."""
    where = "properties.reference.calculator"
    if ":" not in spec:
        raise ConfigError(path, where, f"{spec!r}: write 'module:Class', e.g. 'ase.calculators.emt:EMT'")
    module_name, class_name = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is this key's problem
        raise ConfigError(path, where, f"cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
                                       "install it or correct the name") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConfigError(path, where, f"module {module_name!r} has no {class_name!r}" + _suggest(class_name, names))
    return cls


def resolve(section: dict, raw: dict, settings: dict, path) -> dict:
    """Check and complete ``[properties]`` in place (called by acemd.config.parse_config)."""
    compute = section["compute"]
    if not compute:
        raise ConfigError(path, "properties.compute", f"lists no property; choose from {', '.join(PROPERTIES)}")
    for name in compute:
        if not isinstance(name, str) or name not in PROPERTIES:
            raise ConfigError(path, "properties.compute", f"unknown property {name!r}"
                              + _suggest(str(name), PROPERTIES) + f"; choose from {', '.join(PROPERTIES)}")
    if len(set(compute)) != len(compute):
        raise ConfigError(path, "properties.compute", "names a property twice")
    if "qha" in compute and "phonons" not in compute:
        pass                                 # P2's check decides whether qha needs phonons
    for key, value in raw.items():
        if isinstance(value, dict) and key not in ("reference",) and key not in PROPERTIES:
            raise ConfigError(path, f"properties.{key}", "unknown property table" + _suggest(key, PROPERTIES)
                              + f"; properties: {', '.join(PROPERTIES)}")
        if isinstance(value, dict) and key in PROPERTIES and key not in compute:
            raise ConfigError(path, f"properties.{key}", f"settings for {key!r}, which properties.compute "
                                                         f"does not list ({compute}); add it or remove the table")
    tables = {}
    for name in compute:
        where = f"properties.{name}"
        if name in EXTERNAL:
            keys, check = external_keys(name)
            if keys is None:
                raise ConfigError(path, "properties.compute", f"{name!r} needs {EXTERNAL[name]}, which is not "
                                                              "available in this acemd")
            tables[name] = check_table(raw.get(name, {}), keys, path, where)
            if check is not None:
                check(tables[name], path)
            continue
        tables[name] = check_table(raw.get(name, {}), PROPERTY_KEYS[name], path, where)
    sf = tables.get("stacking_fault")
    if sf is not None:
        if "lattice" not in sf:
            lat = settings["structure"].get("lattice")
            if lat not in ("fcc", "bcc", "diamond"):
                raise ConfigError(path, "properties.stacking_fault.lattice",
                                  "required when [structure] is not an fcc, bcc or diamond lattice: the fault "
                                  "is built in that cubic lattice")
            sf["lattice"] = lat
        plane, direction = sf["plane"], sf["direction"]
        if sum(p * d for p, d in zip(plane, direction)) != 0:
            raise ConfigError(path, "properties.stacking_fault.direction",
                              f"{direction} is not in the plane {plane} (their dot product is not 0)")
    ph = tables.get("phases")
    if ph is not None:
        files = []
        for f in ph["files"]:
            p = Path(f) if Path(f).is_absolute() else Path(path).resolve().parent / f
            if not p.is_file():
                raise ConfigError(path, "properties.phases.files", f"file not found: {p}")
            files.append(str(p))
        ph["files"] = files
    ref = raw.get("reference")
    reference = None
    if ref is not None:
        reference = check_table(ref, REFERENCE_KEYS, path, "properties.reference")
        if not any(k in reference for k in ("calculator", "dataset")) and not reference["values"]:
            raise ConfigError(path, "properties.reference", "give a calculator ('module:Class'), values, or a "
                                                            "dataset")
        if "calculator" in reference:
            cls = load_reference_class(reference["calculator"], path)
            reference.setdefault("label", cls.__name__)
        else:
            reference.setdefault("label", "reference")
        if "dataset" in reference:
            p = Path(reference["dataset"])
            p = p if p.is_absolute() else Path(path).resolve().parent / p
            if not p.is_file():
                raise ConfigError(path, "properties.reference.dataset", f"file not found: {p}")
            reference["dataset"] = str(p)
        for k, v in reference["values"].items():
            if isinstance(v, bool) or not isinstance(v, NUM):
                raise ConfigError(path, f"properties.reference.values.{k}", f"must be a number, got {v!r}")
    section["tables"] = tables
    section["reference"] = reference
    return section
