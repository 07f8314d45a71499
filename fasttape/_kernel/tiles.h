/* Register tiles for dot blocks (see dotblock.pxi), in GCC/Clang vector
 * extensions: a vector is FT_VW doubles, 8 (one register) in the AVX-512
 * build, else 4 (one AVX2 register, or two SSE2 ones). A tile spans
 * FT_TILE_LANES = two vectors of lanes. Each lane's sums run in the
 * node-by-node loops' order. Where the build targets FMA (the AVX2 and
 * AVX-512 builds), each multiply-add is one fused instruction, rounded
 * once: twice the speed, and results that differ from the plain sweeps' in
 * the last bits only. Elsewhere (the portable build) they are a multiply
 * and an add, giving the same bits. Other compilers get FT_TILES 0 and the
 * node-by-node sweeps. */
#ifndef FASTTAPE_TILES_H
#define FASTTAPE_TILES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define FT_TILES 1
#define FT_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
#define FT_VW 8
#else
#define FT_VW 4
#endif
#define FT_TILE_LANES (2 * FT_VW)
/* Forward tiles: up to FT_FR units by a tile of lanes; weight tiles: FT_WR
 * units by FT_WC inputs; a register of sums each. */
#if FT_VW == 8
#define FT_FR 12
#define FT_WR 4
#define FT_WC 6
#else
#define FT_FR 6
#define FT_WR 3
#define FT_WC 4
#endif

typedef double ft_v __attribute__((vector_size(8 * FT_VW)));
typedef double ft_vu __attribute__((vector_size(8 * FT_VW), aligned(8), may_alias));
typedef long long ft_m __attribute__((vector_size(8 * FT_VW)));

#if defined(__FMA__) && FT_VW == 8
#include <immintrin.h>
#define FT_FMA 1
FT_INLINE ft_v ft_madd(ft_v a, ft_v b, ft_v c)  /* a * b + c */
{
    return (ft_v)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
}
#elif defined(__FMA__)
#include <immintrin.h>
#define FT_FMA 1
FT_INLINE ft_v ft_madd(ft_v a, ft_v b, ft_v c)
{
    return (ft_v)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
}
#else
#define FT_FMA 0
FT_INLINE ft_v ft_madd(ft_v a, ft_v b, ft_v c) { return a * b + c; }
#endif

FT_INLINE ft_v ft_load(const double *p) { return *(const ft_vu *)p; }
FT_INLINE void ft_store(double *p, ft_v v) { *(ft_vu *)p = v; }
FT_INLINE ft_v ft_splat(double x)
{
#if FT_VW == 8
    ft_v v = {x, x, x, x, x, x, x, x};
#else
    ft_v v = {x, x, x, x};
#endif
    return v;
}

/* a + w * g where g != 0, else a: a zero adjoint contributes nothing (zmul). */
FT_INLINE ft_v ft_zmadd(ft_v a, ft_v w, ft_v g)
{
    ft_m live = (ft_m)(g != ft_splat(0.0));
    return (ft_v)(((ft_m)ft_madd(w, g, a) & live) | ((ft_m)a & ~live));
}

/* out[r*C + l0 + t] = sum_j W[r*n + j] * X[j][l0 + t], `rows` units (at
 * most FT_FR: twelve sums in registers, 24 with AVX-512's 32) by one tile
 * of lanes. Called with a constant rows, it inlines into a fully unrolled
 * tile. */
FT_INLINE void ft_forward_tile(const double *W, ptrdiff_t n, const double *const *X,
                                   double *out, ptrdiff_t C, ptrdiff_t l0, int rows)
{
    ft_v a[FT_FR][2];
    for (int r = 0; r < rows; r++)
        a[r][0] = a[r][1] = ft_splat(0.0);
    for (ptrdiff_t j = 0; j < n; j++) {
        ft_v x0 = ft_load(X[j] + l0), x1 = ft_load(X[j] + l0 + FT_VW);
        for (int r = 0; r < rows; r++) {
            ft_v w = ft_splat(W[r * n + j]);
            a[r][0] = ft_madd(w, x0, a[r][0]);
            a[r][1] = ft_madd(w, x1, a[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        ft_store(out + r * C + l0, a[r][0]);
        ft_store(out + r * C + l0 + FT_VW, a[r][1]);
    }
}

/* The lane sum of s (partial sums striped over lanes) and of x[l] * g[l]
 * over the lanes m .. C-1 past the last whole vector, as dot_lanes sums:
 * four partial sums, the leftover lanes added to the first one by one.
 * (Eight-wide vectors first fold into four: other bits, but only in the
 * AVX-512 build, where multiply-adds fuse anyway.) */
FT_INLINE double ft_finish(ft_v s, const double *x, const double *g, ptrdiff_t m,
                               ptrdiff_t C)
{
#if FT_VW == 8
    double s0 = s[0] + s[4], s1 = s[1] + s[5], s2 = s[2] + s[6], s3 = s[3] + s[7];
#else
    double s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
#endif
    for (ptrdiff_t l = m; l < C; l++)
        s0 += x[l] * g[l];
    return (s0 + s1) + (s2 + s3);
}

#if FT_VW == 8
/* The sums of the eight vectors a[0..7], as one vector: pairs within
 * 128-bit lanes, then 128-bit lanes across registers, twice. */
FT_INLINE ft_v ft_reduce8(const ft_v *a)
{
    __m512d t[4], v[2];
    for (int i = 0; i < 4; i++)
        t[i] = _mm512_add_pd(_mm512_unpacklo_pd((__m512d)a[2 * i], (__m512d)a[2 * i + 1]),
                             _mm512_unpackhi_pd((__m512d)a[2 * i], (__m512d)a[2 * i + 1]));
    for (int i = 0; i < 2; i++)
        v[i] = _mm512_add_pd(_mm512_shuffle_f64x2(t[2 * i], t[2 * i + 1], 0x88),
                             _mm512_shuffle_f64x2(t[2 * i], t[2 * i + 1], 0xdd));
    return (ft_v)_mm512_add_pd(_mm512_shuffle_f64x2(v[0], v[1], 0x88),
                               _mm512_shuffle_f64x2(v[0], v[1], 0xdd));
}
#endif

/* dW[r*n + c] = sum_l X[c][l] * G[r*C + l] for `rows` units (at most
 * FT_WR) by `cols` inputs (at most FT_WC): twelve sums in registers (24
 * with AVX-512's 32) keep both FMA units busy past their latency. Constant
 * rows and cols unroll it fully. */
FT_INLINE void ft_weight_tile(const double *G, const double *const *X, ptrdiff_t C,
                                  double *dW, ptrdiff_t n, int rows, int cols)
{
    ft_v s[FT_WR][FT_WC];
    ptrdiff_t l, m = C - C % FT_VW;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            s[r][c] = ft_splat(0.0);
    for (l = 0; l < m; l += FT_VW) {
        ft_v g[FT_WR];
        for (int r = 0; r < rows; r++)
            g[r] = ft_load(G + r * C + l);
        for (int c = 0; c < cols; c++) {
            ft_v x = ft_load(X[c] + l);
            for (int r = 0; r < rows; r++)
                s[r][c] = ft_madd(x, g[r], s[r][c]);
        }
    }
#if FT_VW == 8
    /* eight sums at a time, with shuffles across registers */
    double sums[FT_WR * FT_WC + 8];
    ft_v q[8];
    int k = 0;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            q[k % 8] = s[r][c];
            if (++k % 8 == 0)
                ft_store(sums + k - 8, ft_reduce8(q));
        }
    }
    if (k % 8) {
        for (int t = k % 8; t < 8; t++)
            q[t] = ft_splat(0.0);
        ft_store(sums + k - k % 8, ft_reduce8(q));
    }
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            double d = sums[r * cols + c];
            for (l = m; l < C; l++)
                d += X[c][l] * G[r * C + l];
            dW[r * n + c] = d;
        }
    }
#else
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dW[r * n + c] = ft_finish(s[r][c], X[c], G + r * C, m, C);
#endif
}

/* GX[c][l0 + t] += zmul(W[r*n + c], G[r*C + l0 + t]) for r = m-1 .. 0,
 * 4 inputs by one tile of lanes (W and GX start at the tile's first input). */
FT_INLINE void ft_input_tile(const double *W, ptrdiff_t n, ptrdiff_t m, const double *G,
                                 double *const *GX, ptrdiff_t C, ptrdiff_t l0)
{
    ft_v a[4][2];
    for (int c = 0; c < 4; c++) {
        a[c][0] = ft_load(GX[c] + l0);
        a[c][1] = ft_load(GX[c] + l0 + FT_VW);
    }
    for (ptrdiff_t r = m - 1; r >= 0; r--) {
        ft_v g0 = ft_load(G + r * C + l0), g1 = ft_load(G + r * C + l0 + FT_VW);
        for (int c = 0; c < 4; c++) {
            ft_v w = ft_splat(W[r * n + c]);
            a[c][0] = ft_zmadd(a[c][0], w, g0);
            a[c][1] = ft_zmadd(a[c][1], w, g1);
        }
    }
    for (int c = 0; c < 4; c++) {
        ft_store(GX[c] + l0, a[c][0]);
        ft_store(GX[c] + l0 + FT_VW, a[c][1]);
    }
}

/* Lane sums in four partial sums striped over lanes, leftover lanes added
 * to the first, then (s0 + s1) + (s2 + s3): a four-wide vector holds the
 * partial sums, and multiplies and adds stay separate, so every build
 * gives the bits of the scalar loops they replace. */
typedef double ft_v4 __attribute__((vector_size(32)));
typedef double ft_v4u __attribute__((vector_size(32), aligned(8), may_alias));
#if defined(__clang__)
#define FT_SHUFFLE(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
typedef long long ft_i4 __attribute__((vector_size(32)));
#define FT_SHUFFLE(a, b, i, j, k, l) __builtin_shuffle(a, b, (ft_i4){i, j, k, l})
#endif

static inline double ft_lane_sum(const double *row, ptrdiff_t C)
{
    ft_v4 s = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t l, m = C - C % 4;
    double s0;
    for (l = 0; l < m; l += 4)
        s += *(const ft_v4u *)(row + l);
    s0 = s[0];
    for (l = m; l < C; l++)
        s0 += row[l];
    return (s0 + s[1]) + (s[2] + s[3]);
}

static inline double ft_dot_lanes(const double *x, const double *y, ptrdiff_t C)
{
    ft_v4 s = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t l, m = C - C % 4;
    double s0;
    for (l = 0; l < m; l += 4) {
        ft_v4 p = *(const ft_v4u *)(x + l) * *(const ft_v4u *)(y + l);
        s += p;
    }
    s0 = s[0];
    for (l = m; l < C; l++)
        s0 += x[l] * y[l];
    return (s0 + s[1]) + (s[2] + s[3]);
}

/* Row nodes[k] of W (rows of w lanes) gets column k of src (w rows of
 * width): four columns by four lanes at a time, transposed in registers,
 * two such blocks filling each row's eight lanes (a cache line) at once. */
FT_INLINE void ft_transpose4(double *W, const int32_t *nodes, const double *s,
                             ptrdiff_t width, ptrdiff_t w)
{
    ft_v4 r0 = *(const ft_v4u *)s, r1 = *(const ft_v4u *)(s + width);
    ft_v4 r2 = *(const ft_v4u *)(s + 2 * width), r3 = *(const ft_v4u *)(s + 3 * width);
    ft_v4 a = FT_SHUFFLE(r0, r1, 0, 4, 2, 6);  /* r0[0] r1[0] r0[2] r1[2] */
    ft_v4 b = FT_SHUFFLE(r0, r1, 1, 5, 3, 7);
    ft_v4 c = FT_SHUFFLE(r2, r3, 0, 4, 2, 6);
    ft_v4 d = FT_SHUFFLE(r2, r3, 1, 5, 3, 7);
    *(ft_v4u *)(W + nodes[0] * w) = FT_SHUFFLE(a, c, 0, 1, 4, 5);
    *(ft_v4u *)(W + nodes[1] * w) = FT_SHUFFLE(b, d, 0, 1, 4, 5);
    *(ft_v4u *)(W + nodes[2] * w) = FT_SHUFFLE(a, c, 2, 3, 6, 7);
    *(ft_v4u *)(W + nodes[3] * w) = FT_SHUFFLE(b, d, 2, 3, 6, 7);
}

static inline void ft_transpose_in(double *W, const int32_t *nodes, const double *src,
                                   ptrdiff_t width, ptrdiff_t w)
{
    ptrdiff_t l, k, t, l8 = w - w % 8, k4 = width - width % 4;
    for (l = 0; l < l8; l += 8) {
        const double *s = src + l * width;
        for (k = 0; k < k4; k += 4) {
            ft_transpose4(W + l, nodes + k, s + k, width, w);
            ft_transpose4(W + l + 4, nodes + k, s + 4 * width + k, width, w);
        }
        for (k = k4; k < width; k++)
            for (t = 0; t < 8; t++)
                W[nodes[k] * w + l + t] = s[t * width + k];
    }
    for (l = l8; l < w; l++)
        for (k = 0; k < width; k++)
            W[nodes[k] * w + l] = src[l * width + k];
}

#else
#define FT_TILES 0
#define FT_FMA 0
#define FT_TILE_LANES 8
#define FT_FR 6
#define FT_WR 3
#define FT_WC 4
static inline double ft_lane_sum(const double *row, ptrdiff_t C)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    ptrdiff_t l, m = C - C % 4;
    for (l = 0; l < m; l += 4) {
        s0 += row[l]; s1 += row[l + 1]; s2 += row[l + 2]; s3 += row[l + 3];
    }
    for (l = m; l < C; l++)
        s0 += row[l];
    return (s0 + s1) + (s2 + s3);
}
static inline double ft_dot_lanes(const double *x, const double *y, ptrdiff_t C)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    ptrdiff_t l, m = C - C % 4;
    for (l = 0; l < m; l += 4) {
        s0 += x[l] * y[l]; s1 += x[l + 1] * y[l + 1];
        s2 += x[l + 2] * y[l + 2]; s3 += x[l + 3] * y[l + 3];
    }
    for (l = m; l < C; l++)
        s0 += x[l] * y[l];
    return (s0 + s1) + (s2 + s3);
}
static inline void ft_transpose_in(double *W, const int32_t *nodes, const double *src,
                                   ptrdiff_t width, ptrdiff_t w)
{
    for (ptrdiff_t l = 0; l < w; l++)
        for (ptrdiff_t k = 0; k < width; k++)
            W[nodes[k] * w + l] = src[l * width + k];
}
static inline void ft_forward_tiles(const double *W, ptrdiff_t n, const double *const *X,
                                    double *out, ptrdiff_t C, ptrdiff_t tiled, int rows) {}
static inline void ft_weight_tile(const double *G, const double *const *X, ptrdiff_t C,
                                  double *dW, ptrdiff_t n, int rows, int cols) {}
static inline void ft_input_tile(const double *W, ptrdiff_t n, ptrdiff_t m, const double *G,
                                 double *const *GX, ptrdiff_t C, ptrdiff_t l0) {}
#endif

/* The forward tiles of `rows` units (1 .. FT_FR) over the lanes [0, tiled). */
static void ft_forward_tiles(const double *W, ptrdiff_t n, const double *const *X, double *out,
                             ptrdiff_t C, ptrdiff_t tiled, int rows)
{
#define FT_CASE(R) case R: \
        for (ptrdiff_t l0 = 0; l0 < tiled; l0 += FT_TILE_LANES) \
            ft_forward_tile(W, n, X, out, C, l0, R); \
        break;
    switch (rows) {
        FT_CASE(1) FT_CASE(2) FT_CASE(3) FT_CASE(4) FT_CASE(5) FT_CASE(6)
#if FT_FR == 12
        FT_CASE(7) FT_CASE(8) FT_CASE(9) FT_CASE(10) FT_CASE(11) FT_CASE(12)
#endif
    }
#undef FT_CASE
}

/* The weight tiles a block needs, each with constant sizes (so unrolled). */
static void ft_weight_tiles(const double *G, const double *const *X, ptrdiff_t C,
                            double *dW, ptrdiff_t n, int rows, int cols)
{
#define FT_CASE(R, K) case 8 * (R) + (K): ft_weight_tile(G, X, C, dW, n, R, K); break;
#define FT_ROW(R) FT_CASE(R, 1) FT_CASE(R, 2) FT_CASE(R, 3) FT_CASE(R, 4)
    switch (8 * rows + cols) {
        FT_ROW(1) FT_ROW(2) FT_ROW(3)
#if FT_WR == 4
        FT_ROW(4) FT_CASE(1, 5) FT_CASE(2, 5) FT_CASE(3, 5) FT_CASE(4, 5)
        FT_CASE(1, 6) FT_CASE(2, 6) FT_CASE(3, 6) FT_CASE(4, 6)
#endif
    }
#undef FT_ROW
#undef FT_CASE
}

#endif
