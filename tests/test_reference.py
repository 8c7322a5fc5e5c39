"""The reference ops against independent truths: autograd of the naive formula, torch.optim,
and hand-computed tiny cases."""
import math

import pytest
import torch

from wsscl_fast.reference import (
    forgetting_loss_ref,
    infonce_loss_ref,
    masked_adamw_step_ref,
    masked_sgd_step_ref,
    saliency_from_scores_ref,
    saliency_threshold_ref,
)


def naive_infonce(a, p, r, tau, normalize):
    """Row-by-row loops straight from docs/method.md, no vectorised tricks."""
    total = 0.0
    for i in range(a.shape[0]):
        ai, pi = a[i], p[i]
        if normalize:
            ai, pi = ai / ai.norm(), pi / pi.norm()
        pos = (ai @ pi) / tau
        denominator = torch.exp(pos)
        for j in range(r.shape[0]):
            rj = r[j] / r[j].norm() if normalize else r[j]
            denominator = denominator + torch.exp((ai @ rj) / tau)
        total = total + (-pos + torch.log(denominator))
    return total / a.shape[0]


def test_infonce_hand_computed_case():
    # orthonormal vectors: s(A,P) = 1, s(A,R_0) = 0, s(A,R_1) = -1, tau = 1
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[2.0, 0.0]])
    r = torch.tensor([[0.0, 3.0], [-1.0, 0.0]])
    expected = -1.0 + math.log(math.e + 1.0 + math.exp(-1.0))
    assert infonce_loss_ref(a, p, r, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("tau", [0.05, 0.5, 2.0])
def test_infonce_matches_naive_loops(normalize, tau):
    g = torch.Generator().manual_seed(1)
    a, p, r = (torch.randn(n, 5, generator=g, dtype=torch.float64) for n in (3, 3, 7))
    torch.testing.assert_close(infonce_loss_ref(a, p, r, tau, normalize), naive_infonce(a, p, r, tau, normalize))


@pytest.mark.parametrize("normalize", [True, False])
def test_infonce_gradcheck_float64(normalize):
    g = torch.Generator().manual_seed(2)
    inputs = [torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True) for n in (3, 3, 5)]
    assert torch.autograd.gradcheck(lambda a, p, r: infonce_loss_ref(a, p, r, 0.5, normalize), inputs)


def test_infonce_gradient_formula_of_method_md():
    """dL/da_i = (sum_j p_ij k_j - P_i) / N with a = A / tau, unnormalised inputs."""
    g = torch.Generator().manual_seed(3)
    a, p, r = (torch.randn(n, 4, generator=g, dtype=torch.float64) for n in (3, 3, 6))
    tau = 0.7
    a.requires_grad_(True)
    infonce_loss_ref(a, p, r, tau, normalize=False).backward()
    keys = [torch.cat([p[i : i + 1], r]) for i in range(3)]
    expected = torch.stack([
        (torch.softmax(keys[i] @ a[i].detach() / tau, dim=0) @ keys[i] - p[i]) / 3 for i in range(3)
    ]) / tau  # chain rule from a/tau back to a
    torch.testing.assert_close(a.grad, expected)


def test_infonce_half_precision_accumulates_in_fp32():
    g = torch.Generator().manual_seed(4)
    a, p, r = (torch.randn(n, 16, generator=g) for n in (8, 8, 32))
    full = infonce_loss_ref(a, p, r)
    half = infonce_loss_ref(a.bfloat16(), p.bfloat16(), r.bfloat16())
    assert half.dtype == torch.bfloat16
    assert half.float().item() == pytest.approx(full.item(), rel=2e-2)


# ----------------------------------------------------------------------------- SGD
def _run_masked(optimizer_cls, masked_step, steps, make_saliency, **hyper):
    """Run torch.optim and the masked reference side by side on the same gradients."""
    g = torch.Generator().manual_seed(5)
    shapes = [(7, 3), (5,), (1,)]
    params = [torch.randn(s, generator=g) for s in shapes]
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(steps)]
    saliency = [make_saliency(s, g) for s in shapes]
    torch_params = [p.clone().requires_grad_(True) for p in params]
    optimizer = optimizer_cls(torch_params, **hyper)
    ours = [p.clone() for p in params]
    state = masked_step.init(ours)
    for k in range(steps):
        for tp, gk in zip(torch_params, grads[k]):
            tp.grad = gk.clone()
        optimizer.step()
        masked_step(ours, grads[k], saliency, state, k + 1)
    return params, [p.detach() for p in torch_params], ours, saliency


class SGDRef:
    def __init__(self, **hyper):
        self.hyper = hyper

    def init(self, params):
        return [None] * len(params)

    def __call__(self, params, grads, saliency, state, step):
        for i, (p, g, w) in enumerate(zip(params, grads, saliency)):
            state[i] = masked_sgd_step_ref(p, g, w, state[i], **self.hyper)


class AdamWRef:
    def __init__(self, lr, betas, eps, weight_decay):
        self.hyper = dict(lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay)

    def init(self, params):
        return [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    def __call__(self, params, grads, saliency, state, step):
        for p, g, w, (m, v) in zip(params, grads, saliency, state):
            masked_adamw_step_ref(p, g, w, m, v, step, **self.hyper)


ones = lambda s, g: torch.ones(s, dtype=torch.bool)  # noqa: E731
zeros = lambda s, g: torch.zeros(s, dtype=torch.bool)  # noqa: E731
mixed = lambda s, g: torch.rand(s, generator=g) < 0.5  # noqa: E731

SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9, weight_decay=5e-4),
    dict(lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True),
]
ADAMW = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)


@pytest.mark.parametrize("hyper", SGD_SETTINGS)
def test_sgd_all_ones_mask_equals_torch_sgd_bitwise(hyper):
    _, expected, ours, _ = _run_masked(torch.optim.SGD, SGDRef(**hyper), 6, ones, **hyper)
    for e, o in zip(expected, ours):
        assert torch.equal(e, o)


def test_adamw_all_ones_mask_equals_torch_adamw_bitwise():
    _, expected, ours, _ = _run_masked(torch.optim.AdamW, AdamWRef(**ADAMW), 6, ones, **ADAMW)
    for e, o in zip(expected, ours):
        assert torch.equal(e, o)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_mixed_mask_follows_torch_on_salient_and_freezes_the_rest(optimizer):
    hyper = SGD_SETTINGS[1] if optimizer == "sgd" else ADAMW
    cls, step = (torch.optim.SGD, SGDRef(**hyper)) if optimizer == "sgd" else (torch.optim.AdamW, AdamWRef(**ADAMW))
    start, expected, ours, mask = _run_masked(cls, step, 5, mixed, **hyper)
    for s, e, o, m in zip(start, expected, ours, mask):
        assert torch.equal(o[m], e[m]), "salient coordinates must follow torch's trajectory exactly"
        assert torch.equal(o[~m], s[~m]), "masked coordinates (weight decay included) must not move"


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_zero_mask_changes_nothing_bitwise(optimizer):
    hyper = SGD_SETTINGS[2] if optimizer == "sgd" else ADAMW
    cls, step = (torch.optim.SGD, SGDRef(**hyper)) if optimizer == "sgd" else (torch.optim.AdamW, AdamWRef(**ADAMW))
    start, _, ours, _ = _run_masked(cls, step, 4, zeros, **hyper)
    for s, o in zip(start, ours):
        assert torch.equal(s, o)


def test_sgd_soft_weight_hand_computed():
    # two steps, mu = 0.5, wd = 0.1, lr = 1, weights (1, 0.5, 0)
    p = torch.tensor([1.0, 1.0, 1.0])
    w = torch.tensor([1.0, 0.5, 0.0])
    g = torch.tensor([1.0, 1.0, 1.0])
    buf = masked_sgd_step_ref(p, g, w, None, lr=1.0, momentum=0.5, weight_decay=0.1)
    # d = 1.1; buf = 1.1; p = 1 - w * 1.1
    torch.testing.assert_close(p, torch.tensor([-0.1, 0.45, 1.0]))
    torch.testing.assert_close(buf, torch.tensor([1.1, 1.1, 0.0]))
    masked_sgd_step_ref(p, g, w, buf, lr=1.0, momentum=0.5, weight_decay=0.1)
    # d = 1 + 0.1 p; buf = 0.5 * 1.1 + d
    d = torch.tensor([1 - 0.01, 1.045, 0.0])
    new_buf = torch.tensor([0.55, 0.55, 0.0]) + d
    torch.testing.assert_close(buf, torch.where(w > 0, new_buf, torch.zeros(3)))
    torch.testing.assert_close(p, torch.tensor([-0.1, 0.45, 1.0]) - w * new_buf)


def test_adamw_soft_weight_hand_computed_first_step():
    # first step: m_hat = g, v_hat = g^2, so the update is lr * w * g / (|g| + eps)
    p = torch.tensor([2.0, 2.0, 2.0])
    w = torch.tensor([1.0, 0.25, 0.0])
    g = torch.tensor([4.0, -4.0, 4.0])
    m, v = torch.zeros(3), torch.zeros(3)
    masked_adamw_step_ref(p, g, w, m, v, 1, lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, weight_decay=0.5)
    decayed = 2.0 * (1 - 0.1 * 0.5 * w)
    torch.testing.assert_close(p, decayed - 0.1 * w * torch.sign(g))
    assert m[2] == 0 and v[2] == 0 and p[2] == 2.0


# ----------------------------------------------------------------------------- saliency
def test_threshold_hand_computed_and_ties():
    scores = torch.tensor([0.1, 0.5, 0.5, 0.9, 0.2, 0.0])
    assert saliency_threshold_ref(scores, 0.5).item() == 0.5  # top 3 of 6 -> 0.9, 0.5, 0.5
    assert saliency_threshold_ref(scores, 1 / 6).item() == scores[3].item()
    hard = saliency_from_scores_ref([scores[:4], scores[4:]], 1 / 3, "hard")  # k = 2 -> t = 0.5, ties kept
    assert hard[0].tolist() == [False, True, True, True] and hard[1].tolist() == [False, False]


def test_soft_saliency_is_clamped_ratio_to_threshold():
    scores = [torch.tensor([0.0, 1.0, 2.0, 4.0])]
    soft = saliency_from_scores_ref(scores, 0.5, "soft")[0]  # t = 2
    torch.testing.assert_close(soft, torch.tensor([0.0, 0.5, 1.0, 1.0]))


def test_soft_saliency_with_zero_threshold_keeps_everything():
    soft = saliency_from_scores_ref([torch.zeros(4)], 0.5, "soft")[0]
    assert torch.equal(soft, torch.ones(4))


# ----------------------------------------------------------------------------- forgetting loss
def test_forgetting_loss_hand_computed():
    q = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    logits = torch.log(torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    kl0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kl1 = math.log(1 / 0.5)
    assert forgetting_loss_ref(logits, q, kl_bound=10.0).item() == pytest.approx(-(kl0 + kl1) / 2, rel=1e-6)
    assert kl0 > 0.1 and kl1 > 0.1
    assert forgetting_loss_ref(logits, q, kl_bound=0.1).item() == pytest.approx(-0.1, rel=1e-6)
    per_row = forgetting_loss_ref(logits, q, kl_bound=torch.tensor([10.0, 0.1])).item()
    assert per_row == pytest.approx(-(kl0 + 0.1) / 2, rel=1e-6)


def test_forgetting_loss_retain_term():
    q = torch.tensor([[1.0, 0.0]])
    logits = torch.zeros(1, 2)
    retain_logits, targets = torch.tensor([[0.0, 0.0]]), torch.tensor([1])
    value = forgetting_loss_ref(logits, q, 5.0, retain_logits, targets, retain_weight=2.0).item()
    assert value == pytest.approx(-math.log(2) + 2 * math.log(2), rel=1e-6)


def test_forgetting_loss_sample_weights_scale_each_bounded_kl():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, generator=g)
    q = torch.softmax(torch.randn(5, 4, generator=g) / 0.1, dim=1)
    bounds = torch.tensor([0.1, 0.5, 1.0, 5.0, 50.0])
    kl = (q * (q.log() - torch.log_softmax(logits, dim=1))).sum(dim=1)
    weights = 1 / bounds
    expected = -(torch.minimum(kl, bounds) * weights).mean()
    torch.testing.assert_close(forgetting_loss_ref(logits, q, bounds, sample_weights=weights), expected)
    torch.testing.assert_close(forgetting_loss_ref(logits, q, bounds), -torch.minimum(kl, bounds).mean())
