"""Command line: ``wsscl-fast {train,unlearn,evaluate,compare,demo}`` (also ``python -m wsscl_fast``).

Argument parsing and printing only; the work happens in the library.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import backends, distributed
from .api import compare, unlearn
from .checkpoint import atomic_save, atomic_write_bytes, ensure_writable_dir, load_checkpoint
from .config import TrainConfig
from .data import (DATASETS, DEFAULT_VALIDATION_SIZE, forgotten_scenario, load_bundle, make_scenario, read_index_file,
                   without, write_sample_ids)
from .execution import Execution, Runtime
from .ledger import Ledger, file_sha256
from .methods import ALL_METHODS, UNLEARNING_METHODS
from .metrics import evaluate_unlearning, predict_split
from .progress import Overall
from .recipes import apply_overrides, recipe_for
from .record import build_record, ids_digest, verify_record, weights_digest, write_record
from .runstate import RunInterrupted, RunState
from .report import write_report
from .training import train_model
from .version import __version__


# ----------------------------------------------------------------------------- helpers
def positive_int(text: str, least: int = 1) -> int:
    """argparse type: an integer >= 1 (0 and negative counts are refused, never reinterpreted)."""
    expected = "a positive integer" if least == 1 else f"an integer >= {least}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return positive_int(text, least=0)


def _common(parser: argparse.ArgumentParser, out_default: str) -> None:
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, training and unlearning (default: %(default)s)")
    parser.add_argument("--out", default=out_default, help="output directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="overwrite this command's output files in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--execution", choices=("auto", "fast", "reference"), default="auto",
                        help="fast: on-device data and bf16 autocast; reference: DataLoader, fp32 "
                             "(default: fast on CUDA, reference on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="fast path: NHWC model and inputs")
    parser.add_argument("--compile", action="store_true", help="fast path: torch.compile each stage's module")


def _execution(args) -> Execution:
    if args.execution == "reference":
        if args.channels_last or args.compile:
            raise ValueError("--channels-last and --compile belong to the fast path, not --execution reference")
        return Execution.reference()
    if args.execution == "auto" and not (args.channels_last or args.compile):
        return Execution.default_for(torch.device(args.device))
    return Execution.fast(channels_last=args.channels_last, compile=args.compile)


def _runtime(args, run_state=None) -> Runtime:
    """The Runtime of unlearn()/compare() from the shared flags (``--backend`` where the command has it);
    a forced backend (flag or WSSCL_BACKEND) that is unknown or unavailable is refused before any work."""
    backends.check_forced(getattr(args, "backend", None), torch.device(args.device))
    return Runtime(device=args.device, backend=getattr(args, "backend", None), execution=_execution(args),
                   progress=not args.quiet, run_state=run_state)


def _data_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--data", choices=DATASETS, default=None if not required else "digits",
                        help="dataset (default: digits, or the checkpoint's)")
    parser.add_argument("--data-root", default=None,
                        help="dataset directory (CIFAR-10: train.zip/test.zip, train/ and test/ ImageFolders, or "
                             "torchvision's cifar-10-batches-py; default $WSSCL_DATA/cifar10, else "
                             "~/.cache/wsscl_fast/data/cifar10)")
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if it is missing")
    parser.add_argument("--train-size", type=positive_int, default=None, help="seeded subset of the training split")
    parser.add_argument("--test-size", type=positive_int, default=None, help="seeded subset of the test split")
    parser.add_argument("--validation-size", type=nonnegative_int, default=None,
                        help="CIFAR-10/Fashion-MNIST: training-pool images kept out of training, on which methods "
                             "calibrate (WSS-CL's KL bounds); the test split is only measured (default: "
                             f"{DEFAULT_VALIDATION_SIZE}, or the checkpoint's; digits keeps 10%%)")


def _forget_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forget", default="random:0.1",
                        help="random:FRACTION, class:LABEL or indices:FILE; FILE lists one sample per line, by "
                             "position or by its own name (e.g. cat/0042.jpg; `train` writes the map to "
                             "OUT/sample_ids.tsv) (default: %(default)s)")


def _bundle(args, meta: dict | None = None):
    meta = meta or {}
    name = args.data or meta.get("data", "digits")
    # a checkpoint from before validation splits existed may have trained on any image: none is held out
    validation = args.validation_size if args.validation_size is not None else \
        meta.get("validation_size", 0 if meta else None)
    if name == "digits" and args.validation_size is None:  # digits' split is fixed: only a size the user gave is refused
        validation = None
    return load_bundle(name, args.data_root or meta.get("data_root"), args.train_size or meta.get("train_size"),
                       args.test_size or meta.get("test_size"), seed=meta.get("data_seed", args.seed),
                       download=args.download, validation_size=validation)


def checkpoint_recipe(bundle, blob: dict):
    """The recipe of a checkpoint: its architecture, and the training recipe it was trained
    with (so that Retrain is like-for-like), when the checkpoint records one."""
    train = TrainConfig.from_dict(blob["train_config"]) if blob.get("train_config") else None
    return recipe_for(bundle, blob["arch"], train=train)


def _model_from(blob: dict, bundle, path: str):
    """The model a loaded checkpoint ``blob`` (read from ``path``) describes, for ``bundle``."""
    model = checkpoint_recipe(bundle, blob).build_model(bundle)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match a {blob['arch']} for {bundle.name} "
                         f"({bundle.num_classes} classes): {str(exc).splitlines()[0]}") from None
    return model


def _save_model(model, meta: dict, path: Path) -> None:
    atomic_save({**meta, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)


def _resume_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/run_state.pt, the epoch-boundary checkpoint of a stopped run with "
                             "the same arguments; the result is bit-identical to an uninterrupted run")


BARE_ARCH_HELP = "architecture of a bare state_dict --checkpoint: torchvision:NAME, any torchvision.models name"
OUTPUTS = {  # the files each command writes into --out; existing ones need --force
    "train": ("model.pt", "sample_ids.tsv"),
    "unlearn": ("unlearned.pt", "unlearn.json", "record.json"),
    "compare": ("compare.md", "compare.json", "compare.png"),
    "demo": tuple(f"{name}.{ext}" for name in ("classwise", "random") for ext in ("md", "json", "png")),
}


def prepare_out(args) -> Path:
    """Check --out before any long work: writable, none of this command's outputs there, and
    no interrupted run's state (unless this run resumes it), all unless --force."""
    out = ensure_writable_dir(args.out)
    existing = [name for name in OUTPUTS[args.command] if (out / name).exists()]
    if existing and not args.force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)} from an earlier run; "
                              f"choose another --out or pass --force to overwrite")
    if (out / "run_state.pt").exists() and not getattr(args, "resume", False) and not args.force:
        raise FileExistsError(f"{out} holds run_state.pt, the checkpoint of an interrupted run; continue it with "
                              f"--resume, choose another --out, or pass --force to discard it")
    return out


def provenance(args) -> dict:
    """Where, when, from which code and by which command (``args.argv``) a report was made (the
    code: the git commit of a source checkout, else the installed version)."""
    import datetime

    from .record import device_name
    from .version import __version__, source_commit

    return dict(commit=source_commit() or f"wsscl_fast {__version__}",
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                device=device_name(args.device), command=" ".join(["wsscl-fast", *args.argv]))


def _print_metrics(metrics: dict) -> None:
    print("  ".join(f"{k}={v:.2f}" for k, v in metrics.items()))


# ----------------------------------------------------------------------------- commands
def _run_state(args, out: Path, **fingerprint) -> RunState:
    """Checkpoints of this command under ``out`` (resumed with --resume)."""
    fingerprint = dict(command=args.command, seed=args.seed, device=str(args.device), **fingerprint)
    return RunState(out / "run_state.pt", json.loads(json.dumps(fingerprint)), resume=args.resume)


def cmd_train(args) -> int:
    prepare_out(args)
    bundle = _bundle(args)
    recipe = recipe_for(bundle, args.arch, args.epochs)
    torch.manual_seed(args.seed)
    model = recipe.build_model(bundle)
    run_state = _run_state(args, Path(args.out), arch=recipe.arch, data=bundle.name, train_size=args.train_size,
                           test_size=args.test_size, config=recipe.train.to_dict())
    with run_state.stop_on_signals():
        train_model(model, bundle.train, recipe.train, torch.device(args.device), seed=args.seed,
                    progress=not args.quiet, run_state=run_state, execution=_execution(args))
    train_acc, test_acc = predict_split(model, bundle.train).accuracy, predict_split(model, bundle.test).accuracy
    meta = dict(arch=recipe.arch, data=bundle.name, data_root=args.data_root, train_size=args.train_size,
                test_size=args.test_size, validation_size=len(bundle.validation or ()), data_seed=args.seed,
                train_accuracy=train_acc, test_accuracy=test_acc,
                train_config=recipe.train.to_dict())
    path = Path(args.out) / "model.pt"
    if not distributed.is_main():
        return 0
    _save_model(model, meta, path)
    write_sample_ids(bundle.train, Path(args.out) / "sample_ids.tsv")
    run_state.finish()
    print(f"trained {recipe.arch} on {bundle.name}: train acc {train_acc:.2f}%, test acc {test_acc:.2f}% -> {path}")
    return 0


def cmd_unlearn(args) -> int:
    out = prepare_out(args)
    key = _key(args)
    blob = load_checkpoint(args.checkpoint, args.arch)
    model = _model_from(blob, bundle := _bundle(args, blob), args.checkpoint)
    ledger = Ledger.of_checkpoint(blob)
    earlier = ledger.rows(bundle.train.names)  # forgotten by earlier requests: never retained again
    scenario = without(make_scenario(bundle, args.forget, seed=args.seed), earlier)
    every_forgotten = torch.cat([earlier, scenario.forget_indices]).unique()
    retrain_model = None
    if args.retrain:  # checked before the run
        retrain_blob = load_checkpoint(args.retrain)
        check_retrain(retrain_blob, blob, bundle, every_forgotten, args.retrain)
        retrain_model = _model_from(retrain_blob, bundle, args.retrain)
    configs = apply_overrides(checkpoint_recipe(bundle, blob).method_configs, args.set, args.method,
                              used=(args.method,))
    target = out / "unlearned.pt"
    if target.resolve() == Path(args.checkpoint).resolve():
        raise ValueError(f"refusing to overwrite the input checkpoint {args.checkpoint}; choose another --out")
    original_digest = weights_digest(blob["state_dict"])
    run_state = _run_state(args, out, method=args.method, forget=args.forget, backend=args.backend,
                           config=configs[args.method].to_dict(), original=original_digest)
    with run_state.stop_on_signals():
        result = unlearn(model, scenario.forget, scenario.retain, args.method, configs[args.method],
                         holdout=scenario.holdout, test=scenario.test, forgotten_test=scenario.forgotten_test,
                         audit=args.audit, seed=args.seed, runtime=_runtime(args, run_state))
    if not distributed.is_main():  # every rank holds the same result; rank 0 writes it
        return 0
    summary = dict(method=args.method, forget=args.forget, seed=args.seed, rte=result.rte, timings=result.timings,
                   metrics=result.metrics, audit=result.audit, config=result.config.to_dict(), info=result.info)
    atomic_write_bytes(json.dumps(summary, indent=2).encode(), out / "unlearn.json")
    retrain_metrics = None
    if retrain_model is not None:
        retrain_metrics = evaluate_unlearning(retrain_model.to(args.device), scenario.forget, scenario.retain,
                                              scenario.test, scenario.forgotten_test)
    record = build_record(original_digest, result, scenario.forget_indices, seed=args.seed, device=args.device,
                          scenario=args.forget, retrain_metrics=retrain_metrics)
    record["ledger"] = dict(previous_record_sha256=ledger.previous_record, request=len(ledger.records) + 1,
                            forgotten_count=int(every_forgotten.numel()), forgotten_ids_sha256=ids_digest(every_forgotten))
    write_record(record, out / "record.json", key=key)
    names = [bundle.train.names[i] for i in scenario.forget_indices.tolist()]
    _save_model(result.model, {k: v for k, v in blob.items() if k != "state_dict"}
                | {"unlearned_by": args.method, "forget": args.forget, "forget_seed": args.seed,
                   "ledger": ledger.extended(names, file_sha256(out / "record.json")).to_dict()}, target)
    run_state.finish()
    print(f"{args.method} on {scenario.name}: RTE {result.rte:.2f}s -> {target} (record: {out / 'record.json'})")
    _print_metrics(result.metrics)
    if result.audit:
        _print_metrics({k: v for k, v in result.audit.items() if k != "lira_scores"})
    return 0


def check_retrain(retrain: dict, original: dict, bundle, forget_ids, path: str) -> None:
    """Refuse a --retrain that cannot be one: the original's own weights, or a model whose
    metadata says it trained on some of the forget samples (a `train` output saw every training
    sample; an `unlearn --method retrain` output saw all but its own forget set)."""
    if weights_digest(retrain["state_dict"]) == weights_digest(original["state_dict"]):
        raise ValueError(f"--retrain {path} holds the original model's weights; a Retrain is trained without the "
                         "forget set (make one with `unlearn --method retrain`)")
    if "data" not in retrain:  # a bare state_dict says nothing about what it trained on
        return
    if retrain.get("unlearned_by") != "retrain":
        how = f"unlearned by {retrain['unlearned_by']}" if retrain.get("unlearned_by") else "trained on every sample"
        raise ValueError(f"--retrain {path} is not a Retrain: its metadata says it was {how}, so it saw the forget "
                         "set; make one with `unlearn --method retrain`")
    removed = (Ledger.of_checkpoint(retrain).rows(bundle.train.names) if retrain.get("ledger") else
               make_scenario(bundle, retrain["forget"], seed=retrain.get("forget_seed", 0)).forget_indices)
    seen = sorted(set(forget_ids.tolist()) - set(removed.tolist()))
    if seen:
        raise ValueError(f"--retrain {path} was retrained without {retrain['forget']}, so it trained on {len(seen)} "
                         f"of the {len(forget_ids)} samples forgotten so far (e.g. ids {seen[:5]})")


def _key(args) -> bytes | None:
    """The HMAC key from --key-file (its bytes, surrounding whitespace stripped)."""
    if not getattr(args, "key_file", None):
        return None
    key = Path(args.key_file).read_bytes().strip()
    if not key:
        raise ValueError(f"--key-file {args.key_file} is empty")
    return key


VERIFY_UNREADABLE = 3  #: verify's exit code when an input cannot be read (1 means "does not match")


def cmd_verify(args) -> int:
    try:
        ids = read_index_file(Path(args.ids)) if args.ids else None
        matches, message = verify_record(args.record, args.model, ids=ids, key=_key(args))
    except (OSError, ValueError) as exc:
        print(f"wsscl-fast verify: unreadable input: {exc}", file=sys.stderr)
        return VERIFY_UNREADABLE
    print(message)
    return 0 if matches else 1


def evaluation_scenario(args, blob: dict) -> tuple[str, int]:
    """(forget spec, seed) for ``evaluate``: --forget/--seed when given, else the record's
    (--record), else the unlearned checkpoint's own, else random:0.1 with --seed."""
    if args.record:
        record = json.loads(Path(args.record).read_text())
        stored = (record.get("forget_set", {}).get("scenario"), record.get("seed"))
        if stored[0] is None:
            raise ValueError(f"{args.record} names no forget scenario; pass --forget")
    else:
        stored = (blob.get("forget"), blob.get("forget_seed"))
    forget = args.forget or stored[0] or "random:0.1"
    seed = args.seed if args.seed is not None else (stored[1] if stored[1] is not None else 0)
    return forget, seed


def cmd_evaluate(args) -> int:
    blob = load_checkpoint(args.checkpoint, args.arch)
    model = _model_from(blob, bundle := _bundle(args, blob), args.checkpoint)
    ledger = Ledger.of_checkpoint(blob)
    earlier = ledger.rows(bundle.train.names)
    if len(ledger.records) > 1 and not (args.forget or args.record):  # every request so far, not just the last
        scenario = forgotten_scenario(bundle, earlier, f"{len(ledger.records)} requests")
        print(f"forget set: every sample of the checkpoint's ledger ({earlier.numel()} samples from "
              f"{len(ledger.records)} requests)")
    else:
        forget, seed = evaluation_scenario(args, blob)
        scenario = without(make_scenario(bundle, forget, seed=seed), earlier)  # forgotten samples are not "retained"
        if args.record and not args.forget:  # the record's forget set: the samples must still be the ones it names
            expected = json.loads(Path(args.record).read_text()).get("forget_set", {}).get("ids_sha256")
            if expected != ids_digest(scenario.forget_indices):
                raise ValueError(f"{forget} (seed {seed}) no longer gives the forget set {args.record} describes (its "
                                 "ids SHA-256 differs: was the indices file changed?); pass the original ids file with "
                                 "--forget")
        print(f"forget set: {forget}, seed {seed}")
    model.to(args.device)
    _print_metrics(evaluate_unlearning(model, scenario.forget, scenario.retain, scenario.test, scenario.forgotten_test))
    return 0


def run_comparison(model, bundle, recipe, forget_spec: str, methods, seed: int, runtime: Runtime,
                   audit: bool = False) -> tuple[list[dict], str]:
    """(rows of :func:`~wsscl_fast.api.compare`, report title) for one forget spec and seed."""
    scenario = make_scenario(bundle, forget_spec, seed=seed)
    rows = compare(model, scenario, methods, recipe.method_configs, audit=audit,
                   seed=seed, runtime=runtime)
    return rows, (f"{bundle.name}, {recipe.arch}: forgetting {scenario.name} "
                  f"({len(scenario.forget)} of {len(bundle.train)} samples)")


def cmd_compare(args) -> int:
    if args.requests:  # refused before any work
        from .sequential import parse_requests

        parse_requests(args.requests)
        if args.audit:
            raise ValueError("--audit measures one request; with --requests, audit the final checkpoint of "
                             "`unlearn` instead")
    prepare_out(args)
    blob = load_checkpoint(args.checkpoint, args.arch) if args.checkpoint else None
    bundle = _bundle(args, blob)
    if args.checkpoint:
        model = _model_from(blob, bundle, args.checkpoint)
        recipe = checkpoint_recipe(bundle, blob)
    else:
        recipe = recipe_for(bundle, args.arch, args.epochs)
        torch.manual_seed(args.seed)
        model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, torch.device(args.device),
                            seed=args.seed, progress=not args.quiet, desc="original", execution=_execution(args))
    methods = [m for m in args.methods.split(",") if m]
    recipe.method_configs = apply_overrides(recipe.method_configs, args.set, used=("retrain", *methods))
    model.to(args.device)
    if args.requests:
        return _compare_sequential(args, model, bundle, recipe, methods)
    rows, title = run_comparison(model, bundle, recipe, args.forget, methods, args.seed, _runtime(args), args.audit)
    if distributed.is_main():
        stamp = provenance(args)
        print(write_report(rows, Path(args.out), "compare", title, extra={"forget": args.forget, "provenance": stamp},
                           provenance=stamp))
        print(f"report: {Path(args.out) / 'compare.md'}, .json, .png")
    return 0


def _compare_sequential(args, model, bundle, recipe, methods) -> int:
    """``compare --requests``: the requests one after another, every method from its own previous model."""
    from .report import write_sequential_report
    from .sequential import compare_sequential, sequential_requests

    requests = sequential_requests(bundle, args.requests, seed=args.seed)
    rows = compare_sequential(model, bundle, requests, methods, recipe.method_configs, seed=args.seed,
                              runtime=_runtime(args))
    title = f"{bundle.name}, {recipe.arch}: {len(requests)} deletion requests in sequence ({args.requests})"
    stamp = provenance(args)
    print(write_sequential_report(rows, args.out, "compare", title, provenance=stamp,
                                  extra={"requests": args.requests, "provenance": stamp}))
    print(f"report: {Path(args.out) / 'compare.md'}, .json, .png")
    return 0


DEMO_SCENARIOS = (("class:3", "classwise", "forgetting every '3' (class-wise)"),
                  ("random:0.1", "random", "forgetting 10% at random"))


def cmd_demo(args) -> int:
    """Per seed: train the original, then compare every method in both scenarios; the tables
    give mean ± std over the seeds, since single runs differ between CPUs in the last digits."""
    prepare_out(args)
    bundle = load_bundle("digits", seed=args.seed)
    recipe = recipe_for(bundle)
    device, out = torch.device(args.device), Path(args.out)
    rows, titles = {name: [] for _, name, _ in DEMO_SCENARIOS}, {}
    overall = Overall(args.seeds * len(DEMO_SCENARIOS), "demo", not args.quiet)
    for seed in range(args.seed, args.seed + args.seeds):
        torch.manual_seed(seed)
        model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, device, seed=seed,
                            progress=not args.quiet, desc="original", execution=_execution(args))
        accuracy = predict_split(model, bundle.test).accuracy
        print(f"seed {seed}: original small CNN on digits, test accuracy {accuracy:.1f}%")
        for spec, name, _ in DEMO_SCENARIOS:
            seed_rows, titles[name] = run_comparison(model, bundle, recipe, spec, UNLEARNING_METHODS, seed,
                                                     _runtime(args))
            rows[name] += seed_rows
            overall.advance(f"seed {seed}, {name}")
    overall.close()
    for spec, name, label in DEMO_SCENARIOS:
        print(f"\n## {label} (mean ± std over {args.seeds} seed(s))")
        stamp = provenance(args)
        print(write_report(rows[name], out, name, titles[name], extra={"forget": spec, "provenance": stamp},
                           provenance=stamp))
    print(f"\nreports and plots written to {out}/ (classwise.*, random.*)")
    return 0


COMMANDS = {  # name: (one-line help, description, examples)
    "train": (
        'train and save the original model',
        'Train a classifier from scratch and save it as OUT/model.pt (with its recipe, so that Retrain is '
        'trained the same way).',
        ('wsscl-fast train --data digits --epochs 5 --out runs/digits',
         'wsscl-fast train --data cifar10 --data-root ~/data/cifar10 --out runs/c10',)),
    "unlearn": (
        'run one method on a saved model',
        'Unlearn a forget set from a saved model. Writes OUT/unlearned.pt, OUT/unlearn.json and '
        'OUT/record.json (the record a data-protection officer can verify).',
        ('wsscl-fast unlearn --checkpoint runs/digits/model.pt --forget class:3 --out runs/digits/wsscl',
         'wsscl-fast unlearn --checkpoint runs/digits/model.pt --forget indices:ids.txt --method salun',)),
    "verify": (
        'check that a model file is the one an unlearning record describes',
        'Check that MODEL holds the unlearned weights RECORD names; optionally that the forgotten ids and the '
        "record's signature match. Says when the record is unsigned or its signature went unchecked. Exit 0 when "
        "everything matches, 1 when something does not, 3 when the record, the model or the ids cannot be read.",
        ('wsscl-fast verify run/record.json run/unlearned.pt --ids ids.txt --key-file secret.key',)),
    "evaluate": (
        'UA, RA, TA and MIA-efficacy of a saved model',
        'Measure UA, RA, TA and MIA-efficacy of a saved model, on the forget set of its unlearning run unless '
        '--forget is given.',
        ('wsscl-fast evaluate --checkpoint runs/digits/wsscl/unlearned.pt',
         'wsscl-fast evaluate --checkpoint runs/digits/model.pt --forget class:3',)),
    "compare": (
        'several methods side by side against Retrain',
        'Run several methods and Retrain from the same original model; write the table (Markdown, JSON) and '
        'plots to OUT.',
        ('wsscl-fast compare --checkpoint runs/digits/model.pt --forget random:0.1 --methods ft,salun,wsscl',
         'wsscl-fast compare --data digits --epochs 5 --set wsscl.finetune_epochs=3',
         'wsscl-fast compare --data digits --requests class:3,5,7 --methods ft,salun,wsscl',)),
    "demo": (
        'the whole story on the embedded digits data, on a CPU, in about three minutes',
        "Train a small CNN on scikit-learn's digits, then compare every method class-wise and at random; "
        'tables and plots go to OUT.',
        ('wsscl-fast demo',
         'wsscl-fast demo --out /tmp/demo --force',)),
}


def _subcommand(sub, name: str) -> argparse.ArgumentParser:
    """A subcommand with its help, description and examples from ``COMMANDS``."""
    short, description, examples = COMMANDS[name]
    return sub.add_parser(name, help=short, description=description, epilog="example:\n  " + "\n  ".join(examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _config_fields_help() -> str:
    """The fields --set accepts, per config class (from the dataclasses themselves)."""
    from dataclasses import fields

    from .methods import ALL_METHODS, METHODS

    users: dict[type, list[str]] = {}  # config class -> the methods that take it, in table order
    for name in ALL_METHODS:
        users.setdefault(METHODS[name].config_class, []).append(name)
    return " ".join(f"{cls.__name__} ({', '.join(names)}): {', '.join(f.name for f in fields(cls))}."
                    for cls, names in users.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsscl-fast", description="Machine unlearning of image classifiers with WSS-CL.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subcommand(sub, "train")
    _data_args(p, required=True)
    p.add_argument("--arch", default=None,
                   help="small_cnn, resnet18 (CIFAR stem) or torchvision:NAME (default: by dataset)")
    p.add_argument("--epochs", type=positive_int, default=None, help="default: by dataset")
    _resume_arg(p)
    _common(p, "wsscl_out")
    p.set_defaults(func=cmd_train)

    p = _subcommand(sub, "unlearn")
    p.add_argument("--checkpoint", required=True,
                   help="model.pt written by `train`, or a bare state_dict with --arch (never overwritten)")
    p.add_argument("--arch", default=None, help=BARE_ARCH_HELP)
    _data_args(p, required=False)
    _forget_args(p)
    p.add_argument("--method", default="wsscl", choices=ALL_METHODS)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a field of the method's config (repeatable). " + _config_fields_help())
    p.add_argument("--retrain", default=None, help="a Retrain checkpoint: its metrics and the gap go into record.json")
    p.add_argument("--key-file", default=None, help="sign record.json with HMAC-SHA256 under this secret key")
    p.add_argument("--backend", choices=backends.BACKENDS, default=None,
                   help="op backend (default: WSSCL_BACKEND, else by device)")
    p.add_argument("--audit", action="store_true",
                   help="also run the relearning attack and the linear probe (docs/audit.md)")
    _resume_arg(p)
    _common(p, "wsscl_out/unlearned")
    p.set_defaults(func=cmd_unlearn)

    p = _subcommand(sub, "verify")
    p.add_argument("record", help="record.json written by `unlearn`")
    p.add_argument("model", help="model file (.pt) to check")
    p.add_argument("--ids", default=None, help="file of the sample ids that were to be forgotten (one per line)")
    p.add_argument("--key-file", default=None, help="the secret key record.json was signed with (unlearn --key-file)")
    p.set_defaults(func=cmd_verify)

    p = _subcommand(sub, "evaluate")
    p.add_argument("--checkpoint", required=True, help="a model written by `train`/`unlearn`, or a bare state_dict")
    p.add_argument("--arch", default=None, help=BARE_ARCH_HELP)
    _data_args(p, required=False)
    p.add_argument("--forget", default=None,
                   help="random:FRACTION, class:LABEL or indices:FILE (default: the record's, else the one the "
                        "checkpoint was unlearned with, else random:0.1)")
    p.add_argument("--record", default=None, help="record.json of the unlearning run: reuse its forget set and seed")
    _common(p, "wsscl_out")
    p.set_defaults(func=cmd_evaluate, seed=None)  # None: the record's or the checkpoint's seed

    p = _subcommand(sub, "compare")
    p.add_argument("--checkpoint", default=None, help="original model (default: train one first)")
    _data_args(p, required=False)
    _forget_args(p)
    p.add_argument("--arch", default=None, help="small_cnn, resnet18 or torchvision:NAME: the architecture to train, "
                                               "or that of a bare state_dict --checkpoint")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs of the original and Retrain")
    p.add_argument("--methods", default=",".join(UNLEARNING_METHODS), help="comma-separated (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="override a field of one method's config (repeatable). " + _config_fields_help())
    p.add_argument("--audit", action="store_true",
                   help="also run the relearning attack and the linear probe (docs/audit.md)")
    p.add_argument("--requests", default=None, metavar="SPEC",
                   help="deletion requests in sequence instead of --forget: random:FRACTIONxK (K disjoint random "
                        "requests) or class:A,B,... (one class each); each method continues from its own previous "
                        "model and is measured after every request against a Retrain on everything left")
    _common(p, "wsscl_out/compare")
    p.set_defaults(func=cmd_compare)

    p = _subcommand(sub, "demo")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds to average over (default: %(default)s)")
    _common(p, "wsscl_demo_out")
    p.set_defaults(func=cmd_demo)
    return parser


def _remove_if_new_and_empty(out: Path | None) -> None:
    """A failed command leaves no empty --out folder that it created itself."""
    if out is not None and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(args.out) if getattr(args, "out", None) else None
    created_out = out if out is not None and not out.exists() else None
    try:
        device = distributed.init_from_env(getattr(args, "device", None))  # under torchrun
        if device is not None:
            args.device = str(device)
        return args.func(args)
    except RunInterrupted as exc:
        print(f"wsscl-fast {args.command}: {exc}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, FloatingPointError) as exc:
        print(f"wsscl-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        _remove_if_new_and_empty(created_out)
