"""Runtime (execution.py): where and how unlearn()/compare() run, checked once at the door."""
import pytest
import torch

from wsscl_fast import Execution, Runtime, compare
from wsscl_fast.data import make_scenario
from wsscl_fast.runstate import RunState


def test_resolved_fills_the_device_and_the_execution_from_the_model():
    resolved = Runtime().resolved(torch.nn.Linear(2, 2))
    assert resolved.device == torch.device("cpu")
    assert resolved.execution == Execution.default_for(torch.device("cpu"))
    chosen = Runtime(device="cpu", execution=Execution.fast()).resolved()
    assert chosen.execution == Execution.fast()


@pytest.mark.parametrize("field, value, message", [
    ("device", 0, "Runtime.device must be a torch.device, a string or None"),
    ("execution", "fast", "Runtime.execution must be an Execution or None"),
    ("progress", "no", "Runtime.progress must be True or False"),
])
def test_a_bad_runtime_field_is_named(field, value, message):
    with pytest.raises(TypeError, match=message):
        Runtime(**{field: value})


def test_compare_refuses_a_run_state(tmp_path, trained_digits_model, digits):
    state = RunState(tmp_path / "run_state.pt", {"seed": 0})
    with pytest.raises(ValueError, match="a RunState belongs to one unlearn"):
        compare(trained_digits_model, make_scenario(digits, "class:3"), ["ft"],
                runtime=Runtime(progress=False, run_state=state))
