"""Drivers: each runs its stages on one :class:`~acemd.simulation.Simulation`.

The input names its driver by its section: ``[md]``, ``[minimize]``, ``[elastic]``, ``[free_energy]`` or ``[properties]``.
"""
from __future__ import annotations


def driver_class(settings):
    """The driver class of the one driver section the (checked) settings contain."""
    from ..simulation import driver_section
    name = driver_section(settings)
    if name == "md":
        from .md import MDRun
        return MDRun
    if name == "minimize":
        from .minimize import MinimizeRun
        return MinimizeRun
    if name == "properties":
        from .properties import PropertiesRun
        return PropertiesRun
    if name == "free_energy":
        from ..config import PHASE_MODES
        if settings["free_energy"]["mode"] in PHASE_MODES:
            from .phase_diagram import PhaseDiagramRun
            return PhaseDiagramRun
        from .free_energy import FreeEnergyRun
        return FreeEnergyRun
    from .elastic import ElasticRun
    return ElasticRun
