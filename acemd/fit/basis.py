"""The B-basis of a fit, from pacemaker's ``potential:`` section.

:func:`build_basis` builds the blocks and B-functions pacemaker's
``create_multispecies_basis_config`` builds for the same settings (same
blocks, radial shapes, functions and function order, same selection when
``number_of_functions_per_element`` caps the list), with acemd's own couplings
(:mod:`acemd.fit.couplings`).  The rules, as pacemaker applies them:

* ``elements`` are sorted alphabetically;
* a keyword expands to blocks: ``ALL`` every block, ``UNARY`` / ``BINARY`` /
  ... the blocks of 1, 2, ... distinct elements (a block is the central element
  followed by the other elements, sorted); an explicit key (``Cu``, ``AlNi``,
  ``[Al, Ni]``) names one block.  Specifications are merged key by key in the
  order ALL, UNARY, BINARY, TERNARY, QUATERNARY, QUINARY, explicit keys, so the
  more specific one wins; embeddings take ALL, UNARY, element; bonds ALL, UNARY
  (pairs X-X), BINARY (X-Y), explicit pairs (both orders);
* in a block with elements E (central element first) and each rank r up to the
  shorter of ``nradmax_by_orders`` and ``lmax_by_orders`` (pacemaker zips them):
  neighbour elements ``mus`` are the sorted combinations (with repetition) of E
  using all of E; radial indices ``ns`` run over product(1..nradmax_r) in
  order, skipping a (mu, n) multiset already seen; for each, the independent
  couplings (ls, LS) with max(ls) <= lmax_r in lexicographic order;
* radial shape of a bond X-Y: nradbase = the first order's nradmax, nradmax
  = the largest of the others, lmax = the largest lmax_by_orders, over every
  function block that uses the bond (and at least what its functions need),
  symmetric in X-Y; radial coefficients c_nlk = delta_nk;
* ``number_of_functions_per_element`` = N keeps, in every block, the first
  N * nelements // nblocks functions by "power order" (rank + sum(ns) +
  sum(ls), stable), then orders them by (rank, ns, ls, LS, elements); the
  radial shapes then follow from the functions kept.

An explicit functions key is put in block-name order (``NiCuAl`` is the block
``Ni Al Cu``; pacemaker would make a second block of that name).

Columns of the fit: element mu's ``spec.nfuncs[mu]`` functions start at global
column ``spec.column_offsets[mu]``.  The spec lists them in block order
(``spec.functions[mu]``); the potential acemd evaluates
(:meth:`BasisSpec.to_potential`), and so its design rows, keep pyace's sorted
order: ``spec.bbasis_order[mu]`` maps one to the other and
``spec.coefficient_blocks(columns)`` turns a solution in the design's order into
the per-element blocks ``to_potential`` and ``format_bbasis_yaml`` take.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import combinations_with_replacement, permutations, product

import numpy as np

from ..potential.coupling import half_basis_cg
from ..potential.model import EMBEDDINGS, INNER_CUTOFF_TYPES, RADIAL_BASES, CTildePotential
from .bbasis_writer import format_bbasis_yaml
from .couplings import independent_couplings, runs_of

__all__ = ["BasisSpecError", "FunctionSpec", "EmbeddingSpec", "BondSpec", "BlockSpec", "BasisSpec",
           "build_basis", "format_bbasis_yaml", "FUNCTIONS_CAP_KEY"]

FUNCTIONS_CAP_KEY = "number_of_functions_per_element"
NARY = {"UNARY": 1, "BINARY": 2, "TERNARY": 3, "QUATERNARY": 4, "QUINARY": 5}
FUNCTION_KEYWORDS = ("ALL",) + tuple(NARY) + (FUNCTIONS_CAP_KEY,)
BOND_KEYWORDS = ("ALL", "UNARY", "BINARY")
EMBEDDING_KEYWORDS = ("ALL", "UNARY")
LINEAR_NPOT = "linear"

_ELEMENT = re.compile(r"[A-Z][a-z]?")
_EMBEDDING_KEYS = ("npot", "fs_parameters", "ndensity", "rho_core_cut", "drho_core_cut")
_BOND_KEYS = ("radbase", "radparameters", "rcut", "dcut", "NameOfCutoffFunction", "r_in", "delta_in",
              "inner_cutoff_type", "core-repulsion", "nradbase", "nradmax", "lmax")
_FUNCTION_KEYS = ("nradmax_by_orders", "lmax_by_orders", "coefs_init")


class BasisSpecError(ValueError):
    """The ``potential`` section cannot give a basis: names the key and what to do."""


@dataclass(frozen=True)
class FunctionSpec:
    """One B-function: elements (central first), radial indices ns (1-based), ls, intermediates LS."""

    elements: tuple[str, ...]
    ns: tuple[int, ...]
    ls: tuple[int, ...]
    LS: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.ns)


@dataclass
class EmbeddingSpec:
    """Embedding of one central element (pacemaker's keys)."""

    npot: str
    fs_parameters: list[float]
    ndensity: int
    rho_core_cut: float = 100000.0       # eV
    drho_core_cut: float = 250.0         # eV


@dataclass
class BondSpec:
    """Radial basis of one ordered pair; coefficients c_nlk = delta_nk (pacemaker's initial ones)
    unless ``coefficients`` holds fitted ones."""

    radbase: str
    radparameters: list[float]
    rcut: float                          # Å
    dcut: float                          # Å
    nradmax: int
    lmax: int
    nradbase: int
    cutoff_function: str = "cos"
    r_in: float = 0.0                    # Å
    delta_in: float = 0.0                # Å
    inner_cutoff_type: str = "distance"
    core_repulsion: tuple[float, float] = (0.0, 0.0)   # prefactor (eV·Å), lambda (1/Å^2)
    coefficients: np.ndarray | None = None   # fitted c[n, l, k] (nonlinear fit); None: delta_nk

    @property
    def radcoefficients(self) -> np.ndarray:
        """c[n, l, k], shape (nradmax, lmax+1, nradbase): the fitted ones, else delta_nk."""
        if self.coefficients is not None:
            return np.array(self.coefficients, dtype=float)
        c = np.zeros((self.nradmax, self.lmax + 1, self.nradbase))
        for n in range(min(self.nradmax, self.nradbase)):
            c[n, :, n] = 1.0
        return c


@dataclass
class BlockSpec:
    """One species block: its elements (central first), functions, embedding (1 element), bond (1-2)."""

    elements: tuple[str, ...]
    functions: list[FunctionSpec]
    embedding: EmbeddingSpec | None = None
    bond: BondSpec | None = None

    @property
    def name(self) -> str:
        return " ".join(self.elements)

    @property
    def central(self) -> str:
        return self.elements[0]


@dataclass
class BasisSpec:
    """The basis of a fit: elements, blocks in pacemaker's order, and the fit's column layout."""

    elements: list[str]
    delta_spline_bins: float             # Å
    blocks: list[BlockSpec]
    source: str = "input.yaml"
    functions: list[list[FunctionSpec]] = field(init=False)
    block_of: list[list[int]] = field(init=False)

    def __post_init__(self):
        self.functions = [[] for _ in self.elements]
        self.block_of = [[] for _ in self.elements]
        index = {el: i for i, el in enumerate(self.elements)}
        for k, b in enumerate(self.blocks):
            mu = index[b.central]
            self.functions[mu].extend(b.functions)
            self.block_of[mu].extend([k] * len(b.functions))
        self._bbasis_order = None

    # -- column layout -------------------------------------------------------------------------
    @property
    def nfuncs(self) -> list[int]:
        """Number of B-functions per element (index as in ``elements``)."""
        return [len(f) for f in self.functions]

    @property
    def column_offsets(self) -> np.ndarray:
        """First global column of each element's functions (ndensity 1: one column per function)."""
        return np.concatenate([[0], np.cumsum(self.nfuncs)[:-1]]).astype(np.int64)

    @property
    def ncolumns(self) -> int:
        return int(sum(self.nfuncs))

    @property
    def ndensity(self) -> list[int]:
        emb = {b.central: b.embedding for b in self.blocks if b.embedding is not None}
        return [emb[el].ndensity for el in self.elements]

    @property
    def total(self) -> int:
        return sum(len(b.functions) for b in self.blocks)

    @property
    def bbasis_order(self) -> list[np.ndarray]:
        """Per element: index into ``functions[mu]`` of each function of the potential's ``bbasis[mu]``.

        The potential keeps pyace's sorted order (rank, mus, ns, ls, number of
        m-combinations, m-combinations; ties in file order), so columns in that
        order map to this spec's order by ``spec_coeffs[bbasis_order[mu]] = bbasis_coeffs``.
        """
        if self._bbasis_order is None:
            from ..potential.bbasis import _sort_key
            index = {el: i for i, el in enumerate(self.elements)}
            out = []
            for funcs in self.functions:
                keys = []
                for f in funcs:
                    ms, _ = half_basis_cg(f.ls, f.LS)
                    keys.append(_sort_key(f.rank, tuple(index[e] for e in f.elements[1:]), f.ns, f.ls, ms))
                out.append(np.array(sorted(range(len(funcs)), key=lambda k: keys[k]), dtype=np.int64))
            self._bbasis_order = out
        return self._bbasis_order

    def coefficient_blocks(self, columns, order="bbasis") -> list[np.ndarray]:
        """Split a global coefficient vector (ndensity 1) into per-element (nfuncs, 1) arrays in spec order.

        ``order`` says how the columns of each element are ordered: ``"bbasis"``
        (the potential's sorted B-functions, as the design rows) or ``"spec"``.
        """
        c = np.asarray(columns, dtype=float).ravel()
        if len(c) != self.ncolumns:
            raise BasisSpecError(f"{self.source}: {len(c)} coefficients for a basis of {self.ncolumns} functions")
        if order not in ("bbasis", "spec"):
            raise ValueError(f"order must be 'bbasis' or 'spec', got {order!r}")
        out = []
        for mu, off in enumerate(self.column_offsets):
            part = c[off:off + self.nfuncs[mu]]
            if order == "bbasis":
                spec_order = np.empty_like(part)
                spec_order[self.bbasis_order[mu]] = part
                part = spec_order
            out.append(part.reshape(-1, 1).copy())
        return out

    # -- model and file --------------------------------------------------------------------------
    def _coefficients(self, coeffs) -> list[np.ndarray]:
        if isinstance(coeffs, dict):
            missing = [el for el in self.elements if el not in coeffs]
            if missing:
                raise BasisSpecError(f"{self.source}: no coefficients for element {missing[0]}")
            coeffs = [coeffs[el] for el in self.elements]
        if len(coeffs) != len(self.elements):
            raise BasisSpecError(f"{self.source}: coefficients for {len(coeffs)} elements, the basis has "
                                 f"{len(self.elements)} ({', '.join(self.elements)})")
        out = []
        for mu, (el, c) in enumerate(zip(self.elements, coeffs)):
            a = np.asarray(c, dtype=float)
            nd = self.ndensity[mu]
            if a.ndim == 1 and nd == 1:
                a = a.reshape(-1, 1)
            if a.shape != (self.nfuncs[mu], nd):
                raise BasisSpecError(f"{self.source}: coefficients of {el} have shape {a.shape}, expected "
                                     f"(nfuncs, ndensity) = ({self.nfuncs[mu]}, {nd})")
            if not np.all(np.isfinite(a)):
                raise BasisSpecError(f"{self.source}: coefficients of {el} are not all finite")
            out.append(a)
        return out

    def to_tree(self, coeffs, metadata=None) -> dict:
        """The B-basis ``.yaml`` content as nested dicts/lists (what the file parses to)."""
        coeffs = self._coefficients(coeffs)
        index = {el: i for i, el in enumerate(self.elements)}
        cursor = [0] * len(self.elements)
        species = []
        for b in self.blocks:
            node = {"speciesblock": b.name}
            if b.embedding is not None:
                e = b.embedding
                node.update(ndensityi=e.ndensity, npoti=e.npot, parameters=list(e.fs_parameters),
                            rho_core_cut=e.rho_core_cut, drho_core_cut=e.drho_core_cut)
            if b.bond is not None:
                r = b.bond
                node.update(nradmaxi=r.nradmax, lmaxi=r.lmax, rcutij=r.rcut, dcutij=r.dcut,
                            NameOfCutoffFunctionij=r.cutoff_function, r_in=r.r_in, delta_in=r.delta_in,
                            inner_cutoff_type=r.inner_cutoff_type, nradbaseij=r.nradbase,
                            radbase=r.radbase, radparameters=list(r.radparameters),
                            radcoefficients=r.radcoefficients.tolist(),
                            **{"core-repulsion": list(r.core_repulsion)})
            mu = index[b.central]
            nbody = []
            for f in b.functions:
                c = coeffs[mu][cursor[mu]]
                cursor[mu] += 1
                item = {"type": " ".join(f.elements), "nr": list(f.ns), "nl": list(f.ls)}
                if f.rank > 2:
                    item["lint"] = list(f.LS)
                item["c"] = [float(v) for v in c]
                nbody.append(item)
            node["nbody"] = nbody
            species.append(node)
        tree = {}
        if metadata:
            tree["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        tree["global"] = {"DeltaSplineBins": self.delta_spline_bins}
        tree["species"] = species
        return tree

    def to_potential(self, coeffs, *, E0=None) -> CTildePotential:
        """The potential with these coefficients (per element (nfuncs, ndensity), spec order).

        Converted by the B-basis reader's own path, so it equals what
        ``read_bbasis_yaml`` gives for :func:`format_bbasis_yaml`'s file; ``bbasis``
        is filled.  ``E0``: per element (list in element order or dict), eV.
        """
        from ..potential.bbasis import bbasis_tree_to_potential
        pot = bbasis_tree_to_potential(self.to_tree(coeffs), self.source)
        if E0 is not None:
            if isinstance(E0, dict):
                E0 = [float(E0.get(el, 0.0)) for el in self.elements]
            E0 = np.asarray(E0, dtype=float)
            if E0.shape != (len(self.elements),):
                raise BasisSpecError(f"{self.source}: E0 needs one value per element ({len(self.elements)})")
            pot.E0 = E0.copy()
        return pot


# ============================================================================ building

def _error(source, where, problem):
    return BasisSpecError(f"{source}: potential.{where}: {problem}")


def _symbols(key, where, elements, source) -> tuple[str, ...]:
    """Element symbols of an explicit block key ('Cu', 'AlNi', 'Al Ni', '(Al, Ni)', ['Al', 'Ni'])."""
    if isinstance(key, (tuple, list)):
        symbols = tuple(str(s).strip() for s in key)
        bad = [s for s in symbols if not _ELEMENT.fullmatch(s)]
    elif isinstance(key, str):
        symbols = tuple(_ELEMENT.findall(key))
        rest = _ELEMENT.sub("", key)
        bad = [rest] if rest.strip(" ,()[]-") or not symbols else []
    else:
        raise _error(source, where, f"block key {key!r}: expected a keyword or element symbols")
    if bad:
        raise _error(source, f"{where}.{key}", f"'{key}' is neither a keyword nor element symbols")
    unknown = [s for s in symbols if s not in elements]
    if unknown:
        raise _error(source, f"{where}.{key}", f"element {unknown[0]} is not in potential.elements "
                     f"[{', '.join(elements)}]: add it there or remove this block")
    return symbols


def _species_keys(elements, r):
    """Blocks of r distinct elements: the central element, then the other r-1 sorted."""
    keys = set()
    for el in elements:
        rest = [e for e in elements if e != el]
        for tail in product(rest, repeat=r - 1):
            key = (el,) + tuple(dict.fromkeys(sorted(tail)))
            if len(key) == r:
                keys.add(key)
    return sorted(keys)


def _check_mapping(value, where, source, allowed):
    if not isinstance(value, dict):
        raise _error(source, where, f"expected a mapping of keys ({', '.join(allowed)}), got {value!r}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise _error(source, f"{where}.{unknown[0]}", f"unknown key; allowed here: {', '.join(allowed)}")
    return value


def _functions_ext(potential, elements, source):
    functions = potential.get("functions")
    if not isinstance(functions, dict) or not functions:
        raise _error(source, "functions", "missing or empty: give e.g. ALL: {nradmax_by_orders: [8, 8, 4], "
                     "lmax_by_orders: [0, 4, 3]}")
    ext: dict[tuple, dict] = {}
    if "ALL" in functions:
        spec = _check_mapping(functions["ALL"], "functions.ALL", source, _FUNCTION_KEYS)
        for r in range(1, len(elements) + 1):
            for key in _species_keys(elements, r):
                ext.setdefault(key, {}).update(spec)
    for kw, r in NARY.items():
        if kw in functions:
            spec = _check_mapping(functions[kw], f"functions.{kw}", source, _FUNCTION_KEYS)
            for key in _species_keys(elements, r):
                ext.setdefault(key, {}).update(spec)
    for k, spec in functions.items():
        if k in FUNCTION_KEYWORDS:
            continue
        symbols = _symbols(k, "functions", elements, source)
        if len(set(symbols)) != len(symbols):
            raise _error(source, f"functions.{k}", "an element is named twice: a block lists each element "
                         "once, the central element first (Cu, AlNi, [Al, Ni, Cu])")
        key = (symbols[0],) + tuple(sorted(symbols[1:]))     # pacemaker's block name order
        spec = _check_mapping(spec, f"functions.{k}", source, _FUNCTION_KEYS)
        ext.setdefault(key, {}).update(spec)
    ext = {k: v for k, v in ext.items() if v}
    for key, spec in ext.items():
        name = " ".join(key)
        for kw in ("nradmax_by_orders", "lmax_by_orders"):
            if kw not in spec:
                raise _error(source, "functions", f"block '{name}' has no {kw} (after merging ALL, "
                             f"{'UNARY BINARY TERNARY QUATERNARY QUINARY'.split()[len(key) - 1]} and explicit "
                             f"keys): give it in one of them")
            vals = spec[kw]
            if (not isinstance(vals, (list, tuple)) or not vals
                    or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in vals)):
                raise _error(source, "functions", f"block '{name}': {kw} = {vals!r}: expected a list of integers")
        nr, lm = spec["nradmax_by_orders"], spec["lmax_by_orders"]
        # lists of different lengths (after merging keywords) are taken as pacemaker takes them:
        # functions up to the shorter one, radial shapes from both whole lists
        if min(nr) < 0 or min(lm) < 0:
            raise _error(source, "functions", f"block '{name}': negative nradmax/lmax in {list(nr)}, {list(lm)}")
    cap = functions.get(FUNCTIONS_CAP_KEY)
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
        raise _error(source, f"functions.{FUNCTIONS_CAP_KEY}", f"expected a positive integer, got {cap!r}")
    return ext, cap


def _bonds_ext(potential, elements, source):
    bonds = potential.get("bonds")
    if not isinstance(bonds, dict) or not bonds:
        raise _error(source, "bonds", "missing or empty: give e.g. ALL: {radbase: SBessel, radparameters: "
                     "[5.25], rcut: 6, dcut: 0.01}")
    ext = {pair: {} for pair in product(elements, repeat=2)}
    if "ALL" in bonds:
        spec = _check_mapping(bonds["ALL"], "bonds.ALL", source, _BOND_KEYS)
        for pair in ext:
            ext[pair].update(spec)
    if "UNARY" in bonds:
        spec = _check_mapping(bonds["UNARY"], "bonds.UNARY", source, _BOND_KEYS)
        for el in elements:
            ext[(el, el)].update(spec)
    if "BINARY" in bonds:
        spec = _check_mapping(bonds["BINARY"], "bonds.BINARY", source, _BOND_KEYS)
        for pair in permutations(elements, 2):
            ext[pair].update(spec)
    for k, spec in bonds.items():
        if k in BOND_KEYWORDS:
            continue
        if k in FUNCTION_KEYWORDS:
            raise _error(source, f"bonds.{k}", "bonds take ALL, UNARY, BINARY or a pair (CuCu, AlNi, [Al, Ni])")
        symbols = _symbols(k, "bonds", elements, source)
        if len(symbols) == 1:
            symbols = (symbols[0], symbols[0])
        if len(symbols) != 2:
            raise _error(source, f"bonds.{k}", f"a bond names one pair of elements, got {len(symbols)} elements")
        spec = _check_mapping(spec, f"bonds.{k}", source, _BOND_KEYS)
        ext[symbols].update(spec)
        ext[symbols[::-1]].update(spec)
    return ext


def _embeddings_ext(potential, elements, source):
    embeddings = potential.get("embeddings") or {}
    if not isinstance(embeddings, dict):
        raise _error(source, "embeddings", f"expected a mapping, got {embeddings!r}")
    ext = {el: {} for el in elements}
    for kw in EMBEDDING_KEYWORDS:
        if kw in embeddings:
            spec = _check_mapping(embeddings[kw], f"embeddings.{kw}", source, _EMBEDDING_KEYS)
            for el in elements:
                ext[el].update(spec)
    for k, spec in embeddings.items():
        if k in EMBEDDING_KEYWORDS:
            continue
        if k not in elements:
            raise _error(source, f"embeddings.{k}", f"'{k}' is neither ALL, UNARY nor an element of "
                         f"[{', '.join(elements)}]")
        ext[k].update(_check_mapping(spec, f"embeddings.{k}", source, _EMBEDDING_KEYS))
    return ext


def _embedding(el, spec, source) -> EmbeddingSpec:
    where = f"embeddings ({el})"
    spec = dict(spec)
    if spec.get("npot") == LINEAR_NPOT:        # acemd's name for F(rho) = rho
        if spec.get("ndensity", 1) != 1 or [float(v) for v in spec.get("fs_parameters", [1, 1])] != [1.0, 1.0]:
            raise _error(source, where, "npot: linear means ndensity 1 and fs_parameters [1, 1]")
        spec.update(npot="FinnisSinclairShiftedScaled", ndensity=1, fs_parameters=[1, 1])
    if "ndensity" not in spec:
        raise _error(source, where, "no ndensity: give it in embeddings.ALL or embeddings." + el)
    nd = spec["ndensity"]
    if isinstance(nd, bool) or not isinstance(nd, (int, np.integer)) or nd < 1:
        raise _error(source, f"{where}.ndensity", f"expected a positive integer, got {nd!r}")
    npot = spec.get("npot", "FinnisSinclairShiftedScaled")
    if npot not in EMBEDDINGS:
        raise _error(source, f"{where}.npot", f"'{npot}' is not one of {', '.join(EMBEDDINGS)} (or linear)")
    fs = spec.get("fs_parameters")
    if fs is None:
        raise _error(source, f"{where}.fs_parameters", f"missing: give {2 * nd} values [w_1, m_1, ...]")
    fs = [float(v) for v in fs]
    if len(fs) != 2 * nd:
        raise _error(source, f"{where}.fs_parameters", f"has {len(fs)} values, ndensity {nd} needs {2 * nd}")
    return EmbeddingSpec(npot=npot, fs_parameters=fs, ndensity=int(nd),
                         rho_core_cut=float(spec.get("rho_core_cut", 100000.0)),
                         drho_core_cut=float(spec.get("drho_core_cut", 250.0)))


def _bond(pair, spec, shape, source) -> BondSpec:
    where = f"bonds ({pair[0]}-{pair[1]})"
    for key in ("rcut", "radparameters"):
        if key not in spec:
            raise _error(source, where, f"no {key}: give it in bonds.ALL, "
                         f"{'UNARY' if pair[0] == pair[1] else 'BINARY'} or {pair[0]}{pair[1]}")
    radbase = spec.get("radbase", "ChebExpCos")
    if radbase not in RADIAL_BASES:
        raise _error(source, f"{where}.radbase", f"'{radbase}' is not one of {', '.join(RADIAL_BASES)}")
    params = spec["radparameters"]
    if not isinstance(params, (list, tuple)) or not params:
        raise _error(source, f"{where}.radparameters", f"expected a non-empty list, got {params!r}")
    rcut = float(spec["rcut"])
    if not rcut > 0:
        raise _error(source, f"{where}.rcut", f"must be positive, got {rcut}")
    ictype = spec.get("inner_cutoff_type", "distance")
    if ictype not in INNER_CUTOFF_TYPES:
        raise _error(source, f"{where}.inner_cutoff_type", f"'{ictype}' is not one of {', '.join(INNER_CUTOFF_TYPES)}")
    core = spec.get("core-repulsion", (0.0, 0.0))
    if not isinstance(core, (list, tuple)) or len(core) != 2:
        raise _error(source, f"{where}.core-repulsion", f"expected [prefactor, lambda], got {core!r}")
    nradmax, lmax, nradbase = shape
    return BondSpec(radbase=radbase, radparameters=[float(v) for v in params], rcut=rcut,
                    dcut=float(spec.get("dcut", 0.0)), nradmax=nradmax, lmax=lmax, nradbase=nradbase,
                    cutoff_function=str(spec.get("NameOfCutoffFunction", "cos")),
                    r_in=float(spec.get("r_in", 0.0)), delta_in=float(spec.get("delta_in", 0.0)),
                    inner_cutoff_type=ictype, core_repulsion=(float(core[0]), float(core[1])))


def _block_functions(key, spec):
    """pacemaker's functions of one block, in its creation order."""
    central = key[0]
    elms = tuple(sorted(set(key)))
    out = []
    seen = set()
    for rank, (nmax, lmax) in enumerate(zip(spec["nradmax_by_orders"], spec["lmax_by_orders"]), start=1):
        for mus in combinations_with_replacement(elms, rank):
            if len(set((central,) + mus)) != len(elms):
                continue
            for ns in product(range(1, nmax + 1), repeat=rank):
                multiset = tuple(sorted(zip(mus, ns)))
                if multiset in seen:
                    continue
                seen.add(multiset)
                runs = runs_of(mus, ns)
                for ls, LS in independent_couplings(runs, int(lmax)):
                    out.append(FunctionSpec(elements=(central,) + mus, ns=ns, ls=ls, LS=LS))
    return out


def _bonds_of_key(key):
    if len(key) == 1:
        return [(key[0], key[0])]
    out = []
    for other in key[1:]:
        out += [(key[0], other), (other, key[0])]
    return out


def _spec_shapes(functions_ext, bonds_ext, source):
    """(nradbase, nradmax, lmax) per bond from the function specifications (pacemaker's update_bonds_ext)."""
    shapes = {}
    for key, spec in functions_ext.items():
        nr, lm = spec["nradmax_by_orders"], spec["lmax_by_orders"]
        need = {"nradbase": nr[0], "nradmax": max(nr[1:]) if len(nr) > 1 else 0, "lmax": max(lm)}
        for bond in _bonds_of_key(key):
            given = bonds_ext[bond]
            cur = shapes.setdefault(bond, {"nradbase": 0, "nradmax": 0, "lmax": 0})
            for kw, value in need.items():
                if kw in given:
                    if given[kw] < value:
                        raise _error(source, f"bonds ({bond[0]}-{bond[1]}).{kw}",
                                     f"{given[kw]} is less than {value} that the functions of block "
                                     f"'{' '.join(key)}' need: raise it or remove it")
                    cur[kw] = max(cur[kw], given[kw])
                else:
                    cur[kw] = max(cur[kw], value)
    return shapes


def _function_shapes(blocks):
    """(nradbase, nradmax, lmax) per bond that the functions use, symmetric in the pair."""
    shapes: dict[tuple, dict] = {}
    for b in blocks:
        for f in b.functions:
            for mu, n, l in zip(f.elements[1:], f.ns, f.ls):
                cur = shapes.setdefault((f.elements[0], mu), {"nradbase": 0, "nradmax": 0, "lmax": 0})
                cur["nradbase" if f.rank == 1 else "nradmax"] = max(cur["nradbase" if f.rank == 1 else "nradmax"], n)
                cur["lmax"] = max(cur["lmax"], l)
    for (a, b), cur in list(shapes.items()):
        other = shapes.setdefault((b, a), {"nradbase": 0, "nradmax": 0, "lmax": 0})
        for kw in cur:
            cur[kw] = other[kw] = max(cur[kw], other[kw])
    return shapes


def _power_order(f: FunctionSpec):
    return f.rank + sum(f.ns) + sum(f.ls)


def _body_order(f: FunctionSpec):
    return (f.rank, f.ns, f.ls, f.LS, f.elements)


def build_basis(potential: dict, *, source="input.yaml") -> BasisSpec:
    """The basis pacemaker builds for its ``potential:`` section (see the module docstring).

    Raises :class:`BasisSpecError` naming the key and what to do.
    """
    if not isinstance(potential, dict):
        raise BasisSpecError(f"{source}: potential: expected a mapping, got {type(potential).__name__}")
    elements = potential.get("elements")
    if (not isinstance(elements, (list, tuple)) or not elements
            or not all(isinstance(e, str) and _ELEMENT.fullmatch(e) for e in elements)):
        raise _error(source, "elements", f"expected a list of element symbols such as [Cu] or [Al, Ni], "
                     f"got {elements!r}")
    from ase.data import chemical_symbols
    unknown = [e for e in elements if e not in chemical_symbols]
    if unknown:
        raise _error(source, "elements", f"'{unknown[0]}' is not a chemical element symbol")
    if len(set(elements)) != len(elements):
        raise _error(source, "elements", f"{list(elements)} names an element twice")
    elements = sorted(elements)
    delta = potential.get("deltaSplineBins", 0.001)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
        raise _error(source, "deltaSplineBins", f"must be a positive number (Å), got {delta!r}")

    functions_ext, cap = _functions_ext(potential, elements, source)
    bonds_ext = _bonds_ext(potential, elements, source)
    embeddings_ext = _embeddings_ext(potential, elements, source)

    blocks = [BlockSpec(elements=key, functions=_block_functions(key, spec)) for key, spec in functions_ext.items()]
    names = {b.elements for b in blocks}
    for el in elements:
        if (el,) not in names:
            raise _error(source, "functions", f"no block for element {el} alone: add UNARY or ALL (or {el})")
    for a, b in permutations(elements, 2):
        if (a, b) not in names:
            raise _error(source, "functions", f"no block '{a} {b}': the bond {a}-{b} is defined in the "
                         f"two-element blocks; add BINARY or ALL (or [{a}, {b}])")

    if cap is not None:
        per_block = int(cap) * len(elements) // len(blocks)
        if per_block == 0:
            raise _error(source, f"functions.{FUNCTIONS_CAP_KEY}", f"{cap} per element leaves no function in "
                         f"the {len(blocks)} blocks (pacemaker keeps N * nelements // nblocks per block): "
                         f"give at least {-(-len(blocks) // len(elements))}")
        for b in blocks:
            kept = sorted(b.functions, key=_power_order)[:per_block]
            b.functions = sorted(kept, key=_body_order)
        shapes = _function_shapes(blocks)
    else:
        spec_shapes = _spec_shapes(functions_ext, bonds_ext, source)
        shapes = _function_shapes(blocks)
        for bond, cur in spec_shapes.items():
            have = shapes.setdefault(bond, {"nradbase": 0, "nradmax": 0, "lmax": 0})
            for kw in have:
                have[kw] = max(have[kw], cur[kw])

    for b in blocks:
        if len(b.elements) == 1:
            b.embedding = _embedding(b.central, embeddings_ext[b.central], source)
        if len(b.elements) <= 2:
            pair = (b.elements[0], b.elements[-1])
            s = shapes.get(pair, {"nradbase": 0, "nradmax": 0, "lmax": 0})
            b.bond = _bond(pair, bonds_ext[pair], (s["nradmax"], s["lmax"], s["nradbase"]), source)
    return BasisSpec(elements=list(elements), delta_spline_bins=float(delta), blocks=blocks, source=str(source))
