/* PNG reading and writing through libpng, and the basic drawing primitives. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../core/core.h"
#include "image.h"

int lz_image_new(lz_image *img, int width, int height, int channels) {
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
        lz_fail("image: bad size %dx%d with %d channels", width, height, channels);
        return -1;
    }
    img->pixels = calloc((size_t)width * (size_t)height * (size_t)channels, 1);
    if (!img->pixels) { lz_fail("image: out of memory"); return -1; }
    img->width = width;
    img->height = height;
    img->channels = channels;
    return 0;
}

void lz_image_free(lz_image *img) {
    free(img->pixels);
    img->pixels = NULL;
}

/* libpng's default handlers print to stderr; the library never prints, so errors only
 * longjmp back (the caller reports them) and warnings are dropped. */
static void quiet_error(png_structp png, png_const_charp msg) {
    (void)msg;
    png_longjmp(png, 1);
}
static void quiet_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int lz_png_write(const char *path, const lz_image *img) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        lz_fail("%s: path too long", path);
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) { lz_fail("%s: cannot write (%s)", path, strerror(errno)); return -1; }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, quiet_error, quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc((size_t)img->height * sizeof *rows);
    if (!png || !info || !rows || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        remove(tmp);
        lz_fail("%s: cannot write the PNG", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int r = 0; r < img->height; r++)
        rows[r] = img->pixels + (size_t)r * (size_t)img->width * (size_t)img->channels;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (fflush(f) || fsync(fileno(f)) || fclose(f)) {
        remove(tmp);
        lz_fail("%s: cannot write (%s)", path, strerror(errno));
        return -1;
    }
    if (rename(tmp, path)) {
        remove(tmp);
        lz_fail("%s: cannot rename into place (%s)", path, strerror(errno));
        return -1;
    }
    return 0;
}

int lz_png_read(const char *path, lz_image *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { lz_fail("%s: cannot open (%s)", path, strerror(errno)); return -1; }
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        lz_fail("%s: not a PNG file", path);
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, quiet_error, quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        lz_image_free(out);
        fclose(f);
        lz_fail("%s: truncated or corrupt PNG", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    int type = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    png_set_packing(png);
    png_read_update_info(png, info);
    int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
    int ch = png_get_channels(png, info);
    if (ch != 1 && ch != 3) longjmp(png_jmpbuf(png), 1);
    if (lz_image_new(out, w, h, ch)) longjmp(png_jmpbuf(png), 1);
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) longjmp(png_jmpbuf(png), 1);
    for (int r = 0; r < h; r++) rows[r] = out->pixels + (size_t)r * (size_t)w * (size_t)ch;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    fclose(f);
    return 0;
}

static void put(lz_image *img, int x, int y, lz_rgb c) {
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
    uint8_t *p = img->pixels + ((size_t)y * (size_t)img->width + (size_t)x) * (size_t)img->channels;
    if (img->channels == 1) {
        p[0] = (uint8_t)((c.r * 299 + c.g * 587 + c.b * 114) / 1000);
    } else {
        p[0] = c.r;
        p[1] = c.g;
        p[2] = c.b;
    }
}

void lz_draw_rect(lz_image *img, int x, int y, int w, int h, lz_rgb c) {
    for (int j = y < 0 ? 0 : y; j < y + h && j < img->height; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < img->width; i++) put(img, i, j, c);
}

void lz_draw_line(lz_image *img, int x0, int y0, int x1, int y1, lz_rgb c) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {   /* Bresenham */
        put(img, x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) { err += dy; x0 += sx; }
        if (e2 <= dx) { err += dx; y0 += sy; }
    }
}
