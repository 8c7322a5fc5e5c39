"""The per-example metrics against oracles (KLoM, the challenge's ε and score) and the bootstrap
intervals, checked against brute-force computations written here from the definitions."""
import contextlib
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from wsscl_fast.metrics import (attack_epsilons, bootstrap, bucket_points, challenge_score, interval, klom, margins,
                                logits_on, prediction_kl, summarize, verdict)
from wsscl_fast.metrics.oracle import CHALLENGE_DELTA, EPSILON_CAP


def _normal(models, samples, shift=0.0, seed=0):
    return torch.randn(models, samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_margin_is_the_logit_scaled_confidence():
    logits = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 4
    labels = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    p = torch.softmax(logits, -1).gather(-1, labels.expand(3, 7)[..., None]).squeeze(-1)
    torch.testing.assert_close(margins(logits, labels), p.log() - (1 - p).log(), rtol=1e-9, atol=1e-9)


def _klom_by_hand(u, o, bins, smoothing):
    out = []
    for j in range(u.shape[1]):
        low, high = min(u[:, j].min(), o[:, j].min()), max(u[:, j].max(), o[:, j].max())
        edges = np.linspace(low, high, bins + 1) if high > low else np.linspace(low, low + 1, bins + 1)
        p = np.histogram(u[:, j], edges)[0] / len(u) + smoothing
        q = np.histogram(o[:, j], edges)[0] / len(o) + smoothing
        p, q = p / p.sum(), q / q.sum()
        out.append(float(np.sum(p * np.log(p / q))))
    return np.array(out)


@pytest.mark.parametrize("bins", [1, 5, 20])
def test_klom_matches_histograms_by_hand(bins):
    u, o = _normal(9, 13, seed=1).numpy(), _normal(6, 13, shift=0.7, seed=2).numpy()
    got = klom(torch.from_numpy(u), torch.from_numpy(o), bins=bins, smoothing=1e-3).numpy()
    np.testing.assert_allclose(got, _klom_by_hand(u, o, bins, 1e-3), rtol=1e-9, atol=1e-12)


def test_klom_is_zero_for_identical_ensembles_and_grows_with_a_shift():
    oracle = _normal(50, 200, seed=3)
    assert klom(oracle, oracle).abs().max() < 1e-12
    constant = klom(torch.full((50, 1), 2.0), torch.full((50, 1), 2.0))  # one value on both sides: one bin
    assert constant.tolist() == [0.0]
    # two draws of one distribution still differ by the histograms' sampling noise (the floor);
    # a shift of the unlearned side by 1 and 2 standard deviations rises well above it
    means = [float(klom(_normal(50, 200, shift=s, seed=4), oracle, bins=4).mean()) for s in (0.0, 0.5, 1.0, 2.0, 8.0)]
    assert means == sorted(means) and 3 * means[0] < means[2] and 10 * means[0] < means[3], means
    assert means[-1] > 10  # disjoint supports: the smoothing's log(1/1e-5) scale


def test_prediction_kl_is_zero_for_equal_predictions_and_matches_the_formula():
    oracle = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(prediction_kl(oracle, oracle + 3.0), torch.zeros(2), atol=1e-7)  # a shift is no change
    other = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p, q = oracle.softmax(1), other.softmax(1)
    by_hand = (p * (p / q).log()).sum(1)
    assert torch.allclose(prediction_kl(oracle, other), by_hand, rtol=1e-6)
    assert (prediction_kl(other, oracle) != prediction_kl(oracle, other)).any()  # KL(oracle || model), not both ways
    with pytest.raises(ValueError, match=r"prediction_kl needs two \(samples, classes\) logits of one shape"):
        prediction_kl(oracle, other[:1])


def test_logits_on_keeps_the_order_and_runs_in_eval_mode():
    data = torch.utils.data.TensorDataset(torch.arange(1200, dtype=torch.float32)[:, None], torch.zeros(1200))
    model = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Dropout(0.9))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(0.0)
    model.train()
    logits = logits_on(model, data)
    assert logits.shape == (1200, 1) and torch.equal(logits[:, 0], torch.arange(1200, dtype=torch.float32))
    assert not model.training


def test_summarize_gives_mean_and_95th_percentile():
    stats = summarize(torch.arange(101, dtype=torch.float64))
    assert stats == {"mean": 50.0, "p95": 95.0}


def _epsilon_by_hand(u, o, delta=CHALLENGE_DELTA):
    best = 0.0
    for t in sorted(set(u) | set(o)) + [max(max(u), max(o)) + 1]:
        for pos, neg in ((u, o), (o, u)):
            fpr = sum(x >= t for x in neg) / len(neg)
            fnr = sum(x < t for x in pos) / len(pos)
            if fpr == 0 and fnr == 0:
                return EPSILON_CAP
            if fpr == 0 or fnr == 0:
                continue
            terms = [math.log(1 - delta - fpr) - math.log(fnr) if fpr < 1 - delta else 0.0,
                     math.log(1 - delta - fnr) - math.log(fpr) if fnr < 1 - delta else 0.0]
            best = max(best, *terms)
    return best


def test_attack_epsilons_match_a_brute_force_search():
    u = torch.tensor([[0.1, 3.0], [0.4, 2.0], [0.2, 5.0], [1.5, 4.0], [0.3, 1.0]], dtype=torch.float64)
    o = torch.tensor([[1.0, 0.0], [1.2, 2.5], [0.25, 6.0], [2.0, 1.5]], dtype=torch.float64)
    u = torch.cat([u, _normal(5, 6, seed=5)], 1)
    o = torch.cat([o, _normal(4, 6, shift=torch.linspace(0, 3, 6), seed=6)], 1)
    got = attack_epsilons(u, o)
    want = [_epsilon_by_hand(u[:, j].tolist(), o[:, j].tolist()) for j in range(u.shape[1])]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert got[0] > 0  # the first sample's ensembles do differ


def test_attack_epsilon_edge_cases():
    same = _normal(8, 5, seed=7)
    assert torch.equal(attack_epsilons(same, same), torch.zeros(5, dtype=torch.float64))
    apart = attack_epsilons(torch.arange(8.0)[:, None], torch.arange(8.0)[:, None] + 100)
    assert apart.tolist() == [EPSILON_CAP]
    # one unlearned model (7) among the oracles' side of the cut at 7, one oracle (6.5) among the
    # unlearned side: fpr = fnr = 1/8 is the best informative cut, ε = ln((1 - δ - 1/8) / (1/8))
    one_off = attack_epsilons(torch.arange(8.0)[:, None], torch.tensor([6.5] + [20.0] * 7)[:, None])
    assert one_off.item() == pytest.approx(math.log(7 - 8 * CHALLENGE_DELTA), rel=1e-9)


def test_bucket_points_for_eight_models():
    # ceil(ln 7) = 2: buckets [0, .5) [.5, 1) [1, 1.5) [1.5, 2) worth 1, 1/2, 1/4, 1/8; beyond: 0
    eps = torch.tensor([0.0, 0.49, 0.5, 1.2, 1.99, 2.0, 50.0])
    assert bucket_points(eps, 8).tolist() == [1.0, 1.0, 0.5, 0.25, 0.125, 0.0, 0.0]
    assert bucket_points(torch.tensor([0.0]), 2).tolist() == [0.0]  # 2 models show no ε at all
    with pytest.raises(ValueError, match="at least 2 models"):
        bucket_points(eps, 1)


def test_challenge_score_rewards_indistinguishable_ensembles_only():
    oracle = _normal(8, 40, seed=8)
    same = challenge_score(oracle, oracle, retain_accuracy=(90.0, 90.0), test_accuracy=(80.0, 80.0))
    assert same["forget_quality"] == 1.0 and same["score"] == 1.0
    apart = challenge_score(oracle + 100, oracle, retain_accuracy=(90.0, 90.0), test_accuracy=(80.0, 80.0))
    assert apart["forget_quality"] == 0.0 and apart["epsilon_mean"] == EPSILON_CAP
    worse = challenge_score(oracle, oracle, retain_accuracy=(45.0, 90.0), test_accuracy=(80.0, 80.0))
    assert worse["score"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="test_accuracy"):
        challenge_score(oracle, oracle, (90.0, 90.0), (80.0, 0.0))


@pytest.mark.parametrize("call", [
    lambda: klom(torch.zeros(3), torch.zeros(3, 2)),
    lambda: klom(torch.zeros(3, 2), torch.zeros(3, 4)),
    lambda: klom(torch.full((3, 2), float("nan")), torch.zeros(3, 2)),
    lambda: klom(torch.zeros(3, 2), torch.zeros(3, 2), bins=0),
    lambda: attack_epsilons(torch.zeros(1, 2), torch.zeros(3, 2)),
    lambda: margins(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)),
], ids=["1-d", "samples differ", "nan", "no bins", "one model", "labels shape"])
def test_bad_inputs_are_refused_with_their_name(call):
    with pytest.raises(ValueError, match="margins|bins|labels"):
        call()


def test_paired_bootstrap_sees_a_difference_that_unpaired_noise_hides():
    base = _normal(8, 1, seed=9).squeeze(1) * 10  # large spread between models
    a, b = base + 1.0, base  # a is b plus 1, model by model

    def difference(x, y):
        return x.mean() - y.mean()

    paired = interval(bootstrap(difference, [[a, b]], resamples=200))
    assert paired == pytest.approx((1.0, 1.0)) and verdict(paired) == "higher"
    unpaired = interval(bootstrap(difference, [[a], [b]], resamples=200))
    assert unpaired[0] < 0 < unpaired[1] and verdict(unpaired) == "tied"
    assert verdict((-2.0, -0.1)) == "lower"
    with pytest.raises(ValueError, match="same number of models"):
        bootstrap(difference, [[a, b[:4]]])


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    values = _normal(30, 1, seed=10).squeeze(1)
    draws = bootstrap(lambda x: x.mean(), [[values]], resamples=500, seed=3)
    assert torch.equal(draws, bootstrap(lambda x: x.mean(), [[values]], resamples=500, seed=3))
    low, high = interval(draws)
    se = float(values.std() / math.sqrt(30))
    assert low < float(values.mean()) < high and 2 * se < high - low < 6 * se



def test_redraws_without_replacement_permute_the_models_together():
    a = torch.arange(6.0)
    b = a * 10
    seen = bootstrap(lambda x, y: float((y == 10 * x).all() and sorted(x.tolist()) == a.tolist()),
                     [[a, b]], resamples=20, replace=False)
    assert seen.tolist() == [1.0] * 20  # a permutation, the same one for both paired ensembles
    firsts = bootstrap(lambda x: x[0], [[a]], resamples=50, replace=False)
    assert len(set(firsts.tolist())) > 1


def test_the_docs_example_runs_and_scores_two_draws_of_one_distribution_low():
    """docs/instrument.md's example: KLoM near its floor, a challenge score far below 1 at 8 models."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "instrument.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    namespace, printed = {}, io.StringIO()
    torch.manual_seed(0)
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "docs/instrument.md", "exec"), namespace)
    assert "'mean'" in printed.getvalue() and "'score'" in printed.getvalue()
    assert namespace["unlearned"].shape == namespace["oracle"].shape == (8, 500)
