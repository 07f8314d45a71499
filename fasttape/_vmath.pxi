# Elementary functions written without calls or branches, so that the lane
# loops using them vectorize (libm's are opaque calls, one lane at a time).
# Included by _core.pyx; ops.py names them in formulas and gives NumPy's own
# functions as their twins. Accurate to two units in the last place.

from libc.stdint cimport int64_t
from libc.string cimport memcpy


cdef inline double from_bits(int64_t k) noexcept nogil:
    cdef double d
    memcpy(&d, &k, sizeof(double))
    return d


cdef inline int64_t to_bits(double d) noexcept nogil:
    cdef int64_t k
    memcpy(&k, &d, sizeof(double))
    return k


cdef inline double exp_neg(double y) noexcept nogil:
    """exp(y) for -708 <= y <= 0: y = n ln2 + r, |r| <= ln2 / 2, and
    exp(r) by its Taylor series to r**13, scaled by 2**n built from bits."""
    cdef double shifter = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
    cdef double t = y * 1.4426950408889634 + shifter
    cdef double n = t - shifter
    cdef double r = (y - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
    cdef double p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 0.0001984126984126984
    p = p * r + 0.001388888888888889
    p = p * r + 0.008333333333333333
    p = p * r + 0.041666666666666664
    p = p * r + 0.16666666666666666
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * from_bits((to_bits(t) - to_bits(shifter) + 1023) << 52)


cdef inline double vtanh(double x) noexcept nogil:
    """tanh: Cephes' rational form below 0.625, (1 - e) / (1 + e) with
    e = exp(-2|x|) above; both computed, one kept."""
    cdef double a = fabs(x)
    cdef double z = x * x
    cdef double small = x + x * z * ((-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
                                     - 1.61468768441708447952e3) / (((z + 1.12811678491632931402e2) * z
                                     + 2.23548839060100448583e3) * z + 4.84406305325125486048e3)
    cdef double e = exp_neg(-2.0 * (a if a < 22.0 else 22.0))  # tanh(22) is 1 in doubles
    cdef double big = (1.0 - e) / (1.0 + e)
    big = big if x >= 0.0 else -big
    return small if a < 0.625 else (big if x == x else x)
