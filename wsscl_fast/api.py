"""``unlearn()`` and ``compare()``: validate inputs, pick the method, time it, evaluate."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from . import backends, distributed
from .audit import Audit, as_audit, run_audit
from .config import TrainConfig
from .execution import Runtime
from .data import check_disjoint, retain_without
from .inputs import check_inputs, check_labels, check_model, training_loader
from .methods import UNLEARNING_METHODS, MethodContext, get_method
from .metrics import avg_gap, evaluate_unlearning
from .models import num_outputs
from .progress import Overall
from .seeding import stream_seed
from .work import counting_work


@dataclass
class UnlearnResult:
    """What :func:`unlearn` returns."""

    model: nn.Module  #: the unlearned model (a copy, unless ``inplace=True``)
    method: str
    config: object
    rte: float  #: run-time efficiency: wall seconds of the whole method, saliency included
    timings: dict  #: seconds per stage
    metrics: dict | None = None  #: UA, RA, TA, MIA (and forgotten_class_TA), when test data is given
    info: dict = field(default_factory=dict)
    audit: dict | None = None  #: relearning, linear-probe and membership results, with ``audit=`` (audit.py)


def unlearn(model: nn.Module, forget, retain, method: str = "wsscl", config=None, *, holdout=None,
            test=None, forgotten_test=None, audit: Audit | bool = False, seed: int = 0, inplace: bool = False,
            runtime: Runtime | None = None, already_forgotten=None) -> UnlearnResult:
    """Remove the influence of ``forget`` from ``model``, keeping ``retain``.

    ``forget`` and ``retain`` are Datasets or DataLoaders of (image, label) with the eval
    transform applied; augmentation is done on batches by the method (``config.aug_*``).
    ``config`` is the method's config (``WSSCLConfig`` for ``"wsscl"``, ``BaselineConfig``
    for ft/ga/rl/salun/l1_sparse, ``NegGradPlusConfig``, ``SCRUBConfig``, ``CoUnConfig``,
    ``TrainConfig`` for retrain); None takes the defaults.
    ``holdout`` is unseen data that the method may calibrate on (WSS-CL's ``kl_bound="auto"``):
    a validation split that the original model did not train on, never the test set. Without
    it WSS-CL uses its fallback bounds (``methods/wsscl.py: kl_bounds``).
    ``already_forgotten`` (the samples of earlier deletion requests: a Subset of the dataset
    that ``retain`` indexes, or row indices into it) is removed from ``retain``, so that a
    sequence of requests never retrains on what an earlier one forgot (the CLI's ledger).

    What evaluates the result: ``test`` (and ``forgotten_test``, the test samples of removed
    classes) give ``result.metrics`` (UA/RA/TA/MIA); ``audit`` (True or an
    :class:`~wsscl_fast.audit.Audit`) adds the relearning attack, the linear probe and, with
    reference models, the membership test (``result.audit``). ``test`` serves the metrics only.

    What runs it: ``runtime`` (:class:`~wsscl_fast.execution.Runtime`: device, op backend,
    reference or fast path, progress bars, a RunState to resume from); the default runs on the
    model's device, on the fast path on CUDA (on-device data, bf16 autocast) and the reference
    path on the CPU. The caller's model is copied unless ``inplace=True``.

    Under ``torchrun`` (a process group initialised, e.g. by ``distributed.init_from_env``),
    Datasets are sharded over the ranks (each global batch split between them), the model is
    wrapped in DistributedDataParallel, the saliency gradients are averaged before
    thresholding and the metrics are computed on shards and gathered: every rank returns the
    same model and metrics.

    >>> from wsscl_fast import unlearn, WSSCLConfig          # doctest: +SKIP
    >>> result = unlearn(model, forget_set, retain_set, config=WSSCLConfig(), holdout=val_set, test=test_set)
    >>> result.model, result.metrics["UA"], result.rte
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    spec = get_method(method)
    config = spec.config_class() if config is None else config
    if not isinstance(config, spec.config_class):
        raise TypeError(f"method {method!r} takes a {spec.config_class.__name__}, got {type(config).__name__}")
    if already_forgotten is not None:
        retain = retain_without(retain, already_forgotten)
    check_disjoint(forget, retain)
    if holdout is not None and len(holdout) == 0:
        raise ValueError("holdout: the dataset is empty; pass unseen labelled samples (a validation split), or None")
    runtime = (runtime or Runtime()).resolved(model)
    device, execution, run_state = runtime.device, runtime.execution, runtime.run_state
    batches_on = device if execution.device_data else None
    forget_loader = training_loader("forget", forget, config.batch_size, stream_seed(seed, "forget_loader"), batches_on)
    retain_loader = training_loader("retain", retain, config.batch_size, stream_seed(seed, "retain_loader"), batches_on)

    check_model(model)
    for name, loader in (("forget", forget_loader), ("retain", retain_loader)):
        check_inputs(name, loader, method, config)
    target = model if inplace else copy.deepcopy(model)
    execution.prepare_model(target.to(device))
    num_classes = num_outputs(target, torch.as_tensor(forget_loader.dataset[0][0])[None].to(device))
    for name, loader in (("forget", forget_loader), ("retain", retain_loader)):
        check_labels(name, loader, num_classes)
    ctx = MethodContext(runtime, seed=seed, holdout=holdout)
    ctx.info["execution"] = execution.to_dict()
    if run_state is not None:
        run_state.track_loader(forget_loader)
        run_state.track_loader(retain_loader)
    torch.manual_seed(seed)
    ctx.sync()
    start = time.perf_counter()
    with backends.recording() as ops_backends, counting_work(target) as ctx.work:
        spec.run(target, forget_loader, retain_loader, config, ctx)
    ctx.sync()
    rte = time.perf_counter() - start
    ctx.info["backends"] = ops_backends  # {op: [backend that ran it]}; empty for methods without fused ops
    # samples through the model: the deterministic cost (work.py), and its share per timed stage
    ctx.info["work"] = ctx.work.to_dict() | ({"by_stage": dict(ctx.stage_work)} if ctx.stage_work else {})
    target.eval()
    metrics = None
    if test is not None:
        metrics = evaluate_unlearning(target, forget_loader.dataset, retain_loader.dataset, test, forgotten_test, device)
    audited = None
    if audit := as_audit(audit):
        audited = run_audit(target, forget_loader.dataset, retain_loader.dataset, audit, holdout, seed, device,
                            getattr(config, "head_module", None))
    return UnlearnResult(target, method, config, rte, dict(ctx.timings), metrics, dict(ctx.info), audited)


def compare(model: nn.Module, scenario, methods=UNLEARNING_METHODS, configs=None, *,
            retrain: UnlearnResult | None = None,
            audit: Audit | bool = False, seed: int = 0, runtime: Runtime | None = None) -> list[dict]:
    """Run Retrain and ``methods`` on one :class:`~wsscl_fast.data.ForgetScenario`.

    Methods calibrate on ``scenario.holdout`` (the bundle's validation split), never on its test set.
    Returns one row per method (the original model and Retrain first) with UA, RA, TA, MIA,
    Avg. Gap to Retrain and RTE. A method is a name, or a (row label, name) pair for a variant;
    ``configs`` maps the label to its config. ``retrain``, an already trained Retrain (its model
    and RTE), is evaluated instead of training one; otherwise Retrain trains with
    ``configs["retrain"]`` (a TrainConfig; its defaults when absent). With ``audit``, every row (the
    original's too) also carries the audit's results. ``runtime`` is :func:`unlearn`'s.
    """
    configs = dict(configs or {})
    configs.setdefault("retrain", TrainConfig())
    audit = as_audit(audit)
    runtime = (runtime or Runtime()).resolved(model)
    if runtime.run_state is not None:
        raise ValueError("compare() runs several methods, and a RunState belongs to one unlearn() run; "
                         "pass runtime without run_state")
    common = dict(test=scenario.test, forgotten_test=scenario.forgotten_test, holdout=scenario.holdout,
                  seed=seed, runtime=runtime, audit=audit or False)
    device = runtime.device

    def measured(m: nn.Module) -> tuple[dict, dict | None]:
        """(metrics, audit) of a model that compare() did not produce itself."""
        metrics = evaluate_unlearning(m, scenario.forget, scenario.retain, scenario.test, scenario.forgotten_test,
                                      device)
        return metrics, run_audit(m, scenario.forget, scenario.retain, audit, scenario.holdout, seed, device) \
            if audit else None

    original, original_audit = measured(model)
    rows = [dict(method="original", seed=seed, **original, **(original_audit or {}), RTE=0.0, timings={}, config={})]
    reference = None
    runs = [(m, m) if isinstance(m, str) else tuple(m) for m in methods]
    runs = [("retrain", "retrain"), *[(label, name) for label, name in runs if label != "retrain"]]
    overall = Overall(len(runs), f"compare ({scenario.name})", runtime.progress and distributed.is_main())
    for label, name in runs:
        if label == "retrain" and retrain is not None:  # a copy: the caller's result is not written to
            metrics, audited = measured(retrain.model)
            result = replace(retrain, metrics=metrics, audit=audited)
        else:
            result = unlearn(model, scenario.forget, scenario.retain, name, configs.get(label), **common)
        reference = reference or result.metrics
        rows.append(dict(method=label, seed=seed, **result.metrics, **(result.audit or {}), RTE=result.rte,
                         timings=result.timings, config=result.config.to_dict(), info=result.info))
        overall.advance(label)
    overall.close()
    for row in rows:
        row["gap"] = avg_gap(row, reference)
    return rows
