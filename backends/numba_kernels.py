"""The Numba backend's compiled fits (imported by :class:`backends.numba_backend.NumbaBackend` only).

Every function here is a whole fit: all iterations in one compiled call, each iteration one pass over x and
y. Scalars take the data's dtype from the arrays (a Python literal such as ``2.0`` would promote float32 to
float64 in Numba), weights live in a 4-array of the data's dtype, and logged losses go into ``logged``.
"""

from __future__ import annotations

from numba import njit, prange

FASTMATH = {"reassoc", "contract"}
"""Reassociation, so LLVM may vectorise the sums (many partial sums instead of one chain), and contraction
into fused multiply-adds. Not ``nnan``/``ninf``: a diverging fit must still produce NaN or infinity."""

BLOCK = 2048
"""Elements per block of the tuned kernels: summed in the data's dtype inside a block, in float64 across."""


def _tutorial(parallel: bool):
    """The tutorial's arithmetic as a loop: powers recomputed, sums in the data's dtype, in order."""
    loop = prange if parallel else range

    @njit(parallel=parallel, cache=True)
    def fit(x, y, weights, learning_rate, iterations, log_interval, logged):
        w = weights.copy()
        loss = x[0] - x[0]
        for t in range(iterations):
            a, b, c, d = w[0], w[1], w[2], w[3]
            zero = x[0] - x[0]
            grad_a, grad_b, grad_c, grad_d, loss = zero, zero, zero, zero, zero
            for i in loop(x.size):
                y_pred = a + b * x[i] + c * x[i] ** 2 + d * x[i] ** 3
                loss += (y_pred - y[i]) ** 2
                grad_y_pred = (y_pred - y[i]) + (y_pred - y[i])  # 2.0 * (...), exactly, in the data's dtype
                grad_a += grad_y_pred
                grad_b += grad_y_pred * x[i]
                grad_c += grad_y_pred * x[i] ** 2
                grad_d += grad_y_pred * x[i] ** 3
            if t % log_interval == log_interval - 1:
                logged[t // log_interval] = loss
            w[0] = a - learning_rate * grad_a
            w[1] = b - learning_rate * grad_b
            w[2] = c - learning_rate * grad_c
            w[3] = d - learning_rate * grad_d
        return w, loss

    return fit


@njit(fastmath=FASTMATH, cache=True)
def _block_sums(x, y, a, b, c, d):
    """Sums of r, r x, r x^2, r x^3 and r^2 over a block, r = Horner's prediction - y, in the data's dtype.

    The caller passes slices, so indices start at 0: with an offset, Numba's negative-index check stays in
    the loop and LLVM no longer vectorises it.
    """
    s0 = s1 = s2 = s3 = sl = x[0] - x[0]
    for i in range(x.size):
        xi = x[i]
        r = ((d * xi + c) * xi + b) * xi + a - y[i]
        rx = r * xi
        rx2 = rx * xi
        s0 += r
        s1 += rx
        s2 += rx2
        s3 += rx2 * xi
        sl += r * r
    return s0, s1, s2, s3, sl


@njit(cache=True)
def _column_sums(parts):
    """The five sums of the threads' rows, in order (outside the parallel function, so that Numba does not
    turn each sum into a parallel region of its own)."""
    return parts[:, 0].sum(), parts[:, 1].sum(), parts[:, 2].sum(), parts[:, 3].sum(), parts[:, 4].sum()


def _tuned(parallel: bool):
    """One fused pass per iteration: Horner's form, the loss and the four gradient sums in the same loop.

    Each of the ``parts.shape[0]`` shares (one per thread; one when serial) sums one contiguous run of blocks
    into its own row of ``parts``, a (shares, 5) float64 buffer the caller allocates once; the rows are added
    in order afterwards. This replaces a ``prange`` over the blocks with Numba's reduction variables, which
    allocates its reduction arrays every iteration; Numba's dynamic scheduling (``set_parallel_chunksize``)
    was slower than either. The block loop is written out here: a call to a helper per block cost time at
    small n. (Figures: the commit that introduced this kernel, 28e1b6d.)
    """

    loop = prange if parallel else range

    @njit(parallel=parallel, fastmath=FASTMATH, cache=True)
    def fit(x, y, weights, step, iterations, log_interval, logged, parts):
        w = weights.copy()
        blocks = (x.size + BLOCK - 1) // BLOCK
        threads = parts.shape[0]
        loss = 0.0
        for t in range(iterations):
            a, b, c, d = w[0], w[1], w[2], w[3]
            for p in loop(threads):
                g0, g1, g2, g3, sl = 0.0, 0.0, 0.0, 0.0, 0.0
                for k in range(p * blocks // threads, (p + 1) * blocks // threads):
                    block = slice(k * BLOCK, (k + 1) * BLOCK)
                    s0, s1, s2, s3, s4 = _block_sums(x[block], y[block], a, b, c, d)
                    g0 += s0
                    g1 += s1
                    g2 += s2
                    g3 += s3
                    sl += s4
                parts[p, 0], parts[p, 1], parts[p, 2], parts[p, 3], parts[p, 4] = g0, g1, g2, g3, sl
            g0, g1, g2, g3, loss = _column_sums(parts)
            if t % log_interval == log_interval - 1:
                logged[t // log_interval] = loss
            w[0] = a - step * g0
            w[1] = b - step * g1
            w[2] = c - step * g2
            w[3] = d - step * g3
        return w, loss

    return fit


tutorial_serial = _tutorial(parallel=False)
tutorial_parallel = _tutorial(parallel=True)
tuned_serial = _tuned(parallel=False)
tuned_parallel = _tuned(parallel=True)
