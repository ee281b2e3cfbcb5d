/*
 * test_png_util.c - helpers shared by the tests of the commands that write plots (see
 * test_png_util.h). No TEST here: the runner collects tests from the other test_*.c files.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"
#include "test_png_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifdef DSC_HAVE_ZLIB
#include <zlib.h>
#endif

/* ------------------------------------------------------------------------------------------ */
/* Running the command and reading its files                                                  */
/* ------------------------------------------------------------------------------------------ */

const char *tu_descent_binary(void)
{
    static char path[512];
    const char *build = getenv("DSC_BUILD");

    snprintf(path, sizeof path, "%s/descent", build && *build ? build : "build");
    return path;
}

const char *tu_tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

int tu_run_descent(const char *args)
{
    size_t size = strlen(args) + 2048;
    char *command = malloc(size);

    if (!command)
        return -1;
    snprintf(command, size, "%s %s </dev/null >%s/stdout 2>%s/stderr", tu_descent_binary(),
             args, test_tmpdir(), test_tmpdir());
    fflush(NULL);
    int status = system(command);
    free(command);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* The bytes of a file and their count; NULL when it cannot be read. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0, cap = 1 << 16;
    unsigned char *buf = malloc(cap + 1);

    if (!f || !buf) {
        if (f)
            fclose(f);
        free(buf);
        return NULL;
    }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *tu_read_text(const char *path)
{
    size_t len = 0;
    char *text = (char *)read_bytes(path, &len);

    if (!text) {
        text = malloc(1);
        if (!text)
            abort();
        text[0] = '\0';
    }
    return text;
}

char *tu_stdout_text(void)
{
    char path[512];
    return tu_read_text(tu_tmp_path(path, sizeof path, "stdout"));
}

char *tu_stderr_text(void)
{
    char path[512];
    return tu_read_text(tu_tmp_path(path, sizeof path, "stderr"));
}

size_t tu_split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;

    for (char *p = text; *p && n < max;) {
        char *end = strchr(p, '\n');
        lines[n++] = p;
        if (!end)
            break;
        *end = '\0';
        p = end + 1;
    }
    return n;
}

int tu_have_tool(const char *name)
{
    char command[256];

    snprintf(command, sizeof command, "command -v %s >/dev/null 2>&1", name);
    return system(command) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG files (the PNG specification, ISO/IEC 15948)                                           */
/* ------------------------------------------------------------------------------------------ */

static uint32_t big_endian32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An image as 8-bit RGB, composited over white. */
typedef struct rgb_image {
    uint32_t width, height;
    unsigned char *rgb; /* NULL when the pixels could not be decoded */
} rgb_image;

#ifdef DSC_HAVE_ZLIB
/* The Paeth predictor of filter type 4. */
static int paeth_predictor(int left, int up, int up_left)
{
    int p = left + up - up_left;
    int d_left = abs(p - left), d_up = abs(p - up), d_up_left = abs(p - up_left);

    if (d_left <= d_up && d_left <= d_up_left)
        return left;
    return d_up <= d_up_left ? up : up_left;
}

/*
 * Undo the filters of the inflated scanlines raw (height rows of 1 + stride bytes, bpp bytes
 * per pixel) in place; 0, or -1 for an unknown filter type.
 */
static int unfilter(unsigned char *raw, uint32_t height, size_t stride, size_t bpp)
{
    for (uint32_t y = 0; y < height; y++) {
        unsigned char *line = raw + (size_t)y * (stride + 1);
        unsigned char *cur = line + 1;
        const unsigned char *up = y > 0 ? line - stride : NULL;
        int type = line[0];
        if (type > 4)
            return -1;
        for (size_t i = 0; i < stride; i++) {
            int left = i >= bpp ? cur[i - bpp] : 0;
            int above = up ? up[i] : 0;
            int up_left = up && i >= bpp ? up[i - bpp] : 0;
            int predicted = type == 0 ? 0 : type == 1 ? left : type == 2 ? above
                          : type == 3 ? (left + above) / 2
                          : paeth_predictor(left, above, up_left);
            cur[i] = (unsigned char)(cur[i] + predicted);
        }
    }
    return 0;
}
#endif

/*
 * Read a PNG's size and, with zlib, its pixels (8-bit, non-interlaced grey, grey-alpha, RGB
 * or RGBA). 1 when the file is a PNG; img->rgb stays NULL when its pixels were not decoded.
 */
static int read_png(const char *path, rgb_image *img)
{
    size_t len = 0;
    unsigned char *data = read_bytes(path, &len);

    img->width = img->height = 0;
    img->rgb = NULL;
    if (!data || len < 33 || memcmp(data, "\x89PNG\r\n\x1a\n", 8) != 0 ||
        memcmp(data + 12, "IHDR", 4) != 0) {
        free(data);
        return 0;
    }
    img->width = big_endian32(data + 16);
    img->height = big_endian32(data + 20);

#ifdef DSC_HAVE_ZLIB
    int depth = data[24], colour = data[25], interlace = data[28];
    size_t channels = colour == 0 ? 1 : colour == 4 ? 2 : colour == 2 ? 3 : colour == 6 ? 4 : 0;
    unsigned char *idat = NULL, *raw = NULL;
    size_t idat_len = 0;

    if (depth != 8 || channels == 0 || interlace != 0 || img->width == 0 ||
        img->height == 0 || img->width > 20000 || img->height > 20000)
        goto done;
    for (size_t pos = 8; pos + 12 <= len;) {
        uint32_t n = big_endian32(data + pos);
        if (n > len - pos - 12)
            goto done;
        if (memcmp(data + pos + 4, "IDAT", 4) == 0) {
            unsigned char *more = realloc(idat, idat_len + n + 1);
            if (!more)
                goto done;
            idat = more;
            memcpy(idat + idat_len, data + pos + 8, n);
            idat_len += n;
        }
        pos += 12 + (size_t)n;
    }
    size_t stride = img->width * channels;
    uLongf raw_len = (uLongf)((size_t)img->height * (stride + 1));
    raw = malloc(raw_len);
    if (!idat || !raw || uncompress(raw, &raw_len, idat, (uLong)idat_len) != Z_OK ||
        raw_len != (size_t)img->height * (stride + 1) ||
        unfilter(raw, img->height, stride, channels) != 0)
        goto done;

    img->rgb = malloc((size_t)img->width * img->height * 3);
    for (uint32_t y = 0; img->rgb && y < img->height; y++) {
        const unsigned char *line = raw + (size_t)y * (stride + 1) + 1;
        for (uint32_t x = 0; x < img->width; x++) {
            const unsigned char *p = line + (size_t)x * channels;
            int alpha = channels == 2 ? p[1] : channels == 4 ? p[3] : 255;
            for (size_t k = 0; k < 3; k++) {
                int v = channels <= 2 ? p[0] : p[k];
                img->rgb[((size_t)y * img->width + x) * 3 + k] =
                    (unsigned char)((v * alpha + 255 * (255 - alpha) + 127) / 255);
            }
        }
    }

done:
    free(idat);
    free(raw);
#endif
    free(data);
    return 1;
}

/* A number attribute of the document's first <svg> tag; 0 when absent. */
static double svg_size(const char *svg, const char *name)
{
    const char *tag = strstr(svg, "<svg");
    const char *end = tag ? strchr(tag, '>') : NULL;
    char key[32];

    snprintf(key, sizeof key, " %s=\"", name);
    const char *at = tag ? strstr(tag, key) : NULL;
    return at && at < end ? strtod(at + strlen(key), NULL) : 0.0;
}

void tu_check_svg(const char *path, size_t min_coloured, const char *file, int line)
{
    char command[1600], png[600];
    char *svg = tu_read_text(path);

    if (!*svg) {
        test_report(file, line, "%s: missing or empty", path);
        free(svg);
        return;
    }
    static const char *const non_finite[] = {"\"nan", "\"-nan", " nan,", " -nan,", ",nan",
                                             ",-nan", "\"inf", "\"-inf", " inf,", " -inf,",
                                             ",inf", ",-inf"};
    for (size_t i = 0; i < sizeof non_finite / sizeof non_finite[0]; i++) {
        if (strstr(svg, non_finite[i]))
            test_report(file, line, "%s: holds a non-finite number", path);
    }
    if (tu_have_tool("xmllint")) {
        snprintf(command, sizeof command, "xmllint --noout '%s'", path);
        if (system(command) != 0)
            test_report(file, line, "%s: xmllint rejects it", path);
    }
    if (!tu_have_tool("rsvg-convert")) {
        free(svg);
        return;
    }

    snprintf(png, sizeof png, "%s.png", path);
    snprintf(command, sizeof command, "rsvg-convert -o '%s' '%s'", png, path);
    rgb_image img;
    if (system(command) != 0 || !read_png(png, &img)) {
        test_report(file, line, "%s: rsvg-convert gave no PNG", path);
        free(svg);
        return;
    }
    double want_w = svg_size(svg, "width"), want_h = svg_size(svg, "height");
    if ((double)img.width != want_w || (double)img.height != want_h)
        test_report(file, line, "%s: PNG of %u x %u, the SVG says %g x %g", path,
                    (unsigned)img.width, (unsigned)img.height, want_w, want_h);

    if (img.rgb) {
        size_t pixels = (size_t)img.width * img.height, not_white = 0, coloured = 0;
        for (size_t i = 0; i < pixels; i++) {
            const unsigned char *p = img.rgb + 3 * i;
            int lo = p[0] < p[1] ? p[0] : p[1], hi = p[0] > p[1] ? p[0] : p[1];
            lo = p[2] < lo ? p[2] : lo;
            hi = p[2] > hi ? p[2] : hi;
            not_white += lo < 245;
            coloured += hi - lo > 80;
        }
        if (not_white * 100 <= pixels)
            test_report(file, line, "%s: blank: %zu of %zu pixels are not white", path,
                        not_white, pixels);
        if (coloured < min_coloured)
            test_report(file, line, "%s: %zu coloured pixels, expected at least %zu", path,
                        coloured, min_coloured);
        free(img.rgb);
    } else {
        /* Without the pixels: a drawing compresses to well over a blank page of its size. */
        char blank[600], blank_png[600];
        tu_tmp_path(blank, sizeof blank, "blank.svg");
        tu_tmp_path(blank_png, sizeof blank_png, "blank.png");
        FILE *f = fopen(blank, "w");
        if (f) {
            fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\">"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"#FFFFFF\"/></svg>\n",
                    want_w, want_h);
            fclose(f);
        }
        snprintf(command, sizeof command, "rsvg-convert -o '%s' '%s'", blank_png, blank);
        size_t drawn = 0, empty = 0;
        unsigned char *a = read_bytes(png, &drawn), *b = NULL;
        if (system(command) == 0)
            b = read_bytes(blank_png, &empty);
        if (!a || !b || drawn <= 3 * empty)
            test_report(file, line, "%s: the PNG is no larger than a blank page's", path);
        free(a);
        free(b);
    }
    free(svg);
}
