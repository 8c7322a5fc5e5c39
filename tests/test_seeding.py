"""Named random streams (seeding.py): stable, distinct, independent of creation order."""
import pytest
import torch

from wsscl_fast import Runtime
from wsscl_fast.methods import MethodContext
from wsscl_fast.seeding import stream_generator, stream_seed


#: the derivation pinned: every committed result was drawn from these streams, so a change of
#: stream_seed (hash, encoding, bit count) must fail here rather than silently move every number
PINNED = [(0, "augment", 7473631653786723695), (1, "forget_batches", 6836864217446641313),
          (3, "retain_loader", 4464647788030294865), (12345, "random_labels", 1735501343876858078)]


@pytest.mark.parametrize("seed,name,expected", PINNED)
def test_stream_seeds_are_pinned(seed, name, expected):
    assert stream_seed(seed, name) == expected


def test_a_stream_seed_depends_on_the_run_seed_and_the_name_only():
    seeds = {stream_seed(s, name) for s in range(4) for name in ("augment", "forget_batches", "retain_loader")}
    assert len(seeds) == 12
    assert all(0 <= s < 2**63 for s in seeds)


def test_streams_do_not_shift_when_another_is_created_first():
    alone = MethodContext(Runtime(device="cpu"), seed=5).generator("forget_batches")
    ctx = MethodContext(Runtime(device="cpu"), seed=5)
    ctx.generator("augment")
    after_another = ctx.generator("forget_batches")
    assert torch.equal(torch.randperm(100, generator=alone), torch.randperm(100, generator=after_another))
    assert not torch.equal(torch.rand(8, generator=stream_generator(5, "augment")),
                           torch.rand(8, generator=stream_generator(5, "forget_batches")))


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_stream_needs_a_name(name):
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        stream_seed(0, name)
