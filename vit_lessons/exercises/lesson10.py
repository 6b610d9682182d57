"""Lesson 10 exercises: the soft distillation loss, graded against
:func:`vit_lessons.deit.soft_distillation_loss`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..deit import soft_distillation_loss
from . import Exercise, register
from .grading import Incorrect, expect_tensor


def distillation_loss(student_logits, teacher_logits, temperature):
    """Reference solution: τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)), mean over the batch."""
    import torch.nn.functional as F

    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)  # (B, K)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)  # (B, K), no gradient
    kl_per_sample = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)  # (B,)
    return kl_per_sample.mean() * temperature**2


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per row from log-probabilities: (B, K) → (B,)."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def _diagnose(value: float, student, teacher, tau: float) -> str:
    """Name the usual mistake behind a wrong value, or ''."""
    B, K = student.shape
    s_log, t_log = F.log_softmax(student / tau, -1), F.log_softmax(teacher / tau, -1)
    ref = _kl(t_log, s_log).mean() * tau**2
    guesses = {
        "the τ² factor is missing: multiply the KL by temperature**2 (it keeps the gradient scale independent "
        "of τ)": ref / tau**2,
        "you multiplied by τ; multiply by τ² (temperature**2)": ref / tau,
        "the KL runs the wrong way: it is KL(teacher ‖ student) = Σ p_t (log p_t - log p_s), the teacher's "
        "probabilities weighting": _kl(s_log, t_log).mean() * tau**2,
        "you averaged over batch × classes (reduction='mean'); average over the batch only (reduction='batchmean')": ref
        / K,
        "you summed over the batch; take the mean over the batch": ref * B,
        "the teacher's logits must be divided by the temperature too": _kl(F.log_softmax(teacher, -1), s_log).mean()
        * tau**2,
        "the student's logits must be divided by the temperature too": _kl(t_log, F.log_softmax(student, -1)).mean()
        * tau**2,
        "that is the cross-entropy H(p_t, p_s); the KL divergence subtracts the teacher's entropy (so it is 0 "
        "when the student equals the teacher)": (-(t_log.exp() * s_log).sum(-1)).mean() * tau**2,
        "F.kl_div expects log-probabilities as its first argument: pass log_softmax(student / τ), not "
        "softmax": F.kl_div(s_log.exp(), t_log.exp(), reduction="batchmean") * tau**2,
    }
    for message, guess in guesses.items():
        if abs(value - guess.item()) <= 1e-4 * max(1.0, abs(guess.item())):
            return message
    return ""


def grade_distillation_loss(candidate) -> None:
    generator = torch.Generator().manual_seed(10)
    for batch, classes, tau in ((5, 7, 3.0), (3, 10, 1.0), (4, 4, 0.5), (6, 3, 2.0)):
        student = torch.randn(batch, classes, generator=generator) * 2
        teacher = (torch.randn(batch, classes, generator=generator) * 3).requires_grad_(True)
        student_before, teacher_before = student.clone(), teacher.detach().clone()
        student.requires_grad_(True)
        loss = candidate(student, teacher, tau)
        if not torch.equal(student.detach(), student_before) or not torch.equal(teacher.detach(), teacher_before):
            raise Incorrect("your function changed its inputs in place; compute new tensors instead.")
        loss = expect_tensor(loss, "the loss")
        if loss.shape == (batch,):
            raise Incorrect("the loss has one value per sample: return their mean over the batch, a single number.")
        if loss.numel() != 1:
            raise Incorrect(f"the loss should be a single number, got shape {tuple(loss.shape)}.")
        expected = soft_distillation_loss(student.detach(), teacher.detach(), tau)
        if not torch.allclose(loss.detach().reshape(()).float(), expected, atol=1e-5, rtol=1e-4):
            hint = _diagnose(loss.item(), student.detach(), teacher.detach(), tau)
            raise Incorrect(
                f"with temperature {tau} the loss is {loss.item():.5f}, expected {expected.item():.5f}. "
                f"{hint or 'Check: τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)), mean over the batch.'}"
            )
        if not loss.requires_grad:
            raise Incorrect("the loss carries no gradient to the student: do not detach the student's logits.")
        loss.backward()
        if teacher.grad is not None and teacher.grad.abs().max() > 0:
            raise Incorrect(
                "gradient flows into the teacher's logits: detach them (teacher_logits.detach()); the teacher "
                "is fixed, only the student learns."
            )
        if student.grad is None or not torch.isfinite(student.grad).all():
            raise Incorrect("the student's gradient is missing or not finite.")
    same = torch.randn(3, 5, generator=generator)
    zero = candidate(same, same.clone(), 2.0)
    if abs(float(zero)) > 1e-5:
        raise Incorrect(f"a student equal to its teacher should give loss 0, got {float(zero):.5f}.")
    big = torch.randn(2, 6, generator=generator) * 200
    if not torch.isfinite(torch.as_tensor(candidate(big, -big, 1.0))).all():
        raise Incorrect("large logits give inf/NaN: use F.log_softmax rather than log(softmax(...)).")


register(
    Exercise(
        id="10.distillation_loss",
        title="Soft distillation loss",
        grader=grade_distillation_loss,
        solution_obj=distillation_loss,
        hint_text=(
            "log_p_student = F.log_softmax(student_logits / T, dim=-1); log_p_teacher = F.log_softmax("
            "teacher_logits.detach() / T, dim=-1); KL per sample = (log_p_teacher.exp() * (log_p_teacher - "
            "log_p_student)).sum(-1); return its mean times T**2 (or F.kl_div(log_p_student, log_p_teacher, "
            "reduction='batchmean', log_target=True) * T**2)."
        ),
    )
)
