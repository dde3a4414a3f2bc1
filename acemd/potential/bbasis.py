"""Reader for pacemaker's B-basis ``.yaml`` potentials.

The file is parsed, checked, and converted to the C-tilde form
(:class:`~acemd.potential.model.CTildePotential`) exactly as pacemaker's
``pace_yaml2yace`` (``ACEBBasisSet(yaml).to_ACECTildeBasisSet()``) does it, so
that the result equals the ``.yace`` pacemaker would write, function by
function and m-combination by m-combination:

1. elements are sorted alphabetically; bonds come from the 1-species blocks
   (``Cu``: Cu-Cu) and 2-species blocks (``Al Ni``: Al-Ni); a 2-species block
   without radial settings takes them from its mirror block (``Ni Al``);
2. every ``nbody`` entry becomes a B-function: generalized Clebsch-Gordan
   coupling (:mod:`acemd.potential.coupling`), "half basis" (combinations whose
   first nonzero m is negative dropped, those with a positive one doubled),
   then compression by the permutation symmetry of equal (mu, n, l) factors;
3. B-functions of one central element that share (mus, ns, ls) are summed
   into one C-tilde function: c~[ms][p] = sum_B c_B[p] * C_B(ms);
4. C-tilde functions are sorted by (rank, mus, ns, ls, number of
   m-combinations, m-combinations); rank 1 comes first.

A B-basis file has no E0: the result has E0 = 0 for every element.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .coupling import check_lint, compress_ms_combinations, half_basis_cg
from .model import (EMBEDDINGS, INNER_CUTOFF_TYPES, RADIAL_BASES, BFunction, Bond, CTildeFunction,
                    CTildePotential, Embedding, PotentialFileError)
from .yace import _Fields, load_yaml_tree

__all__ = ["read_bbasis_yaml", "bbasis_tree_to_potential"]

_RADIAL_KEYS = ("lmaxi", "nradmaxi", "nradbaseij", "radbase", "radparameters", "radcoefficients")


class _Block:
    """One parsed ``species`` entry."""

    def __init__(self, index, name):
        self.index = index
        self.name = name
        self.where = f"species[{index}]"
        self.elements = name.split()
        self.unique = set(self.elements)
        self.nspecies = len(self.unique)
        self.mu0 = self.elements[0]
        # pair the block describes (1-species: X-X; 2-species: first two names)
        self.pair = (self.elements[0], self.elements[1] if len(self.elements) > 1 else self.elements[0])
        self.embedding = None           # dict for 1-species blocks
        self.radial = None              # dict when lmaxi etc. are given
        self.core = None                # dict when core-repulsion is given
        self.inner = None               # (type, r_in, delta_in) as read (defaults applied)
        self.functions = []             # list of dicts


def _where_func(block, k, type_str):
    return f"{block.where}.nbody[{k}] (type: {type_str})"


def _read_radcoefficients(path, f: _Fields, nradmax, lmax, nradbase):
    """c_nlk with shape (nradmax, lmax+1, nradbase); nested or old flat (k, n, l) form."""
    where = f._key("radcoefficients")
    raw = f.get("radcoefficients", list, default=[])
    shape = (nradmax, lmax + 1, nradbase)
    size = nradmax * (lmax + 1) * nradbase
    if size == 0:
        return np.zeros(shape)
    if all(not isinstance(v, list) for v in raw):
        # deprecated flat list, ordered k (outer), n, l (inner)
        try:
            flat = [float(v) for v in raw]
        except (TypeError, ValueError):
            raise PotentialFileError(path, where, "expected numbers") from None
        if len(flat) != size:
            raise PotentialFileError(path, where,
                                     f"flat list has {len(flat)} values, expected "
                                     f"nradbaseij*nradmaxi*(lmaxi+1) = {size}")
        return np.array(flat, dtype=float).reshape(nradbase, nradmax, lmax + 1).transpose(1, 2, 0).copy()
    out = np.zeros(shape)
    if len(raw) < nradmax:
        raise PotentialFileError(path, where, f"has {len(raw)} rows, nradmaxi = {nradmax} needs "
                                 "[nradmaxi][lmaxi+1][nradbaseij]")
    for n in range(nradmax):
        row = raw[n]
        if not isinstance(row, list) or len(row) < lmax + 1:
            raise PotentialFileError(path, f"{where}[{n}]",
                                     f"expected a list of lmaxi+1 = {lmax + 1} lists")
        for l in range(lmax + 1):
            ks = row[l]
            if not isinstance(ks, list) or len(ks) < nradbase:
                raise PotentialFileError(path, f"{where}[{n}][{l}]",
                                         f"expected a list of nradbaseij = {nradbase} numbers")
            try:
                out[n, l, :] = [float(v) for v in ks[:nradbase]]
            except (TypeError, ValueError):
                raise PotentialFileError(path, f"{where}[{n}][{l}]", "expected numbers") from None
    return out


def _parse_block(path, index, node, elements_ndensity):
    if not isinstance(node, dict):
        raise PotentialFileError(path, f"species[{index}]", "expected a mapping")
    f = _Fields(path, node, f"species[{index}]")
    name = f.get("speciesblock", str)
    if not name.split():
        raise PotentialFileError(path, f._key("speciesblock"), "empty block name")
    block = _Block(index, " ".join(name.split()))

    if block.nspecies == 1:
        ndens = f.get("ndensityi", int)
        if ndens < 1:
            raise PotentialFileError(path, f._key("ndensityi"), f"must be >= 1, got {ndens}")
        npoti = f.get("npoti", str)
        if npoti not in EMBEDDINGS:
            raise PotentialFileError(path, f._key("npoti"),
                                     f"unsupported embedding '{npoti}'; supported: {', '.join(EMBEDDINGS)}")
        params = f.floats("parameters")
        if len(params) != 2 * ndens:
            raise PotentialFileError(path, f._key("parameters"),
                                     f"has {len(params)} values, ndensityi = {ndens} needs "
                                     f"{2 * ndens} ([w_1, m_1, w_2, m_2, ...])")
        if block.mu0 in elements_ndensity:
            raise PotentialFileError(path, f.where, f"a second single-species block for "
                                     f"{block.mu0} (its embedding is already defined)")
        elements_ndensity[block.mu0] = ndens
        block.embedding = dict(
            ndensity=ndens, npoti=npoti, fs_parameters=params,
            rho_core_cutoff=f.get("rho_core_cut", float, default=100000.0),
            drho_core_cutoff=f.get("drho_core_cut", float, default=250.0),
        )

    if "lmaxi" in node:
        lmax = f.get("lmaxi", int)
        nradmax = f.get("nradmaxi", int)
        nradbase = f.get("nradbaseij", int)
        for key, val in (("lmaxi", lmax), ("nradmaxi", nradmax), ("nradbaseij", nradbase)):
            if val < 0:
                raise PotentialFileError(path, f._key(key), f"must be >= 0, got {val}")
        radbase = f.get("radbase", str)
        if radbase not in RADIAL_BASES:
            raise PotentialFileError(path, f._key("radbase"),
                                     f"unsupported radial basis '{radbase}'; supported: "
                                     f"{', '.join(RADIAL_BASES)}")
        radparameters = f.floats("radparameters")
        if not radparameters:
            raise PotentialFileError(path, f._key("radparameters"), "needs at least one value (lambda)")
        block.radial = dict(
            lmax=lmax, nradmax=nradmax, nradbase=nradbase, radbasename=radbase,
            radparameters=radparameters,
            radcoefficients=_read_radcoefficients(path, f, nradmax, lmax, nradbase),
            rcut=f.get("rcutij", float), dcut=f.get("dcutij", float),
        )
        if not block.radial["rcut"] > 0:
            raise PotentialFileError(path, f._key("rcutij"), f"must be positive, got {block.radial['rcut']}")
    else:
        partial = [k for k in _RADIAL_KEYS if k in node]
        if partial:
            raise PotentialFileError(path, f._key("lmaxi"),
                                     f"missing key; the radial basis of block '{block.name}' is only "
                                     f"partially defined ({', '.join(partial)} given)")

    if "core-repulsion" in node:
        core = f.floats("core-repulsion")
        if len(core) != 2:
            raise PotentialFileError(path, f._key("core-repulsion"),
                                     f"expected [prefactor, lambda], got {len(core)} values")
        block.core = core
    ictype = f.get("inner_cutoff_type", str, default="density")
    if ictype not in INNER_CUTOFF_TYPES:
        raise PotentialFileError(path, f._key("inner_cutoff_type"),
                                 f"unknown inner cutoff type '{ictype}'; expected one of "
                                 f"{', '.join(INNER_CUTOFF_TYPES)}")
    block.inner = (ictype, f.get("r_in", float, default=0.0), f.get("delta_in", float, default=0.0))

    nbody = node.get("nbody", [])
    if nbody is None:
        nbody = []
    if not isinstance(nbody, list):
        raise PotentialFileError(path, f._key("nbody"), "expected a list of functions")
    for k, item in enumerate(nbody):
        fw = f"{block.where}.nbody[{k}]"
        if not isinstance(item, dict):
            raise PotentialFileError(path, fw, "expected a mapping {type, nr, nl, lint, c}")
        ff = _Fields(path, item, fw)
        type_str = ff.get("type", str)
        where = _where_func(block, k, type_str)
        types = type_str.split()
        if types[0] != block.mu0:
            raise PotentialFileError(path, where, f"central element {types[0]} differs from the "
                                     f"block's first element {block.mu0}")
        for el in types[1:]:
            if el not in block.unique:
                raise PotentialFileError(path, where, f"element {el} is not in block '{block.name}'")
        rank = len(types) - 1
        if rank < 1:
            raise PotentialFileError(path, where, "a function needs at least one neighbour element")
        ns = ff.ints("nr")
        ls = ff.ints("nl")
        if len(ns) != rank:
            raise PotentialFileError(path, where, f"nr has {len(ns)} values, rank {rank} needs {rank}")
        if len(ls) != rank:
            raise PotentialFileError(path, where, f"nl has {len(ls)} values, rank {rank} needs {rank}")
        if min(ns) < 1:
            raise PotentialFileError(path, where, f"nr = {ns}: radial indices start at 1")
        c = item.get("c")
        if not isinstance(c, list):
            c = [c]
        try:
            coeffs = [float(v) for v in c]
        except (TypeError, ValueError):
            raise PotentialFileError(path, where, f"c = {item.get('c')!r}: expected numbers") from None
        if rank > 2:
            if "lint" not in item:
                raise PotentialFileError(path, where, f"missing key lint (rank {rank} needs {rank - 2} values)")
            lint_raw = item["lint"] if isinstance(item["lint"], list) else [item["lint"]]
            try:
                lint = [int(v) for v in lint_raw]
                if any(float(v) != int(v) for v in lint_raw):
                    raise ValueError
            except (TypeError, ValueError):
                raise PotentialFileError(path, where, f"lint = {item['lint']!r}: expected integers") from None
        else:
            lint = []
        try:
            lint = check_lint(ls, lint)
        except ValueError as exc:
            raise PotentialFileError(path, where, str(exc)) from None
        skip = item.get("skip", False)
        block.functions.append(dict(where=where, elements=types, ns=tuple(ns), ls=tuple(ls),
                                    LS=lint, coeffs=coeffs, skip=bool(skip)))
    return block


def _fill_from_mirror(path, blocks):
    """2-species blocks take missing radial / core-repulsion settings from their mirror."""
    for b in blocks:
        if b.nspecies != 2:
            continue
        for d in blocks:
            if d.elements != [b.elements[1], b.elements[0]]:
                continue
            if b.radial is None:
                if d.radial is None:
                    raise PotentialFileError(path, b.where,
                                             f"radial basis defined neither in '{b.name}' nor in '{d.name}'")
                b.radial = d.radial
            elif d.radial is not None and not _same_radial(b, d):
                raise PotentialFileError(path, b.where, f"radial basis of '{b.name}' differs from "
                                         f"its mirror block '{d.name}' ({d.where})")
            if b.core is None and d.core is not None:
                b.core, b.inner = d.core, d.inner
            elif b.core is not None and d.core is not None:
                if b.core != d.core:
                    raise PotentialFileError(path, b.where, f"core-repulsion of '{b.name}' differs from "
                                             f"its mirror block '{d.name}'")
                if b.inner[1:] != d.inner[1:]:
                    raise PotentialFileError(path, b.where, f"r_in/delta_in of '{b.name}' differ from "
                                             f"its mirror block '{d.name}'")


def _same_radial(b, d):
    r1, r2 = b.radial, d.radial
    for key in ("lmax", "nradmax", "nradbase", "radbasename", "radparameters", "rcut", "dcut"):
        if r1[key] != r2[key]:
            return False
    return np.array_equal(r1["radcoefficients"], r2["radcoefficients"]) and b.inner == d.inner


def read_bbasis_yaml(path) -> CTildePotential:
    """Read a pacemaker B-basis ``.yaml`` and convert it to a :class:`CTildePotential`.

    Raises :class:`PotentialFileError` naming the key path (and the function) for
    malformed files or features acemd cannot evaluate.
    """
    path = Path(path)
    return bbasis_tree_to_potential(load_yaml_tree(path), path)


def bbasis_tree_to_potential(tree: dict, path="<B-basis>") -> CTildePotential:
    """Convert a parsed B-basis tree (the ``.yaml`` as nested dicts/lists) to a potential.

    ``path`` only names the source in error messages and ``potential.source``;
    this lets a basis built in memory (``acemd.fit``) become a potential without
    a file, by exactly the conversion a file goes through.
    """
    if "species" not in tree:
        hint = (" (this looks like a C-tilde .yace file: read it with read_yace)"
                if "functions" in tree and "elements" in tree else "")
        raise PotentialFileError(path, "species", "missing key" + hint)
    gnode = tree.get("global")
    if not isinstance(gnode, dict):
        raise PotentialFileError(path, "global", "missing or not a mapping")
    delta = _Fields(path, gnode, "global").get("DeltaSplineBins", float)
    if not delta > 0:
        raise PotentialFileError(path, "global.DeltaSplineBins", f"must be positive, got {delta}")
    species = tree["species"]
    if not isinstance(species, list) or not species:
        raise PotentialFileError(path, "species", "expected a non-empty list of species blocks")

    elements_ndensity: dict[str, int] = {}
    blocks = [_parse_block(path, i, node, elements_ndensity) for i, node in enumerate(species)]
    elements = sorted({el for b in blocks for el in b.elements})
    index = {el: i for i, el in enumerate(elements)}
    _fill_from_mirror(path, blocks)

    # inner cutoff type: one for all 1- and 2-species blocks
    ictype = None
    for b in blocks:
        if b.nspecies <= 2:
            if ictype is None:
                ictype = (b.inner[0], b)
            elif b.inner[0] != ictype[0]:
                raise PotentialFileError(path, f"{b.where}.inner_cutoff_type",
                                         f"'{b.inner[0]}' differs from '{ictype[0]}' of block "
                                         f"'{ictype[1].name}'; it must be the same in all one- and "
                                         "two-species blocks")

    # embeddings
    emb_by_el = {b.mu0: b.embedding for b in blocks if b.embedding is not None}
    embeddings = []
    for el in elements:
        if el not in emb_by_el:
            raise PotentialFileError(path, "species", f"no single-species block '{el}' "
                                     f"(embedding of {el} undefined)")
        embeddings.append(Embedding(**emb_by_el[el]))

    # bonds
    bonds: dict[tuple[int, int], Bond] = {}
    bond_where: dict[tuple[int, int], str] = {}
    for b in blocks:
        if b.nspecies > 2:
            continue
        if b.radial is None:
            raise PotentialFileError(path, f"{b.where}.lmaxi",
                                     f"missing key (block '{b.name}' must define its radial basis)")
        key = (index[b.pair[0]], index[b.pair[1]])
        r = b.radial
        core = b.core if b.core is not None else [0.0, 0.0]
        bond = Bond(radbasename=r["radbasename"], radparameters=list(r["radparameters"]),
                    nradmax=r["nradmax"], lmax=r["lmax"], nradbase=r["nradbase"],
                    radcoefficients=r["radcoefficients"].copy(), rcut=r["rcut"], dcut=r["dcut"],
                    rcut_in=b.inner[1], dcut_in=b.inner[2], prehc=core[0], lambdahc=core[1],
                    inner_cutoff_type=b.inner[0])
        if key in bonds:
            raise PotentialFileError(path, b.where, f"bond {b.pair[0]}-{b.pair[1]} is already "
                                     f"defined by {bond_where[key]}")
        bonds[key] = bond
        bond_where[key] = b.where
    for i, ei in enumerate(elements):
        for j, ej in enumerate(elements):
            if (i, j) in bonds:
                continue
            if (j, i) in bonds:          # only one direction given: the radial basis is symmetric
                src = bonds[(j, i)]
                bonds[(i, j)] = Bond(**{**src.__dict__, "radcoefficients": src.radcoefficients.copy(),
                                        "radparameters": list(src.radparameters)})
            else:
                raise PotentialFileError(path, "species", f"no radial basis for the pair {ei}-{ej}: "
                                         f"add a block '{ei} {ej}' (or '{ej} {ei}')")

    # B-functions per central element, in file order
    bfuncs: list[list[dict]] = [[] for _ in elements]
    for b in blocks:
        mu0 = index[b.mu0]
        for fn in b.functions:
            if fn["skip"]:
                continue
            where = fn["where"]
            nd = embeddings[mu0].ndensity
            if len(fn["coeffs"]) != nd:
                raise PotentialFileError(path, where, f"c has {len(fn['coeffs'])} values, the embedding "
                                         f"of {b.mu0} has ndensity {nd}")
            mus = tuple(index[el] for el in fn["elements"][1:])
            rank = len(mus)
            for t in range(rank):
                bond = bonds[(mu0, mus[t])]
                n, l = fn["ns"][t], fn["ls"][t]
                nmax, what = (bond.nradbase, "nradbaseij") if rank == 1 else (bond.nradmax, "nradmaxi")
                if n > nmax:
                    raise PotentialFileError(path, where, f"nr = {list(fn['ns'])}: n = {n} exceeds {what} "
                                             f"= {nmax} of bond {b.mu0}-{elements[mus[t]]}")
                if l > bond.lmax:
                    raise PotentialFileError(path, where, f"nl = {list(fn['ls'])}: l = {l} exceeds lmaxi "
                                             f"= {bond.lmax} of bond {b.mu0}-{elements[mus[t]]}")
            ms, gen = half_basis_cg(fn["ls"], fn["LS"])
            bfuncs[mu0].append(dict(where=where, mus=mus, ns=fn["ns"], ls=fn["ls"], LS=fn["LS"],
                                    coeffs=np.array(fn["coeffs"], dtype=float), ms=ms, gen=gen))

    functions = [_to_ctilde(mu0, bfuncs[mu0], embeddings[mu0].ndensity) for mu0 in range(len(elements))]
    # the B-functions themselves, in pacemaker's sorted order (the order of active-set projections)
    bbasis = [[BFunction(mu0=mu0, mus=f["mus"], ns=tuple(f["ns"]), ls=tuple(f["ls"]), LS=tuple(f["LS"]),
                         coeffs=f["coeffs"], ms_combs=f["ms"], gen_cgs=f["gen"])
               for f in sorted(bfuncs[mu0], key=lambda f: _sort_key(len(f["ls"]), f["mus"], f["ns"],
                                                                    f["ls"], f["ms"]))]
              for mu0 in range(len(elements))]

    metadata = tree.get("metadata")
    pot = CTildePotential(elements=elements, E0=np.zeros(len(elements)), delta_spline_bins=delta,
                          embeddings=embeddings, bonds=bonds, functions=functions, source=str(path),
                          metadata=dict(metadata) if isinstance(metadata, dict) else {},
                          bbasis=bbasis)
    pot.validate()
    return pot


def _sort_key(rank, mus, ns, ls, ms):
    """pacemaker's basis-function order: rank, mus, ns, ls, #ms, ms (flattened)."""
    return (rank, tuple(mus), tuple(ns), tuple(ls), len(ms), tuple(np.asarray(ms).ravel().tolist()))


def _to_ctilde(mu0, funcs, ndensity) -> list[CTildeFunction]:
    # pacemaker sorts the B-functions (before compressing them), then compresses
    funcs = sorted(funcs, key=lambda f: _sort_key(len(f["ls"]), f["mus"], f["ns"], f["ls"], f["ms"]))
    groups: dict[tuple, list] = {}
    for f in funcs:
        mus, ns, ls, ms, gen = compress_ms_combinations(f["mus"], f["ns"], f["ls"], f["ms"], f["gen"])
        groups.setdefault((mus, ns, ls), []).append((f["coeffs"], ms, gen))
    out = []
    for (mus, ns, ls), members in groups.items():
        rank = len(ls)
        acc: dict[tuple[int, ...], np.ndarray] = {}
        for coeffs, ms, gen in members:
            for row, g in zip(ms.tolist(), gen.tolist()):
                key = tuple(row)
                if key not in acc:
                    acc[key] = np.zeros(ndensity)
                acc[key] += coeffs * g
        keys = sorted(acc)
        ms_arr = np.array(keys, dtype=np.int64).reshape(len(keys), rank)
        ct = np.array([acc[k] for k in keys], dtype=float).reshape(len(keys), ndensity)
        out.append(CTildeFunction(mu0=mu0, rank=rank, mus=tuple(mus), ns=tuple(ns), ls=tuple(ls),
                                  ms_combs=ms_arr, ctildes=ct))
    out.sort(key=lambda c: _sort_key(c.rank, c.mus, c.ns, c.ls, c.ms_combs))
    return out
