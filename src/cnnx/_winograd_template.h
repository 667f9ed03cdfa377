/* Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms for 3x3 stride-1 convolutions, NHWC,
 * instantiated once per (dtype, ISA). F(2x2, 3x3) first (F(4x4, 3x3) further down, as
 * it): a tile is 2 x 2 output pixels; it reads a 4 x 4 input patch. The
 * product of a tile's patch with the 3 x 3 kernel becomes 16 independent products (one
 * per position p of the 4 x 4 transformed patch) of its C channels with the transformed
 * kernel U[p] (C x F), which the Cython driver runs as GEMM microkernel calls over blocks
 * of tiles: 16 C F multiplications a tile instead of the direct 36 C F.
 *
 *   input:   V = B^T d B,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   output:  Y = A^T M A,  A^T = [1 1 1 0; 0 1 -1 -1]
 *   kernel:  U = G g G^T,  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *
 * Every transform is a fixed sequence of additions (and, in F(4x4, 3x3), multiplications
 * by small constants) per channel: the loops run over contiguous channels, and the
 * compiler vectorises them under the path's flags (WG_IVDEP below).
 *
 * Include after defining WG_NAME and WG_T.
 */
/* The transforms store through several pointers into one array (and F(4x4, 3x3)'s read a
 * stack buffer): gcc's dependence analysis gives up on such loops (scalar code, 3x slower
 * at W5's layers) unless told that the iterations are independent. They are: each reads
 * and writes its own channel. */
#if defined(__clang__)
#  define WG_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#  define WG_IVDEP _Pragma("GCC ivdep")
#else
#  define WG_IVDEP
#endif

/* The n x n input pixels of the patch whose top-left pixel is (r0, c0) of an H x W x C
 * image, row by row into d: each a pointer to its C channels, or `zeros` (C zeros) for a
 * pixel outside the image. */
static inline void CNNX_CAT(WG_NAME, _patch)(const WG_T *x, int64_t H, int64_t W, int64_t C,
                                              int64_t r0, int64_t c0, const WG_T *zeros,
                                              int n, const WG_T **d)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            const int64_t r = r0 + i, c = c0 + j;
            d[i * n + j] = (r >= 0 && r < H && c >= 0 && c < W) ? x + (r * W + c) * C : zeros;
        }
}

/* The patch of the tile whose top-left input pixel is (r0, c0) of an H x W x C image (rows
 * and columns outside the image read `zeros`, C zeros), transformed: position p = 4 i + j
 * goes to v + p * pstride, C values. */
static void CNNX_CAT(WG_NAME, _input2)(const WG_T *restrict x, int64_t H, int64_t W, int64_t C,
                                       int64_t r0, int64_t c0, const WG_T *restrict zeros,
                                       WG_T *restrict v, int64_t pstride)
{
    const WG_T *d[4][4];
    CNNX_CAT(WG_NAME, _patch)(x, H, W, C, r0, c0, zeros, 4, &d[0][0]);
    const WG_T *restrict d00 = d[0][0], *restrict d01 = d[0][1], *restrict d02 = d[0][2],
               *restrict d03 = d[0][3], *restrict d10 = d[1][0], *restrict d11 = d[1][1],
               *restrict d12 = d[1][2], *restrict d13 = d[1][3], *restrict d20 = d[2][0],
               *restrict d21 = d[2][1], *restrict d22 = d[2][2], *restrict d23 = d[2][3],
               *restrict d30 = d[3][0], *restrict d31 = d[3][1], *restrict d32 = d[3][2],
               *restrict d33 = d[3][3];
    WG_IVDEP
    for (int64_t c = 0; c < C; ++c) {
        /* rows: t = B^T d */
        const WG_T t00 = d00[c] - d20[c], t01 = d01[c] - d21[c], t02 = d02[c] - d22[c],
                   t03 = d03[c] - d23[c];
        const WG_T t10 = d10[c] + d20[c], t11 = d11[c] + d21[c], t12 = d12[c] + d22[c],
                   t13 = d13[c] + d23[c];
        const WG_T t20 = d20[c] - d10[c], t21 = d21[c] - d11[c], t22 = d22[c] - d12[c],
                   t23 = d23[c] - d13[c];
        const WG_T t30 = d10[c] - d30[c], t31 = d11[c] - d31[c], t32 = d12[c] - d32[c],
                   t33 = d13[c] - d33[c];
        /* columns: v = t B */
        v[0 * pstride + c] = t00 - t02;   v[1 * pstride + c] = t01 + t02;
        v[2 * pstride + c] = t02 - t01;   v[3 * pstride + c] = t01 - t03;
        v[4 * pstride + c] = t10 - t12;   v[5 * pstride + c] = t11 + t12;
        v[6 * pstride + c] = t12 - t11;   v[7 * pstride + c] = t11 - t13;
        v[8 * pstride + c] = t20 - t22;   v[9 * pstride + c] = t21 + t22;
        v[10 * pstride + c] = t22 - t21;  v[11 * pstride + c] = t21 - t23;
        v[12 * pstride + c] = t30 - t32;  v[13 * pstride + c] = t31 + t32;
        v[14 * pstride + c] = t32 - t31;  v[15 * pstride + c] = t31 - t33;
    }
}

/* The 2 x 2 outputs of a tile from its 16 products (position p at m + p * pstride, F
 * values), plus bias (F values: zeros for none; a NULL test per value became a masked
 * load in the vector loop, a quarter of a 16-channel layer's time), then ReLU when
 * asked, into rows/columns `rows` x `cols` (1 or 2: a tile past the image's last odd row
 * or column) of y, whose pixel (0, 0) is at y, its pixels ldp values apart and its rows
 * ldy (ldp > F: a range of a layer's channels). */
static void CNNX_CAT(WG_NAME, _output2)(const WG_T *restrict m, int64_t pstride, int64_t F,
                                        const WG_T *restrict bias, int relu, int rows,
                                        int cols, WG_T *restrict y, int64_t ldp, int64_t ldy)
{
    const WG_T *restrict m0 = m, *restrict m1 = m + pstride, *restrict m2 = m + 2 * pstride,
               *restrict m3 = m + 3 * pstride, *restrict m4 = m + 4 * pstride,
               *restrict m5 = m + 5 * pstride, *restrict m6 = m + 6 * pstride,
               *restrict m7 = m + 7 * pstride, *restrict m8 = m + 8 * pstride,
               *restrict m9 = m + 9 * pstride, *restrict m10 = m + 10 * pstride,
               *restrict m11 = m + 11 * pstride, *restrict m12 = m + 12 * pstride,
               *restrict m13 = m + 13 * pstride, *restrict m14 = m + 14 * pstride,
               *restrict m15 = m + 15 * pstride;
    WG_T *restrict y00 = y, *restrict y01 = y + ldp, *restrict y10 = y + ldy,
         *restrict y11 = y + ldy + ldp;
    WG_IVDEP
    for (int64_t f = 0; f < F; ++f) {
        /* rows: s = A^T m */
        const WG_T s00 = m0[f] + m4[f] + m8[f], s01 = m1[f] + m5[f] + m9[f],
                   s02 = m2[f] + m6[f] + m10[f], s03 = m3[f] + m7[f] + m11[f];
        const WG_T s10 = m4[f] - m8[f] - m12[f], s11 = m5[f] - m9[f] - m13[f],
                   s12 = m6[f] - m10[f] - m14[f], s13 = m7[f] - m11[f] - m15[f];
        const WG_T b = bias[f];
        /* columns: y = s A */
        WG_T o00 = s00 + s01 + s02 + b, o01 = s01 - s02 - s03 + b;
        WG_T o10 = s10 + s11 + s12 + b, o11 = s11 - s12 - s13 + b;
        if (relu) {   /* zeroes negatives, lets NaN through */
            o00 = o00 <= 0 ? (WG_T)0 : o00;
            o01 = o01 <= 0 ? (WG_T)0 : o01;
            o10 = o10 <= 0 ? (WG_T)0 : o10;
            o11 = o11 <= 0 ? (WG_T)0 : o11;
        }
        y00[f] = o00;
        if (cols > 1) y01[f] = o01;
        if (rows > 1) {
            y10[f] = o10;
            if (cols > 1) y11[f] = o11;
        }
    }
}

/* U's layout: position p's C x Fp matrix (C * Fp values apart) in strips of nr output
 * channels, each strip C x nr, its rows nr values apart: the GEMM microkernel reads a
 * strip's rows one after the other (with rows Fp apart, one cache line each, it waited
 * on L2 at every row). Element (p, c, f) of strip j = f / nr sits at
 * (p * C * Fp + j * C * nr + c * nr) + f - j * nr: _wg_strip's base for (j, c), + f. */
static inline WG_T *CNNX_CAT(WG_NAME, _strip)(WG_T *U, int64_t C, int64_t nr, int64_t j,
                                             int64_t c)
{
    return U + j * C * nr + c * nr - j * nr;
}

/* U[p, c, :] = (G g G^T)[p] for input channel c of the 3 x 3 x C x F kernel, g =
 * kernel[:, :, c, f] for each output channel f (zero for f in F : Fp), in double and
 * rounded once. U is 16 x C x Fp, in strips of nr channels (above). */
static void CNNX_CAT(WG_NAME, _kernel2)(const WG_T *restrict kernel, int64_t C, int64_t F,
                                        int64_t Fp, int64_t nr, int64_t c, WG_T *restrict U)
{
    const int64_t ps = C * Fp;   /* from one position to the next */
    for (int64_t j = 0; j * nr < Fp; ++j) {
        WG_T *restrict u = CNNX_CAT(WG_NAME, _strip)(U, C, nr, j, c);
        const int64_t f1 = F < (j + 1) * nr ? F : (j + 1) * nr;
        WG_IVDEP
        for (int64_t f = j * nr; f < f1; ++f) {
            double g[3][3], t[4][3];
            for (int i = 0; i < 3; ++i)
                for (int k = 0; k < 3; ++k) g[i][k] = kernel[((i * 3 + k) * C + c) * F + f];
            for (int k = 0; k < 3; ++k) {          /* t = G g */
                t[0][k] = g[0][k];
                t[1][k] = (g[0][k] + g[1][k] + g[2][k]) * 0.5;
                t[2][k] = (g[0][k] - g[1][k] + g[2][k]) * 0.5;
                t[3][k] = g[2][k];
            }
            for (int i = 0; i < 4; ++i) {          /* U = t G^T */
                u[(4 * i + 0) * ps + f] = (WG_T)t[i][0];
                u[(4 * i + 1) * ps + f] = (WG_T)((t[i][0] + t[i][1] + t[i][2]) * 0.5);
                u[(4 * i + 2) * ps + f] = (WG_T)((t[i][0] - t[i][1] + t[i][2]) * 0.5);
                u[(4 * i + 3) * ps + f] = (WG_T)t[i][2];
            }
        }
        for (int p = 0; p < 16; ++p)
            for (int64_t f = f1 > j * nr ? f1 : j * nr; f < (j + 1) * nr; ++f) u[p * ps + f] = 0;
    }
}

/* F(4x4, 3x3): a tile is 4 x 4 output pixels reading a 6 x 6 input patch, 36 positions:
 * 36 C F multiplications for 16 outputs (the direct product: 144 C F).
 *
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
 *          0 4 0 -5 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *
 * Channels go in blocks of WG_CB through a stack buffer of the row pass (36 pointers and
 * 36 live values per channel would not fit the registers). */
#define WG_CB 16

/* F(4x4, 3x3)'s one-dimensional transforms, each applied to rows and then to columns:
 * B^T of six values (the input's), A^T of six into four (the output's), A of four into
 * six (the output gradient's). Statements; the results go to the lvalues y0..y5. */
#define WG_BT6(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3, a4, a5)                              \
    do {                                                                                   \
        const WG_T e_ = (a4) - (a2), f_ = (a3) - (a1);                                     \
        y0 = 4 * (a0) - 5 * (a2) + (a4);                                                   \
        y1 = (a3) + (a4) - 4 * ((a1) + (a2));                                              \
        y2 = (a4) - (a3) + 4 * ((a1) - (a2));                                              \
        y3 = e_ + 2 * f_;                                                                  \
        y4 = e_ - 2 * f_;                                                                  \
        y5 = 4 * (a1) - 5 * (a3) + (a5);                                                   \
    } while (0)
#define WG_AT6(y0, y1, y2, y3, a0, a1, a2, a3, a4, a5)                                      \
    do {                                                                                   \
        const WG_T sp_ = (a1) + (a2), sm_ = (a1) - (a2), tp_ = (a3) + (a4),                \
                   tm_ = (a3) - (a4);                                                      \
        y0 = (a0) + sp_ + tp_;                                                             \
        y1 = sm_ + 2 * tm_;                                                                \
        y2 = sp_ + 4 * tp_;                                                                \
        y3 = sm_ + 8 * tm_ + (a5);                                                         \
    } while (0)
#define WG_A4(y0, y1, y2, y3, y4, y5, a0, a1, a2, a3)                                       \
    do {                                                                                   \
        const WG_T sp_ = (a0) + (a2), sm_ = (a1) + (a3), tp_ = (a0) + 4 * (a2),            \
                   tm_ = 2 * (a1) + 8 * (a3);                                              \
        y0 = (a0);                                                                         \
        y1 = sp_ + sm_;                                                                    \
        y2 = sp_ - sm_;                                                                    \
        y3 = tp_ + tm_;                                                                    \
        y4 = tp_ - tm_;                                                                    \
        y5 = (a3);                                                                         \
    } while (0)

/* F(4x4, 3x3)'s G, for the kernel transform and the kernel gradient's. */
static const WG_T CNNX_CAT(WG_NAME, _G4)[6][3] = {
    {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

/* One block of cb channels from cs (cb a constant where the block is whole: the loops
 * then unroll into whole vectors, with no remainder to test). In float32 only, the
 * training and inference dtype: the constant copies of F(4x4)'s transforms in float64
 * too would have taken the wheel past its 1 MB limit. */
#define WG_WHOLE_BLOCKS (sizeof(WG_T) == sizeof(float))
CNNX_INLINE void CNNX_CAT(WG_NAME, _input4_block)(const WG_T *const d[6][6], int64_t cs,
                                                 const int64_t cb, WG_T *restrict v,
                                                 int64_t pstride)
{
    WG_T t[6][6][WG_CB];
    for (int j = 0; j < 6; ++j) {      /* rows: t = B^T d, column j */
        const WG_T *restrict p0 = d[0][j] + cs, *restrict p1 = d[1][j] + cs,
                   *restrict p2 = d[2][j] + cs, *restrict p3 = d[3][j] + cs,
                   *restrict p4 = d[4][j] + cs, *restrict p5 = d[5][j] + cs;
        for (int64_t k = 0; k < cb; ++k)
            WG_BT6(t[0][j][k], t[1][j][k], t[2][j][k], t[3][j][k], t[4][j][k], t[5][j][k],
                   p0[k], p1[k], p2[k], p3[k], p4[k], p5[k]);
    }
    for (int i = 0; i < 6; ++i) {      /* columns: v = t B, row i */
        WG_T *restrict o0 = v + 6 * i * pstride + cs, *restrict o1 = o0 + pstride,
             *restrict o2 = o1 + pstride, *restrict o3 = o2 + pstride,
             *restrict o4 = o3 + pstride, *restrict o5 = o4 + pstride;
        WG_IVDEP
        for (int64_t k = 0; k < cb; ++k)
            WG_BT6(o0[k], o1[k], o2[k], o3[k], o4[k], o5[k], t[i][0][k], t[i][1][k],
                   t[i][2][k], t[i][3][k], t[i][4][k], t[i][5][k]);
    }
}

static void CNNX_CAT(WG_NAME, _input4)(const WG_T *restrict x, int64_t H, int64_t W, int64_t C,
                                        int64_t r0, int64_t c0, const WG_T *restrict zeros,
                                        WG_T *restrict v, int64_t pstride)
{
    const WG_T *d[6][6];
    CNNX_CAT(WG_NAME, _patch)(x, H, W, C, r0, c0, zeros, 6, &d[0][0]);
    int64_t cs = 0;
    if (WG_WHOLE_BLOCKS)
        for (; cs + WG_CB <= C; cs += WG_CB)
            CNNX_CAT(WG_NAME, _input4_block)((const WG_T *const (*)[6])d, cs, WG_CB, v,
                                             pstride);
    for (; cs < C; cs += WG_CB)
        CNNX_CAT(WG_NAME, _input4_block)((const WG_T *const (*)[6])d, cs,
                                         C - cs < WG_CB ? C - cs : WG_CB, v, pstride);
}

/* One block of fb output channels from fs (fb, rows and cols constants for a whole
 * block of an inner tile, as in _input4_block). */
CNNX_INLINE void CNNX_CAT(WG_NAME, _output4_block)(
    const WG_T *restrict m, int64_t pstride, int64_t fs, const int64_t fb,
    const WG_T *restrict bias, const int relu, const int rows, const int cols,
    WG_T *restrict y, int64_t ldp, int64_t ldy)
{
    WG_T s[4][6][WG_CB];
    for (int j = 0; j < 6; ++j) {      /* rows: s = A^T m, column j */
        const WG_T *restrict p0 = m + j * pstride + fs, *restrict p1 = p0 + 6 * pstride,
                   *restrict p2 = p0 + 12 * pstride, *restrict p3 = p0 + 18 * pstride,
                   *restrict p4 = p0 + 24 * pstride, *restrict p5 = p0 + 30 * pstride;
        for (int64_t k = 0; k < fb; ++k)
            WG_AT6(s[0][j][k], s[1][j][k], s[2][j][k], s[3][j][k], p0[k], p1[k], p2[k],
                   p3[k], p4[k], p5[k]);
    }
    for (int i = 0; i < rows; ++i) {   /* columns: y = s A, row i */
        const WG_T *restrict q0 = s[i][0], *restrict q1 = s[i][1], *restrict q2 = s[i][2],
                   *restrict q3 = s[i][3], *restrict q4 = s[i][4], *restrict q5 = s[i][5];
        WG_T *restrict o0 = y + i * ldy + fs, *restrict o1 = o0 + ldp,
             *restrict o2 = o1 + ldp, *restrict o3 = o2 + ldp;
        WG_IVDEP
        for (int64_t k = 0; k < fb; ++k) {
            const WG_T b = bias[fs + k];
            WG_T y0, y1, y2, y3;
            WG_AT6(y0, y1, y2, y3, q0[k], q1[k], q2[k], q3[k], q4[k], q5[k]);
            y0 += b;
            y1 += b;
            y2 += b;
            y3 += b;
            if (relu) {   /* zeroes negatives, lets NaN through */
                y0 = y0 <= 0 ? (WG_T)0 : y0;
                y1 = y1 <= 0 ? (WG_T)0 : y1;
                y2 = y2 <= 0 ? (WG_T)0 : y2;
                y3 = y3 <= 0 ? (WG_T)0 : y3;
            }
            o0[k] = y0;
            if (cols > 1) o1[k] = y1;
            if (cols > 2) o2[k] = y2;
            if (cols > 3) o3[k] = y3;
        }
    }
}

static void CNNX_CAT(WG_NAME, _output4)(const WG_T *restrict m, int64_t pstride, int64_t F,
                                         const WG_T *restrict bias, int relu, int rows,
                                         int cols, WG_T *restrict y, int64_t ldp, int64_t ldy)
{
    int64_t fs = 0;
    if (WG_WHOLE_BLOCKS && rows == 4 && cols == 4)   /* an inner tile */
        for (; fs + WG_CB <= F; fs += WG_CB)
            CNNX_CAT(WG_NAME, _output4_block)(m, pstride, fs, WG_CB, bias, relu, 4, 4, y, ldp,
                                              ldy);
    for (; fs < F; fs += WG_CB)
        CNNX_CAT(WG_NAME, _output4_block)(m, pstride, fs, F - fs < WG_CB ? F - fs : WG_CB,
                                          bias, relu, rows, cols, y, ldp, ldy);
}

/* U[p, c, :] for F(4x4, 3x3): 36 positions, as _kernel2 but in WG_T (its rounding is
 * small beside the input transform's), vectorised over f: a kernel row's taps are
 * contiguous in f. Row i of t = G g, then of U = t G^T. */
static void CNNX_CAT(WG_NAME, _kernel4)(const WG_T *restrict kernel, int64_t C, int64_t F,
                                         int64_t Fp, int64_t nr, int64_t c, WG_T *restrict U)
{
    const WG_T (*G)[3] = CNNX_CAT(WG_NAME, _G4);
    const WG_T *restrict g00 = kernel + c * F, *restrict g01 = g00 + C * F,
               *restrict g02 = g01 + C * F, *restrict g10 = g02 + C * F,
               *restrict g11 = g10 + C * F, *restrict g12 = g11 + C * F,
               *restrict g20 = g12 + C * F, *restrict g21 = g20 + C * F,
               *restrict g22 = g21 + C * F;
    const int64_t ps = C * Fp;   /* from one position to the next */
    for (int64_t j = 0; j * nr < Fp; ++j)
    for (int i = 0; i < 6; ++i) {
        const WG_T a = G[i][0], b = G[i][1], d = G[i][2];
        WG_T *restrict u0 = CNNX_CAT(WG_NAME, _strip)(U, C, nr, j, c) + 6 * i * ps,
             *restrict u1 = u0 + ps, *restrict u2 = u1 + ps, *restrict u3 = u2 + ps,
             *restrict u4 = u3 + ps, *restrict u5 = u4 + ps;
        const int64_t f1 = F < (j + 1) * nr ? F : (j + 1) * nr;
        WG_IVDEP
        for (int64_t f = j * nr; f < f1; ++f) {
            const WG_T t0 = a * g00[f] + b * g10[f] + d * g20[f],
                       t1 = a * g01[f] + b * g11[f] + d * g21[f],
                       t2 = a * g02[f] + b * g12[f] + d * g22[f];
            u0[f] = t0 * (WG_T)(1.0 / 4);
            u1[f] = (t0 + t1 + t2) * (WG_T)(-1.0 / 6);
            u2[f] = (t0 - t1 + t2) * (WG_T)(-1.0 / 6);
            u3[f] = t0 * (WG_T)(1.0 / 24) + t1 * (WG_T)(1.0 / 12) + t2 * (WG_T)(1.0 / 6);
            u4[f] = t0 * (WG_T)(1.0 / 24) - t1 * (WG_T)(1.0 / 12) + t2 * (WG_T)(1.0 / 6);
            u5[f] = t2;
        }
        for (int64_t f = f1 > j * nr ? f1 : j * nr; f < (j + 1) * nr; ++f)
            u0[f] = u1[f] = u2[f] = u3[f] = u4[f] = u5[f] = 0;
    }
}

/* Kernel gradients. With M = V U per position (forward), y = A^T M A and U = G g G^T:
 *   dM = A dy A^T for each tile's m x m outputs of dy (zero past the image),
 *   dU[p] = sum over tiles of V[p]^T dM[p]  (the driver's GEMM),
 *   dg = G^T dU G.
 * A tile's dM (position p at dm + p * pstride, F values) from the m x m block of dy whose
 * pixel (0, 0) is at dy, rows ldy values apart (F a pixel), `rows` x `cols` of it inside
 * the image. */
static void CNNX_CAT(WG_NAME, _dy)(int m, const WG_T *restrict dy, int64_t ldy, int64_t F,
                                    int rows, int cols, WG_T *restrict dm, int64_t pstride)
{
    const int n = m + 2;
    WG_T t[6][4][WG_CB];
    for (int64_t fs = 0; fs < F; fs += WG_CB) {
        const int64_t fb = F - fs < WG_CB ? F - fs : WG_CB;
        for (int j = 0; j < m; ++j) {          /* rows: t = A d, column j */
            WG_T d[4][WG_CB];
            for (int i = 0; i < m; ++i) {
                if (i < rows && j < cols) {
                    const WG_T *restrict src = dy + i * ldy + j * F + fs;
                    for (int64_t k = 0; k < fb; ++k) d[i][k] = src[k];
                } else {
                    for (int64_t k = 0; k < fb; ++k) d[i][k] = 0;
                }
            }
            if (m == 4) {
                WG_IVDEP
                for (int64_t k = 0; k < fb; ++k)
                    WG_A4(t[0][j][k], t[1][j][k], t[2][j][k], t[3][j][k], t[4][j][k],
                          t[5][j][k], d[0][k], d[1][k], d[2][k], d[3][k]);
            } else {
                WG_IVDEP
                for (int64_t k = 0; k < fb; ++k) {
                    const WG_T a0 = d[0][k], a1 = d[1][k];
                    t[0][j][k] = a0;
                    t[1][j][k] = a0 + a1;
                    t[2][j][k] = a0 - a1;
                    t[3][j][k] = -a1;
                }
            }
        }
        for (int i = 0; i < n; ++i) {          /* columns: dM = t A^T, row i */
            WG_T *restrict o0 = dm + n * i * pstride + fs, *restrict o1 = o0 + pstride,
                 *restrict o2 = o1 + pstride, *restrict o3 = o2 + pstride,
                 *restrict o4 = o3 + pstride, *restrict o5 = o4 + pstride;
            if (m == 4) {
                WG_IVDEP
                for (int64_t k = 0; k < fb; ++k)
                    WG_A4(o0[k], o1[k], o2[k], o3[k], o4[k], o5[k], t[i][0][k], t[i][1][k],
                          t[i][2][k], t[i][3][k]);
            } else {
                WG_IVDEP
                for (int64_t k = 0; k < fb; ++k) {
                    const WG_T a0 = t[i][0][k], a1 = t[i][1][k];
                    o0[k] = a0;
                    o1[k] = a0 + a1;
                    o2[k] = a0 - a1;
                    o3[k] = -a1;
                }
            }
        }
    }
}

/* dkernel[:, :, c, :] = G^T dU G for input channel c (dU's position p, channel c at du +
 * p * pstride + c * ldu, F values). */
static void CNNX_CAT(WG_NAME, _kgrad)(int m, const WG_T *restrict du, int64_t pstride,
                                       int64_t ldu, int64_t C, int64_t F, int64_t c,
                                       WG_T *restrict dkernel)
{
    const WG_T (*G4)[3] = CNNX_CAT(WG_NAME, _G4);
    static const WG_T G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    const int n = m + 2;
    for (int64_t fs = 0; fs < F; fs += WG_CB) {
        const int64_t fb = F - fs < WG_CB ? F - fs : WG_CB;
        WG_T w[6][3][WG_CB];   /* w = dU G, row a */
        for (int a = 0; a < n; ++a) {
            for (int r = 0; r < 3; ++r)
                for (int64_t k = 0; k < fb; ++k) w[a][r][k] = 0;
            for (int b = 0; b < n; ++b) {
                const WG_T *restrict src = du + (a * n + b) * pstride + c * ldu + fs;
                for (int r = 0; r < 3; ++r) {
                    const WG_T gbr = m == 4 ? G4[b][r] : G2[b][r];
                    WG_IVDEP
                    for (int64_t k = 0; k < fb; ++k) w[a][r][k] += src[k] * gbr;
                }
            }
        }
        for (int r = 0; r < 3; ++r)            /* dg = G^T w */
            for (int s2 = 0; s2 < 3; ++s2) {
                WG_T *restrict o = dkernel + ((r * 3 + s2) * C + c) * F + fs;
                WG_T acc[WG_CB];
                for (int64_t k = 0; k < fb; ++k) acc[k] = 0;
                for (int a = 0; a < n; ++a) {
                    const WG_T gar = m == 4 ? G4[a][r] : G2[a][r];
                    WG_IVDEP
                    for (int64_t k = 0; k < fb; ++k) acc[k] += gar * w[a][s2][k];
                }
                for (int64_t k = 0; k < fb; ++k) o[k] = acc[k];
            }
    }
}

/* The table's entries: m is the tile's side, 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)). */
static void CNNX_CAT(WG_NAME, _input)(int m, const WG_T *x, int64_t H, int64_t W, int64_t C,
                                       int64_t r0, int64_t c0, const WG_T *zeros, WG_T *v,
                                       int64_t pstride)
{
    if (m == 4) CNNX_CAT(WG_NAME, _input4)(x, H, W, C, r0, c0, zeros, v, pstride);
    else CNNX_CAT(WG_NAME, _input2)(x, H, W, C, r0, c0, zeros, v, pstride);
}

static void CNNX_CAT(WG_NAME, _output)(int m, const WG_T *mp, int64_t pstride, int64_t F,
                                        const WG_T *bias, int relu, int rows, int cols,
                                        WG_T *y, int64_t ldp, int64_t ldy)
{
    if (m == 4) CNNX_CAT(WG_NAME, _output4)(mp, pstride, F, bias, relu, rows, cols, y, ldp, ldy);
    else CNNX_CAT(WG_NAME, _output2)(mp, pstride, F, bias, relu, rows, cols, y, ldp, ldy);
}

static void CNNX_CAT(WG_NAME, _kernel)(int m, const WG_T *kernel, int64_t C, int64_t F,
                                        int64_t Fp, int64_t nr, int64_t c, WG_T *U)
{
    if (m == 4) CNNX_CAT(WG_NAME, _kernel4)(kernel, C, F, Fp, nr, c, U);
    else CNNX_CAT(WG_NAME, _kernel2)(kernel, C, F, Fp, nr, c, U);
}

#undef WG_CB
#undef WG_WHOLE_BLOCKS
#undef WG_IVDEP
#undef WG_BT6
#undef WG_AT6
#undef WG_A4
#undef WG_NAME
#undef WG_T
