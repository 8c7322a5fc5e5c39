"""Digests of the unlearning record: format-independent, sensitive to one changed value."""
import hashlib

import torch

from wsscl_fast.record import ids_digest, weights_digest


def test_weights_digest_ignores_file_format_and_device_copy(tmp_path):
    state = {"b": torch.arange(6.0).view(2, 3).t(), "a": torch.ones(2, dtype=torch.float16)}
    torch.save(state, tmp_path / "w.pt")
    reloaded = torch.load(tmp_path / "w.pt", weights_only=True)
    assert weights_digest(state) == weights_digest(reloaded) == weights_digest(dict(reversed(list(state.items()))))


def test_weights_digest_changes_with_one_value_dtype_or_name():
    state = {"w": torch.zeros(4)}
    base = weights_digest(state)
    assert weights_digest({"w": torch.tensor([0.0, 0.0, 0.0, 1e-30])}) != base
    assert weights_digest({"w": torch.zeros(4, dtype=torch.float64)}) != base
    assert weights_digest({"v": torch.zeros(4)}) != base
    assert weights_digest({"w": torch.zeros(2, 2)}) != base


def test_ids_digest_is_order_and_duplicate_free_and_hides_the_ids():
    ids = [5, 3, 9]
    expected = hashlib.sha256(b"".join(i.to_bytes(8, "little") for i in (3, 5, 9))).hexdigest()
    assert ids_digest(ids) == ids_digest([9, 5, 3, 5]) == expected
    assert ids_digest([3, 5, 10]) != expected
