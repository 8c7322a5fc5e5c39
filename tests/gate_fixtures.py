"""Kernels the compile gate must reject: run by tests/test_compile_gate.py in a process
without TRITON_INTERPRET."""
import json
import sys

import triton
import triton.language as tl

from wsscl_fast.kernels.aot import CompileSpec, compile_report, kernel_types


@triton.jit
def _branch_shapes_differ(X, flag, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr):
    """The bug the old InfoNCE backward had: one variable, two shapes in the two branches of a
    runtime if (the interpreter accepts it, the compiler does not)."""
    if flag > 0:
        values = tl.zeros((BLOCK_A,), tl.float32)
    else:
        values = tl.zeros((BLOCK_B,), tl.float32)
    tl.store(X + tl.arange(0, BLOCK_A), values)


@triton.jit
def _deep_pipeline(X, Y, depth, BLOCK: tl.constexpr):
    """A tf32 GEMM loop whose 8-stage software pipeline keeps 8 x 96 KiB of tiles in shared memory."""
    rows = tl.arange(0, BLOCK)
    cols = tl.arange(0, 2 * BLOCK)
    slices = tl.arange(0, 64)
    acc = tl.zeros((BLOCK, 2 * BLOCK), tl.float32)
    for k in range(0, depth, 64):
        x = tl.load(X + rows[:, None] * depth + (k + slices)[None, :])
        y = tl.load(Y + (k + slices)[:, None] * 2 * BLOCK + cols[None, :])
        acc = tl.dot(x, y, acc, input_precision="tf32")
    tl.store(Y + rows[:, None] * 2 * BLOCK + cols[None, :], acc)


@triton.jit
def _fp32_dot(X, Y, BLOCK: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    x = tl.load(X + rows[:, None] * BLOCK + rows[None, :])
    tl.store(Y + rows[:, None] * BLOCK + rows[None, :], tl.dot(x, x, input_precision="ieee"))


def specs():
    def spec(kernel, label, constexprs, stages=1, **kw):
        types, divisible = kernel_types(kernel, element="fp32")
        return CompileSpec(kernel, label, types, constexprs, 4, stages, 90, divisible=divisible, **kw)
    return [
        spec(_branch_shapes_differ, "branch shapes", dict(BLOCK_A=128, BLOCK_B=64)),
        spec(_deep_pipeline, "shared memory", dict(BLOCK=128), stages=8),
        spec(_fp32_dot, "ieee dot where tensor cores are required", dict(BLOCK=64), tensor_cores=True),
        spec(_fp32_dot, "register cap", dict(BLOCK=64), max_registers=8),
        spec(_fp32_dot, "a good kernel", dict(BLOCK=32)),
    ]


if __name__ == "__main__":
    json.dump({s.label: compile_report(s).failures() for s in specs()}, sys.stdout)
