/* The light-enhancement curves of zerodce.curves in one pass over memory.
 *
 * Compiled on first use by zerodce/_native.py (plain C, no Python or torch headers,
 * so it builds in a second) and called through ctypes; the pure PyTorch path is
 * the fallback and the definition these kernels are tested against.
 *
 * Each image row is read once into a small float buffer (converting from uint8
 * where the input is 8-bit), gets its curve maps (a row of full-resolution maps,
 * or a bilinear row of low-resolution maps), goes through every curve step while
 * it is in L1 cache, and is written once, clamped to [0, 1] or rounded to uint8.
 * The buffer keeps the image's own channel order (planar or interleaved), so the
 * step loop runs over 3 * width contiguous floats and the compiler vectorises it.
 *
 * zerodce/_native.py checks every argument before calling (shapes, sizes against
 * the padded size, strides, overlaps); the kernels still clamp every index they
 * derive (rows and columns of the low-resolution maps, source pixels) and return
 * BAD_ARGS for sizes that could not be right, so a wrong call cannot read or write
 * outside the buffers those sizes describe.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* a * b + c, in one instruction (and one rounding) where the CPU has fused multiply-adds:
 * GCC does not contract a * b + c by itself in ISO C mode, and without FMA fmaf is a slow call. */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* Return codes: 0 done, -1 out of memory, -2 arguments out of range (nothing done). */
#define OUT_OF_MEMORY (-1)
#define BAD_ARGS (-2)

/* Where an image's rows are: element strides of channel, row and column. */
typedef struct {
    void *data;
    int u8;  /* 0: float32 in [0, 1]; 1: uint8 (0..255); LEAST_SATURATED: uint8, read by least_saturated_row */
    int64_t sc, sh, sw;
} Plane;

#define LEAST_SATURATED 2

/* Position in the row buffer of channel c, column j. */
static inline int64_t slot(int interleaved, int width, int c, int j) {
    return interleaved ? (int64_t)j * 3 + c : (int64_t)c * width + j;
}

/* ITU-R BT.601 luma weights, as zerodce.io converts colour to gray. */
static const float LUMA[3] = {0.299f, 0.587f, 0.114f};

static inline float min2(float a, float b) { return a < b ? a : b; }
static inline float max2(float a, float b) { return a > b ? a : b; }

/* n pixels of 8-bit levels in v (channel c of pixel k at v[c * plane + k * step]) become, in
 * place, the colour nearest to grey among those their levels stand for (each channel within half a
 * level), in [0, 1]: the definition, case by case, is zerodce.curves.least_saturated_values,
 * computed here in the same order. Branch-free; inlined with constant strides, so that it vectorises
 * in either layout. */
static inline __attribute__((always_inline)) void least_saturated_pixels(float *v, int64_t plane, int64_t step,
                                                                         int n) {
    for (int k = 0; k < n; k++) {
        float *p = v + k * step;
        const float c0 = p[0], c1 = p[plane], c2 = p[2 * plane];
        const float low = min2(min2(c0, c1), c2), high = max2(max2(c0, c1), c2);
        const float sum = c0 + c1 + c2, mid = sum - low - high;
        const float above = (sum + 0.5f) * (1.0f / 3.0f), below = (sum - 0.5f) * (1.0f / 3.0f);
        const float apart = above >= mid + 0.5f ? above : below <= mid - 0.5f ? below : (low + high) * 0.5f;
        const float luma = LUMA[0] * c0 + LUMA[1] * c1 + LUMA[2] * c2;
        const float t = high - low <= 1.0f ? min2(max2(luma, high - 0.5f), low + 0.5f) : apart;
        p[0] = min2(max2(t, c0 - 0.5f), c0 + 0.5f) * (1.0f / 255.0f);
        p[plane] = min2(max2(t, c1 - 0.5f), c1 + 0.5f) * (1.0f / 255.0f);
        p[2 * plane] = min2(max2(t, c2 - 0.5f), c2 + 0.5f) * (1.0f / 255.0f);
    }
}

/* least_saturated_pixels over a row buffer of width pixels, in its layout. */
static void least_saturated_row(float *v, int width, int interleaved) {
    if (interleaved)
        least_saturated_pixels(v, 1, 3, width);
    else
        least_saturated_pixels(v, width, 1, width);
}

static void load_row(const Plane *x, int r, int width, int interleaved, float *v) {
    const int64_t base = (int64_t)r * x->sh;
    if (x->u8) {
        const uint8_t *p = (const uint8_t *)x->data + base;
        const float scale = x->u8 == LEAST_SATURATED ? 1.0f : 1.0f / 255.0f;
        if (interleaved && x->sw == 3 && x->sc == 1) {
            for (int64_t k = 0; k < 3 * (int64_t)width; k++) v[k] = p[k] * scale;
        } else if (x->sw == 3 && x->sc == 1) {  /* interleaved pixels into planes */
            for (int j = 0; j < width; j++) {
                v[j] = p[3 * j] * scale;
                v[width + j] = p[3 * j + 1] * scale;
                v[2 * width + j] = p[3 * j + 2] * scale;
            }
        } else {
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < width; j++) v[slot(interleaved, width, c, j)] = p[c * x->sc + j * x->sw] * scale;
        }
        if (x->u8 == LEAST_SATURATED) least_saturated_row(v, width, interleaved);
        return;
    }
    const float *p = (const float *)x->data + base;
    if (interleaved && x->sw == 3 && x->sc == 1) {
        for (int64_t k = 0; k < 3 * (int64_t)width; k++) v[k] = p[k];
        return;
    }
    if (!interleaved && x->sw == 1) {
        for (int c = 0; c < 3; c++)
            for (int j = 0; j < width; j++) v[(int64_t)c * width + j] = p[c * x->sc + j];
        return;
    }
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < width; j++) v[slot(interleaved, width, c, j)] = p[c * x->sc + j * x->sw];
}

static void store_row(const Plane *y, int r, int width, int interleaved, float *v) {
    const int64_t n = 3 * (int64_t)width, base = (int64_t)r * y->sh;
    /* Comparisons, not fminf/fmaxf: they vectorise, and NaN stays NaN as in torch.clamp. */
    for (int64_t k = 0; k < n; k++) v[k] = v[k] < 0.0f ? 0.0f : v[k] > 1.0f ? 1.0f : v[k];
    const int contiguous = interleaved ? (y->sw == 3 && y->sc == 1) : (y->sw == 1);
    if (y->u8) {
        uint8_t *p = (uint8_t *)y->data + base;
        for (int64_t k = 0; k < n; k++) v[k] = nearbyintf(v[k] * 255.0f);  /* half to even, as torch.round */
        if (interleaved && contiguous) {
            for (int64_t k = 0; k < n; k++) p[k] = (uint8_t)v[k];
            return;
        }
        for (int c = 0; c < 3; c++)
            for (int j = 0; j < width; j++) p[c * y->sc + j * y->sw] = (uint8_t)v[slot(interleaved, width, c, j)];
        return;
    }
    float *p = (float *)y->data + base;
    if (interleaved && contiguous) {
        for (int64_t k = 0; k < n; k++) p[k] = v[k];
        return;
    }
    if (contiguous) {
        for (int c = 0; c < 3; c++)
            for (int j = 0; j < width; j++) p[c * y->sc + j] = v[(int64_t)c * width + j];
        return;
    }
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < width; j++) p[c * y->sc + j * y->sw] = v[slot(interleaved, width, c, j)];
}

/* Row r of y from the 3 planes p (width values each, any of them before clamping), as store_row
 * stores them; v: a scratch row of 3 * width floats. */
static void store_planes(const Plane *y, int r, int width, int interleaved, const float *const p[3], float *v) {
    if (y->u8 && interleaved && y->sw == 3 && y->sc == 1) {  /* 8-bit pixels: straight from the planes */
        uint8_t *o = (uint8_t *)y->data + (int64_t)r * y->sh;
        for (int c = 0; c < 3; c++) {
            const float *restrict q = p[c];
            float *restrict t = v + (int64_t)c * width;
            for (int j = 0; j < width; j++) t[j] = nearbyintf((q[j] < 0.0f ? 0.0f : q[j] > 1.0f ? 1.0f : q[j]) * 255.0f);
        }
        for (int j = 0; j < width; j++) {
            o[3 * j] = (uint8_t)v[j];
            o[3 * j + 1] = (uint8_t)v[width + j];
            o[3 * j + 2] = (uint8_t)v[2 * width + j];
        }
        return;
    }
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < width; j++) v[slot(interleaved, width, c, j)] = p[c][j];
    store_row(y, r, width, interleaved, v);
}

/* Values per pass of the step loop: a chunk of the row and its curves stay in L1 through all steps. */
#define CHUNK 512

/* x <- x + alpha * (x - x * x), the step of zerodce.curves.curve_step. */
static inline void curve_step(float *restrict v, const float *restrict a, int64_t n) {
    for (int64_t k = 0; k < n; k++) v[k] = v[k] + a[k] * (v[k] - v[k] * v[k]);
}

/* `steps` steps on n values, the RGB groups of curves in turn. With `slope` set, it also
 * gets the derivative of the whole curve at each value (the chain rule, step by step):
 * d/dx of one step is 1 + alpha * (1 - 2x). */
static void curve_steps(float *v, float *slope, float *const *alphas, int groups, int steps, int64_t n) {
    for (int64_t k0 = 0; k0 < n; k0 += CHUNK) {
        const int64_t m = k0 + CHUNK < n ? CHUNK : n - k0;
        if (slope) {
            float *restrict d = slope + k0, *restrict x = v + k0;
            for (int64_t k = 0; k < m; k++) d[k] = 1.0f;
            for (int s = 0; s < steps; s++) {
                const float *restrict a = alphas[s % groups] + k0;
                for (int64_t k = 0; k < m; k++) {
                    d[k] *= MADD(a[k], MADD(-2.0f, x[k], 1.0f), 1.0f);
                    x[k] = x[k] + a[k] * (x[k] - x[k] * x[k]);
                }
            }
        } else {
            for (int s = 0; s < steps; s++) curve_step(v + k0, alphas[s % groups] + k0, m);
        }
    }
}

/* The luma-weighted slope of one row into gain (width floats). */
static void store_gain(const float *slope, int width, int interleaved, float *gain) {
    for (int j = 0; j < width; j++)
        gain[j] = LUMA[0] * slope[slot(interleaved, width, 0, j)] + LUMA[1] * slope[slot(interleaved, width, 1, j)]
                  + LUMA[2] * slope[slot(interleaved, width, 2, j)];
}

static int begin(int width, int buffers, float **v, float ***alphas) {
    /* v, then `buffers` rows, then one row for the slope */
    *v = malloc(sizeof(float) * 3 * (size_t)width * (size_t)(buffers + 2));
    *alphas = malloc(sizeof(float *) * (size_t)buffers);
    if (!*v || !*alphas) {
        free(*v);
        free(*alphas);
        return -1;
    }
    for (int g = 0; g < buffers; g++) (*alphas)[g] = *v + 3 * (size_t)width * (size_t)(g + 1);
    return 0;
}

static float *slope_row(float *v, int width, int buffers) { return v + 3 * (size_t)width * (size_t)(buffers + 1); }

/* Rows of x with full-resolution maps: `groups` RGB groups (3 * groups channels of
 * `maps`, channel stride maps.sc, group stride 3 * maps.sc), applied in turn for
 * `steps` steps. Where gain is not NULL, row r of it (row stride gain_sh floats) gets
 * the luma-weighted derivative of the curves at each pixel. Returns 0, OUT_OF_MEMORY or BAD_ARGS. */
int zdce_apply_maps(Plane x, Plane out, int rows, int width, int interleaved, Plane maps, int groups, int steps,
                    float *gain, int64_t gain_sh) {
    if (rows < 0 || width < 0 || groups < 1 || steps < 0) return BAD_ARGS;
    if (rows == 0 || width == 0) return 0;
    float *v, **alphas;
    if (begin(width, groups, &v, &alphas)) return OUT_OF_MEMORY;
    const float *m = (const float *)maps.data;
    for (int r = 0; r < rows; r++) {
        load_row(&x, r, width, interleaved, v);
        for (int g = 0; g < groups; g++)
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < width; j++)
                    alphas[g][slot(interleaved, width, c, j)] = m[(3 * g + c) * maps.sc + r * maps.sh + j * maps.sw];
        float *slope = gain ? slope_row(v, width, groups) : NULL;
        curve_steps(v, slope, alphas, groups, steps, 3 * (int64_t)width);
        if (gain) store_gain(slope, width, interleaved, gain + r * gain_sh);
        store_row(&out, r, width, interleaved, v);
    }
    free(alphas);
    free(v);
    return 0;
}

/* Where output column j reads the low-resolution maps: columns j0[j], j0[j] + step[j] with
 * weight w1[j] on the second, as F.interpolate(mode="linear", align_corners=True) computes them.
 * Columns past the padded width (which a right call never has) read the last map column. */
static void stretch_columns(int sw, int padded_w, int width, int *j0, int *step, float *w1) {
    const float scale = padded_w > 1 ? (float)(sw - 1) / (float)(padded_w - 1) : 0.0f;
    for (int j = 0; j < width; j++) {
        const float src = scale * (float)j;
        j0[j] = (int)src;
        w1[j] = src - (float)j0[j];
        if (j0[j] >= sw - 1) {
            j0[j] = sw - 1;
            w1[j] = 0.0f;
        }
        step[j] = j0[j] < sw - 1;
    }
}

/* One row of a 3-channel map (3 x sh x sw, contiguous) stretched over the row buffer's columns. */
static void stretch_row(const float *small, int sh, int sw, int row, int width, int interleaved, const int *j0,
                        const int *step, const float *w1, float *dst) {
    for (int c = 0; c < 3; c++) {
        const float *s = small + ((int64_t)c * sh + row) * sw;
        for (int j = 0; j < width; j++)
            dst[slot(interleaved, width, c, j)] = (1.0f - w1[j]) * s[j0[j]] + w1[j] * s[j0[j] + step[j]];
    }
}

/* The rows of an image whose curves are `small` (3 * groups x sh x sw, contiguous), bilinearly
 * stretched (align_corners) over the padded size padded_h x padded_w, the RGB groups applied in
 * turn for `steps` steps: one row at a time (low_res_row), fastest in order. x points at the row
 * at row_start of the padded image. */
typedef struct {
    Plane x;
    const float *small;
    int width, interleaved, groups, sh, sw, row_start, steps, cached;
    double scale;
    float *v, **bufs;  /* bufs: the curves of this row, then the stretched source rows above and below it, per group */
    int *columns;
} LowRes;

static int low_res_begin(LowRes *s, Plane x, int width, int interleaved, const float *small, int groups, int sh,
                         int sw, int padded_h, int padded_w, int row_start, int steps) {
    *s = (LowRes){x, small, width, interleaved, groups, sh, sw, row_start, steps, -1, 0.0, NULL, NULL, NULL};
    s->columns = malloc(sizeof(int) * 2 * (size_t)width);
    if (!s->columns || begin(width, 3 * groups + 1, &s->v, &s->bufs)) {
        free(s->columns);
        return OUT_OF_MEMORY;
    }
    stretch_columns(sw, padded_w, width, s->columns, s->columns + width, s->bufs[3 * groups]);
    s->scale = padded_h > 1 ? (double)(sh - 1) / (double)(padded_h - 1) : 0.0;
    return 0;
}

static void low_res_end(LowRes *s) {
    free(s->bufs);
    free(s->v);
    free(s->columns);
}

/* Row r (from x's first) through the curves, in s->v (the image's channel order; not yet clamped);
 * where gain is not NULL, it gets the row's luma-weighted slope. */
static void low_res_row(LowRes *s, int r, float *gain) {
    const int groups = s->groups, sh = s->sh, width = s->width;
    float **above = s->bufs + groups, **below = s->bufs + 2 * groups, *w1 = s->bufs[3 * groups];
    const int64_t n = 3 * (int64_t)width, plane = 3 * (int64_t)sh * s->sw;
    const double src = (double)(s->row_start + r) * s->scale;
    int i0 = (int)floor(src);
    if (i0 > sh - 1) i0 = sh - 1;
    if (i0 < 0) i0 = 0;
    const int i1 = i0 + 1 < sh ? i0 + 1 : sh - 1;
    const float fy = (float)(src - i0);
    for (int g = 0; g < groups; g++) {
        const float *map = s->small + g * plane;
        if (i0 != s->cached) {  /* source rows change every scale_factor output rows */
            if (i0 == s->cached + 1 && s->cached >= 0) {  /* the old lower row is the new upper one */
                float *t = above[g];
                above[g] = below[g];
                below[g] = t;
            } else {
                stretch_row(map, sh, s->sw, i0, width, s->interleaved, s->columns, s->columns + width, w1, above[g]);
            }
            stretch_row(map, sh, s->sw, i1, width, s->interleaved, s->columns, s->columns + width, w1, below[g]);
        }
        const float *restrict a = above[g], *restrict b = below[g];
        float *restrict alpha = s->bufs[g];
        for (int64_t k = 0; k < n; k++) alpha[k] = a[k] + fy * (b[k] - a[k]);
    }
    s->cached = i0;
    load_row(&s->x, r, width, s->interleaved, s->v);
    float *slope = gain ? slope_row(s->v, width, 3 * groups + 1) : NULL;
    curve_steps(s->v, slope, s->bufs, groups, s->steps, n);
    if (gain) store_gain(slope, width, s->interleaved, gain);
}

/* Rows [row_start, row_start + rows) of an image whose curves are `small` (see LowRes) into out.
 * x and out (and gain, as for zdce_apply_maps) point at row row_start.
 * Returns 0, OUT_OF_MEMORY or BAD_ARGS. */
int zdce_apply_low_res(Plane x, Plane out, int rows, int width, int interleaved, const float *small, int groups,
                       int sh, int sw, int padded_h, int padded_w, int row_start, int steps, float *gain,
                       int64_t gain_sh) {
    if (rows < 0 || width < 0 || groups < 1 || sh < 1 || sw < 1 || padded_h < 1 || padded_w < 1 || row_start < 0
        || steps < 0)
        return BAD_ARGS;
    if (rows == 0 || width == 0) return 0;
    LowRes s;
    if (low_res_begin(&s, x, width, interleaved, small, groups, sh, sw, padded_h, padded_w, row_start, steps))
        return OUT_OF_MEMORY;
    for (int r = 0; r < rows; r++) {
        low_res_row(&s, r, gain ? gain + r * gain_sh : NULL);
        store_row(&out, r, width, interleaved, s.v);
    }
    low_res_end(&s);
    return 0;
}

/* torch.lerp: a + w * (b - a), from the nearer end for accuracy. */
static inline float lerp(float a, float b, float w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}

static inline float value(const Plane *x, int64_t at) {
    return x->u8 ? ((const uint8_t *)x->data)[at] * (1.0f / 255.0f) : ((const float *)x->data)[at];
}

/* Source index and weight of output i of Zero-DCE++'s downscaling by `factor` of n values
 * (zerodce.models._dce_net.downscale: bilinear at (i + 0.5) * factor - 0.5, edges replicated). */
static inline void source(int i, int factor, int n, int *i0, int *i1, float *w) {
    const double src = (i + 0.5) * factor - 0.5;
    const int lo = (int)floor(src);
    *w = (float)(src - lo);
    *i0 = lo < 0 ? 0 : lo < n - 1 ? lo : n - 1;
    *i1 = lo + 1 < 0 ? 0 : lo + 1 < n - 1 ? lo + 1 : n - 1;
}

/* Downscale `channels` planes of x (height x width) by `factor` into out
 * (channels x ceil(height / factor) x ceil(width / factor), contiguous float),
 * reading only the 2 x 2 pixels around each output pixel. Returns 0, or BAD_ARGS. */
int zdce_downscale(Plane x, int channels, int height, int width, int factor, float *out) {
    if (channels < 0 || height < 0 || width < 0 || factor < 1) return BAD_ARGS;
    const int oh = (height + factor - 1) / factor, ow = (width + factor - 1) / factor;
    for (int i = 0; i < oh; i++) {
        int r0, r1;
        float wr;
        source(i, factor, height, &r0, &r1, &wr);
        for (int j = 0; j < ow; j++) {
            int c0, c1;
            float wc;
            source(j, factor, width, &c0, &c1, &wc);
            for (int c = 0; c < channels; c++) {
                const int64_t base = c * x.sc;
                const float left = lerp(value(&x, base + r0 * x.sh + c0 * x.sw), value(&x, base + r1 * x.sh + c0 * x.sw), wr);
                const float right = lerp(value(&x, base + r0 * x.sh + c1 * x.sw), value(&x, base + r1 * x.sh + c1 * x.sw), wr);
                out[((int64_t)c * oh + i) * ow + j] = lerp(left, right, wc);
            }
        }
    }
    return 0;
}

/* Biweights below this are dropped (their squares, < 1e-8, do not change the result): tiny
 * weights would otherwise become subnormal floats, which cost ~100x on x86. As in denoise.py. */
#define DENOISE_T_MIN 1e-4f

/* Columns [j0, j1) of one row of a denoising pass: the 3 x 3 taps `shift` columns apart in
 * the rows above (u), at (m) and below (l) the centre, 3 planes each (u0, u1, u2...), weighted
 * by the colour distances between the same positions of the guide (gu0, ...); where clamp is
 * set, tap columns are clamped to [0, width). Without clamping the loop is branch-free and
 * vectorises. The binomial weights are scaled by 16 (corners 1, sides 2, centre 4), which the
 * division by the weights' sum cancels; corners and sides are summed apart, so that the sums
 * are two short chains of additions instead of one long one. */
static inline __attribute__((always_inline)) void denoise_span(
    const float *restrict u0, const float *restrict u1, const float *restrict u2, const float *restrict m0,
    const float *restrict m1, const float *restrict m2, const float *restrict l0, const float *restrict l1,
    const float *restrict l2, const float *restrict gu0, const float *restrict gu1, const float *restrict gu2,
    const float *restrict gm0, const float *restrict gm1, const float *restrict gm2, const float *restrict gl0,
    const float *restrict gl1, const float *restrict gl2, const float *restrict inv, float *restrict o0,
    float *restrict o1, float *restrict o2, int j0, int j1, int shift, int clamp, int self, int width) {
    /* The outputs never alias the inputs (checked by the caller): let the compiler vectorise. */
#pragma GCC ivdep
    for (int j = j0; j < j1; j++) {
        int jl = j - shift, jr = j + shift;
        if (clamp) {
            jl = jl < 0 ? 0 : jl;
            jr = jr > width - 1 ? width - 1 : jr;
        }
        const float c0 = m0[j], c1 = m1[j], c2 = m2[j], h = inv[j];
        /* self: the guide is the input itself */
        const float e0 = self ? c0 : gm0[j], e1 = self ? c1 : gm1[j], e2 = self ? c2 : gm2[j];
        float ca0 = 0.0f, ca1 = 0.0f, ca2 = 0.0f, cw = 0.0f;  /* corners */
        float sa0 = 0.0f, sa1 = 0.0f, sa2 = 0.0f, sw = 0.0f;  /* sides */
#define DENOISE_TAP(p0, p1, p2, q0, q1, q2, k, a0, a1, a2, wsum)                                   \
        {                                                                                          \
            const float d0 = (self ? p0 : q0)[k] - e0, d1 = (self ? p1 : q1)[k] - e1,             \
                        d2 = (self ? p2 : q2)[k] - e2;                                             \
            float t = MADD(-MADD(d2, d2, MADD(d1, d1, d0 * d0)), h, 1.0f);                         \
            t = t > DENOISE_T_MIN ? t : 0.0f;                                                      \
            const float w = t * t;                                                                 \
            a0 = MADD(w, p0[k], a0);                                                               \
            a1 = MADD(w, p1[k], a1);                                                               \
            a2 = MADD(w, p2[k], a2);                                                               \
            wsum += w;                                                                             \
        }
        DENOISE_TAP(u0, u1, u2, gu0, gu1, gu2, jl, ca0, ca1, ca2, cw)
        DENOISE_TAP(u0, u1, u2, gu0, gu1, gu2, j, sa0, sa1, sa2, sw)
        DENOISE_TAP(u0, u1, u2, gu0, gu1, gu2, jr, ca0, ca1, ca2, cw)
        DENOISE_TAP(m0, m1, m2, gm0, gm1, gm2, jl, sa0, sa1, sa2, sw)
        DENOISE_TAP(m0, m1, m2, gm0, gm1, gm2, jr, sa0, sa1, sa2, sw)
        DENOISE_TAP(l0, l1, l2, gl0, gl1, gl2, jl, ca0, ca1, ca2, cw)
        DENOISE_TAP(l0, l1, l2, gl0, gl1, gl2, j, sa0, sa1, sa2, sw)
        DENOISE_TAP(l0, l1, l2, gl0, gl1, gl2, jr, ca0, ca1, ca2, cw)
#undef DENOISE_TAP
        /* the centre tap has t = 1 (weight 4); h = 0 (nothing amplified) keeps the pixel */
        const float k = 1.0f / (MADD(2.0f, sw, cw) + 4.0f);
        o0[j] = h == 0.0f ? c0 : MADD(4.0f, c0, MADD(2.0f, sa0, ca0)) * k;
        o1[j] = h == 0.0f ? c1 : MADD(4.0f, c1, MADD(2.0f, sa1, ca1)) * k;
        o2[j] = h == 0.0f ? c2 : MADD(4.0f, c2, MADD(2.0f, sa2, ca2)) * k;
    }
}

/* denoise_span with `self` (and `clamp`) fixed, each its own function: inlined together into
 * one caller, GCC vectorised only half of the copies. */
#define DENOISE_SPAN_ARGS                                                                                        \
    const float *u0, const float *u1, const float *u2, const float *m0, const float *m1, const float *m2,        \
        const float *l0, const float *l1, const float *l2, const float *gu0, const float *gu1, const float *gu2,   \
        const float *gm0, const float *gm1, const float *gm2, const float *gl0, const float *gl1, const float *gl2, \
        const float *inv, float *o0, float *o1, float *o2, int j0, int j1, int shift, int width
#define DENOISE_SPAN_CALL(clamp, self)                                                                           \
    denoise_span(u0, u1, u2, m0, m1, m2, l0, l1, l2, gu0, gu1, gu2, gm0, gm1, gm2, gl0, gl1, gl2, inv, o0, o1, o2, \
                 j0, j1, shift, clamp, self, width)
static __attribute__((noinline)) void span_guided(DENOISE_SPAN_ARGS) { DENOISE_SPAN_CALL(0, 0); }
static __attribute__((noinline)) void span_guided_clamped(DENOISE_SPAN_ARGS) { DENOISE_SPAN_CALL(1, 0); }
static __attribute__((noinline)) void span_self(DENOISE_SPAN_ARGS) { DENOISE_SPAN_CALL(0, 1); }
static __attribute__((noinline)) void span_self_clamped(DENOISE_SPAN_ARGS) { DENOISE_SPAN_CALL(1, 1); }
#undef DENOISE_SPAN_CALL
#undef DENOISE_SPAN_ARGS

/* One row of a pass of the edge-stopping a-trous filter of zerodce.enhance.denoise (its
 * definition is denoise_level there): rows u, m, l (the rows `d` above, at and below the
 * centre, edges clamped; 3 plane pointers each) and the same rows of the guide, gain row g,
 * into o. The 3 x 3 taps are `d` apart with weights 1/4, 1/2, 1/4 per axis, edges clamped. A
 * tap's weight is multiplied by (1 - d2 / h^2)^2 where d2 < h^2 and 0 elsewhere (Tukey's
 * biweight), d2 being the squared colour distance between tap and centre in the guide and
 * h = hscale * sqrt(max(g^2 - 1, 0)) at the centre; h = 0 keeps the centre value. inv is a
 * scratch row. */
static void denoise_row(const float *const u[3], const float *const m[3], const float *const l[3],
                        const float *const gu[3], const float *const gm[3], const float *const gl[3], const float *g,
                        float hscale, int d, int width, float *inv, float *const o[3]) {
    for (int j = 0; j < width; j++) {
        const float e = g[j] * g[j] - 1.0f;
        inv[j] = e > 0.0f && hscale > 0.0f ? 1.0f / (hscale * hscale * e) : 0.0f;
    }
    /* columns whose taps are all inside the row: no clamping, and the loop vectorises */
    const int lo = d < width ? d : width, hi = width - d > lo ? width - d : lo;
#define DENOISE_ROW(fn, j0, j1)                                                                                     \
    fn(u[0], u[1], u[2], m[0], m[1], m[2], l[0], l[1], l[2], gu[0], gu[1], gu[2], gm[0], gm[1], gm[2], gl[0], gl[1],  \
       gl[2], inv, o[0], o[1], o[2], j0, j1, d, width)
    /* guided by its own input (every level after the first): one load per tap */
    if (gu[0] == u[0] && gu[1] == u[1] && gu[2] == u[2] && gm[0] == m[0] && gm[1] == m[1] && gm[2] == m[2]
        && gl[0] == l[0] && gl[1] == l[1] && gl[2] == l[2]) {
        DENOISE_ROW(span_self_clamped, 0, lo);
        DENOISE_ROW(span_self, lo, hi);
        DENOISE_ROW(span_self_clamped, hi, width);
    } else {
        DENOISE_ROW(span_guided_clamped, 0, lo);
        DENOISE_ROW(span_guided, lo, hi);
        DENOISE_ROW(span_guided_clamped, hi, width);
    }
#undef DENOISE_ROW
}

/* The 3 plane pointers of row r of an image of 3 planes `plane` floats apart, rows `width` floats apart. */
static inline void planes_at(const float *base, int64_t plane, int width, int r, const float *p[3]) {
    p[0] = base + (int64_t)r * width;
    p[1] = p[0] + plane;
    p[2] = p[1] + plane;
}

/* One row of the 3 x 3 binomial blur (1/4, 1/2, 1/4 per axis, edges clamped) of one plane,
 * from its rows above (a), at (m) and below (b) into o. */
static void smooth_row(const float *restrict a, const float *restrict m, const float *restrict b, float *restrict o,
                       int width) {
    /* vertical then horizontal, the column sums recomputed per output (3 loads): vectorises */
#define COLUMN(j) (0.25f * a[j] + 0.5f * m[j] + 0.25f * b[j])
    if (width == 1) {
        o[0] = COLUMN(0);
        return;
    }
    o[0] = 0.75f * COLUMN(0) + 0.25f * COLUMN(1);
#pragma GCC ivdep
    for (int j = 1; j < width - 1; j++) o[j] = 0.25f * COLUMN(j - 1) + 0.5f * COLUMN(j) + 0.25f * COLUMN(j + 1);
    o[width - 1] = 0.25f * COLUMN(width - 2) + 0.75f * COLUMN(width - 1);
#undef COLUMN
}

/* Levels of the whole filter at most (its tap spacing, 2^(levels - 1), stays an int). */
#define DENOISE_MAX_LEVELS 8
/* Levels at full resolution; later ones run at half resolution (zerodce.enhance.denoise's
 * FULL_RESOLUTION_PASSES): on means of 2 x 2 pixels, taps half as far apart, and what they change
 * is upsampled (bilinear) and added to the last full-resolution level. */
#define FULL_LEVELS 2

/* The state of zdce_denoise: all passes streamed over rows. Stage 0 is the guide of the
 * first level (the blur of y), stage s >= 1 is level s (taps 2^(s - 1) apart). Each stage
 * keeps its latest rows in a ring, as many as its readers may still need; stage s's reader
 * is level s + 1, whose taps reach 2^s rows up and down, so 2^(s + 1) + 1 rows. Levels after
 * FULL_LEVELS work on rows of hw columns (half resolution): the box stage (`box`: 3 colour
 * planes and the gain, means of 2 x 2 pixels of level FULL_LEVELS) feeds them, and the last
 * one's change, upsampled, is added to level FULL_LEVELS's row (finish_row); both rings are
 * then read at rows behind the newest, so they hold more. A stage computes a row when its
 * reader asks for it (advance), so the rows of every pass stay in L2 cache instead of a whole
 * image going through memory 4 times. */
typedef struct {
    const float *y, *gain;
    int height, width, levels;
    const float *hscale;
    float *ring[DENOISE_MAX_LEVELS + 1];
    int size[DENOISE_MAX_LEVELS + 1], next[DENOISE_MAX_LEVELS + 1];
    float *inv, *last;
    /* Where y and gain are computed row by row instead (zdce_denoise_low_res): the curves, and
     * rings of their last Y_ROWS rows and gain_rows gain rows; next_source is the next row. */
    LowRes *source;
    float *yring, *gring;
    int gain_rows, next_source;
    /* Half resolution (levels > FULL_LEVELS): the image's row and column parity of row and
     * column 0 (pairs are the whole image's even and odd rows), its size, the box ring. */
    int py, px, hh, hw;
    float *box, *rows;
    int box_size, next_box;
} Stream;

/* Rows of y a stream holds when it computes them: levels 1 and the guide read 3 rows, one ahead. */
#define Y_ROWS 4

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The half-resolution row (or column) whose centre is at or just above pixel r, for parity p:
 * pixel r lies at (r + p - 0.5) / 2 in half-resolution pixels (r + p >= 0). */
static inline int half_below(int r, int p) { return (r + p + 1) / 2 - 1; }

static int is_half(const Stream *f, int s) { return s > FULL_LEVELS; }

static void stage_rows(const Stream *f, int s, int r, const float *p[3]) {
    if (s < 0 && !f->source) {
        planes_at(f->y, (int64_t)f->height * f->width, f->width, r, p);
        return;
    }
    const int w = s >= 0 && is_half(f, s) ? f->hw : f->width;
    const float *row = s < 0 ? f->yring + (int64_t)(r % Y_ROWS) * 3 * w
                             : f->ring[s] + (int64_t)(r % f->size[s]) * 3 * w;
    planes_at(row, w, w, 0, p);
}

/* Row i of the box stage: 3 colour planes and the gain plane, hw floats each. */
static float *box_row(const Stream *f, int i) { return f->box + (int64_t)(i % f->box_size) * 4 * f->hw; }

static const float *gain_row(const Stream *f, int r) {
    return f->source ? f->gring + (int64_t)(r % f->gain_rows) * f->width : f->gain + (int64_t)r * f->width;
}

/* Computes y (and its gain) up to row `upto`, where the stream has a curve source: clamped to
 * [0, 1] and in planes, as the curve kernels store a float image. */
static void advance_source(Stream *f, int upto) {
    const int w = f->width;
    if (!f->source) return;
    for (; f->next_source <= upto; f->next_source++) {
        const int r = f->next_source;
        low_res_row(f->source, r, f->levels ? f->gring + (int64_t)(r % f->gain_rows) * w : NULL);
        const float *restrict v = f->source->v;  /* in planes (zdce_denoise_low_res) */
        float *restrict o = f->yring + (int64_t)(r % Y_ROWS) * 3 * w;
        for (int64_t k = 0; k < 3 * (int64_t)w; k++) o[k] = v[k] < 0.0f ? 0.0f : v[k] > 1.0f ? 1.0f : v[k];
    }
}

static void advance(Stream *f, int s, int upto);

/* Means of pairs of columns (the image's even and odd ones, edges clamped) of the mean of rows a
 * and b, into o (hw values): the order of zerodce.enhance.denoise.half_resolution. rows: a
 * scratch row of width. */
static void box_pairs(const float *restrict a, const float *restrict b, int width, int px, int hw,
                      float *restrict rows, float *restrict o) {
    for (int x = 0; x < width; x++) rows[x] = (a[x] + b[x]) * 0.5f;
    /* half column j pairs columns 2j - px and 2j - px + 1: with p = rows - px, p[2j] and p[2j + 1],
     * a constant stride that vectorises where both are inside the row; the ends clamped */
    const float *p = rows - px;
    const int j0 = px, j1 = width - 2 + px >= 0 ? (width - 2 + px) / 2 : -1;  /* 2j - px >= 0, 2j - px + 1 < width */
    for (int j = j0; j <= j1; j++) o[j] = (p[2 * j] + p[2 * j + 1]) * 0.5f;
    for (int j = 0; j < hw; j++)
        if (j < j0 || j > j1)
            o[j] = (rows[clampi(2 * j - px, 0, width - 1)] + rows[clampi(2 * j - px + 1, 0, width - 1)]) * 0.5f;
}

/* o[x] = base[x] + the bilinear upsampling of half-resolution row r (hw values) at column x, edges
 * clamped (the order of zerodce.enhance.denoise.upsample_correction): pixel x lies at (x + px - 0.5)
 * / 2, so x = 2k - px lies 3/4 of the way from k - 1 to k and x = 2k + 1 - px 1/4 of the way
 * from k to k + 1. */
static void upsample_add(const float *restrict r, int hw, int px, const float *restrict base, float *restrict o,
                         int width) {
#define LERP(lo, hi, w) ((lo) + (w) * ((hi) - (lo)))
    /* both of half column k's pixels (x + 1 <= width - 2), as constant strides from o - px: it vectorises */
    float *q = o - px;
    const float *p = base - px;
    for (int k = 1; k < hw - 1; k++) {
        q[2 * k] = p[2 * k] + LERP(r[k - 1], r[k], 0.75f);
        q[2 * k + 1] = p[2 * k + 1] + LERP(r[k], r[k + 1], 0.25f);
    }
    for (int k = 0; k < hw; k += k == 0 && hw > 1 ? hw - 1 : 1) {  /* the first and last half columns */
        const int x = 2 * k - px;
        if (x >= 0 && x < width) o[x] = base[x] + LERP(r[k > 0 ? k - 1 : 0], r[k], 0.75f);
        if (x + 1 >= 0 && x + 1 < width) o[x + 1] = base[x + 1] + LERP(r[k], r[k + 1 < hw ? k + 1 : hw - 1], 0.25f);
    }
#undef LERP
}

/* Computes the box stage up to half row `upto`: level FULL_LEVELS's rows and their gain, 2 x 2 means. */
static void advance_box(Stream *f, int upto) {
    for (; f->next_box <= upto; f->next_box++) {
        const int i = f->next_box;
        const int a = clampi(2 * i - f->py, 0, f->height - 1), b = clampi(2 * i - f->py + 1, 0, f->height - 1);
        advance(f, FULL_LEVELS, b);
        const float *pa[3], *pb[3];
        stage_rows(f, FULL_LEVELS, a, pa);
        stage_rows(f, FULL_LEVELS, b, pb);
        float *o = box_row(f, i);
        for (int c = 0; c < 3; c++) box_pairs(pa[c], pb[c], f->width, f->px, f->hw, f->rows, o + (int64_t)c * f->hw);
        box_pairs(gain_row(f, a), gain_row(f, b), f->width, f->px, f->hw, f->rows, o + 3 * (int64_t)f->hw);
    }
}

/* Computes stage s up to row `upto` (at most its last row), and what it reads of the stages before. */
static void advance(Stream *f, int s, int upto) {
    const int half = is_half(f, s), h = half ? f->hh : f->height, w = half ? f->hw : f->width;
    for (; f->next[s] <= upto; f->next[s]++) {
        const int r = f->next[s];
        const int d = s == 0 ? 1 : half ? 1 << (s - 2) : 1 << (s - 1);
        const int up = r - d < 0 ? 0 : r - d, down = r + d > h - 1 ? h - 1 : r + d;
        float *o[3];
        float *row = s == f->levels && !half ? f->last : f->ring[s] + (int64_t)(r % f->size[s]) * 3 * w;
        o[0] = row, o[1] = row + w, o[2] = row + 2 * w;
        const float *u[3], *m[3], *l[3];
        if (s == 0) {
            advance_source(f, down);
            stage_rows(f, -1, up, u);
            stage_rows(f, -1, r, m);
            stage_rows(f, -1, down, l);
            for (int c = 0; c < 3; c++) smooth_row(u[c], m[c], l[c], o[c], w);
            continue;
        }
        if (half && s == FULL_LEVELS + 1) {  /* the first half-resolution level filters the box stage */
            advance_box(f, down);
            planes_at(box_row(f, up), w, w, 0, u);
            planes_at(box_row(f, r), w, w, 0, m);
            planes_at(box_row(f, down), w, w, 0, l);
            denoise_row(u, m, l, u, m, l, box_row(f, r) + 3 * (int64_t)w, f->hscale[s - 1], d, w, f->inv, o);
            continue;
        }
        advance(f, s - 1, down);
        const float *g = half ? box_row(f, r) + 3 * (int64_t)w : (advance_source(f, down), gain_row(f, r));
        const float *gu[3], *gm[3], *gl[3];
        /* level 1 filters y, guided by its blur; later levels filter (and are guided by) the level before */
        stage_rows(f, s == 1 ? -1 : s - 1, up, u);
        stage_rows(f, s == 1 ? -1 : s - 1, r, m);
        stage_rows(f, s == 1 ? -1 : s - 1, down, l);
        stage_rows(f, s - 1, up, gu);
        stage_rows(f, s - 1, r, gm);
        stage_rows(f, s - 1, down, gl);
        denoise_row(u, m, l, gu, gm, gl, g, f->hscale[s - 1], d, w, f->inv, o);
    }
}

/* Row r of the result where levels run at half resolution, into f->last: level FULL_LEVELS's
 * row plus the last level's change to the box stage, upsampled (upsample_add); change: a
 * scratch row of hw. */
static void finish_row(Stream *f, int r, float *change) {
    const int hw = f->hw, i = half_below(r, f->py), a = clampi(i, 0, f->hh - 1), b = clampi(i + 1, 0, f->hh - 1);
    const float wr = ((r + f->py) & 1) ? 0.25f : 0.75f;
    advance(f, f->levels, b);
    advance(f, FULL_LEVELS, r);
    const float *la[3], *lb[3], *base[3];
    stage_rows(f, f->levels, a, la);
    stage_rows(f, f->levels, b, lb);
    stage_rows(f, FULL_LEVELS, r, base);
    const float *ba = box_row(f, a), *bb = box_row(f, b);
    for (int c = 0; c < 3; c++) {
        const float *da = ba + (int64_t)c * hw, *db = bb + (int64_t)c * hw;
        for (int j = 0; j < hw; j++) {
            const float ca = la[c][j] - da[j], cb = lb[c][j] - db[j];
            change[j] = ca + wr * (cb - ca);
        }
        upsample_add(change, hw, f->px, base[c], f->last + (int64_t)c * f->width, f->width);
    }
}

/* Runs stream f (its image, levels and source set) for rows [row0, row0 + rows) and columns
 * [col0, col0 + cols) of the result into out (see zdce_denoise). Returns 0 or OUT_OF_MEMORY. */
static int run_stream(Stream f, Plane out, int row0, int rows, int col0, int cols, int interleaved) {
    const int height = f.height, width = f.width, levels = f.levels, half = levels > FULL_LEVELS;
    const int full = half ? FULL_LEVELS : levels;
    /* Where each stage starts, from the last back (each reads its input up and down). */
    size_t floats = 3 * (size_t)cols + (size_t)width + 3 * (size_t)width;  /* the stored row, inv, the last pass */
    int start = row0;  /* of the stage being sized: the first row its reader needs */
    if (half) {
        f.hh = (height + f.py + 1) / 2;
        f.hw = (width + f.px + 1) / 2;
        /* the change is read at half rows [i, i + 1] while the first half level is up to 2^(levels - 1)
         * - 2^(FULL_LEVELS - 1) rows ahead, and the box stage 2^(FULL_LEVELS - 1) ahead of that */
        const int span = (1 << (levels - 1)) + 2;
        start = clampi(half_below(row0, f.py), 0, f.hh - 1);
        for (int s = levels; s > FULL_LEVELS; s--) {
            const int reach = s == levels ? 1 : 1 << (s - 1);  /* rows its reader reads around its own */
            f.size[s] = 2 * reach + 1;
            f.next[s] = start;
            start = start - (1 << (s - 2)) > 0 ? start - (1 << (s - 2)) : 0;
            floats += 3 * (size_t)f.hw * (size_t)f.size[s];
        }
        f.box_size = span + 3;
        f.next_box = start;
        floats += 4 * (size_t)f.hw * (size_t)f.box_size + (size_t)f.hw + (size_t)width;  /* + change, row means */
        f.size[FULL_LEVELS] = 2 * span + 5;  /* read at row r by finish_row, 2 * span + 4 rows ahead by the box */
        start = clampi(2 * start - f.py < row0 ? 2 * start - f.py : row0, 0, height - 1);
        f.next[FULL_LEVELS] = start;
        floats += 3 * (size_t)width * (size_t)f.size[FULL_LEVELS];
    } else {
        f.next[levels] = row0;
    }
    int reach = 0;  /* rows the source is read ahead of the last full-resolution level */
    for (int s = full - 1; s >= 0; s--) {
        reach += 1 << s;
        f.size[s] = 2 * (1 << s) + 1 < height ? 2 * (1 << s) + 1 : height;  /* never more rows than the image's */
        start = start - (1 << s) > 0 ? start - (1 << s) : 0;
        f.next[s] = start;
        floats += 3 * (size_t)width * (size_t)f.size[s];
    }
    /* the source is read `reach` + 1 rows ahead of the last full level (the guide's blur), and its
     * gain row r until that level (and the box stage, a row behind it) has done row r */
    f.gain_rows = reach + (half ? 4 : 2);
    f.next_source = levels ? (start - 1 > 0 ? start - 1 : 0) : row0;
    if (f.source) floats += 3 * (size_t)width * Y_ROWS + (size_t)width * (size_t)f.gain_rows;
    float *v = malloc(sizeof(float) * floats);
    if (!v) return OUT_OF_MEMORY;
    f.inv = v + 3 * (size_t)cols;
    f.last = f.inv + width;
    float *at = f.last + 3 * (size_t)width;
    for (int s = 0; s <= levels; s++) {
        if (s == levels && !half) break;
        f.ring[s] = at;
        at += 3 * (size_t)(is_half(&f, s) ? f.hw : width) * (size_t)f.size[s];
    }
    float *change = NULL;
    if (half) {
        f.box = at;
        at += 4 * (size_t)f.hw * (size_t)f.box_size;
        change = at;
        at += f.hw;
        f.rows = at;
        at += width;
    }
    if (f.source) {
        f.yring = at;
        f.gring = at + 3 * (size_t)width * Y_ROWS;
    }
    for (int r = row0; r < row0 + rows; r++) {
        const float *p[3];
        if (levels == 0) {
            advance_source(&f, r);
            stage_rows(&f, -1, r, p);
        } else {
            if (half)
                finish_row(&f, r, change);
            else
                advance(&f, levels, r);
            p[0] = f.last, p[1] = f.last + width, p[2] = f.last + 2 * width;
        }
        const float *window[3] = {p[0] + col0, p[1] + col0, p[2] + col0};
        store_planes(&out, r - row0, cols, interleaved, window, v);
    }
    free(v);
    return 0;
}

static int bad_window(int height, int width, int levels, int row0, int rows, int col0, int cols, int py, int px) {
    return height < 0 || width < 0 || levels < 0 || levels > DENOISE_MAX_LEVELS || row0 < 0 || rows < 0
           || row0 > height - rows || col0 < 0 || cols < 0 || col0 > width - cols || (py != 0 && py != 1)
           || (px != 0 && px != 1);
}

/* The whole filter of zerodce.enhance.denoise.denoise_amplified on one image, its last pass
 * stored: `levels` passes (0 to DENOISE_MAX_LEVELS) of denoise_row with taps 1, 2, 4... apart
 * and scales hscale[0..levels), the first guided by the 3 x 3 blur of y (smooth_row), each
 * later one by its own input, those after FULL_LEVELS at half resolution (see Stream); py and
 * px are the whole image's parity of y's row and column 0 (a tile's offset modulo 2). The
 * result equals zerodce.enhance.denoise._filter on the whole image.
 * y is 3 planes of height x width contiguous floats, gain height x width. Rows [row0, row0 +
 * rows) and columns [col0, col0 + cols) of the result go to out (uint8 rounded half to even,
 * or float; clamped to [0, 1]; laid out as zdce_store's dst), whose data points at the
 * first of them. Each stage computes only the rows the next needs.
 * Returns 0, OUT_OF_MEMORY, or BAD_ARGS for rows or columns outside the image. */
int zdce_denoise(const float *y, const float *gain, int height, int width, const float *hscale, int levels, int py,
                 int px, Plane out, int row0, int rows, int col0, int cols, int interleaved) {
    if (bad_window(height, width, levels, row0, rows, col0, cols, py, px)) return BAD_ARGS;
    if (rows == 0 || cols == 0) return 0;
    const Stream f = {.y = y, .gain = gain, .height = height, .width = width, .levels = levels, .hscale = hscale,
                      .py = py, .px = px};
    return run_stream(f, out, row0, rows, col0, cols, interleaved);
}

/* zdce_denoise of the image zdce_apply_low_res makes (the `height` rows of x from row_start of
 * the padded image, with their gain), each row computed when the first pass needs it: no float
 * image and no gain plane in memory. x has any strides, interleaved is out's layout; py and px
 * as for zdce_denoise. Returns 0, OUT_OF_MEMORY or BAD_ARGS. */
int zdce_denoise_low_res(Plane x, int height, int width, const float *small, int groups, int sh,
                         int sw, int padded_h, int padded_w, int row_start, int steps, const float *hscale,
                         int levels, int py, int px, Plane out, int row0, int rows, int col0, int cols,
                         int interleaved) {
    if (bad_window(height, width, levels, row0, rows, col0, cols, py, px) || groups < 1 || sh < 1 || sw < 1
        || padded_h < 1 || padded_w < 1 || row_start < 0 || steps < 0)
        return BAD_ARGS;
    if (rows == 0 || cols == 0) return 0;
    LowRes source;
    /* the curves run on rows in planes, the filter's layout, whatever x's */
    if (low_res_begin(&source, x, width, 0, small, groups, sh, sw, padded_h, padded_w, row_start, steps))
        return OUT_OF_MEMORY;
    const Stream f = {.height = height, .width = width, .levels = levels, .hscale = hscale, .source = &source,
                      .py = py, .px = px};
    const int result = run_stream(f, out, row0, rows, col0, cols, interleaved);
    low_res_end(&source);
    return result;
}

/* Rows of float image src into dst (uint8, rounded half to even, or float), both any
 * strides, values clamped to [0, 1]: the pipeline's last step, one pass.
 * Returns 0, or OUT_OF_MEMORY. */
int zdce_store(Plane src, Plane dst, int rows, int width, int interleaved) {
    float *v = malloc(sizeof(float) * 3 * (size_t)(width > 0 ? width : 1));
    if (!v) return OUT_OF_MEMORY;
    for (int r = 0; r < rows; r++) {
        load_row(&src, r, width, interleaved, v);
        store_row(&dst, r, width, interleaved, v);
    }
    free(v);
    return 0;
}
