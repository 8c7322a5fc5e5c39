"""The command line's arguments: every subcommand's flags, their help, descriptions and examples.
``cli.py`` runs the commands they parse."""
from __future__ import annotations

import argparse

import torch

from . import backends
from .data import DATASETS, DEFAULT_VALIDATION_SIZE
from .methods import ALL_METHODS, UNLEARNING_METHODS
from .version import __version__


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


def _common(parser: argparse.ArgumentParser, out_default: str | None, trains: bool = True) -> None:
    """The shared flags; a command that writes nothing (``out_default=None``) has no --out or
    --force, and one that trains nothing (``trains=False``) has no execution-path switches."""
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, training and unlearning (default: %(default)s)")
    if out_default is not None:
        parser.add_argument("--out", default=out_default, help="output directory (default: %(default)s)")
        parser.add_argument("--force", action="store_true", help="overwrite this command's output files in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    if not trains:
        return
    parser.add_argument("--execution", choices=("auto", "fast", "reference"), default="auto",
                        help="fast: on-device data and bf16 autocast; reference: DataLoader, fp32 "
                             "(default: fast on CUDA, reference on CPU)")
    parser.add_argument("--channels-last", action="store_true", help="fast path: NHWC model and inputs")
    parser.add_argument("--compile", action="store_true", help="fast path: torch.compile each stage's module")


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


def _resume_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/run_state.pt, the epoch-boundary checkpoint of a stopped run with "
                             "the same arguments; the result is bit-identical to an uninterrupted run")


BARE_ARCH_HELP = "architecture of a bare state_dict --checkpoint: torchvision:NAME, any torchvision.models name"
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

    p = _subcommand(sub, "verify")
    p.add_argument("record", help="record.json written by `unlearn`")
    p.add_argument("model", help="model file (.pt) to check")
    p.add_argument("--ids", default=None, help="file of the samples that were to be forgotten, one per line: positions, or names "
                        "as indices:FILE takes them (names are checked against the model's ledger)")
    p.add_argument("--key-file", default=None, help="the secret key record.json was signed with (unlearn --key-file)")

    p = _subcommand(sub, "evaluate")
    p.add_argument("--checkpoint", required=True, help="a model written by `train`/`unlearn`, or a bare state_dict")
    p.add_argument("--arch", default=None, help=BARE_ARCH_HELP)
    _data_args(p, required=False)
    p.add_argument("--forget", default=None,
                   help="random:FRACTION, class:LABEL or indices:FILE (default: the record's, else the one the "
                        "checkpoint was unlearned with, else random:0.1)")
    p.add_argument("--record", default=None, help="record.json of the unlearning run: reuse its forget set and seed")
    _common(p, None, trains=False)  # measures and prints; writes nothing
    p.set_defaults(seed=None)  # None: the record's or the checkpoint's seed

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

    p = _subcommand(sub, "demo")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds to average over (default: %(default)s)")
    _common(p, "wsscl_demo_out")
    return parser
