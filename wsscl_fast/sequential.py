"""Deletion requests one after another: each method continues from its own previous model, never
retains what an earlier request forgot, and is measured after every request against a Retrain
on the cumulative retain set.

    requests = sequential_requests(bundle, "random:0.02x5", seed=0)   # 5 disjoint 2% requests
    rows = compare_sequential(model, bundle, requests, ["ft", "wsscl"], configs)
"""
from __future__ import annotations

import copy
import time

import torch
from torch import nn

from .data import (DataBundle, ForgetScenario, forgotten_scenario, make_scenario, random_forget_split,
                   with_removed_classes_apart)
from .execution import Runtime
from .metrics import avg_gap, evaluate_unlearning, logits_on, prediction_kl


def parse_requests(spec: str) -> tuple[str, list[str] | tuple[float, int]]:
    """``("class", [A, B, ...])`` or ``("random", (FRACTION, K))`` of a sequential spec; raises on any other."""
    kind, _, value = spec.partition(":")
    if kind == "class" and value and all(value.split(",")):
        return kind, value.split(",")
    if kind == "random" and "x" in value:
        fraction, _, count = value.partition("x")
        try:
            f, k = float(fraction), int(count)
        except ValueError:
            f, k = 0.0, 0
        if k >= 1 and 0 < f * k < 1:
            return kind, (f, k)
    raise ValueError(f"sequential spec must be random:FRACTIONxK (K >= 1 requests whose fractions sum below 1) "
                     f"or class:A,B,..., got {spec!r}")


def sequential_requests(bundle: DataBundle, spec: str, seed: int = 0) -> list[ForgetScenario]:
    """The requests of ``spec``: ``random:FRACTIONxK`` (K disjoint seeded random requests of
    FRACTION of the training set each) or ``class:A,B,...`` (one class per request)."""
    kind, value = parse_requests(spec)
    if kind == "class":
        return [make_scenario(bundle, f"class:{c}") for c in value]
    f, k = value
    chosen, _ = random_forget_split(len(bundle.train), f * k, seed)
    chunks = chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))].chunk(k)
    return [forgotten_scenario(bundle, c, f"request {i + 1}") for i, c in enumerate(chunks)]


def cumulative(bundle: DataBundle, requests: list[ForgetScenario]) -> ForgetScenario:
    """Everything the ``requests`` forgot, as one scenario: forget = their union, retain = the
    rest; for class requests, TA on the remaining classes and the forgotten classes' test apart."""
    rows = torch.cat([r.forget_indices for r in requests]).unique()
    return with_removed_classes_apart(bundle, forgotten_scenario(bundle, rows, f"{len(requests)} requests"), rows)


def compare_sequential(model: nn.Module, bundle: DataBundle, requests: list[ForgetScenario], methods, configs: dict,
                       *, seed: int = 0, runtime: Runtime | None = None) -> list[dict]:
    """One row per (method, request k): UA/RA/TA/MIA on everything forgotten after k requests,
    the Avg. Gap to a Retrain trained on the cumulative retain set, the mean per-example
    prediction KL from that Retrain on everything forgotten so far and on the test set
    (``forget_KL``, ``test_KL``), the request's RTE and the cumulative RTE (and WSS-CL's
    ``checkpoint_choice``: its candidates and the one returned). Each method
    unlearns request k from its own model after request k - 1, with the earlier requests'
    samples out of its retain set."""
    from .api import unlearn
    from .training import train_model

    runtime = runtime or Runtime(progress=False)
    device = torch.device(runtime.device or "cpu")
    current = {m: model for m in methods}
    spent = {m: 0.0 for m in ("retrain", *methods)}
    rows = []
    for k in range(1, len(requests) + 1):
        so_far = cumulative(bundle, requests[:k])  # its retain set holds no sample of any request so far
        start = time.perf_counter()
        torch.manual_seed(seed)
        retrain = train_model(copy.deepcopy(model).apply(_reset), so_far.retain, configs["retrain"], device,
                              seed=seed, progress=False)
        spent["retrain"] = time.perf_counter() - start  # a Retrain starts over: its cost is not cumulative
        reference = evaluate_unlearning(retrain, so_far.forget, so_far.retain, so_far.test, so_far.forgotten_test)
        reference_logits = {split: logits_on(retrain, getattr(so_far, split), device) for split in ("forget", "test")}
        rows.append(dict(method="retrain", request=k, seed=seed, **reference, gap=0.0, forget_KL=0.0, test_KL=0.0,
                         RTE=spent["retrain"], cumulative_RTE=spent["retrain"]))
        for m in methods:
            result = unlearn(current[m], requests[k - 1].forget, so_far.retain, m, configs.get(m),
                             holdout=bundle.validation, seed=seed, runtime=runtime)
            current[m] = result.model
            spent[m] += result.rte
            metrics = evaluate_unlearning(result.model, so_far.forget, so_far.retain, so_far.test,
                                          so_far.forgotten_test)
            logits = {split: logits_on(result.model, getattr(so_far, split), device) for split in reference_logits}
            distances = {f"{split}_KL": float(prediction_kl(reference_logits[split], logits[split]).mean())
                         for split in logits}
            choice = {"checkpoint_choice": result.info["checkpoint_choice"]} if "checkpoint_choice" in result.info else {}
            rows.append(dict(method=m, request=k, seed=seed, **metrics, gap=avg_gap(metrics, reference), **distances,
                             RTE=result.rte, cumulative_RTE=spent[m], **choice))
    return rows


def _reset(module: nn.Module) -> None:
    """Re-initialise a layer's parameters (Retrain starts from scratch, with the original's architecture)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
