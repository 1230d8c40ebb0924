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
    "UnsupportedPromptError",
    "IndexFormatError",
    "TooManyFailuresError",
    "WorkerCrashedError",
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


class TooManyFailuresError(PipelineError):
    """More tasks failed than ``max_failures`` allows; the run stopped early.

    Parameters
    ----------
    n_failed : int
        How many tasks had failed when the run stopped.
    max_failures : int
        The limit that was exceeded.
    outcomes : list, optional
        The :class:`pathxai.pipeline.executors.TaskOutcome` of every task that finished,
        sorted by key.
    """

    def __init__(self, n_failed: int, max_failures: int, outcomes: list | None = None):
        self.n_failed = int(n_failed)
        self.max_failures = int(max_failures)
        self.outcomes = list(outcomes or [])
        failed = [o.key for o in self.outcomes if not getattr(o, "ok", True)]
        shown = ", ".join(repr(k) for k in failed[:5]) + (" ..." if len(failed) > 5 else "")
        super().__init__(
            f"stopped early: {self.n_failed} task(s) failed, more than max_failures="
            f"{self.max_failures} ({shown}). See failures.csv for the reasons; fix the inputs "
            "or raise --max-failures (omit it to never stop)."
        )

    def __reduce__(self):
        return (type(self), (self.n_failed, self.max_failures, self.outcomes))


class WorkerCrashedError(PipelineError):
    """The process running a task died (segfault, out-of-memory kill, ``KilledWorker``)."""


class UnsupportedPromptError(PathXAIError, ValueError):
    """A valid ontology label that this segmentation backend cannot answer.

    Parameters
    ----------
    label : str
        The canonical label asked for.
    backend : str
        The backend (e.g. ``"stain"``).
    supported : list of str
        The labels the backend does answer.
    """

    def __init__(self, label: str, backend: str, supported: list[str] | None = None):
        self.label = label
        self.backend = backend
        self.supported = list(supported or [])
        super().__init__(
            f"the {backend!r} backend cannot segment {label!r}; it answers only "
            f"{', '.join(repr(s) for s in self.supported)}. Use a trained model "
            "(Segmentor.from_pretrained('default')) for other labels."
        )

    def __reduce__(self):
        return (type(self), (self.label, self.backend, self.supported))


class IndexFormatError(PathXAIError, ValueError):
    """An image-mask index (the ``shared/data/index.csv`` format) is malformed; names the rows."""
