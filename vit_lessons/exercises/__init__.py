"""Self-check exercises: ``check``, ``hint`` and ``solution`` for each lesson's stub.

    from vit_lessons.exercises import get_exercise
    ex = get_exercise("04.attention")
    result = ex.grade(candidate)   # never raises for a wrong or crashing candidate
    result.status                  # "correct" | "incorrect" | "not_attempted"
    result.message                 # what is wrong, specific enough to act on
    ex.check(candidate)            # prints the same in a notebook; ex.hint(); ex.solution()

One module per lesson (``lesson01``, ``lesson04``, ...) defines that lesson's exercises and grades
them against the reference module the lesson teaches. In a notebook an exercise is a stub cell whose
first line reads ``# EXERCISE <id>: <name>`` followed by a cell calling ``ex.check(<name>)``; CI also
runs every notebook with each stub replaced by ``ex.solution_source(<name>)``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import textwrap
from dataclasses import dataclass
from typing import Callable

from .grading import Incorrect, unimplemented_branch_message

__all__ = ["Exercise", "GradeResult", "Incorrect", "get_exercise", "list_exercises", "register", "STATUS_TEXT"]

STATUS_TEXT = {"correct": "correct", "incorrect": "incorrect", "not_attempted": "not attempted"}
_ICONS = {"correct": "✅", "incorrect": "❌", "not_attempted": "⏳"}
_EXERCISES: dict[str, Exercise] = {}


@dataclass(frozen=True)
class GradeResult:
    """The outcome of grading one candidate."""

    exercise_id: str
    status: str  # "correct" | "incorrect" | "not_attempted"
    message: str

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{_ICONS[self.status]} {self.exercise_id}: {STATUS_TEXT[self.status]}. {self.message}"


@dataclass
class Exercise:
    """One exercise: a grader that raises :class:`Incorrect` with a specific message, a hint, and a
    reference solution (a function or class whose source is shown by :meth:`solution`)."""

    id: str
    title: str
    grader: Callable[[object], None]
    solution_obj: object
    hint_text: str
    success_message: str = "Matches the reference on every test input."

    def grade(self, candidate) -> GradeResult:
        """Grade ``candidate``; never raises (a crash is reported as "incorrect" with its error)."""
        if candidate is None or candidate is Ellipsis:
            return GradeResult(self.id, "not_attempted", "Nothing to check yet: fill in the stub above.")
        try:
            self.grader(candidate)
        except NotImplementedError as error:  # the untouched stub, or a partly written answer's missing branch
            message = unimplemented_branch_message(candidate, error)
            if message is not None:
                return GradeResult(self.id, "incorrect", message)
            return GradeResult(
                self.id, "not_attempted", "The stub still raises NotImplementedError: replace it with your code."
            )
        except Incorrect as wrong:
            return GradeResult(self.id, "incorrect", str(wrong))
        except Exception as error:  # a crashing candidate is a wrong one, with its error shown
            return GradeResult(self.id, "incorrect", f"Your code raised {type(error).__name__}: {error}".strip())
        return GradeResult(self.id, "correct", self.success_message)

    def check(self, candidate) -> None:
        """Grade and print the result (for notebooks)."""
        print(self.grade(candidate))

    def hint(self) -> None:
        print(f"Hint for {self.id}: {self.hint_text}")

    def solution_source(self, name: str | None = None) -> str:
        """The reference solution's source, its function/class renamed to ``name``.

        Solutions are self-contained (they import what they need inside), so this source runs in
        a fresh notebook namespace; CI runs every notebook with it in place of the stubs."""
        source = textwrap.dedent(inspect.getsource(self.solution_obj))
        if name is not None:
            original = self.solution_obj.__name__
            source = re.sub(rf"^(def|class) {re.escape(original)}\b", rf"\1 {name}", source, count=1, flags=re.M)
        return source

    def solution(self) -> None:
        """Print a reference solution."""
        print(self.solution_source())


def register(exercise: Exercise) -> Exercise:
    if exercise.id in _EXERCISES:
        raise ValueError(f"exercise {exercise.id!r} registered twice")
    _EXERCISES[exercise.id] = exercise
    return exercise


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("lesson"):
            importlib.import_module(f"{__name__}.{info.name}")


def list_exercises() -> list[str]:
    _load_all()
    return sorted(_EXERCISES)


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise with id ``"NN.name"`` (e.g. ``"04.attention"``)."""
    if not isinstance(exercise_id, str):
        raise TypeError(f"exercise id must be a string like '04.attention', got {type(exercise_id).__name__}")
    lesson = exercise_id.split(".", 1)[0]
    if exercise_id not in _EXERCISES and lesson.isdigit():
        try:
            importlib.import_module(f"{__name__}.lesson{lesson}")
        except ModuleNotFoundError:
            pass
    if exercise_id not in _EXERCISES:
        raise ValueError(f"unknown exercise {exercise_id!r}; available: {', '.join(list_exercises())}")
    return _EXERCISES[exercise_id]
