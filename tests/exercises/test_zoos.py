"""Every exercise in the registry: its reference solution is graded correct, an untouched stub or an empty
answer is "not attempted", and each bug in its zoo is rejected with its own message.

A lesson's zoo lives with its other tests, in tests/exercises/test_lessonNN.py:
``ZOO = {exercise_id: {buggy_candidate: regex_the_message_must_match}}``."""

import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from torch import nn

import vit_lessons.exercises
from vit_lessons.exercises import get_exercise, list_exercises

EXERCISES = list_exercises()
LESSON_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(vit_lessons.exercises.__path__) if m.name.startswith("lesson")
)


def _zoos_by_file() -> dict[str, dict]:
    """Each tests/exercises/test_lessonNN.py file's ZOO, by file name (the files are loaded, not collected, here)."""
    zoos = {}
    for path in sorted(Path(__file__).parent.glob("test_lesson*.py")):
        spec = importlib.util.spec_from_file_location(f"_zoo_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        zoos[path.name] = getattr(module, "ZOO", {})
    return zoos


ZOOS_BY_FILE = _zoos_by_file()
ZOOS = {exercise_id: zoo for file_zoos in ZOOS_BY_FILE.values() for exercise_id, zoo in file_zoos.items()}
ZOO_CASES = [
    pytest.param(exercise_id, bug, message, id=f"{exercise_id}-{bug.__name__}")
    for exercise_id in EXERCISES
    for bug, message in ZOOS.get(exercise_id, {}).items()
]


def test_every_lesson_module_has_exercises_and_every_exercise_a_zoo():
    assert EXERCISES and ZOO_CASES
    assert sorted({f"lesson{exercise_id.split('.')[0]}" for exercise_id in EXERCISES}) == LESSON_MODULES
    for file_name, zoos in ZOOS_BY_FILE.items():
        lesson = file_name.removeprefix("test_lesson").removesuffix(".py")
        assert all(exercise_id.startswith(f"{lesson}.") for exercise_id in zoos), (file_name, list(zoos))
    assert sum(len(zoos) for zoos in ZOOS_BY_FILE.values()) == len(ZOOS), "an exercise has two zoos"
    assert sorted(ZOOS) == EXERCISES
    assert all(ZOOS.values()), [exercise_id for exercise_id, zoo in ZOOS.items() if not zoo]


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_reference_solution_is_graded_correct(exercise_id):
    exercise = get_exercise(exercise_id)
    is_class = inspect.isclass(exercise.solution_obj)
    name = "Mine" if is_class else "mine"
    # Solutions are self-contained; a class may take its base from nn, which every lesson's setup cell imports.
    namespace = {"nn": nn} if is_class else {}
    exec(exercise.solution_source(name), namespace)
    result = exercise.grade(namespace[name])
    assert result.status == "correct", result


def _stub(solution):
    """The exercise's stub as a notebook has it: the class or function raises NotImplementedError."""
    if inspect.isclass(solution):

        class Stub(nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                raise NotImplementedError

        return Stub

    def stub(*args, **kwargs):
        raise NotImplementedError

    return stub


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_stub_and_empty_answers_are_not_attempted(exercise_id):
    exercise = get_exercise(exercise_id)
    for answer in (_stub(exercise.solution_obj), None, ...):
        assert exercise.grade(answer).status == "not_attempted", answer


def _stub_with_docstring(solution):
    """A stub with a docstring, a comment and ``pass``: still untouched."""
    if inspect.isclass(solution):

        class Stub(nn.Module):
            """Fill me in."""

            def __init__(self, *args, **kwargs):
                """Build the layers."""
                super().__init__()
                # your code here
                raise NotImplementedError("your code here")

            def forward(self, *args):
                pass
                raise NotImplementedError

        return Stub

    def stub(*args, **kwargs):
        """Fill me in."""
        # your code here
        raise NotImplementedError()

    return stub


def _partly_written(solution):
    """An answer with some code written that still reaches a ``raise NotImplementedError`` (a forgotten branch)."""
    if inspect.isclass(solution):

        class Partial(nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                self.written = nn.Identity()
                if args or kwargs or not args:
                    raise NotImplementedError  # the rest, for later

        return Partial

    def partial(*args, **kwargs):
        written = len(args) + len(kwargs)
        if written >= 0:
            raise NotImplementedError  # the rest, for later
        return written

    return partial


def _without_source(answer_source: str, name: str):
    """Define ``name`` from source that inspect cannot find again (as with code exec'd from a string)."""
    namespace = {"nn": nn}
    exec(compile(answer_source, "<no source>", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_a_stub_with_docstring_and_comments_is_not_attempted(exercise_id):
    result = get_exercise(exercise_id).grade(_stub_with_docstring(get_exercise(exercise_id).solution_obj))
    assert result.status == "not_attempted", result


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_a_partly_written_answer_that_reaches_not_implemented_is_incorrect(exercise_id):
    result = get_exercise(exercise_id).grade(_partly_written(get_exercise(exercise_id).solution_obj))
    assert result.status == "incorrect", result
    assert "unimplemented branch" in result.message and "the rest, for later" in result.message, result


def test_without_source_a_not_implemented_error_counts_as_not_attempted():
    # The fallback when inspect cannot read the answer's source: the stub or not, it is "not attempted".
    partial = _without_source(
        "def partial(q, k, v, mask=None):\n    q = q + 0\n    raise NotImplementedError\n", "partial"
    )
    assert get_exercise("04.attention").grade(partial).status == "not_attempted"
    stub_class = _without_source(
        "class Stub(nn.Module):\n    def __init__(self, *args, **kwargs):\n        super().__init__()\n"
        "        raise NotImplementedError\n",
        "Stub",
    )
    assert get_exercise("06.encoder_block").grade(stub_class).status == "not_attempted"


def test_a_class_that_defines_no_forward_is_incorrect():
    # torch raises NotImplementedError for a missing forward: that is not the untouched stub.
    class NoForward(nn.Module):
        def __init__(self, dim, num_heads, mlp_ratio=4.0):
            super().__init__()
            from vit_lessons.blocks import EncoderBlock

            reference = EncoderBlock(dim, num_heads, mlp_ratio)
            self.norm1, self.attn, self.norm2, self.mlp = (
                reference.norm1,
                reference.attn,
                reference.norm2,
                reference.mlp,
            )

    result = get_exercise("06.encoder_block").grade(NoForward)
    assert result.status == "incorrect" and 'missing the required "forward" function' in result.message, result


@pytest.mark.filterwarnings("ignore:reduction")  # 10.distillation_loss's mean_reduction bug makes torch warn
@pytest.mark.parametrize("exercise_id, bug, message", ZOO_CASES)
def test_each_zoo_bug_is_rejected_with_its_message(exercise_id, bug, message):
    result = get_exercise(exercise_id).grade(bug)
    assert result.status == "incorrect", result
    assert re.search(message, result.message), result.message


def test_the_zoo_check_fails_for_an_accepted_answer_or_another_message():
    exercise_id, bug, _ = ZOO_CASES[0].values
    with pytest.raises(AssertionError, match="incorrect"):
        test_each_zoo_bug_is_rejected_with_its_message(exercise_id, get_exercise(exercise_id).solution_obj, "")
    with pytest.raises(AssertionError):
        test_each_zoo_bug_is_rejected_with_its_message(exercise_id, bug, "a message no grader writes")
