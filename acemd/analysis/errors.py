"""The one error type the analysis scripts turn into a one-line message and exit status 1."""
from __future__ import annotations


class AnalysisInputError(Exception):
    """Unusable input: the message names the file and what is missing or wrong."""
