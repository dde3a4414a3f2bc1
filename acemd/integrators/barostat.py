"""What every barostat shares: the target (pressure, time, coupling) and the coupled axes."""
from __future__ import annotations

import numpy as np

from ..units import EV_PER_A3_TO_BAR


class BarostatGeometryError(ValueError):
    """The coupling cannot be applied to this cell (e.g. iso coupling of a slab)."""


def coupled_axes(coupling: str, pbc) -> np.ndarray:
    """The Cartesian axes whose cell lengths the barostat controls."""
    pbc = np.asarray(pbc, dtype=bool)
    if coupling in ("iso", "triclinic") and not pbc.all():
        raise BarostatGeometryError(
            f"[barostat].coupling = '{coupling}' needs a cell periodic along x, y and z "
            f"(pbc = {pbc.tolist()}); use coupling = 'aniso' to control only the periodic axes")
    if not pbc.any():
        raise BarostatGeometryError("a barostat needs at least one periodic axis (the structure has none)")
    return pbc.copy()


class BarostatRunawayError(OverflowError):
    """The cell variables of an NPT integrator diverged (an OverflowError, so the guards stop on it)."""


class BarostatTarget:
    """Mixin: hydrostatic target pressure (bar), barostat time (ps) and coupling of an NPT integrator."""

    couplings: tuple[str, ...] = ("iso", "aniso", "triclinic")

    def init_barostat(self, pressure_bar: float, barostat_damping: float, coupling: str):
        if coupling not in self.couplings:
            raise BarostatGeometryError(
                f"[barostat].coupling = '{coupling}' is not available with {self.name}: use "
                f"{' or '.join(self.couplings)}"
                + ("" if "triclinic" in self.couplings else " (triclinic cells: ensemble = 'npt-mtk')"))
        if not barostat_damping > 0.0:
            raise ValueError("barostat damping must be positive (ps)")
        self.pressure_bar = float(pressure_bar)
        self.barostat_damping = float(barostat_damping)
        self.coupling = coupling
        self.axes = np.ones(3, dtype=bool)

    @property
    def pressure(self) -> float:
        """Target pressure in eV/Å^3."""
        return self.pressure_bar / EV_PER_A3_TO_BAR

    def setup(self, engine):
        self.axes = coupled_axes(self.coupling, engine.state.pbc)

    def barostat_state(self) -> dict:
        return {"pressure_bar": self.pressure_bar, "barostat_damping": self.barostat_damping,
                "coupling": self.coupling}

    def check_saved_coupling(self, state: dict):
        if str(state.get("coupling", self.coupling)) != self.coupling:
            raise ValueError(f"checkpoint has barostat coupling '{state['coupling']}', this run uses "
                             f"[barostat].coupling = '{self.coupling}'")
