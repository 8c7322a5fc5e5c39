"""The fast path (on-device batches, bf16 autocast, channels-last, compile) computes the same
method as the reference path; its data loader gives the DataLoader's batches. Runs on the CPU
here and on CUDA when the session has a GPU."""
import copy

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from wsscl_fast import Execution, Runtime, WSSCLConfig, unlearn
from wsscl_fast.data import DeviceLoader, as_loader, make_loader, make_scenario
from wsscl_fast.training import run_steps

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# Two fp32 paths differ only in summation order (batch order, channels-last convolutions). A sum
# of n terms in another order moves by at most n * u relative (Higham's gamma_n, u = 2^-24); the
# deepest sums of a step are the weight gradients over batch x 8 x 8 pixels (~7e4 here, so 4e-3).
FP32_UNIT_ROUNDOFF = torch.finfo(torch.float32).eps / 2
# Two bf16 paths are each within d = |ref_bf16 - ref_fp32| of the fp32 update (d measured in the
# same test, on this CPU's own bf16 kernels: 0.02 to 0.1 relative, from AMX to AVX2-only oneDNN).
# If the fast path rounds no worse than the reference, the triangle inequality gives
# |fast - ref_bf16| <= 2 d, plus the fp32 ordering bound above for the rest of the step.
BF16_FACTOR = 2.0


def fp32_ordering_bound(digits) -> float:
    """n * u for the deepest sum of a step: the weight gradient over every retain pixel."""
    scenario = make_scenario(digits, "random:0.1", seed=0)
    return len(scenario.retain) * digits.train[0][0][0].numel() * FP32_UNIT_ROUNDOFF


def _nested_subset(digits):
    return Subset(Subset(digits.train, list(range(3, 700))), list(range(0, 697, 2)))  # nested, odd length


@pytest.mark.parametrize("device", DEVICES)
def test_device_loader_without_shuffle_gives_the_dataloader_batches(digits, device):
    data = _nested_subset(digits)
    ours, theirs = DeviceLoader(data, 64, shuffle=False, seed=5, device=device), as_loader(data, 64, shuffle=False)
    assert len(ours) == len(theirs) == 6
    for (x, y), (x_ref, y_ref) in zip(ours, theirs, strict=True):
        assert x.device.type == device and x.dtype == torch.float32
        assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref)


@pytest.mark.parametrize("device", DEVICES)
def test_device_loader_shuffles_each_pass_reproducibly(digits, device):
    data = _nested_subset(digits)
    images = torch.stack([data[i][0] for i in range(len(data))])

    def passes(seed):
        loader = DeviceLoader(data, 64, shuffle=True, seed=seed, device=device)
        return [torch.cat([x.cpu() for x, _ in loader]) for _ in range(2)]

    first, second = passes(5)
    for epoch in (first, second):  # every sample exactly once per pass, bit-identical to the dataset's item
        order = [int((images == row).flatten(1).all(1).nonzero()) for row in epoch]
        assert sorted(order) == list(range(len(data)))
    assert not torch.equal(first, second)
    again = passes(5)
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_loader_choice(digits):
    assert isinstance(make_loader(digits.train, 32, True, 0, device=torch.device("cpu")), DeviceLoader)
    assert isinstance(make_loader(digits.train, 32, True, 0), DataLoader)
    other = TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert isinstance(make_loader(other, 2, True, 0, device=torch.device("cpu")), DataLoader)
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        DeviceLoader(other, 2, True, 0, "cpu")
    with pytest.raises(ValueError, match="empty"):
        DeviceLoader(Subset(digits.train, []), 2, True, 0, "cpu")


def _update(model_before, model_after):
    return torch.cat([(a - b).flatten() for a, b in zip(model_after.state_dict().values(),
                                                         model_before.state_dict().values()) if a.is_floating_point()])


def _relative(a, b):
    return float((a - b).norm() / b.norm())


def wsscl_update(digits, model, device, execution):
    """The weight update of one WSS-CL step per stage on the whole forget and retain sets."""
    scenario = make_scenario(digits, "random:0.1", seed=0)
    config = WSSCLConfig(forget_epochs=1, finetune_epochs=1, batch_size=len(scenario.retain),
                         forget_batch_size=len(scenario.forget), finetune_forget_batch_size=len(scenario.forget),
                         aug_pad=0, aug_flip=False, view_flip=False)
    start = copy.deepcopy(model).to(device)
    result = unlearn(start, scenario.forget, scenario.retain, "wsscl", config, holdout=digits.validation,
                     runtime=Runtime(device=device, progress=False, backend="torch", execution=execution))
    assert result.info["execution"] == execution.to_dict()
    update = _update(start, result.model.to(memory_format=torch.contiguous_format))
    assert update.norm() > 0
    return update


@pytest.fixture(scope="module")
def reference_updates(digits, trained_digits_model):
    """{(device, "fp32" | "bf16"): the reference path's update} (DataLoader batches, eager)."""
    return {(device, precision): wsscl_update(digits, trained_digits_model, device, Execution(autocast=bf16))
            for device in DEVICES for precision, bf16 in (("fp32", False), ("bf16", True))}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("execution", [Execution(device_data=True), Execution(device_data=True, channels_last=True)],
                         ids=["device_data", "device_data+channels_last"])
def test_fast_path_in_fp32_matches_the_reference_step(digits, trained_digits_model, reference_updates, device,
                                                      execution):
    """Same state, one WSS-CL step per stage: the fast path's machinery without bf16 gives the
    reference path's update up to fp32 summation order. The retain batches are not augmented,
    since crops are drawn per batch row and the paths order the rows differently; the forget
    views are."""
    error = _relative(wsscl_update(digits, trained_digits_model, device, execution), reference_updates[device, "fp32"])
    bound = fp32_ordering_bound(digits)
    assert error < bound, f"fast-path update differs from the reference update by {error:.2e} (bound {bound:.1e})"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("execution", [Execution.fast(), Execution.fast(channels_last=True)],
                         ids=["fast", "fast+channels_last"])
def test_fast_path_in_bf16_is_as_close_as_bf16_allows(digits, trained_digits_model, reference_updates, device,
                                                      execution):
    """bf16 autocast on both sides: the fast path's distance from the reference path is bounded
    by what bf16 itself moves the reference (measured here, on this CPU's kernels)."""
    fast = wsscl_update(digits, trained_digits_model, device, execution)
    ref_bf16, ref_fp32 = reference_updates[device, "bf16"], reference_updates[device, "fp32"]
    bf16_shift = _relative(ref_bf16, ref_fp32)
    assert 0 < bf16_shift < 0.5, f"bf16 moves the reference update by {bf16_shift:.2e}: autocast off, or broken"
    # the fast path rounds through bf16 too: it sits about as far from fp32 as the reference does
    assert _relative(fast, ref_fp32) > bf16_shift / 2, "the fast path's update is not a bf16 computation"
    error, bound = _relative(fast, ref_bf16), BF16_FACTOR * bf16_shift + fp32_ordering_bound(digits)
    assert error < bound, (f"fast-path update differs from the bf16 reference update by {error:.2e} (relative); "
                           f"bf16 moves the reference by {bf16_shift:.2e}, so the bound is {bound:.2e}")


def test_nonfinite_loss_is_reported_with_its_step():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = iter([1.0, 2.0, float("nan"), 3.0, float("inf")])

    def loss_fn(_):
        return model(torch.ones(1, 2)).sum() * 0 + next(losses)

    with pytest.raises(FloatingPointError, match=r"demo: the loss became nan at step 2"):
        run_steps(model, optimizer, range(5), loss_fn, total=5, desc="demo", progress=False, steps_per_epoch=5)
