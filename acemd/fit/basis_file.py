"""A pacemaker B-basis ``.yaml`` as a fit basis with its coefficients (upfitting, teacher models).

``spec_from_file`` reads the file's blocks into an :class:`~acemd.fit.basis.BasisSpec`
(the functions in the file's order, embeddings, bonds with their radial
coefficients) and returns the basis coefficients per element, so a fit can start
from an existing potential (pacemaker's ``potential: file.yaml`` and
``initial_potential``) and write it back in the same layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..potential.yace import load_yaml_tree
from .basis import BasisSpec, BasisSpecError, BlockSpec, BondSpec, EmbeddingSpec, FunctionSpec

__all__ = ["spec_from_file", "spec_from_tree"]


def _need(node, key, where, source):
    if key not in node:
        raise BasisSpecError(f"{source}: {where}: missing key '{key}'")
    return node[key]


def spec_from_tree(tree: dict, source="potential.yaml"):
    """(BasisSpec, coefficients per element (nfuncs, ndensity) in spec order, crad per unordered pair)."""
    if not isinstance(tree, dict) or "species" not in tree:
        raise BasisSpecError(f"{source}: not a pacemaker B-basis .yaml (no 'species' blocks)")
    delta = float(tree.get("global", {}).get("DeltaSplineBins", 0.001))
    blocks, coeffs = [], {}
    crad = {}
    for b, node in enumerate(tree["species"]):
        where = f"species[{b}]"
        elements = tuple(str(_need(node, "speciesblock", where, source)).split())
        functions, cs = [], []
        for k, item in enumerate(node.get("nbody", []) or []):
            fw = f"{where}.nbody[{k}]"
            types = tuple(str(_need(item, "type", fw, source)).split())
            ns = tuple(int(v) for v in _need(item, "nr", fw, source))
            ls = tuple(int(v) for v in _need(item, "nl", fw, source))
            LS = tuple(int(v) for v in item.get("lint", []) or [])
            functions.append(FunctionSpec(elements=types, ns=ns, ls=ls, LS=LS))
            cs.append([float(v) for v in _need(item, "c", fw, source)])
        block = BlockSpec(elements=elements, functions=functions)
        if "ndensityi" in node:
            params = [float(v) for v in _need(node, "parameters", where, source)]
            block.embedding = EmbeddingSpec(npot=str(_need(node, "npoti", where, source)), fs_parameters=params,
                                            ndensity=int(node["ndensityi"]),
                                            rho_core_cut=float(node.get("rho_core_cut", 100000.0)),
                                            drho_core_cut=float(node.get("drho_core_cut", 250.0)))
        if "radbase" in node:
            c = np.array(_need(node, "radcoefficients", where, source), dtype=float)
            core = node.get("core-repulsion", [0.0, 0.0])
            block.bond = BondSpec(
                radbase=str(node["radbase"]), radparameters=[float(v) for v in node["radparameters"]],
                rcut=float(node["rcutij"]), dcut=float(node["dcutij"]), nradmax=int(node["nradmaxi"]),
                lmax=int(node["lmaxi"]), nradbase=int(node["nradbaseij"]),
                cutoff_function=str(node.get("NameOfCutoffFunctionij", "cos")),
                r_in=float(node.get("r_in", 0.0)), delta_in=float(node.get("delta_in", 0.0)),
                inner_cutoff_type=str(node.get("inner_cutoff_type", "density")),   # the reader's default
                core_repulsion=(float(core[0]), float(core[1])), coefficients=c)
            crad[tuple(sorted((elements[0], elements[-1])))] = c
        blocks.append(block)
        coeffs.setdefault(elements[0], []).extend(cs)
    elements = sorted({b.elements[0] for b in blocks})
    spec = BasisSpec(elements=elements, delta_spline_bins=delta, blocks=blocks, source=str(source))
    nd = spec.ndensity
    out = []
    for mu, el in enumerate(elements):
        c = np.array(coeffs.get(el, []), dtype=float).reshape(-1, nd[mu]) if coeffs.get(el) else np.zeros((0, nd[mu]))
        out.append(c)
    return spec, out, crad


def spec_from_file(path):
    """:func:`spec_from_tree` of a B-basis ``.yaml`` file."""
    path = Path(path)
    return spec_from_tree(load_yaml_tree(path), source=str(path))
