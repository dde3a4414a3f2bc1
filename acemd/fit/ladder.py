"""The ladder (hierarchical) fit's schedule: which B-functions each step fits, as pacemaker grows them.

pacemaker's ladder scheme (Bochkarev et al., Phys. Rev. Materials 6, 013804 (2022)) fits a basis in
steps, each adding functions to the last step's fitted potential.  The rule, as pacemaker applies it:

* the step size comes from ``fit.ladder_step``: an integer n, a fraction f, or both; the size is
  max(n, round(f * current), 1) with ``current`` the number of functions fitted so far (all blocks,
  Python's round), cut to what is left (``final - current``);
* every species block adds up to that many functions (so a step of 10 adds up to 10 per block, not 10
  in all): the block's functions of the full basis not yet present, in the ladder order, first come
  first -- ``body_order`` sorts by (rank, ns, ls, LS, elements), ``power_order`` by rank + sum(ns) +
  sum(ls) (a stable sort, ties keep the full basis' order);
* a step's block lists its functions in body order, old and new together; the radial shape of every
  bond (nradbase, nradmax, lmax) is what the step's functions need (symmetric in the pair), and at
  least the initial potential's;
* the schedule ends when no block has anything left to add.

The start is empty or an initial potential (``potential.initial_potential``): its functions are kept
(matched to the full basis by elements, ns, ls, LS); its blocks that the full basis lacks are kept
after the full basis' blocks.  One deviation from pacemaker: when the initial potential has functions
the full basis lacks, acemd counts them into ``final`` so that every function of the full basis is still
added (pacemaker's cut would then stop short of the full basis).

:func:`carry_coefficients` maps one step's fitted coefficients onto the next step's basis: functions
already fitted keep their coefficients, new ones start at 0 (pacemaker's initial value); radial
coefficients keep the common sub-block c[:n, :l+1, :k] and start the rest at delta_nk.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .basis import BasisSpec, BlockSpec, FunctionSpec, _body_order, _function_shapes, _power_order

__all__ = ["LadderError", "LadderStep", "LadderSchedule", "ladder_step_size", "ladder_order", "ladder_schedule",
           "carry_coefficients", "delta_crad"]

LADDER_TYPES = ("body_order", "power_order")


class LadderError(ValueError):
    """A ladder that cannot be built: a bad ladder_step or ladder_type, or an initial potential that does
    not fit the basis.  Names the value and what to do."""


@dataclass(frozen=True)
class LadderStep:
    """One step: ``spec`` the basis fitted in this step (blocks as in :class:`LadderSchedule`, functions in
    body order, bonds shaped by the functions); ``size`` the functions per block the step asked for;
    ``added`` per block the functions new in this step."""

    index: int
    size: int
    spec: BasisSpec
    added: tuple[tuple[FunctionSpec, ...], ...]

    @property
    def nfunctions(self) -> int:
        return self.spec.total

    @property
    def nadded(self) -> int:
        return sum(len(a) for a in self.added)


@dataclass(frozen=True)
class LadderSchedule:
    """The steps from ``initial`` (the start's basis, possibly with no functions) to the full basis."""

    initial: BasisSpec
    steps: tuple[LadderStep, ...]
    final_total: int

    def __len__(self):
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __getitem__(self, k):
        return self.steps[k]


def _parse_step(ladder_step) -> tuple[int, float] | None:
    """(functions, fraction) of pacemaker's ladder_step (an int, a fraction, a list of both, a pair)."""
    if ladder_step is None:
        return None
    items = list(ladder_step) if isinstance(ladder_step, (list, tuple)) else [ladder_step]
    n, frac = 0, 0.0
    bad = LadderError(f"ladder_step must be an integer >= 1, a fraction in (0, 1) or both ([10, 0.02]), got "
                      f"{ladder_step!r}")
    if not items or len(items) > 2:
        raise bad
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise bad
        if isinstance(x, (int, np.integer)) and x >= 1:
            if n:
                raise bad
            n = int(x)
        elif 0 < x < 1:
            if frac:
                raise bad
            frac = float(x)
        elif x != 0 or len(items) != 2:        # (n, 0.0) and (0, f) are the config's pairs
            raise bad
    if n == 0 and frac == 0.0:
        raise bad
    return n, frac


def ladder_step_size(ladder_step, current: int, final: int) -> int:
    """Functions per block the next step adds: max(n, round(f * current), 1), cut to ``final - current``
    (never below 0); ``ladder_step`` None adds everything left."""
    left = max(int(final) - int(current), 0)
    parsed = _parse_step(ladder_step)
    if parsed is None:
        return left
    n, frac = parsed
    return min(max(n, int(round(frac * current)), 1), left)


def ladder_order(functions, ladder_type: str) -> list[int]:
    """Indices of ``functions`` in the order the ladder adds them (a stable sort)."""
    if ladder_type == "body_order":
        key = _body_order
    elif ladder_type == "power_order":
        key = _power_order
    else:
        raise LadderError(f"ladder_type must be one of {', '.join(LADDER_TYPES)}, got {ladder_type!r}")
    return sorted(range(len(functions)), key=lambda k: key(functions[k]))


def _block_shell(block: BlockSpec) -> BlockSpec:
    """A copy of the block without functions, its embedding and bond copied (a step owns its specs)."""
    return BlockSpec(elements=block.elements, functions=[],
                     embedding=replace(block.embedding) if block.embedding is not None else None,
                     bond=replace(block.bond) if block.bond is not None else None)


def _radial_shape(bond) -> dict:
    c = bond.coefficients
    if c is not None and np.ndim(c) == 3:
        return {"nradmax": c.shape[0], "lmax": c.shape[1] - 1, "nradbase": c.shape[2]}
    return {"nradmax": bond.nradmax, "lmax": bond.lmax, "nradbase": bond.nradbase}


def _make_spec(template: BasisSpec, blocks: list[BlockSpec], functions: list[list[FunctionSpec]],
               floor: dict) -> BasisSpec:
    """A BasisSpec of these blocks with these functions; bond shapes from the functions, at least ``floor``
    (per ordered pair), without coefficients (the step's radial coefficients come from carry_coefficients)."""
    out = []
    for block, funcs in zip(blocks, functions):
        b = _block_shell(block)
        b.functions = sorted(funcs, key=_body_order)
        out.append(b)
    shapes = _function_shapes(out)
    for pair, low in floor.items():
        cur = shapes.setdefault(pair, {"nradbase": 0, "nradmax": 0, "lmax": 0})
        for kw in cur:
            cur[kw] = max(cur[kw], low[kw])
    for b in out:
        if b.bond is not None and len(b.elements) <= 2:
            s = shapes.get((b.elements[0], b.elements[-1]), {"nradbase": 0, "nradmax": 0, "lmax": 0})
            b.bond = replace(b.bond, nradmax=s["nradmax"], lmax=s["lmax"], nradbase=s["nradbase"], coefficients=None)
    return BasisSpec(elements=list(template.elements), delta_spline_bins=template.delta_spline_bins, blocks=out,
                     source=template.source)


def ladder_schedule(full: BasisSpec, ladder_step, ladder_type: str = "body_order",
                    initial: BasisSpec | None = None) -> LadderSchedule:
    """The ladder from ``initial`` (None: empty) to the basis ``full``, as pacemaker grows it.

    ``ladder_step``: an int, a fraction, a list/pair of both (``FitOptions.ladder_step``), or None (all
    remaining functions in one step, pacemaker's ladder with an initial potential and no ladder_step).
    Blocks: those of ``full`` in its order, then the initial potential's blocks ``full`` lacks.
    Raises :class:`LadderError` for a bad step or type, or an initial potential of other elements.
    """
    _parse_step(ladder_step)
    ladder_order([], ladder_type)
    blocks = list(full.blocks)
    targets = [list(b.functions) for b in full.blocks]
    present = [[] for _ in blocks]
    floor = {}
    if initial is not None:
        missing = [el for el in initial.elements if el not in full.elements]
        if missing:
            raise LadderError(f"{initial.source}: the initial potential has element {missing[0]}, which the basis "
                              f"({', '.join(full.elements)}) lacks")
        index = {b.elements: k for k, b in enumerate(blocks)}
        for b in initial.blocks:
            if b.elements not in index:
                index[b.elements] = len(blocks)
                blocks.append(b)
                targets.append([])
                present.append([])
            k = index[b.elements]
            seen = set(present[k])
            present[k] += [f for f in b.functions if f not in seen]
            if b.bond is not None and len(b.elements) <= 2:
                s = _radial_shape(b.bond)
                for pair in ((b.elements[0], b.elements[-1]), (b.elements[-1], b.elements[0])):
                    cur = floor.setdefault(pair, {"nradbase": 0, "nradmax": 0, "lmax": 0})
                    for kw in cur:
                        cur[kw] = max(cur[kw], s[kw])
    orders = [[targets[k][i] for i in ladder_order(targets[k], ladder_type)] for k in range(len(blocks))]
    final = sum(len(set(t) | set(p)) for t, p in zip(targets, present))
    start = _make_spec(full, blocks, present, floor)
    steps = []
    current = [list(p) for p in present]
    while True:
        total = sum(len(c) for c in current)
        size = ladder_step_size(ladder_step, total, final)
        if size <= 0:
            break
        added = []
        for k in range(len(blocks)):
            have = set(current[k])
            new = [f for f in orders[k] if f not in have][:size]
            added.append(tuple(new))
            current[k] = current[k] + new
        if not any(added):
            break
        spec = _make_spec(full, blocks, current, floor)
        steps.append(LadderStep(index=len(steps), size=size, spec=spec, added=tuple(added)))
    return LadderSchedule(initial=start, steps=tuple(steps), final_total=final)


def delta_crad(nradmax: int, lmax: int, nradbase: int) -> np.ndarray:
    """pacemaker's initial radial coefficients c[n, l, k] = delta_nk, shape (nradmax, lmax+1, nradbase)."""
    c = np.zeros((nradmax, lmax + 1, nradbase))
    for n in range(min(nradmax, nradbase)):
        c[n, :, n] = 1.0
    return c


def _pair_shapes(spec: BasisSpec) -> dict:
    out = {}
    for b in spec.blocks:
        if b.bond is not None and len(b.elements) <= 2:
            pair = tuple(sorted((b.elements[0], b.elements[-1])))
            out[pair] = (b.bond.nradmax, b.bond.lmax, b.bond.nradbase)
    return out


def carry_coefficients(prev: BasisSpec, coeffs, crad: dict, nxt: BasisSpec, *, fallback=None):
    """The coefficients of step ``prev`` mapped onto the basis ``nxt`` of the next step.

    ``coeffs``: per element of ``prev`` (in ``prev.elements`` order, which may be fewer elements than
    ``nxt``'s: an initial potential) an array (nfuncs, ndensity) in ``prev``'s spec order;
    ``crad``: unordered pair (sorted symbols) -> c[n, l, k] (pairs absent: delta_nk).  Returns the same
    for ``nxt``: a function keeps its coefficients (found by elements, ns, ls, LS), a new one starts at 0
    -- or, with ``fallback = (spec, coeffs)`` (the full basis with coefficients, e.g. the file of
    ``potential: file.yaml``), at its coefficients there, as pacemaker takes new functions from its
    target; c keeps the block common to both shapes and is delta_nk elsewhere (pacemaker's merge).
    """
    extra = [el for el in prev.elements if el not in nxt.elements]
    if extra:
        raise LadderError(f"{prev.source}: element {extra[0]} is not in the next basis ({', '.join(nxt.elements)})")
    old = {}
    sources = ([fallback] if fallback is not None else []) + [(prev, coeffs)]
    for spec, cs in sources:                  # prev last: its values win
        for mu, funcs in enumerate(spec.functions):
            c = np.asarray(cs[mu], dtype=float).reshape(len(funcs), -1)
            for f, row in zip(funcs, c):
                old[f] = row
    nd = nxt.ndensity
    out = []
    for mu, funcs in enumerate(nxt.functions):
        block = np.zeros((len(funcs), nd[mu]))
        for i, f in enumerate(funcs):
            if f in old:
                row = old[f]
                block[i, :min(len(row), nd[mu])] = row[:nd[mu]]
        out.append(block)
    crad_out = {}
    for pair, (nmax, lmax, nbase) in _pair_shapes(nxt).items():
        c = delta_crad(nmax, lmax, nbase)
        if crad is not None and pair in crad:
            o = np.asarray(crad[pair], dtype=float)
            n, l, k = (min(a, b) for a, b in zip(o.shape, c.shape))
            c[:n, :l, :k] = o[:n, :l, :k]
        crad_out[pair] = c
    return out, crad_out
