"""Every method on a tiny dataset (digits, class-wise forgetting): forgetting happens, and the
API keeps its promises (caller's model untouched, loaders accepted, clear errors)."""
import copy

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from wsscl_fast import BaselineConfig, Runtime, WSSCLConfig, unlearn
from wsscl_fast.data import make_scenario
from wsscl_fast.methods import ALL_METHODS, METHODS
from wsscl_fast.metrics import evaluate_unlearning

from helpers import ALL_BACKENDS, QUIET, device_for


@pytest.fixture(scope="module")
def classwise(digits):
    return make_scenario(digits, "class:3")


@pytest.fixture(scope="module")
def original_metrics(trained_digits_model, classwise):
    return evaluate_unlearning(trained_digits_model, classwise.forget, classwise.retain, classwise.test)


def _short_config(name, tiny_recipe):
    config = tiny_recipe.method_configs[name]
    if name == "wsscl":
        return config.replace(forget_epochs=3, finetune_epochs=2)  # stage 2 needs a second pass to restore RA
    if name == "retrain":
        return config
    if name == "coun":  # retain-only, like FT: at 0.05 UA rose by 35 to 41 points over seeds 0-1 (2026-12-01)
        return config.replace(epochs=5, lr=0.05)
    if name == "rl":  # 2 epochs raised UA by 2.3 (1 thread) to 8.6 (2 threads) points; 4 by 15.6 to 18.8 (2026-12-01)
        return config.replace(epochs=4)
    if name in ("ft", "l1_sparse"):
        # they forget only through catastrophic forgetting: over unlearn seeds 0-4 on this toy,
        # 2 epochs raised UA by 1.4 to 6.2 points (the test's +5 failed on some machines), 5
        # epochs by 6.1 to 11.6 (measured 2026-11-28), so the bound below holds with margin
        return config.replace(epochs=5)
    return config.replace(epochs=2)


def test_every_registered_method_is_covered():
    assert set(METHODS) == {"retrain", "ft", "ga", "rl", "salun", "l1_sparse", "neggrad_plus", "scrub", "coun",
                            "wsscl"} == set(ALL_METHODS)


#: methods that run fused ops (saliency, masked SGD, InfoNCE), tested on every backend
FUSED_OP_METHODS = ("salun", "wsscl")
METHOD_BACKENDS = [(m, b) for m in sorted(METHODS) for b in (ALL_BACKENDS if m in FUSED_OP_METHODS else (None,))]


@pytest.mark.parametrize("method,backend", METHOD_BACKENDS)
def test_method_forgets(method, backend, trained_digits_model, classwise, original_metrics, tiny_recipe):
    result = unlearn(trained_digits_model, classwise.forget, classwise.retain, method,
                     _short_config(method, tiny_recipe), test=classwise.test,
                     runtime=Runtime(device=device_for(backend or "torch"), progress=False, backend=backend))
    assert result.metrics["UA"] > original_metrics["UA"] + 5, (method, result.metrics, original_metrics)
    assert result.metrics["RA"] > 80, (method, result.metrics)
    assert result.rte > 0 and result.timings and all(v >= 0 for v in result.timings.values())
    ran = {name for names in result.info["backends"].values() for name in names}
    assert ran == ({backend} if method in FUSED_OP_METHODS else set()), result.info["backends"]


def test_wsscl_stages_and_auto_bound(trained_digits_model, classwise, tiny_recipe):
    result = unlearn(trained_digits_model, classwise.forget, classwise.retain, "wsscl",
                     _short_config("wsscl", tiny_recipe), test=classwise.test, holdout=classwise.holdout,
                     runtime=QUIET)
    assert set(result.timings) == {"saliency", "targets", "forget", "contrastive"}
    assert result.info["kl_bound_source"] == "holdout"
    assert result.info["removed_class_samples"] == len(classwise.forget)
    assert result.info["kl_bound_removed_class_mean"] > result.info["kl_bound_seen_class_mean"] > 0


def test_wsscl_without_a_holdout_uses_the_fallback_rule(trained_digits_model, classwise, tiny_recipe, digits):
    from wsscl_fast.methods import MethodContext
    from wsscl_fast.methods.wsscl import kl_bounds
    from wsscl_fast.data import to_tensors

    config = _short_config("wsscl", tiny_recipe)
    result = unlearn(trained_digits_model, classwise.forget, classwise.retain, "wsscl", config,
                     test=classwise.test, runtime=QUIET)
    assert result.info["kl_bound_source"] == "fallback" and "kl_bound_seen_class_mean" not in result.info
    assert result.info["kl_bound_removed_class_mean"] > 0  # a removed class: wrong-label losses of retain samples
    random_forget = make_scenario(digits, "random:0.1")  # every class remains: all samples get kl_bound_fallback
    images, labels = to_tensors(random_forget.forget)
    retain = DataLoader(random_forget.retain, batch_size=64)
    bounds = kl_bounds(trained_digits_model, images, labels, retain, config, MethodContext(Runtime(device="cpu")))
    assert torch.equal(bounds, torch.full_like(bounds, config.kl_bound_fallback))


@pytest.mark.parametrize("method", ["wsscl", "salun"])
@pytest.mark.parametrize("with_holdout", [False, True])
def test_the_test_set_never_shapes_the_weights(method, with_holdout, trained_digits_model, classwise, tiny_recipe):
    """test is for metrics only: replacing it by noise changes no weight, with or without a holdout."""
    images = torch.stack([classwise.test[i][0] for i in range(len(classwise.test))])
    noise = torch.utils.data.TensorDataset(torch.randn_like(images) * 3, torch.randint(0, 10, (len(images),)))
    models = [unlearn(trained_digits_model, classwise.forget, classwise.retain, method,
                      _short_config(method, tiny_recipe), test=test, forgotten_test=forgotten,
                      holdout=classwise.holdout if with_holdout else None, runtime=QUIET).model.state_dict()
              for test, forgotten in ((classwise.test, classwise.forgotten_test), (noise, noise))]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_salun_freezes_unsalient_weights_exactly(trained_digits_model, classwise, tiny_recipe):
    from wsscl_fast.saliency import compute_saliency

    forget = DataLoader(classwise.forget, batch_size=len(classwise.forget))  # one batch: the same mask in both
    mask = compute_saliency(trained_digits_model, forget, ratio=0.5, mode="hard")
    result = unlearn(trained_digits_model, forget, classwise.retain, "salun",
                     _short_config("salun", tiny_recipe), runtime=QUIET)
    for before, after, m in zip(trained_digits_model.parameters(), result.model.parameters(), mask):
        assert torch.equal(before[~m], after[~m])
        assert not torch.equal(before[m], after[m]) or m.sum() == 0


def test_matched_quantiles_follow_the_reference_distribution():
    from wsscl_fast.methods.wsscl import matched_quantiles

    reference = torch.arange(100, dtype=torch.float32)
    values = torch.tensor([5.0, -1.0, 3.0, 10.0])
    bounds = matched_quantiles(reference, values)
    assert bounds.argsort().tolist() == values.argsort().tolist()  # order preserved
    torch.testing.assert_close(bounds, torch.quantile(reference, torch.tensor([0.625, 0.125, 0.375, 0.875])))


def test_l1_sparse_differs_from_ft(trained_digits_model, classwise, tiny_recipe):
    config = tiny_recipe.method_configs["l1_sparse"].replace(epochs=1, l1_alpha=1e-2)
    ft = unlearn(trained_digits_model, classwise.forget, classwise.retain, "ft", config, runtime=QUIET).model
    l1 = unlearn(trained_digits_model, classwise.forget, classwise.retain, "l1_sparse", config, runtime=QUIET).model
    l1_norm = sum(p.abs().sum() for p in l1.parameters())
    assert l1_norm < sum(p.abs().sum() for p in ft.parameters())


def test_callers_model_is_untouched_unless_inplace(trained_digits_model, classwise, tiny_recipe):
    before = copy.deepcopy(trained_digits_model.state_dict())
    config = _short_config("ft", tiny_recipe)
    result = unlearn(trained_digits_model, classwise.forget, classwise.retain, "ft", config, runtime=QUIET)
    assert result.model is not trained_digits_model
    assert all(torch.equal(v, before[k]) for k, v in trained_digits_model.state_dict().items())
    model = copy.deepcopy(trained_digits_model)
    assert unlearn(model, classwise.forget, classwise.retain, "ft", config, inplace=True, runtime=QUIET).model is model
    assert not all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_dataloaders_are_accepted_and_seeds_reproduce(trained_digits_model, classwise, tiny_recipe):
    config = _short_config("rl", tiny_recipe)
    loaders = [DataLoader(d, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
               for d in (classwise.forget, classwise.retain)]
    a = unlearn(trained_digits_model, *loaders, "rl", config, runtime=QUIET, seed=5).model
    loaders = [DataLoader(d, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
               for d in (classwise.forget, classwise.retain)]
    b = unlearn(trained_digits_model, *loaders, "rl", config, runtime=QUIET, seed=5).model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_api_errors(trained_digits_model, classwise):
    empty = Subset(classwise.forget, [])
    with pytest.raises(ValueError, match="forget: the dataset is empty"):
        unlearn(trained_digits_model, empty, classwise.retain)
    with pytest.raises(ValueError, match="holdout: the dataset is empty"):
        unlearn(trained_digits_model, classwise.forget, classwise.retain, holdout=empty)
    with pytest.raises(TypeError, match="retain: expected a torch Dataset or DataLoader"):
        unlearn(trained_digits_model, classwise.forget, [1, 2, 3])
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        unlearn(trained_digits_model, classwise.forget, classwise.retain, "magic")
    with pytest.raises(TypeError, match="method 'wsscl' takes a WSSCLConfig, got BaselineConfig"):
        unlearn(trained_digits_model, classwise.forget, classwise.retain, "wsscl", BaselineConfig())
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        unlearn("model.pt", classwise.forget, classwise.retain)
    with pytest.raises(TypeError, match="has no nn.Linear layer"):
        unlearn(torch.nn.Sequential(torch.nn.Conv2d(1, 10, 8), torch.nn.Flatten()), classwise.forget,
                classwise.retain, "wsscl", WSSCLConfig(forget_epochs=1, finetune_epochs=0), runtime=QUIET)


def test_config_validation():
    with pytest.raises(ValueError, match="saliency_mode must be 'soft' or 'hard'"):
        WSSCLConfig(saliency_mode="fuzzy")
    with pytest.raises(ValueError, match="kl_bound must be 'auto' or a number > 0"):
        WSSCLConfig(kl_bound=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        WSSCLConfig(temperature=0.0)
    with pytest.raises(ValueError, match=r"has no field\(s\) \['lamda'\]"):
        WSSCLConfig.from_dict({"lamda": 1.0})


def test_overlapping_forget_and_retain_are_refused(trained_digits_model, digits):
    with pytest.raises(ValueError, match="share 5 sample"):
        unlearn(trained_digits_model, Subset(digits.train, range(10)), Subset(digits.train, range(5, 100)), "ft",
                BaselineConfig(epochs=1), runtime=QUIET)
    with pytest.raises(ValueError, match="the same dataset"):
        unlearn(trained_digits_model, digits.train, digits.train, "ft", BaselineConfig(epochs=1), runtime=QUIET)


class _Doubled(torch.nn.Module):
    """A classifier whose output is not its final Linear's output."""

    def __init__(self):
        super().__init__()
        self.body, self.fc = torch.nn.Flatten(), torch.nn.Linear(64, 10)

    def forward(self, x):
        return 2 * self.fc(self.body(x))


def _torchvision_resnet18_for_digits():
    from torchvision.models import resnet18
    net = resnet18(num_classes=10)
    net.conv1 = torch.nn.Conv2d(1, 64, kernel_size=3, padding=1, bias=False)
    return net


@pytest.mark.parametrize("build, head", [
    (_torchvision_resnet18_for_digits, None),  # found: fc, the last Linear
    (lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 10)), None),
    (lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                 torch.nn.Linear(32, 10)), "3"),  # named by the user
])
def test_wsscl_takes_any_classifier_with_a_final_linear(build, head, classwise):
    torch.manual_seed(0)
    model = build()
    config = WSSCLConfig(forget_epochs=1, finetune_epochs=1, batch_size=32, forget_batch_size=16, aug_flip=False,
                         view_flip=False, head_module=head)
    forget, retain = Subset(classwise.forget, range(16)), Subset(classwise.retain, range(64))  # ResNet-18 on a CPU
    # backend="torch": the interpreted Triton steps over ResNet-18's 11M weights would take minutes
    result = unlearn(model, forget, retain, "wsscl", config, test=Subset(classwise.test, range(64)),
                     runtime=Runtime(progress=False, backend="torch"))
    assert set(result.timings) == {"saliency", "targets", "forget", "contrastive"}
    changed = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), result.model.state_dict().values())]
    assert any(changed)


def test_wsscl_refuses_a_head_that_is_not_the_output(classwise):
    with pytest.raises(TypeError, match="not the output of 'fc'"):
        unlearn(_Doubled(), classwise.forget, classwise.retain, "wsscl", WSSCLConfig(forget_epochs=1, finetune_epochs=0),
                runtime=QUIET)
    with pytest.raises(ValueError, match="head_module 'nope' is not an nn.Linear"):
        unlearn(_Doubled(), classwise.forget, classwise.retain, "wsscl",
                WSSCLConfig(forget_epochs=1, finetune_epochs=0, head_module="nope"), runtime=QUIET)


def test_labels_and_models_unlearn_cannot_train_are_refused_by_name(trained_digits_model, digits):
    from torch.utils.data import TensorDataset
    x = torch.stack([digits.train[i][0] for i in range(8)])
    cases = [
        (TensorDataset(x, torch.arange(8) + 5), ValueError, r"forget: labels must lie in \[0, 10\).*\[10, 11, 12\]"),
        (TensorDataset(x, torch.zeros(8)), TypeError, "forget: labels must be integer class indices"),
    ]
    for forget, error, message in cases:
        with pytest.raises(error, match=message):
            unlearn(trained_digits_model, forget, Subset(digits.train, range(8, 40)), "ft", BaselineConfig(epochs=1),
                    runtime=QUIET)
    frozen = copy.deepcopy(trained_digits_model).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        unlearn(frozen, Subset(digits.train, range(8)), Subset(digits.train, range(8, 40)), "ft", runtime=QUIET)
    half = copy.deepcopy(trained_digits_model).bfloat16()
    with pytest.raises(TypeError, match=r"must be float32, got \['torch.bfloat16'\]"):
        unlearn(half, Subset(digits.train, range(8)), Subset(digits.train, range(8, 40)), "ft", runtime=QUIET)


def test_non_image_and_integer_inputs_are_refused_before_any_work(digits):
    from torch.utils.data import TensorDataset

    mlp = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    tabular = TensorDataset(torch.randn(40, 20), torch.arange(40) % 3)
    forget, retain = Subset(tabular, range(8)), Subset(tabular, range(8, 40))
    with pytest.raises(ValueError, match=r"forget: wsscl crops and flips its inputs \(aug_pad, aug_flip, view_pad, "
                                         r"view_flip set\).*got samples of shape \(20,\)"):
        unlearn(mlp, forget, retain, "wsscl", runtime=QUIET)
    no_augmentation = dict(aug_pad=0, aug_flip=False, view_pad=0, view_flip=False)
    result = unlearn(mlp, forget, retain, "wsscl", WSSCLConfig(forget_epochs=1, finetune_epochs=1, batch_size=16,
                                                               **no_augmentation), runtime=QUIET)
    assert any(not torch.equal(p, q) for p, q in zip(mlp.parameters(), result.model.parameters()))
    images = torch.stack([digits.train[i][0] for i in range(40)])
    as_uint8 = TensorDataset((images * 40 + 128).clamp(0, 255).to(torch.uint8), torch.arange(40) % 10)
    with pytest.raises(TypeError, match=r"forget: inputs must be float tensors.*got torch.uint8"):
        unlearn(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), Subset(as_uint8, range(8)),
                Subset(as_uint8, range(8, 40)), "ft", runtime=QUIET)


@pytest.mark.parametrize("spec, message", [("class:abc", "expected a class index in \\[0, 10\\)"),
                                           ("random:abc", "expected a fraction in \\(0, 1\\)")])
def test_forget_specs_name_what_was_expected(digits, spec, message):
    with pytest.raises(ValueError, match=f"forget spec '{spec}': {message}"):
        make_scenario(digits, spec)


def test_compare_takes_variants_and_a_trained_retrain(trained_digits_model, classwise, tiny_recipe):
    from wsscl_fast.api import UnlearnResult, compare
    from wsscl_fast.audit import Audit

    ga = tiny_recipe.method_configs["ga"].replace(ga_epochs=1)
    retrain = UnlearnResult(copy.deepcopy(trained_digits_model), "retrain", tiny_recipe.train, rte=123.0, timings={})
    rows = compare(trained_digits_model, classwise, ["ga", ("ga [lr 1e-3]", "ga")],
                   {"ga": ga, "ga [lr 1e-3]": ga.replace(ga_lr=1e-3)}, retrain=retrain, runtime=QUIET,
                   audit=Audit(relearn_forget_steps=2))
    assert [r["method"] for r in rows] == ["original", "retrain", "ga", "ga [lr 1e-3]"]
    assert rows[1]["RTE"] == 123.0 and rows[1]["gap"] == 0.0  # evaluated, not retrained
    assert rows[0]["gap"] == 0.0  # the "Retrain" here is the original model itself
    assert rows[2]["UA"] != rows[3]["UA"] or rows[2]["RA"] != rows[3]["RA"]  # the variant's config was used
    assert all("relearn_k_FA" in r and "probe_FA" in r for r in rows)
    assert retrain.metrics is None and retrain.audit is None  # the caller's result is left as it was


def test_already_forgotten_samples_leave_the_retain_set(trained_digits_model, digits, tiny_recipe):
    """Forget class 3, then class 5 by fine-tuning: with already_forgotten the 3s stay forgotten,
    without it the second request retrains on them."""
    first = unlearn(trained_digits_model, make_scenario(digits, "class:3").forget,
                    make_scenario(digits, "class:3").retain, "wsscl", _short_config("wsscl", tiny_recipe),
                    runtime=QUIET)
    threes, fives = make_scenario(digits, "class:3"), make_scenario(digits, "class:5")
    config = tiny_recipe.method_configs["ft"].replace(epochs=3)

    def threes_accuracy(**ledger):
        second = unlearn(first.model, fives.forget, fives.retain, "ft", config, runtime=QUIET, **ledger)
        return evaluate_unlearning(second.model, threes.forget, threes.retain, threes.test)["UA"]

    assert threes_accuracy(already_forgotten=threes.forget) > threes_accuracy() + 20
    with pytest.raises(ValueError, match="already_forgotten must be a Subset of the same dataset"):
        unlearn(first.model, fives.forget, fives.retain, "ft", config, runtime=QUIET,
                already_forgotten=Subset(digits.test, range(3)))


def test_wsscl_forgetting_loss_matches_the_reference():
    from wsscl_fast.methods.wsscl import bounded_forgetting_loss
    from wsscl_fast.reference import forgetting_loss_ref

    torch.manual_seed(0)
    logits, q = torch.randn(6, 10), torch.softmax(torch.randn(6, 10) / 0.3, dim=1)
    bounds, weights = torch.rand(6) * 3 + 0.1, torch.rand(6)
    retain_logits, retain_targets = torch.randn(4, 10), torch.randint(0, 10, (4,))
    torch.testing.assert_close(bounded_forgetting_loss(logits, q, bounds, retain_logits, retain_targets),
                               forgetting_loss_ref(logits, q, bounds, retain_logits, retain_targets), rtol=0, atol=1e-6)
    torch.testing.assert_close(bounded_forgetting_loss(logits, q, bounds, sample_weights=weights),
                               forgetting_loss_ref(logits, q, bounds, sample_weights=weights), rtol=0, atol=1e-6)
