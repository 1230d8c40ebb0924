"""All exceptions raised by pathxai, in one place.

Every error names the bad value and, where one exists, the fix. Input checks raise
these (never ``assert``), so callers can catch :class:`PathXAIError` for anything
pathxai reports about its inputs.
"""

from __future__ import annotations

__all__ = [
    "PathXAIError",
    "SlideReadError",
    "ManifestError",
    "UnknownPromptError",
    "CheckpointError",
    "FeatureError",
    "MaskInputError",
    "MissingMPPError",
    "NotFittedError",
    "StatsInputError",
    "InsufficientDataError",
    "PipelineError",
]


class PathXAIError(Exception):
    """Base class of every error pathxai raises about its inputs or state."""


class SlideReadError(PathXAIError, OSError):
    """A slide (or image) could not be opened or a region could not be read.

    Parameters
    ----------
    path : str
        The file that failed.
    reason : str
        Why, in words (missing, unsupported format, truncated, corrupt tile, ...).
    """

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read slide {self.path!r}: {reason}")

    def __reduce__(self):  # picklable across processes (Dask, multiprocessing)
        return (type(self), (self.path, self.reason))


class ManifestError(PathXAIError, ValueError):
    """A cohort manifest has one or more problems; ``problems`` lists all of them.

    Parameters
    ----------
    problems : list of str
        One human-readable line per problem, each naming the file/row it came from.
    path : str, optional
        The manifest file.
    """

    def __init__(self, problems: list[str], path: object | None = None):
        self.problems = list(problems)
        self.path = None if path is None else str(path)
        where = f" {self.path!r}" if self.path else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"manifest{where} has {len(self.problems)} problem(s):\n{lines}"
        )

    def __reduce__(self):
        return (type(self), (self.problems, self.path))


class UnknownPromptError(PathXAIError, ValueError):
    """A text prompt matched no label of the ontology well enough.

    Parameters
    ----------
    prompt : str
        The text given.
    suggestions : list of str
        The closest canonical labels, best first.
    """

    def __init__(self, prompt: str, suggestions: list[str] | None = None):
        self.prompt = prompt
        self.suggestions = list(suggestions or [])
        hint = (
            f" Closest labels: {', '.join(repr(s) for s in self.suggestions)}."
            if self.suggestions
            else ""
        )
        super().__init__(
            f"prompt {prompt!r} matches no known category.{hint} "
            "See pathxai.segment.list_labels() for the full vocabulary."
        )

    def __reduce__(self):
        return (type(self), (self.prompt, self.suggestions))


class CheckpointError(PathXAIError, ValueError):
    """A model checkpoint is missing, unsafe (not safetensors/JSON) or inconsistent."""


class FeatureError(PathXAIError, ValueError):
    """A feature definition or computation request is invalid."""


class MaskInputError(PathXAIError, ValueError):
    """Mask input (files, sizes, category names, GeoJSON, ...) is invalid; names the file."""


class MissingMPPError(PathXAIError, ValueError):
    """A physical unit was needed but the microns-per-pixel (mpp) is unknown."""


class NotFittedError(PathXAIError, AttributeError):
    """An estimator or result was used before ``fit``.

    Subclasses ``AttributeError`` (like scikit-learn's) so ``hasattr`` checks work.
    """


class StatsInputError(PathXAIError, ValueError):
    """Tables given to the statistics stage are inconsistent (ids, times, events, types)."""


class InsufficientDataError(StatsInputError):
    """Too few patients/events for the requested model; names the numbers and the need."""


class PipelineError(PathXAIError, RuntimeError):
    """A cohort run cannot continue (e.g. more failures than ``max_failures``)."""
