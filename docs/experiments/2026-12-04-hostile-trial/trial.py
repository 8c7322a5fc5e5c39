"""A hostile user's trial of the installed command line (issue 35's families), on digits.

Run it with the Python of a venv that holds only the installed wheel, from any directory:

    .venv-wheel/bin/python docs/experiments/2026-12-04-hostile-trial/trial.py --out cases.md

Every case runs ``wsscl-fast`` (the venv's entry point) in a fresh working directory outside the
source tree and is judged by what a user is owed:
- a case that must be refused is "refused, clear" when the command exits non-zero with no traceback
  and its message names the problem (a pattern per case), "UNCLEAR" when the message does not,
  and "SILENT WRONG" when the command succeeds;
- a case that must complete is "fine" when it exits 0 and its outputs check out (a check per case),
  "SILENT WRONG" when it exits 0 with a wrong result, "WRONGLY REFUSED" when it fails;
- any Python traceback is "TRACEBACK".
At the end every input checkpoint must still have the SHA-256 it had when it was made.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

CLI = str(Path(sys.executable).with_name("wsscl-fast"))
FT = ("--method", "ft", "--set", "epochs=1")  # the quickest real unlearning


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run(*argv, cwd, timeout=900, send=None, after=0.0) -> Result:
    """``wsscl-fast argv`` in ``cwd``; with ``send``, that signal ``after`` seconds in."""
    proc = subprocess.Popen([CLI, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if send is not None:
        try:
            proc.wait(after)
        except subprocess.TimeoutExpired:
            proc.send_signal(send)
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


def must(result: Result, what: str) -> Result:
    if result.code != 0:
        raise SystemExit(f"setup step failed ({what}): {result.err[-2000:]}")
    return result


def refused(result: Result, pattern: str) -> tuple[str, str]:
    if "Traceback" in result.err:
        return "TRACEBACK", result.err.strip().splitlines()[-1]
    if result.code == 0:
        return "SILENT WRONG", "accepted: " + (result.out.strip().splitlines() or [""])[-1]
    message = " ".join(line for line in result.err.strip().splitlines() if line.strip())[-300:]
    return ("refused, clear" if re.search(pattern, result.text, re.I) else "UNCLEAR"), message


def completed(result: Result, check) -> tuple[str, str]:
    if "Traceback" in result.err:
        return "TRACEBACK", result.err.strip().splitlines()[-1]
    if result.code != 0:
        return "WRONGLY REFUSED", result.err.strip()[-300:]
    ok, detail = check()
    return ("fine" if ok else "SILENT WRONG"), detail


def verify_says(result: Result, code: int, pattern: str) -> tuple[str, str]:
    """verify's own exit codes: 0 matches, 1 does not, 3 unreadable."""
    if "Traceback" in result.err:
        return "TRACEBACK", result.err.strip().splitlines()[-1]
    message = result.text.strip().replace("\n", " ")[-300:]
    if code != 0 and result.code == 0:
        return "SILENT WRONG", "verify passed: " + message
    if result.code == code and re.search(pattern, result.text, re.I):
        return ("fine" if code == 0 else "refused, clear"), message
    return "UNCLEAR", f"exit {result.code}: {message}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def class_names(ids_tsv: Path, label: int) -> list[str]:
    """Names of the training samples of class ``label`` (train's sample_ids.tsv: position, name, label)."""
    rows = [line.split("\t") for line in ids_tsv.read_text().splitlines()[1:]]
    return [row[1] for row in rows if int(row[2]) == label]


class Trial:
    def __init__(self, root: Path):
        self.root = root
        self.cases: list[tuple[str, str, str, str]] = []
        self.inputs: dict[Path, str] = {}

    def fresh(self) -> Path:
        """A working directory for one case, holding links to the shared fixtures."""
        path = Path(tempfile.mkdtemp(dir=self.root))
        for name in ("base", "u1", "u2", "r1", "ret3", "s1", "other", "secret.key"):
            (path / name).symlink_to(self.root / "fixtures" / name)
        return path

    def case(self, family: str, description: str, verdict: tuple[str, str]) -> None:
        self.cases.append((family, description, *verdict))
        print(f"[{len(self.cases):2d}] {verdict[0]:16s} {family}: {description}", flush=True)


def make_fixtures(trial: Trial) -> Path:
    fx = trial.root / "fixtures"
    fx.mkdir()
    must(run("train", "--data", "digits", "--epochs", "3", "--out", "base", "--quiet", cwd=fx), "train base")
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", "--set", "forget_epochs=1",
             "--set", "finetune_epochs=1", "--out", "u1", "--quiet", cwd=fx), "u1")
    must(run("unlearn", "--checkpoint", "u1/unlearned.pt", "--forget", "class:5", *FT, "--out", "u2", "--quiet",
             cwd=fx), "u2")
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "random:0.05", *FT, "--out", "r1", "--quiet",
             cwd=fx), "r1")
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", "--method", "retrain", "--out", "ret3",
             "--quiet", cwd=fx), "ret3")
    (fx / "secret.key").write_text("not-so-secret\n")
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *FT, "--key-file", "secret.key",
             "--out", "s1", "--quiet", cwd=fx), "s1")
    must(run("train", "--data", "fashion-mnist", "--epochs", "1", "--train-size", "600", "--test-size", "200",
             "--validation-size", "100", "--out", "other", "--quiet", cwd=fx), "other")
    for path in fx.rglob("*.pt"):
        trial.inputs[path] = sha256(path)
    return fx


def ledger_cases(t: Trial, fx: Path) -> None:
    family = "ledger"
    threes = set(class_names(fx / "base/sample_ids.tsv", 3))
    fives = set(class_names(fx / "base/sample_ids.tsv", 5))
    n_train = len((fx / "base/sample_ids.tsv").read_text().splitlines()) - 1
    for spec, source in (("class:3", "u1"), ("class:3", "u2"), ("class:5", "u2")):
        d = t.fresh()
        t.case(family, f"unlearn {source} again with {spec}, already forgotten",
               refused(run("unlearn", "--checkpoint", f"{source}/unlearned.pt", "--forget", spec, *FT, "--out", "x",
                           "--quiet", cwd=d), r"nothing new|already"))

    d = t.fresh()
    (d / "ids.txt").write_text("\n".join(sorted(threes)[:20]) + "\n")
    t.case(family, "unlearn u1 with an indices file of 20 names it already forgot",
           refused(run("unlearn", "--checkpoint", "u1/unlearned.pt", "--forget", "indices:ids.txt", *FT, "--out", "x",
                       "--quiet", cwd=d), r"nothing new|already"))

    d = t.fresh()
    others = sorted(set(class_names(fx / "base/sample_ids.tsv", 7)))[:10]
    (d / "ids.txt").write_text("\n".join(sorted(threes)[:10] + others) + "\n")
    res = run("unlearn", "--checkpoint", "u1/unlearned.pt", "--forget", "indices:ids.txt", *FT, "--out", "x",
              "--quiet", cwd=d)

    def half_new():
        new = blob(d / "x/unlearned.pt")["ledger"]["forgotten"]
        before = blob(fx / "u1/unlearned.pt")["ledger"]["forgotten"]
        record = json.loads((d / "x/record.json").read_text())
        ok = (new[:len(before)] == before and sorted(new[len(before):]) == others
              and record["forget_set"]["count"] == 10 and "10 of the requested" in res.err)
        return ok, f"ledger +{len(new) - len(before)}, record count {record['forget_set']['count']}, note: " \
                   f"{res.err.strip()[-120:]}"
    t.case(family, "indices file: 10 names forgotten before, 10 new (only the new ones, and a note)",
           completed(res, half_new))

    for fraction in ("0.05", "0.2"):
        d = t.fresh()
        res = run("unlearn", "--checkpoint", "u1/unlearned.pt", "--forget", f"random:{fraction}", *FT, "--out", "x",
                  "--quiet", cwd=d)

        def random_new(fraction=float(fraction), d=d):
            ledger = blob(d / "x/unlearned.pt")["ledger"]["forgotten"]
            before = len(blob(fx / "u1/unlearned.pt")["ledger"]["forgotten"])
            drawn = ledger[before:]
            expected = round(fraction * (n_train - before))
            ok = not (set(drawn) & threes) and len(set(drawn)) == len(drawn) and abs(len(drawn) - expected) <= 1
            return ok, f"{len(drawn)} drawn (expected ~{expected} of the {n_train - before} remaining), " \
                       f"{len(set(drawn) & threes)} from the forgotten class 3"
        t.case(family, f"random:{fraction} after class:3 draws among the samples not yet forgotten",
               completed(res, random_new))

    d = t.fresh()
    res = run("unlearn", "--checkpoint", "r1/unlearned.pt", "--forget", "class:3", *FT, "--out", "x", "--quiet", cwd=d)

    def class_after_random():
        ledger = blob(d / "x/unlearned.pt")["ledger"]["forgotten"]
        first = blob(fx / "r1/unlearned.pt")["ledger"]["forgotten"]
        overlap = len(set(first) & threes)
        ok = len(ledger) == len(set(ledger)) and set(ledger) == set(first) | threes
        return ok, f"ledger {len(ledger)} unique names = random's {len(first)} + class 3's {len(threes)} - {overlap} shared"
    t.case(family, "class:3 after random:0.05 (which drew some 3s): the ledger holds each sample once",
           completed(res, class_after_random))

    d = t.fresh()
    res = run("compare", "--checkpoint", "u1/unlearned.pt", "--forget", "class:5", "--methods", "ft",
              "--set", "ft.epochs=1", "--out", "cmp", "--quiet", cwd=d)

    def compare_reads_ledger():
        rows = json.loads((d / "cmp/compare.json").read_text())["rows"]
        retrain = [r for r in rows if r["method"] == "retrain"]
        ft = [r for r in rows if r["method"] == "ft"]
        ok = bool(retrain) and retrain[0].get("forgotten_class_TA", 100) < 5 and ft[0].get("forgotten_class_TA", 100) < 60
        return ok, f"forgotten-class TA (classes 3 and 5): retrain {retrain[0].get('forgotten_class_TA')}, " \
                   f"ft {ft[0].get('forgotten_class_TA')}"
    t.case(family, "compare on u1 (class 3 forgotten) for class:5: Retrain and FT never see class 3",
           completed(res, compare_reads_ledger))

    d = t.fresh()
    t.case(family, "compare on u1 for class:3, already forgotten",
           refused(run("compare", "--checkpoint", "u1/unlearned.pt", "--forget", "class:3", "--methods", "ft",
                       "--out", "cmp", "--quiet", cwd=d), r"nothing new|already"))

    d = t.fresh()
    t.case(family, "compare --requests from a model that has already forgotten samples",
           refused(run("compare", "--checkpoint", "u1/unlearned.pt", "--requests", "class:5,7", "--methods", "ft",
                       "--out", "cmp", "--quiet", cwd=d), r"already forgotten"))

    d = t.fresh()
    res = run("evaluate", "--checkpoint", "u2/unlearned.pt", "--quiet", cwd=d)

    def ta_split():
        metrics = dict(re.findall(r"(\w+)=([-\d.]+)", res.out))
        ta, removed = float(metrics.get("TA", -1)), float(metrics.get("forgotten_class_TA", -1))
        return (ta > 70 and 0 <= removed < 60 and "2 requests" in res.out,
                f"TA on the 8 remaining classes {ta}, forgotten-class TA {removed}; {res.out.splitlines()[0]}")
    t.case(family, "evaluate u2 (classes 3 then 5): every forgotten sample, TA without the removed classes",
           completed(res, ta_split))

    d = t.fresh()
    res = run("evaluate", "--checkpoint", "u2/unlearned.pt", "--record", "u2/record.json", "--quiet", cwd=d)

    def same_as_unlearn():
        said = json.loads((fx / "u2/unlearn.json").read_text())["metrics"]
        metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", res.out)}
        ok = all(abs(metrics.get(k, -999) - said[k]) < 0.01 for k in ("UA", "RA", "TA"))
        return ok, f"evaluate UA/RA/TA {[metrics.get(k) for k in ('UA', 'RA', 'TA')]}, unlearn.json " \
                   f"{[round(said[k], 2) for k in ('UA', 'RA', 'TA')]}"
    t.case(family, "evaluate u2 --record u2/record.json gives unlearn's own metrics", completed(res, same_as_unlearn))

    d = t.fresh()
    (d / "ids.txt").write_text("\n".join(sorted(fives)[:15]) + "\n")
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "indices:ids.txt", *FT, "--out", "ui", "--quiet",
             cwd=d), "indices unlearn")
    (d / "ids.txt").write_text("\n".join(sorted(threes)[:15]) + "\n")  # the user edits the file afterwards
    (d / "elsewhere").mkdir()
    res = run("evaluate", "--checkpoint", "../ui/unlearned.pt", "--record", "../ui/record.json", "--quiet",
              cwd=d / "elsewhere")

    def record_not_reread():
        said = json.loads((d / "ui/unlearn.json").read_text())["metrics"]
        metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", res.out)}
        return abs(metrics.get("UA", -999) - said["UA"]) < 0.01, f"UA {metrics.get('UA')} vs unlearn's {said['UA']:.2f}"
    t.case(family, "evaluate --record of an indices: request after its file was edited, from another folder",
           completed(res, record_not_reread))

    d = t.fresh()
    res = run("evaluate", "--checkpoint", "u2/unlearned.pt", "--record", "u1/record.json", "--quiet", cwd=d)

    def request_one():
        metrics = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.]+)", res.out)}
        return metrics.get("UA") == 100.0, f"UA on request 1's samples (class 3) {metrics.get('UA')}"
    t.case(family, "evaluate u2 on request 1 of its own chain (u1's record): class 3, still forgotten",
           completed(res, request_one))
    t.case(family, "evaluate u2 with r1's record (a request of another chain)",
           refused(run("evaluate", "--checkpoint", "u2/unlearned.pt", "--record", "r1/record.json", "--quiet", cwd=d),
                   r"another chain|ids SHA-256"))

    d = t.fresh()
    res = run("unlearn", "--checkpoint", "u2/unlearned.pt", "--forget", "class:7", "--method", "retrain", "--out", "x",
              "--quiet", cwd=d)

    def retrain_excludes_all():
        record = json.loads((d / "x/record.json").read_text())
        metrics = record["metrics"]
        ok = record["ledger"]["forgotten_count"] == len(threes | fives) + len(class_names(fx / "base/sample_ids.tsv", 7)) \
            and metrics.get("forgotten_class_TA", 100) < 5
        return ok, f"forgotten {record['ledger']['forgotten_count']}, forgotten-class TA (3, 5, 7) " \
                   f"{metrics.get('forgotten_class_TA')}"
    t.case(family, "Retrain as a third request (class 7 after 3 and 5) trains on none of the three classes",
           completed(res, retrain_excludes_all))


def verify_cases(t: Trial, fx: Path) -> None:
    family = "verify"
    d = t.fresh()
    t.case(family, "verify u2's record on u2's model (two requests)",
           verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", cwd=d), 0, r"every earlier record"))
    t.case(family, "verify u2's record on u1's model",
           verify_says(run("verify", "u2/record.json", "u1/unlearned.pt", cwd=d), 1, r"ORIGINAL|does not match"))
    t.case(family, "verify u1's record on u2's model",
           verify_says(run("verify", "u1/record.json", "u2/unlearned.pt", cwd=d), 1, r"does not match"))
    t.case(family, "verify u1's record on the original",
           verify_says(run("verify", "u1/record.json", "base/model.pt", cwd=d), 1, r"ORIGINAL"))

    def chain_copy() -> Path:
        d = Path(tempfile.mkdtemp(dir=t.root))
        for name in ("u1", "u2"):
            shutil.copytree(fx / name, d / name)
        return d

    d = chain_copy()
    record = json.loads((d / "u1/record.json").read_text())
    record["metrics"]["UA"] = 0.0
    (d / "u1/record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    t.case(family, "u1's record edited (UA), then verify u2",
           verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", cwd=d), 1, r"request 1"))

    d = chain_copy()
    (d / "u1/record.json").unlink()
    t.case(family, "u1's record deleted, then verify u2",
           verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", cwd=d), 1, r"request 1"))

    for what, edit in (("10 names removed from", lambda names: names[:-10]),
                       ("a name added to", lambda names: names + ["0/0000.png"]),
                       ("the order of names reversed in", lambda names: names[::-1])):
        d = chain_copy()
        data = blob(d / "u2/unlearned.pt")
        data["ledger"]["forgotten"] = edit(data["ledger"]["forgotten"])
        torch.save(data, d / "u2/unlearned.pt")
        t.case(family, f"{what} u2's ledger, then verify u2",
               verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", cwd=d), 1, r"request 2.*ledger"))

    d = chain_copy()
    data = blob(d / "u2/unlearned.pt")
    data["ledger"]["records"][0] = "0" * 64
    torch.save(data, d / "u2/unlearned.pt")
    t.case(family, "u2's ledger names another record for request 1",
           verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", cwd=d), 1, r"request"))

    d = chain_copy()
    shutil.move(d / "u2", d / "moved")
    t.case(family, "u2's folder renamed beside u1's (its relative link still resolves)",
           verify_says(run("verify", "moved/record.json", "moved/unlearned.pt", cwd=d), 0, r"every earlier record"))
    (d / "deeper").mkdir()
    shutil.move(d / "moved", d / "deeper" / "u2")
    t.case(family, "u2's folder moved one level deeper, away from u1's",
           verify_says(run("verify", "deeper/u2/record.json", "deeper/u2/unlearned.pt", cwd=d), 1, r"request 1.*not at"))

    d = Path(tempfile.mkdtemp(dir=t.root))
    shutil.copytree(fx / "s1", d / "s1")
    (d / "secret.key").write_text("not-so-secret\n")
    (d / "wrong.key").write_text("guess\n")
    t.case(family, "signed record, right key",
           verify_says(run("verify", "s1/record.json", "s1/unlearned.pt", "--key-file", "secret.key", cwd=d), 0,
                       r"signature .*checked"))
    t.case(family, "signed record, no key given (must say the signature went unchecked)",
           verify_says(run("verify", "s1/record.json", "s1/unlearned.pt", cwd=d), 0, r"signature NOT checked"))
    t.case(family, "signed record, wrong key",
           verify_says(run("verify", "s1/record.json", "s1/unlearned.pt", "--key-file", "wrong.key", cwd=d), 1,
                       r"HMAC"))
    record = json.loads((d / "s1/record.json").read_text())
    record["method"] = "retrain"
    (d / "s1/record.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    t.case(family, "signed record with its method edited, right key",
           verify_says(run("verify", "s1/record.json", "s1/unlearned.pt", "--key-file", "secret.key", cwd=d), 1,
                       r"HMAC"))

    d = t.fresh()
    (d / "ids.txt").write_text("\n".join(sorted(class_names(fx / "base/sample_ids.tsv", 4))) + "\n")
    t.case(family, "verify u1 --ids with class 4's names (u1 forgot class 3)",
           verify_says(run("verify", "u1/record.json", "u1/unlearned.pt", "--ids", "ids.txt", cwd=d), 1,
                       r"not the forget set of request 1"))
    (d / "fives.txt").write_text("\n".join(sorted(class_names(fx / "base/sample_ids.tsv", 5))) + "\n")
    t.case(family, "verify u2 --ids with class 5's names (the request's own)",
           verify_says(run("verify", "u2/record.json", "u2/unlearned.pt", "--ids", "fives.txt", cwd=d), 0,
                       r"forget names checked"))
    (d / "broken.json").write_text("{not json")
    t.case(family, "verify a record that is not JSON",
           verify_says(run("verify", "broken.json", "u1/unlearned.pt", cwd=d), 3, r"not an unlearning record"))
    t.case(family, "verify a model that does not exist",
           verify_says(run("verify", "u1/record.json", "nope.pt", cwd=d), 3, r"nope\.pt"))
    data = blob(fx / "u1/unlearned.pt")
    torch.save(data["state_dict"], d / "bare.pt")
    t.case(family, "verify u1's record on its weights saved as a bare state_dict",
           verify_says(run("verify", "u1/record.json", "bare.pt", cwd=d), 0, r"is the model described"))


def data_cases(t: Trial, fx: Path) -> None:
    family = "data identity"
    cases = ((("unlearn", "--checkpoint", "base/model.pt", "--data", "fashion-mnist", *FT), "unlearn digits' model "
              "with --data fashion-mnist"),
             (("unlearn", "--checkpoint", "base/model.pt", "--train-size", "500", *FT), "unlearn digits' model with "
              "--train-size 500"),
             (("evaluate", "--checkpoint", "u1/unlearned.pt", "--validation-size", "70"), "evaluate digits' model "
              "with --validation-size 70"),
             (("unlearn", "--checkpoint", "other/model.pt", "--train-size", "900", *FT), "unlearn a 600-sample "
              "Fashion-MNIST model with --train-size 900"),
             (("unlearn", "--checkpoint", "other/model.pt", "--validation-size", "50", *FT), "unlearn it with "
              "--validation-size 50 (a smaller holdout; the training samples are the same)"),
             (("evaluate", "--checkpoint", "other/model.pt", "--train-size", "601"), "evaluate it with --train-size 601"),
             (("compare", "--checkpoint", "other/model.pt", "--data", "digits", "--methods", "ft"), "compare it on digits"),
             (("unlearn", "--checkpoint", "other/model.pt", "--seed", "5", *FT), "unlearn it with --seed 5 (the "
              "subset is the checkpoint's, not re-drawn)"))
    for argv, what in cases:
        d = t.fresh()
        out = ("--out", "x") if argv[0] != "evaluate" else ()
        res = run(*argv, *out, "--quiet", cwd=d)
        if "--seed" in argv or "--validation-size" in argv and argv[0] == "unlearn":
            t.case(family, what, completed(res, lambda d=d: (
                json.loads((d / "x/record.json").read_text())["data"] == blob(fx / "other/model.pt")["data_identity"],
                "record's data identity is the checkpoint's")))
        else:
            t.case(family, what, refused(res, r"other data|fixed split|does not have"))
    d = t.fresh()
    res = run("unlearn", "--checkpoint", "other/model.pt", "--forget", "class:2", *FT, "--out", "x", "--quiet", cwd=d)

    def same_data():
        record = json.loads((d / "x/record.json").read_text())
        return record["data"]["train_size"] == 600, f"record's data {record['data']['train_size']} samples"
    t.case(family, "unlearn a 600-sample model without data flags uses its own data", completed(res, same_data))

    d = t.fresh()
    must(run("unlearn", "--checkpoint", "other/model.pt", "--forget", "class:3", "--method", "retrain", "--out",
             "ret_other", "--quiet", cwd=d), "retrain on other")
    t.case(family, "unlearn base class:3 with --retrain trained on other data",
           refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *FT, "--retrain",
                       "ret_other/unlearned.pt", "--out", "x", "--quiet", cwd=d), r"other data|does not have"))
    t.case(family, "--retrain that is the original itself",
           refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *FT, "--retrain",
                       "base/model.pt", "--out", "x", "--quiet", cwd=d), r"original"))
    t.case(family, "--retrain retrained without class 3, for a class:5 request",
           refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:5", *FT, "--retrain",
                       "ret3/unlearned.pt", "--out", "x", "--quiet", cwd=d), r"trained on \d+"))
    res = run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *FT, "--retrain", "ret3/unlearned.pt",
              "--out", "y", "--quiet", cwd=d)

    def has_gap():
        record = json.loads((d / "y/record.json").read_text())
        return "avg_gap" in record.get("retrain", {}), f"record's retrain gap {record.get('retrain', {}).get('avg_gap')}"
    t.case(family, "--retrain that is right (class 3) puts the gap in the record", completed(res, has_gap))


def config_cases(t: Trial, fx: Path) -> None:
    family = "configs"
    for sets, pattern, what in ((("--method", "ft", "--set", "l1_alpha=100"), r"l1_alpha.*reads", "ft --set l1_alpha"),
                                (("--method", "ga", "--set", "epochs=3"), r"epochs.*reads", "ga --set epochs (ga reads ga_epochs)"),
                                (("--method", "wsscl", "--set", "kl_weight=2"), r"kl_weight", "wsscl --set kl_weight (SCRUB's)"),
                                (("--method", "ft", "--set", "nosuch=1"), r"nosuch", "an unknown field"),
                                (("--method", "ft", "--set", "lr=abc"), r"lr", "lr=abc"),
                                (("--method", "ft", "--set", "lr"), r"FIELD=VALUE|lr", "--set without a value"),
                                (("--method", "ft", "--set", "epochs=0"), r"epochs", "ft epochs=0"),
                                (("--method", "ft", "--set", "epochs=1.5"), r"epochs", "ft epochs=1.5"),
                                (("--method", "ft", "--set", "lr=-0.1"), r"lr", "ft lr=-0.1"),
                                (("--method", "ft", "--set", "lr=nan"), r"lr", "ft lr=nan"),
                                (("--method", "retrain", "--set", "l1_alpha=1e-4"), r"l1_alpha", "retrain --set l1_alpha")):
        d = t.fresh()
        t.case(family, f"unlearn {what}",
               refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *sets, "--out", "x",
                           "--quiet", cwd=d), pattern))
    d = t.fresh()
    res = run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", "--method", "ft", "--set", "epochs=1",
              "--set", "lr=0.02", "--out", "x", "--quiet", cwd=d)

    def record_is_applied():
        config = json.loads((d / "x/record.json").read_text())["config"]
        return config.get("lr") == 0.02 and config.get("epochs") == 1 and "l1_alpha" not in config, f"record config {config}"
    t.case(family, "unlearn ft lr=0.02 epochs=1: the record holds what ran, nothing else", completed(res, record_is_applied))

    for argv, pattern, what in ((("--methods", "ft,ft"), r"more than once", "--methods ft,ft"),
                                (("--methods", "ft,salun,ft"), r"more than once", "--methods ft,salun,ft"),
                                (("--methods", "ft,nosuch"), r"nosuch", "--methods ft,nosuch"),
                                (("--methods", ","), r"method", "--methods ','"),
                                (("--methods", "ft", "--set", "ft.l1_alpha=100"), r"l1_alpha.*reads", "--set ft.l1_alpha"),
                                (("--methods", "ft", "--set", "salun.lr=0.1"), r"salun", "--set for a method not run"),
                                (("--methods", "ft", "--set", "lr=0.1"), r"METHOD\.FIELD|ft\.lr|lr", "--set without METHOD.")):
        d = t.fresh()
        t.case(family, f"compare {what}",
               refused(run("compare", "--checkpoint", "base/model.pt", "--forget", "class:3", *argv, "--out", "cmp",
                           "--quiet", cwd=d), pattern))


def option_cases(t: Trial, fx: Path) -> None:
    family = "options and advice"
    for spec, pattern in (("class:10", r"class"), ("class:-1", r"class"), ("class:three", r"class"),
                          ("random:0", r"random|fraction"), ("random:1", r"random|fraction|retain"),
                          ("random:1.5", r"random|fraction"), ("random:abc", r"random|fraction"),
                          ("indices:missing.txt", r"missing\.txt"), ("nonsense", r"random:|class:|indices:")):
        d = t.fresh()
        t.case(family, f"unlearn --forget {spec}",
               refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", spec, *FT, "--out", "x", "--quiet",
                           cwd=d), pattern))
    for content, pattern, what in (("", r"empty|no sample", "an empty indices file"),
                                   ("99999\n", r"99999", "a position past the end"),
                                   ("3/9999.png\n", r"9999", "a name the dataset does not have")):
        d = t.fresh()
        (d / "ids.txt").write_text(content)
        t.case(family, f"unlearn --forget indices: with {what}",
               refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "indices:ids.txt", *FT, "--out", "x",
                           "--quiet", cwd=d), pattern))
    d = t.fresh()
    names = sorted(class_names(fx / "base/sample_ids.tsv", 1))[:5]
    (d / "ids.txt").write_text("\n".join(names + names[:3]) + "\n")
    res = run("unlearn", "--checkpoint", "base/model.pt", "--forget", "indices:ids.txt", *FT, "--out", "x", "--quiet",
              cwd=d)

    t.case(family, "indices file naming 3 samples twice", refused(res, r"duplicates"))

    d = t.fresh()
    for flag in (("--out", "x"), ("--force",)):
        t.case(family, f"evaluate {flag[0]} (evaluate writes nothing)",
               refused(run("evaluate", "--checkpoint", "u1/unlearned.pt", *flag, cwd=d), r"unrecognized"))

    d = t.fresh()
    must(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", *FT, "--out", "x", "--quiet", cwd=d), "x")
    before = sha256(d / "x/unlearned.pt")
    t.case(family, "unlearn into a folder holding a finished run, without --force",
           refused(run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:4", *FT, "--out", "x",
                       "--quiet", cwd=d), r"--force"))
    res = run("unlearn", "--checkpoint", "x/unlearned.pt", "--forget", "class:4", *FT, "--out", "x", "--force",
              "--quiet", cwd=d)
    verdict = refused(res, r"overwrite the input")
    if sha256(d / "x/unlearned.pt") != before:
        verdict = ("SILENT WRONG", "the input checkpoint was replaced")
    t.case(family, "unlearn --out the input checkpoint's own folder, --force (the input must survive)", verdict)

    d = t.fresh()
    (d / "junk.pt").write_bytes(b"not a checkpoint")
    t.case(family, "unlearn a file that is not a checkpoint",
           refused(run("unlearn", "--checkpoint", "junk.pt", *FT, "--out", "x", "--quiet", cwd=d), r"junk\.pt"))
    t.case(family, "unlearn a checkpoint that does not exist",
           refused(run("unlearn", "--checkpoint", "nope.pt", *FT, "--out", "x", "--quiet", cwd=d), r"nope\.pt"))
    torch.save(blob(fx / "base/model.pt")["state_dict"], d / "bare.pt")
    res = run("unlearn", "--checkpoint", "bare.pt", "--forget", "class:3", *FT, "--out", "x", "--quiet", cwd=d)
    t.case(family, "unlearn a bare state_dict without --arch (the advice must be one that works)",
           refused(res, r"--arch"))
    t.case(family, "unlearn --resume with no run state",
           refused(run("unlearn", "--checkpoint", "base/model.pt", *FT, "--resume", "--out", "y", "--quiet", cwd=d),
                   r"run_state|resume"))
    t.case(family, "train --epochs 0",
           refused(run("train", "--data", "digits", "--epochs", "0", "--out", "t", "--quiet", cwd=d), r"epochs"))
    t.case(family, "unlearn --device cuda on a machine without one",
           refused(run("unlearn", "--checkpoint", "base/model.pt", *FT, "--device", "cuda", "--out", "x2", "--quiet",
                       cwd=d), r"--device cuda"))
    t.case(family, "compare --audit with --requests",
           refused(run("compare", "--checkpoint", "base/model.pt", "--requests", "class:3,5", "--audit",
                       "--methods", "ft", "--out", "c", "--quiet", cwd=d), r"--audit"))


def interrupt_cases(t: Trial, fx: Path) -> None:
    family = "interrupts"

    def one_line(res: Result, out: Path, *, hint: bool) -> tuple[str, str]:
        if "Traceback" in res.err:
            return "TRACEBACK", res.err.strip().splitlines()[-1]
        lines = [line for line in res.err.splitlines() if line.strip()]
        leftovers = [p.name for p in out.glob("*") if p.name != "run_state.pt"] if out.exists() else []
        ok = res.code == 130 and len(lines) == 1 and not leftovers and (("--resume" in lines[0]) == hint)
        return ("fine" if ok else "UNCLEAR"), f"exit {res.code}; {lines}; left in --out: {leftovers}"

    d = t.fresh()
    res = run("train", "--data", "digits", "--epochs", "400", "--out", "t", "--quiet", cwd=d, send=signal.SIGTERM,
              after=12)
    t.case(family, "SIGTERM during train: exit 130, one line with a resume hint", one_line(res, d / "t", hint=True))
    res = run("train", "--data", "digits", "--epochs", "400", "--out", "t", "--quiet", "--resume", cwd=d,
              send=signal.SIGINT, after=12)
    t.case(family, "Ctrl-C during a resumed train", one_line(res, d / "t", hint=True))
    res = run("compare", "--checkpoint", "base/model.pt", "--forget", "class:3", "--methods", "ft,salun", "--set",
              "retrain.epochs=400", "--out", "c", "--quiet", cwd=d, send=signal.SIGINT, after=10)
    t.case(family, "Ctrl-C during compare: exit 130, one line, no resume hint", one_line(res, d / "c", hint=False))
    res = run("unlearn", "--checkpoint", "base/model.pt", "--forget", "class:3", "--set", "finetune_epochs=200",
              "--out", "a", "--quiet", cwd=d, send=signal.SIGTERM, after=14)
    t.case(family, "SIGTERM during a long unlearn: exit 130, one line with a resume hint",
           one_line(res, d / "a", hint=True))



def write_table(trial: Trial, path: Path, seconds: float, version: str) -> None:
    counts: dict[str, int] = {}
    for _, _, verdict, _ in trial.cases:
        counts[verdict] = counts.get(verdict, 0) + 1
    changed = [str(p.relative_to(trial.root)) for p, digest in trial.inputs.items() if sha256(p) != digest]
    lines = [f"# Hostile trial of {version}: {len(trial.cases)} cases", "",
             f"Made by `trial.py` in {seconds / 60:.1f} minutes, from an installed wheel, outside the source tree.",
             "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
             f"Input checkpoints whose SHA-256 changed: {changed or 'none'}.", "",
             "| # | family | case | verdict | what it said or did |", "|---|---|---|---|---|"]
    for i, (family, description, verdict, detail) in enumerate(trial.cases, 1):
        detail = detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {i} | {family} | {description} | {verdict} | {detail} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cases.md", help="the Markdown table of cases and verdicts")
    args = parser.parse_args()
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="hostile-") as root:
        trial = Trial(Path(root))
        fx = make_fixtures(trial)
        for family in (ledger_cases, verify_cases, data_cases, config_cases, option_cases, interrupt_cases):
            family(trial, fx)
        version = run("--version", cwd=root).out.strip()
        write_table(trial, Path(args.out).resolve(), time.time() - start, version)
    bad = [c for c in trial.cases if c[2] in ("SILENT WRONG", "TRACEBACK")]
    print(f"{len(trial.cases)} cases, {len(bad)} silent wrong results or tracebacks -> {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
