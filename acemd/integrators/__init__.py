"""Integrators and ensembles.  Each advances an :class:`~acemd.engine.Engine` by one step.

``[md].ensemble`` names one of :data:`INTEGRATORS`; :func:`build_integrator`
constructs it from the checked settings (``[md]``, ``[thermostat]``, ``[barostat]``).
"""
from .base import Integrator
from .cell_rescale import BerendsenEquilibration, StochasticCellRescaling
from .csvr import CSVR
from .langevin import LangevinBAOAB
from .barostat import BarostatGeometryError, BarostatRunawayError
from .mtk import MTKBarostat
from .nose_hoover import NoseHooverChain
from .verlet import VelocityVerlet

INTEGRATORS = {
    "nve": VelocityVerlet,               # LAMMPS fix nve
    "nvt-langevin": LangevinBAOAB,       # LAMMPS fix langevin + fix nve (here BAOAB)
    "nvt-nose-hoover": NoseHooverChain,  # LAMMPS fix nvt
    "nvt-csvr": CSVR,                    # LAMMPS fix temp/csvr + fix nve
    "npt-mtk": MTKBarostat,              # LAMMPS fix npt
    "npt-crescale": StochasticCellRescaling,        # GROMACS C-rescale + v-rescale
    "berendsen-equilibration": BerendsenEquilibration,   # LAMMPS fix press/berendsen + temp/csvr
}

BAROSTATS = ("npt-mtk", "npt-crescale", "berendsen-equilibration")


def build_integrator(settings: dict) -> Integrator:
    """The integrator of ``settings["md"]["ensemble"]``, configured from the checked settings."""
    md = settings["md"]
    cls = INTEGRATORS[md["ensemble"]]
    if md["ensemble"] == "nve":
        return cls(md["timestep"])
    if md["ensemble"] in BAROSTATS:
        return cls.from_settings(md, settings["thermostat"], settings["barostat"])
    return cls.from_settings(md, settings.get("thermostat", {}))


__all__ = ["Integrator", "VelocityVerlet", "LangevinBAOAB", "NoseHooverChain", "CSVR", "MTKBarostat",
           "StochasticCellRescaling", "BerendsenEquilibration", "BarostatGeometryError", "BarostatRunawayError",
           "INTEGRATORS", "BAROSTATS", "build_integrator"]
