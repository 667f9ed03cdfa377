/* Winograd F(2x2, 3x3) transforms for 3x3 stride-1 convolutions, NHWC, instantiated once
 * per (dtype, ISA). A tile is 2 x 2 output pixels; it reads a 4 x 4 input patch. The
 * product of a tile's patch with the 3 x 3 kernel becomes 16 independent products (one
 * per position p of the 4 x 4 transformed patch) of its C channels with the transformed
 * kernel U[p] (C x F), which the Cython driver runs as GEMM microkernel calls over blocks
 * of tiles: 16 C F multiplications a tile instead of the direct 36 C F.
 *
 *   input:   V = B^T d B,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   output:  Y = A^T M A,  A^T = [1 1 1 0; 0 1 -1 -1]
 *   kernel:  U = G g G^T,  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *
 * Every transform is a fixed sequence of additions per channel: the loops over channels
 * are contiguous and `restrict`, and the compiler vectorises them under the path's flags.
 *
 * Include after defining WG_NAME and WG_T.
 */

/* The patch of the tile whose top-left input pixel is (r0, c0) of an H x W x C image (rows
 * and columns outside the image read `zeros`, C zeros), transformed: position p = 4 i + j
 * goes to v + p * pstride, C values. */
static void CNNX_CAT(WG_NAME, _input)(const WG_T *restrict x, int64_t H, int64_t W, int64_t C,
                                       int64_t r0, int64_t c0, const WG_T *restrict zeros,
                                       WG_T *restrict v, int64_t pstride)
{
    const WG_T *d[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            const int64_t r = r0 + i, c = c0 + j;
            d[i][j] = (r >= 0 && r < H && c >= 0 && c < W) ? x + (r * W + c) * C : zeros;
        }
    const WG_T *restrict d00 = d[0][0], *restrict d01 = d[0][1], *restrict d02 = d[0][2],
               *restrict d03 = d[0][3], *restrict d10 = d[1][0], *restrict d11 = d[1][1],
               *restrict d12 = d[1][2], *restrict d13 = d[1][3], *restrict d20 = d[2][0],
               *restrict d21 = d[2][1], *restrict d22 = d[2][2], *restrict d23 = d[2][3],
               *restrict d30 = d[3][0], *restrict d31 = d[3][1], *restrict d32 = d[3][2],
               *restrict d33 = d[3][3];
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
 * values), plus bias (or NULL), then ReLU when asked, into rows/columns `rows` x `cols`
 * (1 or 2: a tile past the image's last odd row or column) of y, whose pixel (0, 0) is
 * at y and whose rows are ldy values apart (F a pixel). */
static void CNNX_CAT(WG_NAME, _output)(const WG_T *restrict m, int64_t pstride, int64_t F,
                                        const WG_T *restrict bias, int relu, int rows,
                                        int cols, WG_T *restrict y, int64_t ldy)
{
    const WG_T *restrict m0 = m, *restrict m1 = m + pstride, *restrict m2 = m + 2 * pstride,
               *restrict m3 = m + 3 * pstride, *restrict m4 = m + 4 * pstride,
               *restrict m5 = m + 5 * pstride, *restrict m6 = m + 6 * pstride,
               *restrict m7 = m + 7 * pstride, *restrict m8 = m + 8 * pstride,
               *restrict m9 = m + 9 * pstride, *restrict m10 = m + 10 * pstride,
               *restrict m11 = m + 11 * pstride, *restrict m12 = m + 12 * pstride,
               *restrict m13 = m + 13 * pstride, *restrict m14 = m + 14 * pstride,
               *restrict m15 = m + 15 * pstride;
    WG_T *restrict y00 = y, *restrict y01 = y + F, *restrict y10 = y + ldy,
         *restrict y11 = y + ldy + F;
    for (int64_t f = 0; f < F; ++f) {
        /* rows: s = A^T m */
        const WG_T s00 = m0[f] + m4[f] + m8[f], s01 = m1[f] + m5[f] + m9[f],
                   s02 = m2[f] + m6[f] + m10[f], s03 = m3[f] + m7[f] + m11[f];
        const WG_T s10 = m4[f] - m8[f] - m12[f], s11 = m5[f] - m9[f] - m13[f],
                   s12 = m6[f] - m10[f] - m14[f], s13 = m7[f] - m11[f] - m15[f];
        const WG_T b = bias ? bias[f] : (WG_T)0;
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

/* U[p, c, :] = (G g G^T)[p] for input channel c of the 3 x 3 x C x F kernel, g =
 * kernel[:, :, c, f] for each output channel f (zero for f in F : Fp), in double and
 * rounded once. U is 16 x C x Fp. */
static void CNNX_CAT(WG_NAME, _kernel)(const WG_T *restrict kernel, int64_t C, int64_t F,
                                        int64_t Fp, int64_t c, WG_T *restrict U)
{
    for (int64_t f = 0; f < F; ++f) {
        double g[3][3], t[4][3];
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) g[i][j] = kernel[((i * 3 + j) * C + c) * F + f];
        for (int j = 0; j < 3; ++j) {          /* t = G g */
            t[0][j] = g[0][j];
            t[1][j] = (g[0][j] + g[1][j] + g[2][j]) * 0.5;
            t[2][j] = (g[0][j] - g[1][j] + g[2][j]) * 0.5;
            t[3][j] = g[2][j];
        }
        for (int i = 0; i < 4; ++i) {          /* U = t G^T */
            U[((4 * i + 0) * C + c) * Fp + f] = (WG_T)t[i][0];
            U[((4 * i + 1) * C + c) * Fp + f] = (WG_T)((t[i][0] + t[i][1] + t[i][2]) * 0.5);
            U[((4 * i + 2) * C + c) * Fp + f] = (WG_T)((t[i][0] - t[i][1] + t[i][2]) * 0.5);
            U[((4 * i + 3) * C + c) * Fp + f] = (WG_T)t[i][2];
        }
    }
    for (int p = 0; p < 16; ++p)
        for (int64_t f = F; f < Fp; ++f) U[(p * C + c) * Fp + f] = 0;
}

#undef WG_NAME
#undef WG_T
