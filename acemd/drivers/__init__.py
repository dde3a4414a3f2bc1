"""Drivers: each runs its stages on one :class:`~acemd.simulation.Simulation`.

The input names its driver by its section: ``[md]``, ``[minimize]`` or ``[elastic]``.
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
    from .elastic import ElasticRun
    return ElasticRun
