/* Images: PNG files (libpng) and a small RGB canvas for the plots train and eval write
 * (loss curves, confusion matrices, sample grids). */
#ifndef LZ_IMAGE_H
#define LZ_IMAGE_H

#include <stdint.h>

/* An 8-bit image, channels 1 (gray) or 3 (RGB), rows top to bottom. */
typedef struct {
    int width, height, channels;
    uint8_t *pixels;   /* width * height * channels bytes, owned */
} lz_image;

/* Returns 0, or -1 with lz_error() naming the file. Writes to a temporary file in the same
 * folder and renames it into place, so a crash never leaves a half-written PNG. */
int lz_png_write(const char *path, const lz_image *img);
/* Reads an 8-bit or 16-bit gray/gray+alpha/RGB/RGBA/palette PNG into 8-bit gray (channels 1)
 * or RGB (channels 3; alpha dropped). Returns 0 or -1 with lz_error(); free with
 * lz_image_free. */
int lz_png_read(const char *path, lz_image *out);
int lz_image_new(lz_image *img, int width, int height, int channels);  /* zero-filled */
void lz_image_free(lz_image *img);

/* ---- drawing on RGB images (clipped to the image) ---- */
typedef struct { uint8_t r, g, b; } lz_rgb;
void lz_draw_rect(lz_image *img, int x, int y, int w, int h, lz_rgb c);
void lz_draw_line(lz_image *img, int x0, int y0, int x1, int y1, lz_rgb c);
/* 5x7 bitmap font, ASCII 32..126, `scale` pixels per font pixel. Returns the width drawn. */
int lz_draw_text(lz_image *img, int x, int y, const char *text, int scale, lz_rgb c);
int lz_text_width(const char *text, int scale);

/* ---- plots ---- */
typedef struct {
    const char *name;
    const double *x, *y;
    int n;
    lz_rgb color;
} lz_series;
/* A line chart with axes, ticks, labels and a legend, drawn into a new RGB image. */
int lz_plot_lines(lz_image *out, int width, int height, const char *title, const char *xlabel,
                  int nseries, const lz_series *series);
/* A heatmap of an n x n matrix (e.g. a confusion matrix: rows true, columns predicted) with
 * the counts written in the cells and class labels (NULL: indices). */
int lz_plot_heatmap(lz_image *out, const char *title, int n, const int64_t *counts,
                    const char *const *labels);

/* A grid of n small 8-bit images (each h x w x channels, channels 1 or 3, packed one after
 * another in `pixels`), `cols` per row, scaled up `scale` times, each with up to two caption
 * lines under it (caption1/caption2 may be NULL, or hold NULL entries) in colours color[i]
 * (NULL: black). Drawn into a new RGB image. For samples.png. */
int lz_plot_image_grid(lz_image *out, int n, int h, int w, int channels, const uint8_t *pixels,
                       int cols, int scale, const char *const *caption1,
                       const char *const *caption2, const lz_rgb *color);

#endif
