"""pacemaker's loss of the nonlinear fit, and its exact gradient, summed over MPI ranks.

    L = (1 - κ) Σ_s w_s (ΔE_s / N_s)²  +  κ Σ_i w_i |ΔF_i|²  +  κ_σ Σ_s w_s Σ_v c_v (Δ(Vσ)_s,v / N_s)²
        + L1 Σ|C| + L2 Σ C² + w0 P0 + w1 P1 + w2 P2

with pacemaker's normalised weights (Σ w_s = 1 over energies, Σ w_i = 1 over forces), the stress
term acemd's opt-in (as in the linear fit) and the regularisers of ``acemd.fit.regularization``.
Each rank evaluates its share of the structures (``assembly.rank_shares``): the engine's kernel
gives E, F and Vσ, the residuals give ∂L/∂E, ∂L/∂F, ∂L/∂(Vσ), and one gradient pass
(``NonlinearModel.gradient``) gives dL/dθ; the loss and gradient are summed over ranks with one
Allreduce, so every rank holds the same numbers and takes the same optimizer steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assembly import has_stress
from .batch import StructureBatch
from .regularization import coefficient_penalty, radial_smoothness, smoothness_grids

__all__ = ["LossTerms", "DataLoss", "Objective", "errors_of"]


@dataclass(frozen=True)
class LossTerms:
    """The loss's weights: κ (forces), κ_σ and the Voigt component weights (stresses), L1, L2 on the
    basis coefficients, w0..w2 the radial smoothness."""

    kappa: float
    kappa_stress: float = 0.0
    stress_components: tuple = (1.0,) * 6
    L1: float = 0.0
    L2: float = 0.0
    w0: float = 0.0
    w1: float = 0.0
    w2: float = 0.0


class _Chunk:
    """Up to ``batch_size`` structures as one flat batch, with their targets and weights."""

    def __init__(self, model, structures, energy_weights, force_weights, stress_weights, terms: LossTerms):
        self.structures = list(structures)
        self.batch = StructureBatch(model.potential, [s.atoms for s in self.structures])
        self.natoms = self.batch.natoms.astype(float)
        self.energy_ref = np.array([s.energy for s in self.structures], dtype=float)
        self.forces_ref = np.concatenate([np.asarray(s.forces, float) if s.forces is not None else
                                          np.zeros((s.natoms, 3)) for s in self.structures])
        self.has_forces = np.repeat([s.forces is not None for s in self.structures], self.batch.natoms)
        fw = [np.asarray(w, float) if s.forces is not None else np.zeros(s.natoms)
              for s, w in zip(self.structures, force_weights)]
        self.w_energy = np.asarray(energy_weights, dtype=float)
        self.w_forces = np.concatenate(fw)
        self.w_stress = np.zeros(len(self.structures))
        self.stress_ref = np.zeros((len(self.structures), 6))
        if terms.kappa_stress > 0:
            for k, s in enumerate(self.structures):
                if has_stress(s):
                    self.w_stress[k] = stress_weights[k]
                    self.stress_ref[k] = np.asarray(s.stress, float) * s.atoms.get_volume()


class DataLoss:
    """The data part of the loss over some structures (one rank's share), with their targets.

    The structures are evaluated in chunks of ``batch_size`` (pacemaker's ``backend.batch_size``), so
    the work arrays of a pass (forces and virials of every periodic image) stay bounded whatever the
    size of the share."""

    def __init__(self, model, structures, energy_weights, force_weights, stress_weights, terms: LossTerms,
                 batch_size: int = 100):
        self.model = model
        self.terms = terms
        self.structures = list(structures)
        self.components = np.asarray(terms.stress_components, dtype=float)
        size = max(int(batch_size or len(self.structures) or 1), 1)
        self.chunks = []
        self.first = []               # index of each chunk's first structure in this share
        for k0 in range(0, len(self.structures), size):
            k1 = min(k0 + size, len(self.structures))
            self.chunks.append(_Chunk(model, self.structures[k0:k1], energy_weights[k0:k1], force_weights[k0:k1],
                                      stress_weights[k0:k1], terms))
            self.first.append(k0)

    @property
    def natoms(self) -> int:
        return int(sum(s.natoms for s in self.structures))

    def _residual_weights(self, chunk: _Chunk, ev, mask=None):
        """(loss, ∂L/∂E, ∂L/∂F, ∂L/∂(Vσ)) of one chunk's predictions; ``mask`` selects a mini-batch."""
        t = self.terms
        m_s = np.ones(len(chunk.structures)) if mask is None else mask.astype(float)
        m_a = m_s[chunk.batch.struct_of]
        dE = (ev.energies - chunk.energy_ref) / chunk.natoms
        wE = (1.0 - t.kappa) * chunk.w_energy * m_s
        loss = float(np.sum(wE * dE * dE))
        a = 2.0 * wE * dE / chunk.natoms
        dF = ev.forces - chunk.forces_ref
        wF = t.kappa * chunk.w_forces * m_a
        loss += float(np.sum(wF[:, None] * dF * dF))
        phi = 2.0 * wF[:, None] * dF
        h = None
        if t.kappa_stress > 0 and np.any(chunk.w_stress > 0):
            wS = t.kappa_stress * (chunk.w_stress * m_s)[:, None] * self.components[None, :]
            dS = np.nan_to_num(ev.virial_stress - chunk.stress_ref) / chunk.natoms[:, None]
            loss += float(np.sum(wS * dS * dS))
            h = 2.0 * wS * dS / chunk.natoms[:, None]
        return loss, a, phi, h

    def _wants_stress(self, chunk) -> bool:
        return self.terms.kappa_stress > 0 and bool(np.any(chunk.w_stress > 0))

    def loss_and_gradient(self, theta, want_coef=True, want_radial=True, structure_mask=None):
        """(data loss, dL/dθ over all parameters) of this share."""
        loss = 0.0
        grad = np.zeros(self.model.n_coef + self.model.n_crad)
        for chunk, k0 in zip(self.chunks, self.first):
            mask = None if structure_mask is None else structure_mask[k0:k0 + len(chunk.structures)]
            if mask is not None and not mask.any():
                continue
            ev = self.model.evaluate(chunk.batch, theta, virials=self._wants_stress(chunk))
            part, a, phi, h = self._residual_weights(chunk, ev, mask)
            _, g = self.model.gradient(chunk.batch, a, phi, h, theta=theta, want_coef=want_coef,
                                       want_radial=want_radial)
            loss += part
            grad += g
        return loss, grad

    def sums(self, theta) -> np.ndarray:
        """[n_structures, Σ(ΔE/N)², n_force_components, Σ|ΔF|², data loss] of this share."""
        out = np.zeros(5)
        for chunk in self.chunks:
            ev = self.model.evaluate(chunk.batch, theta, virials=self._wants_stress(chunk))
            dE = (ev.energies - chunk.energy_ref) / chunk.natoms
            dF = (ev.forces - chunk.forces_ref)[chunk.has_forces]
            out += [len(dE), float(np.sum(dE * dE)), dF.size, float(np.sum(dF * dF)),
                    self._residual_weights(chunk, ev)[0]]
        return out

    def residuals(self, theta):
        """Per chunk (batch, loss, ∂L/∂E, ∂L/∂F, ∂L/∂(Vσ)) at θ (benchmarks, tests)."""
        out = []
        for chunk in self.chunks:
            ev = self.model.evaluate(chunk.batch, theta)
            out.append((chunk.batch,) + self._residual_weights(chunk, ev))
        return out


def errors_of(share: DataLoss, theta) -> np.ndarray:
    """Sums for RMSEs over ranks: [n_structures, Σ(ΔE/N)², n_force_components, Σ|ΔF|², data loss]."""
    return share.sums(theta)


class Objective:
    """f(x), ∇f(x) of the trainable parameters x (θ[trainable]) for the optimizer, over all ranks."""

    def __init__(self, model, share: DataLoss, trainable: np.ndarray, theta_fixed: np.ndarray, terms: LossTerms,
                 comm, n_structures_total: int, share_indices):
        self.model = model
        self.share = share
        self.trainable = np.asarray(trainable, dtype=bool)
        self.theta = np.array(theta_fixed, dtype=float)
        self.terms = terms
        self.comm = comm
        kinds = model.parameter_kinds()
        self.want_coef = bool(np.any(self.trainable & (kinds == 0)))
        self.want_radial = bool(np.any(self.trainable & (kinds == 1)))
        self.n_total = int(n_structures_total)
        self.share_indices = np.asarray(share_indices, dtype=np.int64)
        self.scale = np.ones(int(self.trainable.sum()))     # optimizer variables x = θ[trainable] / scale
        bonds = {p: model._bond_blocks[p][0] for p in model.groups}
        self.grids = smoothness_grids(bonds) if (terms.w0 or terms.w1 or terms.w2) else None
        self.evaluations = 0

    def full(self, x) -> np.ndarray:
        """θ of the optimizer's variables x = θ[trainable] / scale."""
        th = self.theta.copy()
        th[self.trainable] = np.asarray(x) * self.scale
        return th

    def variables(self, theta) -> np.ndarray:
        return np.asarray(theta)[self.trainable] / self.scale

    def gauss_newton_diagonal(self, theta, probes: int = 8, seed: int = 0) -> np.ndarray:
        """An estimate of diag(JᵀWJ) over the trainable parameters (J: predictions by θ, W: the loss's
        weights), summed over ranks: the mean of g² over random probes g = Jᵀ W^½ ξ, ξ ~ N(0, 1) per
        energy, force and stress row (Hutchinson), each g one gradient pass with ξ as the residual weights."""
        t = self.terms
        rng = np.random.default_rng([int(seed), self.comm.Get_rank()])
        acc = np.zeros(int(self.trainable.sum()))
        for _ in range(int(probes)):
            g = np.zeros(self.model.n_coef + self.model.n_crad)
            for chunk in self.share.chunks:
                n = chunk.natoms
                a = rng.standard_normal(len(n)) * np.sqrt((1.0 - t.kappa) * chunk.w_energy) / n
                phi = rng.standard_normal((chunk.batch.n_local, 3)) * np.sqrt(t.kappa * chunk.w_forces)[:, None]
                h = None
                if t.kappa_stress > 0 and np.any(chunk.w_stress > 0):
                    h = (rng.standard_normal((len(n), 6)) * np.sqrt(t.kappa_stress * chunk.w_stress[:, None]
                                                                   * self.share.components[None, :]) / n[:, None])
                g += self.model.gradient(chunk.batch, a, phi, h, theta=theta, want_coef=self.want_coef,
                                         want_radial=self.want_radial)[1]
            total = np.empty_like(g)
            self.comm.Allreduce(g, total)
            acc += total[self.trainable] ** 2
        return acc / max(int(probes), 1)

    def regularization(self, theta):
        """(value, gradient over θ) of the L1/L2 and radial smoothness terms."""
        m = self.model
        t = self.terms
        grad = np.zeros_like(theta)
        value, g = coefficient_penalty(theta[:m.n_coef], t.L1, t.L2)
        grad[:m.n_coef] = g
        if self.grids is not None:
            _, crad = m.unpack(theta)
            v, gc = radial_smoothness(crad, t.w0, t.w1, t.w2, self.grids)
            value += v
            grad[m.n_coef:] = np.concatenate([np.ravel(gc[p]) for p in m.groups])
        return value, grad

    def __call__(self, x, batch=None):
        theta = self.full(x)
        mask = None
        scale = 1.0
        if batch is not None:
            wanted = np.zeros(self.n_total, dtype=bool)
            wanted[np.asarray(batch, dtype=np.int64)] = True
            mask = wanted[self.share_indices]
            scale = self.n_total / max(len(batch), 1)
        loss, grad = self.share.loss_and_gradient(theta, self.want_coef, self.want_radial, mask)
        buf = np.concatenate([[loss], grad]) * scale
        total = np.empty_like(buf)
        self.comm.Allreduce(buf, total)
        reg, rgrad = self.regularization(theta)
        self.evaluations += 1
        return float(total[0] + reg), (total[1:] + rgrad)[self.trainable] * self.scale

    def sums(self, x) -> np.ndarray:
        """``errors_of`` summed over ranks."""
        local = errors_of(self.share, self.full(x))
        total = np.empty_like(local)
        self.comm.Allreduce(local, total)
        return total
