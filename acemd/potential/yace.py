"""Reader for ``.yace`` files: the C-tilde YAML written by pacemaker's
``pace_yaml2yace`` and read by LAMMPS ML-PACE."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from .model import Bond, CTildeFunction, CTildePotential, Embedding, PotentialFileError

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TupleKeyLoader(_BaseLoader):
    """Safe YAML loader that accepts flow-sequence mapping keys such as ``[0, 1]:``."""


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list):
            key = tuple(key)
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_TupleKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_tree(path) -> dict:
    """Parse a YAML potential file into plain Python objects (list keys become tuples)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PotentialFileError(path, "", "file not found") from None
    try:
        tree = yaml.load(text, Loader=_TupleKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PotentialFileError(path, where, f"invalid YAML: {problem}") from None
    if not isinstance(tree, dict):
        raise PotentialFileError(path, "", "expected a YAML mapping at the top level")
    return tree


class _Fields:
    """Typed access to a mapping with errors that name the file and key path."""

    def __init__(self, path, mapping, where):
        self.path, self.mapping, self.where = path, mapping, where
        if not isinstance(mapping, dict):
            raise PotentialFileError(path, where, "expected a mapping")

    def _key(self, key):
        return f"{self.where}.{key}" if self.where else key

    def get(self, key, kind, default=None, required=True):
        if key not in self.mapping:
            if required and default is None:
                raise PotentialFileError(self.path, self._key(key), "missing key")
            return default
        value = self.mapping[key]
        try:
            if kind is float:
                return float(value)
            if kind is int:
                if isinstance(value, bool) or float(value) != int(value):
                    raise ValueError
                return int(value)
            if kind is str:
                if not isinstance(value, str):
                    raise ValueError
                return value
            if kind is list:
                if not isinstance(value, list):
                    raise ValueError
                return value
        except (TypeError, ValueError):
            raise PotentialFileError(self.path, self._key(key),
                                     f"expected {kind.__name__}, got {value!r}") from None
        raise TypeError(kind)

    def floats(self, key, default=None):
        value = self.get(key, list, default=default)
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):
            raise PotentialFileError(self.path, self._key(key), "expected a list of numbers") from None

    def ints(self, key):
        value = self.get(key, list)
        try:
            out = [int(v) for v in value]
        except (TypeError, ValueError):
            raise PotentialFileError(self.path, self._key(key), "expected a list of integers") from None
        if any(float(v) != o for v, o in zip(value, out)):
            raise PotentialFileError(self.path, self._key(key), "expected a list of integers")
        return out


def read_yace(path) -> CTildePotential:
    """Read a ``.yace`` file into a validated :class:`CTildePotential`."""
    path = Path(path)
    tree = load_yaml_tree(path)
    top = _Fields(path, tree, "")
    elements = top.get("elements", list)
    if not all(isinstance(e, str) for e in elements):
        raise PotentialFileError(path, "elements", "expected a list of element symbols")
    nel = len(elements)
    E0 = np.array(top.floats("E0", default=[0.0] * nel), dtype=float)
    delta = top.get("deltaSplineBins", float, default=0.001)

    emb_tree = tree.get("embeddings")
    if not isinstance(emb_tree, dict):
        raise PotentialFileError(path, "embeddings", "missing or not a mapping")
    embeddings = []
    for mu in range(nel):
        if mu not in emb_tree:
            raise PotentialFileError(path, f"embeddings.{mu}", f"missing embedding for element {elements[mu]}")
        f = _Fields(path, emb_tree[mu], f"embeddings.{mu}")
        embeddings.append(Embedding(
            ndensity=f.get("ndensity", int),
            npoti=f.get("npoti", str),
            fs_parameters=f.floats("FS_parameters"),
            rho_core_cutoff=f.get("rho_core_cutoff", float, default=0.0),
            drho_core_cutoff=f.get("drho_core_cutoff", float, default=0.0),
        ))

    bond_tree = tree.get("bonds")
    if not isinstance(bond_tree, dict):
        raise PotentialFileError(path, "bonds", "missing or not a mapping")
    bonds = {}
    for key, value in bond_tree.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise PotentialFileError(path, f"bonds.{key}", "bond keys must be [i, j]")
        where = f"bonds[{key[0]}, {key[1]}]"
        f = _Fields(path, value, where)
        nradmax = f.get("nradmax", int)
        lmax = f.get("lmax", int)
        nradbase = f.get("nradbasemax", int)
        crad_list = f.get("radcoefficients", list, default=[])
        try:
            crad = np.array(crad_list, dtype=float)
        except (TypeError, ValueError):
            raise PotentialFileError(path, where + ".radcoefficients",
                                     "expected a nested list [nradmax][lmax+1][nradbase] of numbers") from None
        if nradmax == 0 or crad.size == 0:
            crad = np.zeros((nradmax, lmax + 1, nradbase))
        bonds[key] = Bond(
            radbasename=f.get("radbasename", str),
            radparameters=f.floats("radparameters"),
            nradmax=nradmax, lmax=lmax, nradbase=nradbase,
            radcoefficients=crad,
            rcut=f.get("rcut", float),
            dcut=f.get("dcut", float, default=0.0),
            rcut_in=f.get("rcut_in", float, default=0.0),
            dcut_in=f.get("dcut_in", float, default=0.0),
            prehc=f.get("prehc", float, default=0.0),
            lambdahc=f.get("lambdahc", float, default=0.0),
            inner_cutoff_type=f.get("inner_cutoff_type", str, default="density"),
        )

    func_tree = tree.get("functions")
    if not isinstance(func_tree, dict):
        raise PotentialFileError(path, "functions", "missing or not a mapping")
    functions = []
    for mu in range(nel):
        block = func_tree.get(mu, [])
        if not isinstance(block, list):
            raise PotentialFileError(path, f"functions.{mu}", "expected a list of functions")
        funcs = []
        for idx, item in enumerate(block):
            f = _Fields(path, item, f"functions.{mu}[{idx}]")
            rank = f.get("rank", int)
            ndens = f.get("ndensity", int)
            nms = f.get("num_ms_combs", int)
            ms = f.ints("ms_combs")
            ct = f.floats("ctildes")
            if len(ms) != nms * rank:
                raise PotentialFileError(path, f.where + ".ms_combs",
                                         f"expected num_ms_combs*rank = {nms * rank} values, got {len(ms)}")
            if len(ct) != nms * ndens:
                raise PotentialFileError(path, f.where + ".ctildes",
                                         f"expected num_ms_combs*ndensity = {nms * ndens} values, got {len(ct)}")
            funcs.append(CTildeFunction(
                mu0=f.get("mu0", int), rank=rank,
                mus=tuple(f.ints("mus")), ns=tuple(f.ints("ns")), ls=tuple(f.ints("ls")),
                ms_combs=np.array(ms, dtype=np.int64).reshape(nms, rank),
                ctildes=np.array(ct, dtype=float).reshape(nms, ndens),
            ))
        functions.append(funcs)

    pot = CTildePotential(elements=list(elements), E0=E0, delta_spline_bins=delta,
                          embeddings=embeddings, bonds=bonds, functions=functions,
                          source=str(path))
    pot.validate()
    return pot
