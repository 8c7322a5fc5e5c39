"""Command line: ``wsscl-fast {train,unlearn,verify,evaluate,compare,demo}`` (also ``python -m wsscl_fast``).

Each command reads its arguments (``cli_args.py`` defines them), calls the library and prints.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import torch

from . import backends, distributed
from .api import unlearn
from .cli_args import build_parser
from .comparisons import DEMO_SCENARIOS, run_comparison, run_demo
from .checkpoint import atomic_write_bytes, load_checkpoint, prepare_output_dir, save_model
from .data import load_bundle, request_scenario, write_sample_ids
from .execution import Execution, Runtime
from .ledger import Ledger, check_data_identity, data_identity, file_sha256
from .metrics import evaluate_unlearning, predict_split
from .recipes import apply_overrides, checkpoint_recipe, model_from_checkpoint, recipe_for
from .methods import get_method
from .record import (build_record, check_retrain, device_name, evaluation_scenario, previous_record_link, verify_record,
                     weights_digest, write_record)
from .runstate import RunInterrupted, RunState
from .report import write_report
from .training import train_model
from .version import provenance_stamp


# ----------------------------------------------------------------------------- helpers
def _execution(args) -> Execution:
    return Execution.from_choice(args.execution, args.device, args.channels_last, args.compile)


def _runtime(args, run_state=None) -> Runtime:
    """The Runtime of unlearn()/compare() from the shared flags (``--backend`` where the command has it);
    a forced backend (flag or WSSCL_BACKEND) that is unknown or unavailable is refused before any work."""
    backends.check_forced(getattr(args, "backend", None), torch.device(args.device))
    return Runtime(device=args.device, backend=getattr(args, "backend", None), execution=_execution(args),
                   progress=not args.quiet, run_state=run_state)


def _bundle(args, meta: dict | None = None):
    meta = meta or {}
    name = args.data or meta.get("data", "digits")
    # a checkpoint from before validation splits existed may have trained on any image: none is held out
    validation = args.validation_size if args.validation_size is not None else \
        meta.get("validation_size", 0 if meta else None)
    if name == "digits" and args.validation_size is None:  # digits' split is fixed: only a size the user gave is refused
        validation = None
    bundle = load_bundle(name, args.data_root or meta.get("data_root"), args.train_size or meta.get("train_size"),
                         args.test_size or meta.get("test_size"), seed=meta.get("data_seed", args.seed),
                         download=args.download, validation_size=validation)
    check_data_identity(meta, bundle)  # before any work
    return bundle


OUTPUTS = {  # the files each command writes into --out; existing ones need --force
    "train": ("model.pt", "sample_ids.tsv"),
    "unlearn": ("unlearned.pt", "unlearn.json", "record.json"),
    "compare": ("compare.md", "compare.json", "compare.png"),
    "demo": tuple(f"{name}.{ext}" for name in ("classwise", "random") for ext in ("md", "json", "png")),
}


def prepare_out(args) -> Path:
    """--out, checked before any long work (``checkpoint.prepare_output_dir``)."""
    return prepare_output_dir(args.out, OUTPUTS[args.command], force=args.force, resume=getattr(args, "resume", False))


def provenance(args) -> dict:
    """Which code, when, where and by which command (``args.argv``) a report was made."""
    return provenance_stamp(device_name(args.device), " ".join(["wsscl-fast", *args.argv]))


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
    meta = dict(arch=recipe.arch, data=bundle.name, data_identity=data_identity(bundle), data_root=args.data_root,
                train_size=args.train_size, test_size=args.test_size, validation_size=len(bundle.validation or ()),
                data_seed=args.seed,
                train_accuracy=train_acc, test_accuracy=test_acc,
                train_config=recipe.train.to_dict())
    path = Path(args.out) / "model.pt"
    if not distributed.is_main():
        return 0
    save_model(model, meta, path)
    write_sample_ids(bundle.train, Path(args.out) / "sample_ids.tsv")
    run_state.finish()
    print(f"trained {recipe.arch} on {bundle.name}: train acc {train_acc:.2f}%, test acc {test_acc:.2f}% -> {path}")
    return 0


def cmd_unlearn(args) -> int:
    out = prepare_out(args)
    key = _key(args)
    blob = load_checkpoint(args.checkpoint, args.arch)
    model = model_from_checkpoint(blob, bundle := _bundle(args, blob), args.checkpoint)
    ledger = Ledger.of_checkpoint(blob)
    earlier = ledger.rows(bundle.train.names)  # forgotten by earlier requests: never retained again
    scenario = request_scenario(bundle, args.forget, args.seed, earlier)
    _note_repeats(scenario)
    every_forgotten = torch.cat([earlier, scenario.forget_indices]).unique()
    retrain_model = None
    if args.retrain:  # checked before the run
        retrain_blob = load_checkpoint(args.retrain, blob["arch"])  # a Retrain has the original's architecture
        check_retrain(retrain_blob, blob, bundle, every_forgotten, args.retrain)
        retrain_model = model_from_checkpoint(retrain_blob, bundle, args.retrain)
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
                   metrics=result.metrics, audit=result.audit, config=get_method(args.method).applied(result.config),
                   info=result.info)
    atomic_write_bytes(json.dumps(summary, indent=2).encode(), out / "unlearn.json")
    retrain_metrics = None
    if retrain_model is not None:
        retrain_metrics = evaluate_unlearning(retrain_model.to(args.device), scenario.forget, scenario.retain,
                                              scenario.test, scenario.forgotten_test)
    names = [bundle.train.names[i] for i in scenario.forget_indices.tolist()]
    record = build_record(original_digest, result, scenario.forget_indices, seed=args.seed, device=args.device,
                          scenario=args.forget, retrain_metrics=retrain_metrics, ledger=ledger,
                          every_forgotten=every_forgotten, forgotten_names=ledger.extended(names, "").forgotten,
                          data=data_identity(bundle),
                          previous_record=previous_record_link(args.checkpoint, ledger, out))
    write_record(record, out / "record.json", key=key)
    save_model(result.model, {k: v for k, v in blob.items() if k != "state_dict"}
                | {"unlearned_by": args.method, "forget": args.forget, "forget_seed": args.seed,
                   "ledger": ledger.extended(names, file_sha256(out / "record.json")).to_dict()}, target)
    run_state.finish()
    print(f"{args.method} on {scenario.name}: RTE {result.rte:.2f}s -> {target} (record: {out / 'record.json'})")
    choice = result.info.get("checkpoint_choice")
    if isinstance(choice, dict) and choice["chosen"] == "given model":
        print(f"note: checkpoint_choice returned the given model unchanged: its forget error was "
              f"{choice['candidates'][0]['forget_error']:.1%} against the holdout's {choice['target_forget_error']:.1%}"
              + (" (already within noise, so nothing was trained)" if choice["skipped_training"] else
                 ", and every trained epoch scored worse; the record lists them"))
    _print_metrics(result.metrics)
    if result.audit:
        _print_metrics({k: v for k, v in result.audit.items() if k != "lira_scores"})
    return 0


def _note_repeats(scenario) -> None:
    """Say so when part of a request was forgotten by earlier requests (it is left out)."""
    if scenario.already_forgotten:
        print(f"note: {scenario.already_forgotten} of the requested samples were forgotten by earlier requests "
              f"(the checkpoint's ledger); forgetting the {len(scenario.forget)} new ones", file=sys.stderr)


def _key(args) -> bytes | None:
    """The HMAC key from --key-file (its bytes, surrounding whitespace stripped)."""
    if not getattr(args, "key_file", None):
        return None
    key = Path(args.key_file).read_bytes().strip()
    if not key:
        raise ValueError(f"--key-file {args.key_file} is empty")
    return key


def _read_ids(path: Path) -> tuple[list[int] | None, list[str] | None]:
    """(positions, None) of an ids file of integers, else (None, names): verify takes either,
    as ``indices:FILE`` does."""
    tokens = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    try:
        return [int(token) for token in tokens], None
    except ValueError:
        return None, tokens


VERIFY_UNREADABLE = 3  #: verify's exit code when an input cannot be read (1 means "does not match")


def cmd_verify(args) -> int:
    try:
        ids, names = _read_ids(Path(args.ids)) if args.ids else (None, None)
        matches, message = verify_record(args.record, args.model, ids=ids, names=names, key=_key(args))
    except (OSError, ValueError) as exc:
        print(f"wsscl-fast verify: unreadable input: {exc}", file=sys.stderr)
        return VERIFY_UNREADABLE
    print(message)
    return 0 if matches else 1


def cmd_evaluate(args) -> int:
    blob = load_checkpoint(args.checkpoint, args.arch)
    model = model_from_checkpoint(blob, bundle := _bundle(args, blob), args.checkpoint)
    scenario, description = evaluation_scenario(bundle, blob, args.forget, args.seed, args.record)
    print(f"forget set: {description}")
    model.to(args.device)
    _print_metrics(evaluate_unlearning(model, scenario.forget, scenario.retain, scenario.test, scenario.forgotten_test))
    return 0


def _method_list(text: str) -> list[str]:
    methods = [m for m in text.split(",") if m]
    if not methods:
        raise ValueError(f"--methods {text!r} names no method; give one or more, comma-separated, e.g. ft,salun,wsscl")
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ValueError(f"--methods names {', '.join(repeated)} more than once; each method runs once per seed")
    return methods


def cmd_compare(args) -> int:
    methods = _method_list(args.methods)  # everything below is refused before any work
    if args.requests:
        from .sequential import parse_requests

        parse_requests(args.requests)
        if args.audit:
            raise ValueError("--audit measures one request; with --requests, audit the final checkpoint of "
                             "`unlearn` instead")
    prepare_out(args)
    blob = load_checkpoint(args.checkpoint, args.arch) if args.checkpoint else None
    bundle = _bundle(args, blob)
    recipe = checkpoint_recipe(bundle, blob) if args.checkpoint else recipe_for(bundle, args.arch, args.epochs)
    recipe.method_configs = apply_overrides(recipe.method_configs, args.set, used=("retrain", *methods))
    earlier = Ledger.of_checkpoint(blob).rows(bundle.train.names) if blob else None  # never retained again
    if args.checkpoint:
        model = model_from_checkpoint(blob, bundle, args.checkpoint)
    else:
        torch.manual_seed(args.seed)
        model = train_model(recipe.build_model(bundle), bundle.train, recipe.train, torch.device(args.device),
                            seed=args.seed, progress=not args.quiet, desc="original", execution=_execution(args))
    model.to(args.device)
    if args.requests:
        if earlier is not None and earlier.numel():
            raise ValueError(f"{args.checkpoint} has already forgotten {earlier.numel()} samples; --requests starts "
                             "from a model that has forgotten nothing (compare one request with --forget instead)")
        return _compare_sequential(args, model, bundle, recipe, methods)
    rows, title = run_comparison(model, bundle, recipe, args.forget, methods, args.seed, _runtime(args), args.audit,
                                 already_forgotten=earlier)
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


def cmd_demo(args) -> int:
    """Every method on digits, both scenarios, over --seeds seeds; the tables give mean ± std over
    the seeds, since single runs differ between CPUs in the last digits."""
    out = prepare_out(args)
    rows, titles = run_demo(range(args.seed, args.seed + args.seeds), args.device, _execution(args), _runtime(args),
                            progress=not args.quiet)
    for spec, name, label in DEMO_SCENARIOS:
        print(f"\n## {label} (mean ± std over {args.seeds} seed(s))")
        stamp = provenance(args)
        print(write_report(rows[name], out, name, titles[name], extra={"forget": spec, "provenance": stamp},
                           provenance=stamp))
    print(f"\nreports and plots written to {out}/ (classwise.*, random.*)")
    return 0


def _remove_if_new_and_empty(out: Path | None) -> None:
    """A failed command leaves no empty --out folder that it created itself."""
    if out is not None and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


COMMAND_FUNCTIONS = {"train": cmd_train, "unlearn": cmd_unlearn, "verify": cmd_verify, "evaluate": cmd_evaluate,
                     "compare": cmd_compare, "demo": cmd_demo}


def _interrupted(args, out: Path | None) -> str:
    """The one line of an interrupted command: a resume hint only where a resume exists."""
    if getattr(args, "resume", None) is not None and out is not None and (out / "run_state.pt").is_file():
        return f"interrupted; the last checkpoint is {out / 'run_state.pt'} (continue with --resume)"
    return "interrupted; nothing of this run was kept (outputs are written only when complete)"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _check_device(args) -> None:
    """A CUDA --device on a machine without one is refused by name, before any work."""
    device = getattr(args, "device", None)
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available here; use --device cpu")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    out = Path(args.out) if getattr(args, "out", None) else None
    created_out = out if out is not None and not out.exists() else None
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None  # as Ctrl-C
    try:
        _check_device(args)
        device = distributed.init_from_env(getattr(args, "device", None))  # under torchrun
        if device is not None:
            args.device = str(device)
        code = COMMAND_FUNCTIONS[args.command](args)
        distributed.shutdown()  # only on the way out of a finished command: a failed rank would wait forever
        return code
    except RunInterrupted as exc:
        print(f"wsscl-fast {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"wsscl-fast {args.command}: {_interrupted(args, out)}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, FloatingPointError) as exc:
        print(f"wsscl-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
        _remove_if_new_and_empty(created_out)
