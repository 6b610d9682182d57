"""Bug zoo for 10.distillation_loss (run by test_zoos.py), and another correct way to write it."""

import pytest
import torch
import torch.nn.functional as F

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("10.distillation_loss")


def _parts(s, t, tau):
    return F.log_softmax(s / tau, -1), F.log_softmax(t.detach() / tau, -1)


def no_tau_squared(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return F.kl_div(s_log, t_log, reduction="batchmean", log_target=True)


def tau_not_squared(s, t, tau):
    return no_tau_squared(s, t, tau) * tau


def reversed_kl(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return (s_log.exp() * (s_log - t_log)).sum(-1).mean() * tau**2


def mean_reduction(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return F.kl_div(s_log, t_log, reduction="mean", log_target=True) * tau**2


def sum_over_batch(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return F.kl_div(s_log, t_log, reduction="sum", log_target=True) * tau**2


def teacher_not_softened(s, t, tau):
    return (
        F.kl_div(F.log_softmax(s / tau, -1), F.log_softmax(t.detach(), -1), reduction="batchmean", log_target=True)
        * tau**2
    )


def student_not_softened(s, t, tau):
    return (
        F.kl_div(F.log_softmax(s, -1), F.log_softmax(t.detach() / tau, -1), reduction="batchmean", log_target=True)
        * tau**2
    )


def soft_cross_entropy(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return -(t_log.exp() * s_log).sum(-1).mean() * tau**2


def probabilities_into_kl_div(s, t, tau):
    return F.kl_div(F.softmax(s / tau, -1), F.softmax(t.detach() / tau, -1), reduction="batchmean") * tau**2


def teacher_not_detached(s, t, tau):
    return F.kl_div(F.log_softmax(s / tau, -1), F.softmax(t / tau, -1), reduction="batchmean") * tau**2


def per_sample(s, t, tau):
    s_log, t_log = _parts(s, t, tau)
    return (t_log.exp() * (t_log - s_log)).sum(-1) * tau**2


def log_of_softmax(s, t, tau):
    p_t = F.softmax(t.detach() / tau, -1)
    return (p_t * (p_t.log() - F.softmax(s / tau, -1).log())).sum(-1).mean() * tau**2


def student_detached(s, t, tau):
    return no_tau_squared(s.detach(), t, tau) * tau**2


def returns_float(s, t, tau):
    return (no_tau_squared(s, t, tau) * tau**2).item()


ZOO = {
    "10.distillation_loss": {
        no_tau_squared: "τ² factor is missing",
        tau_not_squared: "multiplied by τ; multiply by τ²",
        reversed_kl: "KL runs the wrong way",
        mean_reduction: "batch × classes",
        sum_over_batch: "summed over the batch",
        teacher_not_softened: "teacher's logits must be divided",
        student_not_softened: "student's logits must be divided",
        soft_cross_entropy: "cross-entropy H",
        probabilities_into_kl_div: "log-probabilities as its first argument",
        teacher_not_detached: "detach them",
        per_sample: "one value per sample",
        log_of_softmax: "large logits",
        student_detached: "no gradient to the student",
        returns_float: "should be a torch.Tensor",
    }
}


def test_kl_div_with_log_target_is_also_correct(ex):
    def with_kl_div(s, t, tau):
        s_log, t_log = _parts(s, t, tau)
        return F.kl_div(s_log, t_log, reduction="batchmean", log_target=True) * tau**2

    assert ex.grade(with_kl_div).status == "correct"
    assert torch.is_tensor(with_kl_div(torch.zeros(1, 2), torch.zeros(1, 2), 1.0))
