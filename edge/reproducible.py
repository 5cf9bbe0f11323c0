"""Arithmetic that gives the same bits on every CPU, for the frontend.

numpy's FFT, ``np.log``, ``np.cos`` and friends are compiled per architecture: the x86-64 wheels
use AVX-512 kernels, the aarch64 wheels let the compiler fuse multiply-adds (FMA). Each is
accurate, but their last bits differ between a workstation and a Raspberry Pi, and a last-bit
difference can move a pitch estimate to the neighbouring lag or an int8 model input to the
neighbouring step. So what must be the same bits everywhere comes from here: the frontend's
constants, its cepstra where certified rounding falls back (``edge.certified``), the block levels
and the speech detector's softmax:

- constants (window, mel edges, DCT, lifter, FFT twiddles) are computed in decimal arithmetic to
  40 digits and rounded once to float64: exact software arithmetic, the same everywhere;
- signal arithmetic uses only numpy's elementwise +, -, *, / (which IEEE 754 defines to the bit:
  correctly rounded, one operation per ufunc call, so nothing is fused) and exact operations
  (``frexp``, ``ldexp``, ``rint``, ``where``, ``max``), and sums are taken in a fixed order
  (``fixed_order_sum``, ``weighted_sum``) whatever the number of rows or the CPU.

tests/test_reproducible.py pins the resulting features; firmware_scripts/arm64-parity.sh shows
the same bits on arm64.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext

import numpy as np

_DIGITS = 40  # far beyond float64's 17 digits: rounding once gives the correctly rounded float


@functools.lru_cache(maxsize=1)
def _pi() -> Decimal:
    """pi to ``_DIGITS`` digits by Machin's formula 16 atan(1/5) - 4 atan(1/239)."""

    def atan_inverse(n: int) -> Decimal:
        total, power, k = Decimal(0), Decimal(1) / n, 0
        while power > Decimal(10) ** -(_DIGITS + 5):
            total += (-1) ** k * power / (2 * k + 1)
            power /= n * n
            k += 1
        return total

    with localcontext(prec=_DIGITS + 5):
        return +(16 * atan_inverse(5) - 4 * atan_inverse(239))


@functools.lru_cache(maxsize=64)  # two series per table: the smallest angle's cos and sin
def _taylor(numerator: int, denominator: int, odd: bool) -> Decimal:
    """sin (``odd``) or cos of 2 pi numerator / denominator, an angle of at most an eighth of a
    turn, to ``_DIGITS`` digits by its Taylor series."""
    with localcontext(prec=_DIGITS + 5):
        x = 2 * _pi() * numerator / denominator
        term = x if odd else Decimal(1)
        total, n = term, int(odd)
        while abs(term) > Decimal(10) ** -(_DIGITS + 3):
            term *= -x * x / ((n + 1) * (n + 2))
            total += term
            n += 2
        return +total


@functools.lru_cache(maxsize=16)
def _first_eighth(denominator: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi j / (8 denominator) for j = 0 .. denominator (the first eighth of a
    turn), correctly rounded to float64. Computed to ``_DIGITS`` digits: the smallest angle by its
    series, the others by adding it, (c + is)(c1 + is1), a few multiplications each instead of a
    series each (start-up time); ten guard digits cover the error that adds up over the steps
    (below 10^-45 per step)."""
    c1, s1 = _taylor(1, 8 * denominator, odd=False), _taylor(1, 8 * denominator, odd=True)
    cos, sin = [Decimal(1)], [Decimal(0)]
    with localcontext(prec=_DIGITS + 10):
        for _ in range(denominator):
            c, s = cos[-1], sin[-1]
            cos.append(c * c1 - s * s1)
            sin.append(s * c1 + c * s1)
    tables = np.array([float(v) for v in cos]), np.array([float(v) for v in sin])
    for table in tables:
        table.flags.writeable = False
    return tables


def _cos_eighths(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """cos(2 pi numerator / (8 denominator)) for integer ``numerator``, folded by exact symmetries
    into the first eighth of a turn (``_first_eighth``'s table)."""
    turn = 8 * denominator
    k = numerator % turn
    k = np.minimum(k, turn - k)  # cos is even with period one turn: k / turn in [0, 1/2]
    negate = 4 * k > turn  # cos(pi - x) = -cos x
    k = np.where(negate, turn // 2 - k, k)
    from_sin = 8 * k > turn  # cos(pi/2 - x) = sin x, exactly 0 at a quarter turn
    cos, sin = _first_eighth(denominator)
    value = np.where(from_sin, sin[np.where(from_sin, turn // 4 - k, 0)], cos[np.where(from_sin, 0, k)])
    return np.where(negate, -value, value)


def cos_turns(numerator, denominator: int) -> np.ndarray:
    """cos(2 pi numerator / denominator) for integer ``numerator`` (scalar or array), correctly
    rounded to float64: an angle given as an exact fraction of a full circle."""
    return _cos_eighths(8 * np.asarray(numerator, dtype=np.int64), denominator)


def sin_turns(numerator, denominator: int) -> np.ndarray:
    """sin(2 pi numerator / denominator), correctly rounded: cos of a quarter turn less."""
    return _cos_eighths(2 * denominator - 8 * np.asarray(numerator, dtype=np.int64), denominator)


def log10(x) -> np.ndarray:
    """Base-10 logarithm of positive ``x`` (scalar or array), correctly rounded, for constants."""
    x = np.asarray(x, dtype=np.float64)
    with localcontext(prec=_DIGITS):
        return np.array([float(Decimal(v).log10()) for v in x.ravel()]).reshape(x.shape)


def exp10(x) -> np.ndarray:
    """10 ** ``x`` (scalar or array), correctly rounded, for constants."""
    x = np.asarray(x, dtype=np.float64)
    with localcontext(prec=_DIGITS):
        return np.array([float(Decimal(10) ** Decimal(v)) for v in x.ravel()]).reshape(x.shape)


# Sums in a fixed order. A BLAS product (x @ w) or numpy's own reductions (x.sum) may add in an
# order that depends on how many rows are summed at once and on the CPU; these never do.

FEW_FRAMES = 8  # up to this many frames, weighted_sum accumulates in one call (measured crossover)


def fixed_order_sum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis by halving (zero-padded to a power of two), elementwise only.

    The result for one row never depends on how many rows are summed together, unlike ``x @ w``
    or ``x.sum(-1)``, whose summation order can change with the array's shape.
    """
    width = x.shape[-1]
    padded_width = 1 << max(width - 1, 0).bit_length()
    if padded_width != width:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (padded_width - width,))], axis=-1)
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        x = x[..., :half] + x[..., half:]
    return x[..., 0]


def sparse_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a mostly-zero (rows, columns) matrix into column indices and weights per row.

    Each row keeps its span from first to last non-zero column, padded with zero weights to the
    widest span, so that ``weighted_sum`` touches only the filters' support.
    """
    spans = []
    for row in matrix:
        nonzero = np.flatnonzero(row)
        spans.append((int(nonzero[0]), int(nonzero[-1]) + 1) if len(nonzero) else (0, 0))
    width = max(max(end - start for start, end in spans), 1)
    index = np.zeros((len(matrix), width), dtype=np.intp)
    weight = np.zeros((len(matrix), width))
    for row, (start, end) in enumerate(spans):
        index[row, : end - start] = np.arange(start, end)
        weight[row, : end - start] = matrix[row, start:end]
    return index, weight


def weighted_sum(rows: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """out[i] = sum_j weight[i, j] * rows[index[i, j]], added term by term in order of j.

    ``rows`` is (inputs, frames) with frames along the rows, so each step is one elementwise
    operation over whole frame vectors: fast, and every frame's result is the same whether it is
    computed alone or with thousands of others. Returns (outputs, frames).

    Every product is taken at once, as a (terms, outputs, frames) array, and then added in place
    term by term; for a few frames (streaming) one ``np.add.accumulate`` over the terms takes the
    same sums in the same order with one numpy call instead of one per term: the same bits, less
    call overhead (for many frames its partial sums cost more than the loop).
    """
    products = rows[index.T]
    np.multiply(products, weight.T[:, :, None], out=products)
    if rows.shape[1] <= FEW_FRAMES:
        return np.add.accumulate(products, axis=0)[-1]
    total = products[0]
    for term in products[1:]:
        total += term
    return total


DB_PER_NEPER = 10 / 2.302585092994046  # 10 / ln 10: a power's natural log times this is its level in dB
_LN2_HIGH = 6.93147180369123816490e-01  # ln 2 split so that exponent * _LN2_HIGH is exact (fdlibm)
_LN2_LOW = 1.90821492927058770002e-10
_LOG_TERMS = [1.0 / (2 * k + 1) for k in range(13)]  # atanh series: enough for |s| < 0.172


def log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite ``x`` (within 3 ulp of numpy's), the same bits on
    every CPU. ``x = m 2^e`` with m in [sqrt(1/2), sqrt(2)); ``log m = 2 atanh(s)``,
    ``s = (m - 1) / (m + 1)``, summed as a polynomial in s^2."""
    mantissa, exponent = np.frexp(x)  # exact: mantissa in [0.5, 1)
    low = mantissa < 0.7071067811865476
    mantissa = np.where(low, 2.0 * mantissa, mantissa)
    exponent = (exponent - low).astype(np.float64)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    s2 = s * s
    series = np.full_like(s, _LOG_TERMS[-1])
    for coefficient in reversed(_LOG_TERMS[:-1]):
        series = series * s2 + coefficient
    return exponent * _LN2_HIGH + (2.0 * s * series + exponent * _LN2_LOW)


_EXP_TERMS = [1.0 / math.factorial(n) for n in range(14)]  # Taylor series: enough for |r| < 0.35


def exp(x: np.ndarray) -> np.ndarray:
    """e^x for finite ``x`` (within 2 ulp of numpy's; 0 below -745), the same bits on every CPU.
    ``x = k ln 2 + r`` with integer k and |r| <= ln(2) / 2; e^x = 2^k e^r, e^r by its series."""
    x = np.clip(x, -746.0, 709.0)
    k = np.rint(x * (1.0 / 0.6931471805599453))
    r = (x - k * _LN2_HIGH) - k * _LN2_LOW
    series = np.full_like(r, _EXP_TERMS[-1])
    for coefficient in reversed(_EXP_TERMS[:-1]):
        series = series * r + coefficient
    return np.ldexp(series, k.astype(np.int64))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from each row of ``logits``: exp(l - max) normalised, summed in a fixed order."""
    powers = exp(logits - logits.max(axis=-1, keepdims=True))
    total = powers[..., 0]
    for column in range(1, powers.shape[-1]):
        total = total + powers[..., column]
    return powers / total[..., None]


class PairwiseSum:
    """A sum of rows that arrive in chunks, added in one fixed order however they are chunked.

    Aligned blocks of 2**k rows are summed as complete binary trees (neighbours first); at the
    end, the blocks the row count's binary digits leave are added from the smallest up. So a
    clip's feature mean has the same bits whether its frames came at once or over two hours of
    streaming, with memory of one row per binary digit of the count.
    """

    def __init__(self):
        self.count = 0
        """Rows added so far."""
        self._trees: list[tuple[int, np.ndarray]] = []  # (rows, their sum), sizes falling

    def add(self, rows: np.ndarray) -> None:
        """Add the rows of a (rows, width) array, after those added before."""
        start = 0
        while start < len(rows):
            aligned = self.count & -self.count if self.count else 1 << 62  # largest block that may start here
            size = min(aligned, 1 << (len(rows) - start).bit_length() - 1)
            block = rows[start : start + size]
            while len(block) > 1:
                block = block[0::2] + block[1::2]
            self._trees.append((size, block[0]))
            while len(self._trees) > 1 and self._trees[-2][0] == self._trees[-1][0]:
                (rows_each, left), (_, right) = self._trees.pop(-2), self._trees.pop()
                self._trees.append((2 * rows_each, left + right))
            self.count += size
            start += size

    def total(self) -> np.ndarray:
        """The sum of all rows added (at least one)."""
        trees = [tree for _, tree in self._trees]
        total = trees[-1]
        for tree in reversed(trees[:-1]):
            total = tree + total
        return total


@functools.lru_cache(maxsize=8)
def _roots(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """exp(-2 pi i k / n) for k < ``count``, as real and imaginary parts (read-only)."""
    cos, minus_sin = cos_turns(np.arange(count), n), -sin_turns(np.arange(count), n)
    cos.flags.writeable = minus_sin.flags.writeable = False
    return cos, minus_sin


def complex_fft(real: np.ndarray, imag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DFT along axis 0, X[k] = sum_n z[n] exp(-2 pi i k n / N) with N a power of two, of every
    column at once (columns are frames: long contiguous inner loops), as real and imaginary parts.

    Radix-2 decimation in time in Stockham's order (Van Loan, Computational Frameworks for the
    FFT, 1.7): stage by stage, the first and second halves of the array are combined into
    transforms twice as long, so every operand is a contiguous block and no bit-reversal pass is
    needed. Each butterfly is the textbook even + w odd, even - w odd, with the same operations in
    the same order as the in-place algorithm, so the bits are those of that algorithm.
    """
    size = real.shape[0]
    columns = real.shape[1:]
    cos, minus_sin = _roots(size, size // 2)
    # Stage with transforms of length `half`: row k, column j of a (size / half, half) matrix
    # holds bin j of the k-th transform (columns of frames innermost).
    real, imag = real.reshape((size, 1) + columns), imag.reshape((size, 1) + columns)
    half = 1
    while half < size:
        count = size // (2 * half)  # transforms of length 2 * half made in this stage
        even_real, odd_real, even_imag, odd_imag = real[:count], real[count:], imag[:count], imag[count:]
        if half == 1:  # the only factor is 1
            t_real, t_imag = odd_real, odd_imag
        else:
            w_real = cos[::count].reshape((1, half) + (1,) * len(columns))  # exp(-2 pi i j / (2 half))
            w_imag = minus_sin[::count].reshape((1, half) + (1,) * len(columns))
            t_real = odd_real * w_real - odd_imag * w_imag
            t_imag = odd_real * w_imag + odd_imag * w_real
        real, imag = _butterfly(even_real, t_real), _butterfly(even_imag, t_imag)
        half *= 2
    return real.reshape((size,) + columns), imag.reshape((size,) + columns)


def _butterfly(even: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(count, 2 * half, ...) holding even + t in its first half columns, even - t in the rest."""
    half = even.shape[1]
    out = np.empty((even.shape[0], 2 * half) + even.shape[2:])
    np.add(even, t, out=out[:, :half])
    np.subtract(even, t, out=out[:, half:])
    return out


def real_fft(signals: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """DFT bins 0 .. n_fft / 2 of real signals laid out along axis 0 (one per column), cut or
    zero-padded to ``n_fft`` (a power of two, at least 2), as real and imaginary parts of shape
    (n_fft // 2 + 1, columns): ``np.fft.rfft(signals.T, n_fft).T``, the same bits on every CPU.

    The even and odd samples are packed into one complex signal of half the length, transformed,
    and separated again (the classic real-FFT split), which halves the work.
    """
    half, used, columns = n_fft // 2, min(len(signals), n_fft), signals.shape[1:]
    # Even and odd samples side by side in one contiguous array, zero-padded: one copy, whatever
    # the layout of ``signals`` (frames arrive as rows, a transposed view here).
    packed = np.zeros((half, 2) + columns)
    packed.reshape((n_fft,) + columns)[:used] = signals[:used]
    z_real, z_imag = complex_fft(packed[:, 0], packed[:, 1])
    # X[k] = E[k] + w^k O[k], E and O the spectra of the even and odd samples, from Z[k] and
    # Z[N/2 - k]; bins 0 and N/2 (where both are Z[0]) come out real.
    a_real, a_imag = z_real[1:], z_imag[1:]  # Z[k] for k = 1 .. N/2 - 1
    b_real, b_imag = z_real[:0:-1], z_imag[:0:-1]  # Z[N/2 - k]
    even_real, even_imag = (a_real + b_real) * 0.5, (a_imag - b_imag) * 0.5
    odd_real, odd_imag = (a_imag + b_imag) * 0.5, (b_real - a_real) * 0.5
    w_real, w_imag = (w.reshape((-1,) + (1,) * len(columns))[1:half] for w in _roots(n_fft, half))
    middle_real = even_real + (odd_real * w_real - odd_imag * w_imag)
    middle_imag = even_imag + (odd_real * w_imag + odd_imag * w_real)
    zero = np.zeros_like(z_real[:1])
    real = np.concatenate([z_real[:1] + z_imag[:1], middle_real, z_real[:1] - z_imag[:1]])
    imag = np.concatenate([zero, middle_imag, zero])
    return real, imag
