"""The kernel's own exp, log, log1p and tanh (fasttape/_vmath.pxi): within
2 ulp of NumPy's over the whole double range, with NumPy's special values.

Always run on the compiled kernel's lane loops (a one-node tape swept over
a big batch), whichever backend the suite uses: on the twin the same
comparison would be NumPy against itself.
"""

import importlib

import numpy as np
import pytest

import fasttape as ft

try:  # the compiled kernel, even when the twin is in use
    core = importlib.import_module("fasttape.backend")._compiled()
except ImportError as exc:  # these are the kernel's: nothing to test without it
    pytest.skip(f"the compiled kernel is not available: {exc}", allow_module_level=True)
rng = np.random.default_rng(2024)
MAX_ULP = 2


def kernel(fn, x):
    """fn's one-node tape swept over the lanes x by the kernel's forward loop."""
    p = ft.trace(fn, 0.5)._program
    prog = core.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    B = x.size
    values = prog.run(np.zeros(0), np.zeros(0, np.int32), x.reshape(B, 1),
                      np.zeros(1, np.int32), B)[0]
    return values[:, 0]


def ulps(got, want):
    """|got - want| in units of want's last place; 0 where both are the same
    value (infinities, NaN); inf where only one is non-finite."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want) / np.spacing(np.abs(want))
    return np.where(same, 0.0, np.where(np.isfinite(err), err, np.inf))


def log_spaced(lo, hi, n):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def both_signs(*parts):
    x = np.concatenate(parts)
    return np.concatenate([x, -x])


LN2 = np.log(2.0)
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324,
                    2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308])
EVERYWHERE = log_spaced(5e-324, 1.7e308, 10**6)  # every binade, subnormals included
SUBNORMAL = rng.uniform(0.0, 2.2250738585072014e-308, 10**4)
# Argument reduction boundaries: multiples of ln2 / 2 and their neighbours.
HALF_LN2 = np.arange(-2200, 2100) * LN2 / 2
NEAR_HALF_LN2 = np.concatenate([np.nextafter(HALF_LN2, np.inf), np.nextafter(HALF_LN2, -np.inf)])

CASES = {
    "exp": (ft.exp, np.exp, np.concatenate([
        both_signs(EVERYWHERE, SUBNORMAL, log_spaced(1e-20, 746.0, 10**6)),
        np.linspace(-746.0, 710.0, 10**6), HALF_LN2, NEAR_HALF_LN2,
        # overflow, the last normal result, gradual underflow, the last subnormal
        [709.782712893384, 709.7827128933841, 709.79, -708.3964185322641, -708.4,
         -744.44007192138, -745.1332191019411, -745.1332191019412, -746.0]])),
    "log": (ft.log, np.log, np.concatenate([
        both_signs(EVERYWHERE, SUBNORMAL), log_spaced(0.5, 2.0, 10**6),
        1.0 + rng.uniform(-1e-6, 1e-6, 10**5),        # near the zero of log
        np.sqrt(0.5) * (1.0 + rng.uniform(-1e-9, 1e-9, 10**4)),  # where m's range starts
        np.sqrt(2.0) * (1.0 + rng.uniform(-1e-9, 1e-9, 10**4))])),
    "log1p": (ft.log1p, np.log1p, np.concatenate([
        both_signs(EVERYWHERE, SUBNORMAL), log_spaced(1e-20, 4.0, 10**6),
        -log_spaced(1e-300, 1.0, 10**6), -1.0 + log_spaced(1e-16, 1.0, 10**5),
        np.sqrt(2.0) - 1.0 + rng.uniform(-1e-9, 1e-9, 10**4),
        np.sqrt(0.5) - 1.0 + rng.uniform(-1e-9, 1e-9, 10**4),
        [-1.0, -1.5, 2.0, np.nextafter(2.0, 0.0), 2.0 ** -54, 2.0 ** -53, -(2.0 ** -54)]])),
    "tanh": (ft.tanh, np.tanh, np.concatenate([
        both_signs(EVERYWHERE, SUBNORMAL, log_spaced(1e-10, 25.0, 10**6),
                   np.linspace(0.0, 1.0, 10**5), 0.625 + np.arange(-50, 51) * 2.0 ** -52,
                   np.arange(1, 80) * LN2 / 4, [18.0, 19.0625, 22.0, 1e3])])),
}


@pytest.mark.parametrize("name", list(CASES))
def test_within_two_ulp_of_numpy_over_the_whole_range(name):
    fn, numpy_fn, x = CASES[name]
    x = np.concatenate([x, SPECIAL])
    with np.errstate(all="ignore"):
        want = numpy_fn(x)
    err = ulps(kernel(fn, x), want)
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP, f"{name}({x[worst]!r}): {err[worst]} ulp"


@pytest.mark.parametrize("name", list(CASES))
def test_special_values_are_numpys(name):
    """Infinities, NaN and the sign of zero exactly as NumPy has them."""
    fn, numpy_fn, _ = CASES[name]
    x = np.concatenate([SPECIAL, [-1.0, -2.0, 710.0, -746.0, 1e-300, -1e-300]])
    with np.errstate(all="ignore"):
        want = numpy_fn(x)
    got = kernel(fn, x)
    np.testing.assert_array_equal(got, want)  # NaN matches NaN
    assert (np.signbit(got) == np.signbit(want))[want == 0.0].all()


def test_sigmoid_uses_exp_within_two_ulp():
    """sigmoid's helper is 1 / (1 + exp(-x)), exp now the kernel's own."""
    x = np.concatenate([both_signs(log_spaced(1e-20, 800.0, 10**5)), SPECIAL])
    with np.errstate(all="ignore"):
        want = 1.0 / (1.0 + np.exp(-x))
    assert ulps(kernel(ft.sigmoid, x), want).max() <= MAX_ULP


def test_gradients_use_the_same_values():
    """exp's derivative is its value, log's and log1p's reciprocals, tanh's
    1 - tanh**2 (cancelling near 1: compared in absolute terms)."""
    x = log_spaced(1e-3, 50.0, 1000)
    for fn, numpy_d, atol in [(ft.exp, np.exp, 0.0), (ft.log, lambda v: 1.0 / v, 0.0),
                              (ft.log1p, lambda v: 1.0 / (1.0 + v), 0.0),
                              (ft.tanh, lambda v: 1.0 - np.tanh(v) ** 2, 1e-15)]:
        p = ft.trace(fn, 0.5)._program
        prog = core.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
        out = prog.run(np.zeros(0), np.zeros(0, np.int32), x.reshape(-1, 1),
                       np.zeros(1, np.int32), x.size, seed=np.ones((x.size, 1)))
        np.testing.assert_allclose(out[2][:, 0], numpy_d(x), rtol=1e-15, atol=atol)


@pytest.mark.parametrize("build", ["avx2", "avx512"])
def test_the_wider_builds_give_the_baseline_bits(build):
    """Same bits from the portable and the AVX2 and AVX-512 builds: no FMA
    contraction crept into the polynomials."""
    backend = importlib.import_module("fasttape.backend")
    if not backend._cpu_runs(build):
        pytest.skip(f"this CPU cannot run the {build} build")
    base = pytest.importorskip("fasttape._core")
    wide = pytest.importorskip(backend._module(build))
    x = np.concatenate([both_signs(log_spaced(1e-320, 1e300, 10**5)), SPECIAL])
    for name, (fn, _, _) in CASES.items():
        p = ft.trace(fn, 0.5)._program
        arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
        args = (np.zeros(0), np.zeros(0, np.int32), x.reshape(-1, 1), np.zeros(1, np.int32), x.size)
        np.testing.assert_array_equal(base.Program(*arrays).run(*args)[0],
                                      wide.Program(*arrays).run(*args)[0], err_msg=name)
