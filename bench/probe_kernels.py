"""The probe's kernels (imported only when the probe runs).

- Read kernels (Numba, cached on disk by Numba): dot products of two arrays, serial, and parallel with each
  thread summing one contiguous share into its own row of a buffer, as the tuned fit's parallel kernel does
  (``backends/numba_kernels.py``), so that a parallel pass costs what starting the fit's parallel region
  costs and no more (Numba's reduction variables would allocate arrays every pass).
- Arithmetic kernels (LLVM IR through llvmlite, compiled for this CPU): one iteration's vector instruction
  mix (:data:`bench.roofline.MIXES`) written out explicitly at a chosen vector width, over x and y (and the
  powers of x) resident in L1, with :data:`CHAINS` independent sets of accumulators so that the time is the
  throughput of the execution units, not the latency of a chain. Written as IR rather than Numba so that the
  counts and the width are exactly what is asked for, not what a vectoriser chooses.
"""

from __future__ import annotations

import ctypes
import platform

import numpy as np
from numba import njit, prange

from bench.roofline import MIXES, Mix

FAST = {"reassoc", "contract"}
"""Reassociation lets LLVM vectorise the sums; no flag that changes what NaN or infinity do."""


@njit(fastmath=FAST, cache=True)
def _dot(a, b):
    """One pass over slices starting at 0 (an offset would keep Numba's negative-index check in the loop)."""
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@njit(fastmath=FAST, cache=True)
def read(a, b, passes):
    """``passes`` dot products of a and b: each pass reads both arrays once."""
    total = 0.0
    for _ in range(passes):
        total += _dot(a, b)
    return total


@njit(cache=True)
def _total(parts):
    """The threads' rows added, outside the parallel function (inside it, the sum would be a second parallel
    region each pass)."""
    return parts.sum()


@njit(parallel=True, fastmath=FAST, cache=True)
def read_parallel(a, b, passes, parts):
    """``passes`` dot products of a and b, each one parallel region over ``parts.size`` threads: thread p sums
    the p-th contiguous share into ``parts[p]``; the rows are added after the region."""
    total = 0.0
    threads = parts.size
    for _ in range(passes):
        for p in prange(threads):
            lo, hi = p * a.size // threads, (p + 1) * a.size // threads
            parts[p] = _dot(a[lo:hi], b[lo:hi])
        total += _total(parts)
    return total


CHAINS = 4
"""Independent accumulator sets per loop step: 5 accumulators each, 20 vector registers with the 4
coefficients and a few temporaries, inside the 32 of AVX-512 (the step's ~45 instructions then need about 22
cycles on two pipes, far more than the 4-cycle latency of the accumulators' chains)."""

BUFFER_BYTES = 4096
"""Bytes of each array the arithmetic kernels read (x, y, x^2, x^3: 16 KiB in all, resident in any L1)."""

_LLVM_TYPE = {"float64": "double", "float32": "float"}
_LLVM_SUFFIX = {"float64": "f64", "float32": "f32"}


def _fused_body(k: int, vec: str, fma) -> list[str]:
    """Horner's residual and the five sums, as ``backends/numba_kernels.py``'s ``_block_sums`` writes them."""
    return [
        f"%h1.{k} = {fma('%d', f'%x.{k}', '%c')}",
        f"%h2.{k} = {fma(f'%h1.{k}', f'%x.{k}', '%b')}",
        f"%h3.{k} = {fma(f'%h2.{k}', f'%x.{k}', '%a')}",
        f"%r.{k} = fsub {vec} %h3.{k}, %y.{k}",
        f"%rx.{k} = fmul {vec} %r.{k}, %x.{k}",
        f"%rx2.{k} = fmul {vec} %rx.{k}, %x.{k}",
        f"%s0n.{k} = fadd {vec} %s0.{k}, %r.{k}",
        f"%s1n.{k} = fadd {vec} %s1.{k}, %rx.{k}",
        f"%s2n.{k} = fadd {vec} %s2.{k}, %rx2.{k}",
        f"%s3n.{k} = {fma(f'%rx2.{k}', f'%x.{k}', f'%s3.{k}')}",
        f"%s4n.{k} = {fma(f'%r.{k}', f'%r.{k}', f'%s4.{k}')}",
    ]


def _powers_body(k: int, vec: str, fma) -> list[str]:
    """The residual from precomputed powers of x, ``((a - y) + b x) + c x^2 + d x^3``, and the five sums."""
    return [
        f"%t.{k} = fsub {vec} %a, %y.{k}",
        f"%h1.{k} = {fma('%b', f'%x.{k}', f'%t.{k}')}",
        f"%h2.{k} = {fma('%c', f'%xx.{k}', f'%h1.{k}')}",
        f"%r.{k} = {fma('%d', f'%xxx.{k}', f'%h2.{k}')}",
        f"%s0n.{k} = fadd {vec} %s0.{k}, %r.{k}",
        f"%s1n.{k} = {fma(f'%r.{k}', f'%x.{k}', f'%s1.{k}')}",
        f"%s2n.{k} = {fma(f'%r.{k}', f'%xx.{k}', f'%s2.{k}')}",
        f"%s3n.{k} = {fma(f'%r.{k}', f'%xxx.{k}', f'%s3.{k}')}",
        f"%s4n.{k} = {fma(f'%r.{k}', f'%r.{k}', f'%s4.{k}')}",
    ]


BODIES = {"fused": _fused_body, "powers": _powers_body}
"""The loop body of each mix of :data:`bench.roofline.MIXES`, by name (tests check their counts in the
generated code against the mix)."""


def mix_ir(mix: Mix, dtype: str, bits: int, cpu: str, features: str) -> str:
    """LLVM IR of ``mix(x, y, x2, x3, vectors, passes, out, a, b, c, d)``: ``passes`` passes over ``vectors``
    vectors of each array, the mix's instructions on each, :data:`CHAINS` vectors per loop step; the
    accumulators are stored to ``out`` so nothing is dead code."""
    scalar, lanes = _LLVM_TYPE[dtype], bits // (8 * np.dtype(dtype).itemsize)
    vec = f"<{lanes} x {scalar}>"
    intrinsic = f"@llvm.fmuladd.v{lanes}{_LLVM_SUFFIX[dtype]}"

    def fma(u: str, v: str, w: str) -> str:  # llvm.fmuladd: one fused multiply-add where the CPU has one
        return f"call {vec} {intrinsic}({vec} {u}, {vec} {v}, {vec} {w})"

    reads = ("x", "y", "xx", "xxx") if mix.name == "powers" else ("x", "y")
    arrays = {"x": "%px", "y": "%py", "xx": "%pxx", "xxx": "%pxxx"}
    sums = [f"s{j}.{k}" for k in range(CHAINS) for j in range(5)]
    lines = [
        f"declare {vec} {intrinsic}({vec}, {vec}, {vec})",
        f"define void @mix(ptr noalias %px, ptr noalias %py, ptr noalias %pxx, ptr noalias %pxxx, i64 %vectors,"
        f" i64 %passes, ptr noalias %out, {scalar} %sa, {scalar} %sb, {scalar} %sc, {scalar} %sd) #0 {{",
        "entry:",
    ]
    for name in "abcd":
        lines += [
            f"%{name}.0 = insertelement {vec} poison, {scalar} %s{name}, i64 0",
            f"%{name} = shufflevector {vec} %{name}.0, {vec} poison, <{lanes} x i32> zeroinitializer",
        ]
    lines += ["br label %outer", "outer:", "%p = phi i64 [0, %entry], [%p.next, %latch]"]
    lines += [f"%o{s} = phi {vec} [zeroinitializer, %entry], [%{s.replace('.', 'n.', 1)}, %latch]" for s in sums]
    lines += ["br label %inner", "inner:", "%i = phi i64 [0, %outer], [%i.next, %inner]"]
    lines += [f"%{s} = phi {vec} [%o{s}, %outer], [%{s.replace('.', 'n.', 1)}, %inner]" for s in sums]
    for k in range(CHAINS):
        lines.append(f"%i.{k} = add i64 %i, {k}")
        for name in reads:
            lines += [
                f"%q{name}.{k} = getelementptr {vec}, ptr {arrays[name]}, i64 %i.{k}",
                f"%{name}.{k} = load {vec}, ptr %q{name}.{k}, align {np.dtype(dtype).itemsize}",
            ]
        lines += BODIES[mix.name](k, vec, fma)
    lines += [
        f"%i.next = add i64 %i, {CHAINS}",
        "%i.more = icmp ult i64 %i.next, %vectors",
        "br i1 %i.more, label %inner, label %latch",
        "latch:",
        "%p.next = add i64 %p, 1",
        "%p.more = icmp ult i64 %p.next, %passes",
        "br i1 %p.more, label %outer, label %exit",
        "exit:",
    ]
    for index, s in enumerate(sums):
        lines += [
            f"%w{index} = getelementptr {vec}, ptr %out, i64 {index}",
            f"store {vec} %{s.replace('.', 'n.', 1)}, ptr %w{index}, align {np.dtype(dtype).itemsize}",
        ]
    lines += ["ret void", "}"]
    lines.append(
        f'attributes #0 = {{ nounwind "target-cpu"="{cpu}" "target-features"="{features}"'
        f' "min-legal-vector-width"="{bits}" "prefer-vector-width"="{bits}" }}'
    )
    return "\n".join(lines)


def vector_widths(features: str) -> tuple[int, ...]:
    """The vector widths in bits this CPU has, narrowest first: 128 everywhere (SSE2, NEON), 256 with AVX,
    512 with AVX-512F."""
    widths = [128]
    if platform.machine() in ("x86_64", "AMD64"):
        flags = set(features.split(","))
        widths += [256] * ("+avx" in flags) + [512] * ("+avx512f" in flags)
    return tuple(widths)


class MixKernel:
    """One compiled arithmetic kernel (``run(passes, data)`` times nothing itself)."""

    def __init__(self, mix: Mix, dtype: str, bits: int) -> None:
        import llvmlite.binding as llvm

        cpu, features = host_target()
        self.mix, self.dtype, self.bits = mix, dtype, bits
        self.lanes = bits // (8 * np.dtype(dtype).itemsize)
        self.elements = BUFFER_BYTES // np.dtype(dtype).itemsize
        self.vectors = self.elements // self.lanes
        module = llvm.parse_assembly(mix_ir(mix, dtype, bits, cpu, features))
        module.verify()
        machine = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features=features, opt=3)
        self.assembly = machine.emit_assembly(module)
        self.engine = llvm.create_mcjit_compiler(module, machine)
        self.engine.finalize_object()
        scalar = ctypes.c_double if dtype == "float64" else ctypes.c_float
        signature = ctypes.CFUNCTYPE(
            None, *[ctypes.c_void_p] * 4, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, *[scalar] * 4
        )
        self.function = signature(self.engine.get_function_address("mix"))  # ctypes releases the GIL

    def data(self) -> tuple:
        """Arrays for one thread's calls (each thread its own, in its own core's L1): x in [0.5, 1] (no
        subnormal product), y, x^2, x^3, and the accumulators' output."""
        x = np.linspace(0.5, 1.0, self.elements, dtype=self.dtype)
        return (x, np.full_like(x, 0.25), x * x, x * x * x), np.zeros(5 * CHAINS * self.lanes, dtype=self.dtype)

    def run(self, passes: int, data: tuple) -> None:
        """``passes`` passes over ``data``'s arrays: ``passes * self.elements`` elements of one iteration's work."""
        arrays, out = data
        self.function(*(a.ctypes.data for a in arrays), self.vectors, passes, out.ctypes.data, *COEFFICIENTS)


COEFFICIENTS = (0.5, -0.25, 0.125, 0.0625)
"""a, b, c, d of the arithmetic kernels: any moderate values (the time does not depend on them)."""


def host_target() -> tuple[str, str]:
    """This CPU's name and features as LLVM knows them (what Numba compiles for)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def mix_kernels(dtype: str) -> list[MixKernel]:
    """A kernel for every mix at every vector width of this CPU."""
    return [MixKernel(mix, dtype, bits) for mix in MIXES for bits in vector_widths(host_target()[1])]
