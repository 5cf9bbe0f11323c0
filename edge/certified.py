"""Certified rounding: numpy's fast kernels, with the same bits on every CPU.

numpy's FFT (pocketfft), its BLAS matrix products and ``np.log`` are compiled per CPU (AVX-512
kernels on x86-64, fused multiply-adds on aarch64, a summation order that depends on how many
frames are computed at once), so their last bits differ from one machine to the next. Each is
nevertheless within a bound of the exact value that the standard error analyses state. The
frontend computes with them, rounds every value to a fixed grid (``GRID``), and keeps that
rounding where the value lies more than twice its bound from a rounding boundary (a midpoint
between two grid points); elsewhere it computes the frame again with ``edge.reproducible`` (the
same bits everywhere) and rounds that.

Why every CPU then returns the same grid value: let v be the exact value, m the midpoint nearest
a CPU's fast value f, and B the bound, which holds for every IEEE-754 double implementation of the
step, ``edge.reproducible``'s included. A CPU keeps f only when |f - m| > 2B; then |v - m| > B,
so v, f, every other CPU's fast value and the reproducible value (each within B of v) lie on the
same side of m and round to the same grid point. A CPU that does not keep f uses the reproducible
value, which is the same bits everywhere. The pitch's exact integer autocorrelation
(``edge.frontend.autocorrelation``) is the same idea with a grid of 1.

The bounds, each a function below with its source:

- a sum or dot product of n terms in any order, with or without fused multiply-adds:
  relative error ``gamma(n)`` for non-negative terms (Higham 2002, Accuracy and Stability of
  Numerical Algorithms, 2nd ed., section 3.1, (3.5) and Lemma 3.1);
- the FFT: ``fft_error`` (Higham 2002, Theorem 24.2, radix-2 Cooley-Tukey; pocketfft's radix-4,
  radix-2, 3, 5 and real-data passes have the same form with constants of the same size, which
  ``SAFETY`` covers);
- the logarithm: ``LOG_ULPS`` units in the last place (numpy's SIMD logarithms and glibc's are
  documented within 4 ulp; ``edge.reproducible.log`` is within 3 ulp of numpy's).

tests/test_certified.py measures each step on adversarial inputs (full scale, tiny, DC,
alternating, clipped) against the exact value in extended precision and checks the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UNIT_ROUNDOFF = 2.0**-53
"""u: the largest relative error of one correctly rounded IEEE-754 double operation."""
GRID = 2.0**-12
"""Spacing of the grid the frontend's floating-point features are rounded to: about 2.4e-4, a
thousandth of an int8 model input's step or less for every shipped bundle (docs/benchmarks.md)."""
SAFETY = 4.0
"""Every bound is the analysis' figure times this: for constants of the same size that an
analysis of another radix or algorithm gives, and for a bound computed from fast (not exact)
energies, which are within 1e-9 of the exact ones."""
LOG_ULPS = 4.0
"""The logarithm's error in units in the last place, for numpy's, glibc's and ours."""


def gamma(n: int) -> float:
    """n u / (1 - n u): the relative error bound of n roundings in a row (Higham 2002, Lemma 3.1),
    e.g. a sum or dot product of n non-negative terms in any order."""
    return n * UNIT_ROUNDOFF / (1.0 - n * UNIT_ROUNDOFF)


def fft_error(n_fft: int) -> float:
    """A bound on ||fl(X) - X||_2 / ||X||_2 for the DFT X of ``n_fft`` points (a power of two):
    t eta / (1 - t eta) with t = log2 n_fft and eta = mu + gamma(4) (sqrt 2 + mu) (Higham 2002,
    Theorem 24.2), for twiddle factors within mu = 2u of the exact ones, times ``SAFETY``."""
    t = math.log2(n_fft)
    mu = 2.0 * UNIT_ROUNDOFF
    eta = mu + gamma(4) * (math.sqrt(2.0) + mu)
    return SAFETY * t * eta / (1.0 - t * eta)


def log_error(relative: np.ndarray, logarithm: np.ndarray) -> np.ndarray:
    """Bound on |computed log x' - log x| where x' is within ``relative`` of x: the input's part
    -log(1 - relative) <= relative / (1 - relative) (infinite from ``relative`` 1 on), plus the
    logarithm's own ``LOG_ULPS`` ulp of its result ``logarithm`` (one ulp of y is at most 2u |y|)."""
    error = np.divide(relative, 1.0 - relative, out=np.full(relative.shape, np.inf), where=relative < 1.0)
    error += LOG_ULPS * 2.0 * UNIT_ROUNDOFF * np.abs(logarithm)
    return error


def round_to_grid(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the nearest multiple of ``GRID`` (ties to even): exact arithmetic, as
    GRID is a power of two and every feature is far below 2^53 GRID."""
    return np.rint(values * (1.0 / GRID)) * GRID


def undecided(values: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Rows (frames) with a value within twice its ``bound`` of a grid midpoint, or with a bound
    that is not finite: their rounding is not certain, so they are computed the reproducible way."""
    scaled = values * (1.0 / GRID)
    from_midpoint = np.abs(scaled - np.floor(scaled) - 0.5) * GRID
    near = ~(from_midpoint > 2.0 * bound)  # a NaN bound is near too
    return near.any(axis=1)


@dataclass
class Tally:
    """How often the fast values were kept: frames computed, and how many of them fell back."""

    frames: int = 0
    """Frames whose features were rounded."""
    fallbacks: int = 0
    """Of those, frames computed again the reproducible way."""

    def count(self, frames: int, fallbacks: int) -> None:
        self.frames += frames
        self.fallbacks += fallbacks
