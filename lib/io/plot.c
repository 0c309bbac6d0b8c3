/* Line charts and heatmaps drawn on an RGB canvas, for the PNGs train and eval write. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "../core/core.h"
#include "image.h"

static const lz_rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225},
                    gray = {90, 90, 90};

/* "Nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks. */
static double tick_step(double span, int target) {
    if (!(span > 0)) return 1;
    double raw = span / target, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static void fmt(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-6) v = 0;
    if (step >= 1 && fabs(v) < 1e7) snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 1e5 || step < 1e-3) snprintf(buf, n, "%.2g", v);
    else snprintf(buf, n, "%.*f", step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3, v);
}

int lz_plot_lines(lz_image *out, int width, int height, const char *title, const char *xlabel,
                  int nseries, const lz_series *series) {
    if (lz_image_new(out, width, height, 3)) return -1;
    lz_draw_rect(out, 0, 0, width, height, white);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int s = 0; s < nseries; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x); x1 = fmax(x1, x); y0 = fmin(y0, y); y1 = fmax(y1, y);
        }
    if (!(x0 <= x1)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    int left = 64, right = width - 16, top = 28, bottom = height - 40;
    if (right <= left + 10 || bottom <= top + 10) return 0;
    lz_draw_text(out, (width - lz_text_width(title, 2)) / 2, 6, title, 2, black);
    double ys = tick_step(y1 - y0, 6), xs = tick_step(x1 - x0, 8);
    char buf[32];
    for (double v = ceil(y0 / ys) * ys; v <= y1; v += ys) {
        int py = bottom - (int)lround((v - y0) / (y1 - y0) * (bottom - top));
        lz_draw_line(out, left, py, right, py, grid);
        fmt(buf, sizeof buf, v, ys);
        lz_draw_text(out, left - 6 - lz_text_width(buf, 1), py - 3, buf, 1, gray);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs) {
        int px = left + (int)lround((v - x0) / (x1 - x0) * (right - left));
        lz_draw_line(out, px, top, px, bottom, grid);
        fmt(buf, sizeof buf, v, xs);
        lz_draw_text(out, px - lz_text_width(buf, 1) / 2, bottom + 6, buf, 1, gray);
    }
    lz_draw_line(out, left, top, left, bottom, black);
    lz_draw_line(out, left, bottom, right, bottom, black);
    if (xlabel)
        lz_draw_text(out, (left + right - lz_text_width(xlabel, 1)) / 2, height - 14, xlabel, 1, black);
    for (int s = 0; s < nseries; s++) {
        int px_prev = 0, py_prev = 0, have = 0;
        for (int i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) { have = 0; continue; }
            int px = left + (int)lround((x - x0) / (x1 - x0) * (right - left));
            int py = bottom - (int)lround((y - y0) / (y1 - y0) * (bottom - top));
            if (have) lz_draw_line(out, px_prev, py_prev, px, py, series[s].color);
            else lz_draw_rect(out, px, py, 1, 1, series[s].color);
            px_prev = px; py_prev = py; have = 1;
        }
        if (series[s].name) {   /* legend, top right */
            int ly = top + 6 + 12 * s, lx = right - 10 - lz_text_width(series[s].name, 1) - 16;
            lz_draw_rect(out, lx, ly + 2, 12, 3, series[s].color);
            lz_draw_text(out, lx + 16, ly, series[s].name, 1, black);
        }
    }
    return 0;
}

int lz_plot_heatmap(lz_image *out, const char *title, int n, const int64_t *counts,
                    const char *const *labels) {
    if (n <= 0) { lz_fail("heatmap: %d classes", n); return -1; }
    int cell = n <= 12 ? 40 : n <= 30 ? 24 : 12, left = 60, top = 40;
    int width = left + n * cell + 20, height = top + n * cell + 40;
    if (lz_image_new(out, width, height, 3)) return -1;
    lz_draw_rect(out, 0, 0, width, height, white);
    lz_draw_text(out, (width - lz_text_width(title, 2)) / 2, 8, title, 2, black);
    for (int i = 0; i < n; i++) {
        int64_t row = 0;
        for (int j = 0; j < n; j++) row += counts[i * n + j];
        for (int j = 0; j < n; j++) {
            double f = row ? (double)counts[i * n + j] / (double)row : 0;   /* row-normalised */
            lz_rgb c = {(uint8_t)(255 - 205 * f), (uint8_t)(255 - 150 * f), 255};
            int x = left + j * cell, y = top + i * cell;
            lz_draw_rect(out, x, y, cell - 1, cell - 1, c);
            if (cell >= 24) {
                char buf[24];
                snprintf(buf, sizeof buf, "%lld", (long long)counts[i * n + j]);
                lz_draw_text(out, x + (cell - lz_text_width(buf, 1)) / 2, y + cell / 2 - 4, buf, 1,
                             f > 0.5 ? white : black);
            }
        }
        char buf[24];
        const char *label = labels ? labels[i] : (snprintf(buf, sizeof buf, "%d", i), buf);
        lz_draw_text(out, left - 6 - lz_text_width(label, 1), top + i * cell + cell / 2 - 4, label, 1, black);
        lz_draw_text(out, left + i * cell + (cell - lz_text_width(label, 1)) / 2, top + n * cell + 6, label, 1, black);
    }
    lz_draw_text(out, 4, top - 12, "TRUE", 1, gray);
    lz_draw_text(out, left + n * cell - lz_text_width("PREDICTED", 1), top + n * cell + 20, "PREDICTED", 1, gray);
    return 0;
}

int lz_plot_image_grid(lz_image *out, int n, int h, int w, int channels, const uint8_t *pixels,
                       int cols, int scale, const char *const *caption1,
                       const char *const *caption2, const lz_rgb *color) {
    if (n <= 0 || h <= 0 || w <= 0 || (channels != 1 && channels != 3) || cols <= 0 || scale <= 0) {
        lz_fail("image grid: bad layout (%d images of %dx%dx%d, %d columns, scale %d)", n, h, w,
                channels, cols, scale);
        return -1;
    }
    int rows = (n + cols - 1) / cols, iw = w * scale, ih = h * scale;
    int cw = iw + 16 > 100 ? iw + 16 : 100, ch = ih + 34;
    if (lz_image_new(out, cols * cw, rows * ch, 3)) return -1;
    lz_draw_rect(out, 0, 0, out->width, out->height, white);
    size_t px = (size_t)h * (size_t)w * (size_t)channels;
    for (int i = 0; i < n; i++) {
        int xc = (i % cols) * cw, x0 = xc + (cw - iw) / 2, y0 = (i / cols) * ch + 4;
        const uint8_t *p = pixels + (size_t)i * px;
        for (int y = 0; y < ih; y++)
            for (int x = 0; x < iw; x++) {
                const uint8_t *q = p + ((size_t)(y / scale) * (size_t)w + (size_t)(x / scale)) *
                                           (size_t)channels;
                uint8_t *o = out->pixels + ((size_t)(y0 + y) * (size_t)out->width + (size_t)(x0 + x)) * 3;
                o[0] = q[0];
                o[1] = q[channels == 3 ? 1 : 0];
                o[2] = q[channels == 3 ? 2 : 0];
            }
        lz_rgb c = color ? color[i] : black;
        const char *t1 = caption1 ? caption1[i] : NULL, *t2 = caption2 ? caption2[i] : NULL;
        if (t1) lz_draw_text(out, xc + (cw - lz_text_width(t1, 1)) / 2, y0 + ih + 4, t1, 1, c);
        if (t2) lz_draw_text(out, xc + (cw - lz_text_width(t2, 1)) / 2, y0 + ih + 14, t2, 1, c);
    }
    return 0;
}
