/* Register tiles for dot blocks (see _dotblock.pxi), in GCC/Clang vector
 * extensions: the compiler maps a 4-double vector to one AVX2 register or
 * two SSE2 ones. Each lane's sums run in the node-by-node loops' order.
 * Where the build targets FMA (the AVX2 build), each multiply-add is one
 * fused instruction, rounded once: twice the speed, and results that
 * differ from the plain sweeps' in the last bits only. Elsewhere (the
 * portable build) they are a multiply and an add, giving the same bits.
 * Other compilers get FT_TILES 0 and the node-by-node sweeps. */
#ifndef FASTTAPE_TILES_H
#define FASTTAPE_TILES_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define FT_TILES 1

typedef double ft_v4 __attribute__((vector_size(32)));
typedef double ft_v4u __attribute__((vector_size(32), aligned(8), may_alias));
typedef long long ft_m4 __attribute__((vector_size(32)));

#if defined(__FMA__)
#include <immintrin.h>
#define FT_FMA 1
static inline ft_v4 ft_madd(ft_v4 a, ft_v4 b, ft_v4 c)  /* a * b + c */
{
    return (ft_v4)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
}
#else
#define FT_FMA 0
static inline ft_v4 ft_madd(ft_v4 a, ft_v4 b, ft_v4 c) { return a * b + c; }
#endif

static inline ft_v4 ft_load(const double *p) { return *(const ft_v4u *)p; }
static inline void ft_store(double *p, ft_v4 v) { *(ft_v4u *)p = v; }
static inline ft_v4 ft_splat(double x) { ft_v4 v = {x, x, x, x}; return v; }

/* a + w * g where g != 0, else a: a zero adjoint contributes nothing (zmul). */
static inline ft_v4 ft_zmadd(ft_v4 a, ft_v4 w, ft_v4 g)
{
    const ft_v4 zero = {0.0, 0.0, 0.0, 0.0};
    ft_m4 live = (ft_m4)(g != zero);
    return (ft_v4)(((ft_m4)ft_madd(w, g, a) & live) | ((ft_m4)a & ~live));
}

/* out[r*C + l0 + t] = sum_j W[r*n + j] * X[j][l0 + t], `rows` units (at
 * most 6: twelve sums in registers) by 8 lanes. Called with a constant
 * rows, it inlines into a fully unrolled tile. */
static inline void ft_forward_tile(const double *W, ptrdiff_t n, const double *const *X,
                                   double *out, ptrdiff_t C, ptrdiff_t l0, int rows)
{
    ft_v4 a[6][2] = {{{0}}};
    for (ptrdiff_t j = 0; j < n; j++) {
        ft_v4 x0 = ft_load(X[j] + l0), x1 = ft_load(X[j] + l0 + 4);
        for (int r = 0; r < rows; r++) {
            ft_v4 w = ft_splat(W[r * n + j]);
            a[r][0] = ft_madd(w, x0, a[r][0]);
            a[r][1] = ft_madd(w, x1, a[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        ft_store(out + r * C + l0, a[r][0]);
        ft_store(out + r * C + l0 + 4, a[r][1]);
    }
}

/* dW[r][c] = sum_l X[c][l] * G[r][l] for 3 units by 4 inputs (rows G,
 * G + C, G + 2C; dW rows dW, dW + n, dW + 2n), as dot_lanes sums: four
 * partial sums striped over lanes, leftover lanes into the first. Twelve
 * sums in registers keep both FMA units busy past their latency. */
static inline void ft_weight_tile(const double *G, const double *const *X, ptrdiff_t C,
                                  double *dW, ptrdiff_t n)
{
    ft_v4 s[3][4] = {{{0}}};
    ptrdiff_t l, m4 = C - C % 4;
    for (l = 0; l < m4; l += 4) {
        ft_v4 g0 = ft_load(G + l), g1 = ft_load(G + C + l), g2 = ft_load(G + 2 * C + l);
        for (int c = 0; c < 4; c++) {
            ft_v4 x = ft_load(X[c] + l);
            s[0][c] = ft_madd(x, g0, s[0][c]);
            s[1][c] = ft_madd(x, g1, s[1][c]);
            s[2][c] = ft_madd(x, g2, s[2][c]);
        }
    }
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 4; c++) {
            for (l = m4; l < C; l++)
                s[r][c][0] += X[c][l] * G[r * C + l];
            dW[r * n + c] = (s[r][c][0] + s[r][c][1]) + (s[r][c][2] + s[r][c][3]);
        }
    }
}

/* GX[c][l0 + t] += zmul(W[r*n + c], G[r*C + l0 + t]) for r = m-1 .. 0,
 * 4 inputs by 8 lanes (W and GX start at the tile's first input). */
static inline void ft_input_tile(const double *W, ptrdiff_t n, ptrdiff_t m, const double *G,
                                 double *const *GX, ptrdiff_t C, ptrdiff_t l0)
{
    ft_v4 a[4][2];
    for (int c = 0; c < 4; c++) {
        a[c][0] = ft_load(GX[c] + l0);
        a[c][1] = ft_load(GX[c] + l0 + 4);
    }
    for (ptrdiff_t r = m - 1; r >= 0; r--) {
        ft_v4 g0 = ft_load(G + r * C + l0), g1 = ft_load(G + r * C + l0 + 4);
        for (int c = 0; c < 4; c++) {
            ft_v4 w = ft_splat(W[r * n + c]);
            a[c][0] = ft_zmadd(a[c][0], w, g0);
            a[c][1] = ft_zmadd(a[c][1], w, g1);
        }
    }
    for (int c = 0; c < 4; c++) {
        ft_store(GX[c] + l0, a[c][0]);
        ft_store(GX[c] + l0 + 4, a[c][1]);
    }
}

#else
#define FT_TILES 0
#define FT_FMA 0
static inline void ft_forward_tile(const double *W, ptrdiff_t n, const double *const *X,
                                   double *out, ptrdiff_t C, ptrdiff_t l0, int rows) {}
static inline void ft_weight_tile(const double *G, const double *const *X, ptrdiff_t C,
                                  double *dW, ptrdiff_t n) {}
static inline void ft_input_tile(const double *W, ptrdiff_t n, ptrdiff_t m, const double *G,
                                 double *const *GX, ptrdiff_t C, ptrdiff_t l0) {}
#endif

#endif
