"""Ahead-of-time compilation of a Triton kernel for a GPU that is not here.

``compile_report`` compiles one kernel for one launch configuration with the ptxas inside the
triton wheel (no GPU, no driver) and reads what the GPU would enforce at launch: registers,
spills, shared memory, and whether ``tl.dot`` became tensor-core instructions. It is the only
place that touches Triton's compiler API (``ASTSource``, ``GPUTarget``, the ptxas log), which
changes between releases; it is tested with Triton 3.8 (CI) and 3.6 (the GPU machine). It
must run without ``TRITON_INTERPRET`` (the interpreter replaces ``@triton.jit``), which is why
the gate runs it in a process of its own.
"""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field

SHARED_LIMIT = {80: 166_912, 90: 232_448}  # bytes one block may use (cudaDevAttrMaxSharedMemoryPerBlockOptin)


@dataclass(frozen=True)
class CompileSpec:
    """One launch configuration of one kernel, as its launcher would run it."""
    kernel: object  # the @triton.jit function
    label: str  # e.g. "infonce fwd bf16 D>=128 normalize"
    types: dict  # runtime argument -> Triton type ("*bf16", "i32", "fp32", ...)
    constexprs: dict  # constexpr argument -> value
    num_warps: int
    num_stages: int
    arch: int  # 80 or 90
    tensor_cores: bool = False  # the kernel's tl.dot must become mma / wgmma
    no_spills: bool = False  # a spill fails the gate (bf16 / fp16 / tf32 configurations)
    max_registers: int = 255  # more registers per thread fails the gate
    quick: bool = False  # part of the subset that the test suite compiles
    divisible: tuple = field(default=())  # arguments a real launch gets as multiples of 16

    @property
    def key(self):
        """Configurations that compile to the same binary share a key."""
        return (self.kernel.__name__, tuple(sorted(self.types.items())), tuple(sorted(self.constexprs.items())),
                self.num_warps, self.num_stages, self.arch)


@dataclass
class CompileReport:
    spec: CompileSpec
    registers: int = 0
    spill_bytes: int = 0  # spill stores + spill loads, per thread
    shared: int = 0  # bytes of shared memory per block
    mma: bool = False  # tensor-core instructions in the PTX
    vector_loads: int = 0  # 128-bit global loads in the PTX
    error: str = ""

    def failures(self) -> list[str]:
        """What makes this configuration unfit for its GPU (empty when it passes)."""
        spec = self.spec
        if self.error:
            return [f"does not compile: {self.error}"]
        found = []
        if self.shared > SHARED_LIMIT[spec.arch]:
            found.append(f"{self.shared} B shared memory > {SHARED_LIMIT[spec.arch]} B (sm_{spec.arch})")
        if self.registers > spec.max_registers:
            found.append(f"{self.registers} registers > {spec.max_registers}")
        if spec.no_spills and self.spill_bytes:
            found.append(f"spills {self.spill_bytes} B per thread")
        if spec.tensor_cores and not self.mma:
            found.append("tl.dot compiled without tensor-core instructions (no mma/wgmma)")
        return found


def _target(arch: int):
    from triton.backends.compiler import GPUTarget
    return GPUTarget("cuda", arch, 32)


def _source(spec: CompileSpec):
    from triton.compiler import ASTSource
    names = spec.kernel.arg_names
    signature = {name: spec.types.get(name, "constexpr") for name in names}
    missing = [n for n in names if n not in spec.types and n not in spec.constexprs]
    if missing:
        raise ValueError(f"{spec.label}: no type or value for {missing}")
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in spec.divisible}
    return ASTSource(spec.kernel, signature, dict(spec.constexprs), attrs)


def compile_report(spec: CompileSpec) -> CompileReport:
    """Compile ``spec`` for its arch and read registers, spills and shared memory.

    ptxas prints its statistics only when it runs: call this with ``TRITON_ALWAYS_COMPILE=1``
    (or an empty Triton cache) and ``TRITON_DUMP_PTXAS_LOG=1`` set before triton is imported.
    """
    import triton

    report = CompileReport(spec)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(_source(spec), target=_target(spec.arch),
                                      options=dict(num_warps=spec.num_warps, num_stages=spec.num_stages))
    except Exception as exc:  # noqa: BLE001 - every compiler failure is a gate failure
        while exc.__cause__ is not None:  # the compiler wraps the real error with source context
            exc = exc.__cause__
        lines = [line.strip() for line in str(exc).splitlines() if line.strip().strip("^")]
        report.error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]
        return report
    text = log.getvalue()
    registers = re.findall(r"Used (\d+) registers", text)
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if not registers:
        report.error = "no ptxas statistics (are TRITON_ALWAYS_COMPILE=1 and TRITON_DUMP_PTXAS_LOG=1 set?)"
        return report
    report.registers = int(registers[-1])
    report.spill_bytes = sum(int(s) + int(l) for s, l in spills)
    report.shared = int(compiled.metadata.shared)
    ptx = compiled.asm["ptx"]
    report.mma = bool(re.search(r"\b(wgmma|mma)\.", ptx))
    report.vector_loads = len(re.findall(r"ld\.global(?:\.\w+)*\.v4\.", ptx))
    return report


def kernel_types(kernel, element: str, inputs=()) -> tuple[dict, tuple]:
    """Triton types of ``kernel``'s runtime arguments by this project's naming convention:
    UPPERCASE names other than the sizes N, M, D are pointers (``*element`` for those in
    ``inputs``, else ``POINTER_TYPES`` or ``*fp32``); other names are i32 scalars, except the
    ``FLOAT_SCALARS``. Returns (types, the arguments that a real launch passes as multiples of
    16: pointers, D, strides and split lengths)."""
    types, divisible = {}, []
    for param in kernel.params:
        if param.is_constexpr:
            continue
        name = param.name
        if name.isupper() and name not in SIZE_NAMES:
            types[name] = f"*{element}" if name in inputs else POINTER_TYPES.get(name, "*fp32")
            divisible.append(name)
        elif name in FLOAT_SCALARS:
            types[name] = "fp32"
        else:
            types[name] = "i32"
            if name == "D" or name.startswith("stride") or name.endswith("per_split"):
                divisible.append(name)
    return types, tuple(divisible)


SIZE_NAMES = {"N", "M", "D"}
FLOAT_SCALARS = {"inv_tau", "lr", "momentum", "weight_decay", "step_size", "bc2_sqrt", "decay", "one_minus_beta1",
                 "beta2", "one_minus_beta2", "eps"}
POINTER_TYPES = {"TABLE": "*i64", "CHUNK_TENSOR": "*i32", "CHUNK_START": "*i64", "NUMEL": "*i64", "PREFIX": "*i64",
                 "HIST": "*i32"}
