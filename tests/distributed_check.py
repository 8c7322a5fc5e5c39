"""Run by test_distributed.py as one process and under ``torchrun --nproc_per_node=2`` (gloo).

Checks in process, under torchrun, that the gathered InfoNCE matches the single-process loss
and gradients; then, in both modes, computes the saliency masks and unlearns with FT and
WSS-CL (no augmentation, a model without BatchNorm), and rank 0 saves them to ``argv[1]``
for the test to compare across modes.
"""
import sys

import torch
import torch.distributed as dist
from torch import nn

from wsscl_fast import BaselineConfig, Runtime, WSSCLConfig, compute_saliency, distributed, infonce_loss, unlearn
from wsscl_fast.data import load_bundle, make_scenario


class NoNormCNN(nn.Module):
    """BatchNorm statistics are per rank under DDP; without it the ranks compute the single-process step."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(32, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def check_gathered_infonce():
    rank, world = distributed.rank(), distributed.world_size()
    g = torch.Generator().manual_seed(0)
    anchors, positives, negatives = (torch.randn(k, 16, generator=g, dtype=torch.float64) for k in (8, 8, 13))
    mine = lambda t, cuts: t[cuts[rank]:cuts[rank + 1]].clone().requires_grad_(True)  # noqa: E731
    anchor_cuts, negative_cuts = [0, 4, 8], [0, 5, 13]  # uneven negatives: 5 and 8 rows
    a, p, r = mine(anchors, anchor_cuts), mine(positives, anchor_cuts), mine(negatives, negative_cuts)
    loss = infonce_loss(a, p, r, temperature=0.3, group=dist.group.WORLD)
    loss.backward()
    full = [t.clone().requires_grad_(True) for t in (anchors, positives, negatives)]
    expected = infonce_loss(*full, temperature=0.3)
    expected.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    torch.testing.assert_close(mean_loss / world, expected.detach(), rtol=1e-12, atol=1e-12)
    for local, reference, cuts in ((a, full[0], anchor_cuts), (p, full[1], anchor_cuts), (r, full[2], negative_cuts)):
        # DDP divides the parameter gradients by the world size; the feature gradients are world x
        torch.testing.assert_close(local.grad / world, reference.grad[cuts[rank]:cuts[rank + 1]], rtol=1e-10, atol=1e-12)


def main(out):
    if distributed.init_from_env("cpu") is not None:
        check_gathered_infonce()
    bundle = load_bundle("digits", seed=0)
    scenario = make_scenario(bundle, "random:0.1", seed=0)
    forget = torch.utils.data.Subset(scenario.forget, range(40))
    retain = torch.utils.data.Subset(scenario.retain, range(256))
    torch.manual_seed(0)
    model = NoNormCNN()
    no_augmentation = dict(aug_pad=0, aug_flip=False, batch_size=64)
    results = {"saliency": compute_saliency(model, distributed.sharded_loader(forget, 20, False, 0), ratio=0.5)}
    for method, config in (("ft", BaselineConfig(epochs=2, **no_augmentation)),
                           ("wsscl", WSSCLConfig(view_pad=0, view_flip=False, forget_epochs=2, forget_batch_size=20,
                                                 finetune_epochs=2, finetune_forget_weight=1.0, **no_augmentation))):
        loaders = [distributed.sharded_loader(data, config.batch_size, True, seed) for data, seed in ((forget, 1), (retain, 2))]
        result = unlearn(model, *loaders, method, config, test=bundle.test, seed=0, runtime=Runtime(progress=False))
        results[method] = dict(state=result.model.state_dict(), metrics=result.metrics)
    if distributed.is_main():
        torch.save(results, out)
    del results
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
