# Elementary functions written without calls or branches, so that the lane
# loops using them vectorize (libm's are opaque calls, one lane at a time).
# Included by _core.pyx; ops.py names them in formulas and gives NumPy's own
# functions as their twins.
#
# Accuracy (tests/test_vmath.py measures it on ~10**6 points spread over the
# whole range, both signs, subnormals and the reduction boundaries): vexp,
# vlog, vlog1p and vtanh are within 1 ulp of the correctly rounded result,
# so within 2 ulp of NumPy's (itself within 1). Special values are NumPy's:
# exp overflows to inf above ~709.78 and underflows gradually to 0;
# log(0) = -inf, log(x < 0) = NaN, log1p(-1) = -inf; tanh(+-inf) = +-1;
# -0.0 keeps its sign; NaN stays NaN.
#
# Selects are written as ternaries (gcc makes them blends) and the integer
# work is 64-bit adds and shifts, which AVX2 has; double <-> int conversions
# go through the bit pattern of 1.5 * 2**52 + n, since AVX2 has no packed
# int64 <-> double conversion.

from libc.math cimport fabs, copysign, INFINITY, NAN
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy


cdef inline double from_bits(uint64_t k) noexcept nogil:
    cdef double d
    memcpy(&d, &k, sizeof(double))
    return d


cdef inline uint64_t to_bits(double d) noexcept nogil:
    cdef uint64_t k
    memcpy(&k, &d, sizeof(double))
    return k


cdef inline double round_int(double y) noexcept nogil:
    """y rounded to an integer, for |y| < 2**51: adding 1.5 * 2**52 leaves
    no fraction bits, and subtracting it back is exact."""
    return (y + 6755399441055744.0) - 6755399441055744.0


cdef inline double pow2(double n) noexcept nogil:
    """2**n for an integer n in [-1022, 1023], built from bits: n + 1.5 * 2**52
    holds n in its low bits, which the shift moves into the exponent field."""
    return from_bits((to_bits(n + 6755399441055744.0) + 1023) << 52)


cdef inline double reduce_ln2(double y, double* n) noexcept nogil:
    """r = y - n ln2 with n = round(y / ln2), so |r| <= ln2 / 2, for
    |y| < 2**40. ln2 is split in two (Cody and Waite): n * ln2_hi is exact."""
    n[0] = round_int(y * 1.4426950408889634)
    return (y - n[0] * 6.93147180369123816490e-01) - n[0] * 1.90821492927058770002e-10


cdef inline double expm1_poly(double r) noexcept nogil:
    """expm1(r) for |r| <= ln2 / 2 as r + r**2 q(r), q a degree-10 fit of
    (expm1(r) - r) / r**2 (relative error 5e-18). 1 + ... is never formed,
    so small r keep their full relative accuracy."""
    cdef double q = 2.0914686968086876e-09
    q = q * r + 2.5105217004720745e-08
    q = q * r + 2.75572736431103e-07
    q = q * r + 2.7557255400206422e-06
    q = q * r + 2.4801587325547743e-05
    q = q * r + 0.00019841269874820627
    q = q * r + 0.0013888888888883748
    q = q * r + 0.008333333333326136
    q = q * r + 0.04166666666666667
    q = q * r + 0.1666666666666667
    q = q * r + 0.5
    return r + (r * r) * q


cdef inline double vexp(double x) noexcept nogil:
    """e**x = 2**n (1 + expm1(r)), x = n ln2 + r. 2**n is applied as two
    normal factors, so results past the normal range overflow to inf or
    underflow gradually, rounded once. The clamps let NaN through."""
    cdef double n, y = 710.0 if x > 710.0 else x  # exp(710) is inf, exp(-746) is 0
    y = -746.0 if y < -746.0 else y
    cdef double p = 1.0 + expm1_poly(reduce_ln2(y, &n))
    cdef double half = round_int(0.5 * n)
    return (p * pow2(half)) * pow2(n - half)


cdef inline double vtanh(double x) noexcept nogil:
    """tanh|x| = base + num / den with one division: below 0.625 Cephes'
    rational form |x| + |x| z P(z) / Q(z), z = x**2; above, 1 - 2e / (1 + e)
    with e = exp(-2|x|). Both add a correction to an exact base, which keeps
    the rounding of num, den and the quotient mostly out of the result."""
    cdef double a = fabs(x)
    cdef double z = a * a
    cdef double n, r = reduce_ln2(-2.0 * (a if a < 22.0 else 22.0), &n)  # tanh(22) is 1
    cdef double e = (1.0 + expm1_poly(r)) * pow2(n)
    cdef double num = (a * z * ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                                - 1.61468768441708447952e3) if a < 0.625 else -2.0 * e)
    cdef double den = ((((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
                        + 4.84406305325125486048e3) if a < 0.625 else 1.0 + e)
    cdef double t = (a if a < 0.625 else 1.0) + num / den
    return copysign(t, x) if x == x else x


cdef inline double split_log(double u, double* k) noexcept nogil:
    """m with u = 2**k m, sqrt(1/2) <= m < sqrt(2), for u positive and normal:
    the offset moves m's range onto one binade, the exponent field gives k."""
    cdef uint64_t i = to_bits(u) + 0x00095f619980c433ULL  # bits(1) - bits(sqrt(1/2))
    k[0] = from_bits(0x4330000000000000ULL | (i >> 52)) - 4503599627371519.0  # - (2**52 + 1023)
    return from_bits((i & 0x000fffffffffffffULL) + 0x3fe6a09e667f3bcdULL)


cdef inline double log_reduced(double f, double k, double c) noexcept nogil:
    """k ln2 + log(1 + f + c) for -0.3 < f < 0.42 and a tiny correction c
    (fdlibm's scheme, as musl's log1p writes it): s = f / (2 + f),
    log(1 + f) = 2 atanh(s) = f - f**2/2 + s (f**2/2 + R(s**2)). c / (1 + f)
    is needed to a few bits only: 1 / (1 + f) = (1 - s)**2 / (1 - s**2)."""
    cdef double hfsq = 0.5 * f * f
    cdef double s = f / (2.0 + f)
    cdef double z = s * s
    cdef double w = z * z
    cdef double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                                                         + w * 1.531383769920937332e-01))
    cdef double t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                          + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
    cdef double cc = c * ((1.0 - s) * (1.0 - s) * (1.0 + z))
    return (s * (hfsq + (t1 + t2)) + (k * 1.90821492927058770002e-10 + cc) - hfsq + f
            + k * 6.93147180369123816490e-01)


cdef inline double vlog(double x) noexcept nogil:
    """Natural logarithm; subnormals are scaled by 2**54 first."""
    cdef double k, u = x * 18014398509481984.0 if x < 2.2250738585072014e-308 else x
    cdef double m = split_log(u, &k)
    k = k - 54.0 if x < 2.2250738585072014e-308 else k
    cdef double r = log_reduced(m - 1.0, k, 0.0)
    return ((r if x < INFINITY else x) if x > 0.0
            else (-INFINITY if x == 0.0 else (NAN if x < 0.0 else x)))


cdef inline double vlog1p(double x) noexcept nogil:
    """log(1 + x) as log(u) + log(1 + c / u), u = 1 + x rounded and c what
    the rounding lost (exact: the larger of 1 and x is subtracted first)."""
    cdef double k, u = 1.0 + x
    cdef double c = x - (u - 1.0) if x < 2.0 else 1.0 - (u - x)
    cdef double m = split_log(u, &k)
    cdef double r = log_reduced(m - 1.0, k, c * pow2(-(k if k < 60.0 else 60.0)))
    r = (r if x < INFINITY else x) if x > -1.0 else (-INFINITY if x == -1.0 else NAN)
    return x if fabs(x) < 5.551115123125783e-17 else r  # log1p(x) rounds to x below 2**-54
