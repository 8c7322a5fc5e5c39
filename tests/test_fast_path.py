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
TOLERANCE_BF16 = 0.01  # measured on this CPU (2026-11-28): 7e-4 (fast), 2.5e-3 (fast + channels-last)


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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("execution, reference, tolerance", [
    (Execution(device_data=True), Execution.reference(), 1e-4),  # fp32: the same sums in another order
    # bf16 autocast on both sides: how far bf16 moves the update from fp32 is a property of the
    # CPU's bf16 kernels (0.033 here, 0.090 on another machine), not of the fast path
    (Execution.fast(), Execution(autocast=True), TOLERANCE_BF16),
    (Execution.fast(channels_last=True), Execution(autocast=True), TOLERANCE_BF16),
], ids=["device_data", "fast", "fast+channels_last"])
def test_fast_wsscl_step_matches_the_reference_step(digits, trained_digits_model, device, execution, reference,
                                                    tolerance):
    """Same state, one WSS-CL step per stage on the whole forget and retain sets: the weight
    updates of the fast path and of the reference path (DataLoader batches) at the same
    precision agree (relative error of the update). The retain batches are not augmented,
    since crops are drawn per batch row and the paths order the rows differently; the forget
    views are."""
    scenario = make_scenario(digits, "random:0.1", seed=0)
    config = WSSCLConfig(forget_epochs=1, finetune_epochs=1, batch_size=len(scenario.retain),
                         forget_batch_size=len(scenario.forget), finetune_forget_batch_size=len(scenario.forget),
                         aug_pad=0, aug_flip=False, view_flip=False)
    start = copy.deepcopy(trained_digits_model).to(device)
    runs = {}
    for name, how in (("reference", reference), ("fast", execution)):
        result = unlearn(start, scenario.forget, scenario.retain, "wsscl", config, holdout=digits.validation,
                         runtime=Runtime(device=device, progress=False, backend="torch", execution=how))
        assert result.info["execution"] == how.to_dict()
        runs[name] = _update(start, result.model.to(memory_format=torch.contiguous_format))
    error = (runs["fast"] - runs["reference"]).norm() / runs["reference"].norm()
    assert runs["reference"].norm() > 0
    assert error < tolerance, f"fast-path update differs from the reference update by {error:.2e} (relative)"


def test_nonfinite_loss_is_reported_with_its_step():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = iter([1.0, 2.0, float("nan"), 3.0, float("inf")])

    def loss_fn(_):
        return model(torch.ones(1, 2)).sum() * 0 + next(losses)

    with pytest.raises(FloatingPointError, match=r"demo: the loss became nan at step 2"):
        run_steps(model, optimizer, range(5), loss_fn, total=5, desc="demo", progress=False, steps_per_epoch=5)
