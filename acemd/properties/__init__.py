"""The ``[properties]`` validation battery: equation of state, phase energies, elastic constants,
point defects, surfaces, stacking faults (and phonons / the quasi-harmonic approximation), each
side by side with a reference (docs/properties.md).

:mod:`.base` holds the contract between the driver (:mod:`acemd.drivers.properties`) and the
property modules.
"""
