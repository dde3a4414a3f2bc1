"""``acemd learn``: active learning of an ACE potential from a reference method.

explore (MD with the current potential, extrapolative frames dumped) -> select (D-optimal among
the frames above gamma_lower) -> label (an ASE calculator or an external command) -> refit and
rebuild the active set -> repeat, until no exploration exceeds gamma_lower.  Modules: settings
(the [learn] input), structures (starting cells, extxyz), labellers, exploration, selection,
fitting, state (restarts), loop, report.  docs/active-learning.md explains it.
"""
from .loop import EXIT_STOPPED, LearnError, check_learn, run_learn
from .settings import LearnInputError, LearnSettings, parse_learn_input, read_learn_input

__all__ = ["run_learn", "check_learn", "read_learn_input", "parse_learn_input", "LearnSettings",
           "LearnInputError", "LearnError", "EXIT_STOPPED"]
