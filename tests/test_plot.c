/*
 * test_plot.c - the SVG chart writer: every kind of history gives a well-formed document
 * (checked with xmllint where it is installed), renders to a PNG that is not blank (checked
 * with rsvg-convert and, with zlib, by decoding the pixels), follows the log-scale rule, puts
 * ticks at nice values and escapes text.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <string.h>

#ifdef DSC_HAVE_ZLIB
#include <zlib.h>
#endif

#define MAX_FOUND 64

/* ---- Files and tools ---- */

/* The whole of a file, NUL-terminated, or NULL; *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;

    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        char *bigger = realloc(buf, cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
        }
        buf = bigger;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = n;
    }
    return buf;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int have_tool(const char *name)
{
    char cmd[128];

    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* A path in the test's folder. */
static const char *tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

/* Write plot to path; the return code of dsc_plot_write_svg. */
static int render(const char *path, const dsc_plot *plot)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -100;
    int rc = dsc_plot_write_svg(f, plot);
    fclose(f);
    return rc;
}

/* Whether the document at path is well-formed: xmllint, or its first and last tags. */
static int svg_valid(const char *path)
{
    if (have_tool("xmllint")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        return system(cmd) == 0;
    }

    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text)
        return 0;
    int ok = (strncmp(text, "<?xml", 5) == 0 || strncmp(text, "<svg", 4) == 0);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    ok = ok && len >= 6 && memcmp(text + len - 6, "</svg>", 6) == 0;
    free(text);
    return ok;
}

/* ---- PNG ---- */

static unsigned long be32(const unsigned char *p)
{
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 |
           p[3];
}

/* Width and height from the IHDR chunk of a PNG file; 0 when it is not one. */
static int png_size(const char *path, unsigned long *width, unsigned long *height)
{
    size_t len = 0;
    unsigned char *data = (unsigned char *)slurp(path, &len);
    int ok = data && len >= 24 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0 &&
             memcmp(data + 12, "IHDR", 4) == 0;
    if (ok) {
        *width = be32(data + 16);
        *height = be32(data + 20);
    }
    free(data);
    return ok;
}

#ifdef DSC_HAVE_ZLIB
/* A decoded image: 3 bytes per pixel, composited over white. */
typedef struct image {
    unsigned long width, height;
    unsigned char *rgb;
} image;

/* The predictor of the Paeth filter (PNG specification, section 9.4). */
static int paeth(int a, int b, int c)
{
    int p = a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);

    if (pa <= pb && pa <= pc)
        return a;
    return pb <= pc ? b : c;
}

/* Decode an 8-bit, non-interlaced grey, grey-alpha, RGB or RGBA PNG; 1 on success. */
static int png_decode(const char *path, image *img)
{
    size_t len = 0;
    unsigned char *data = (unsigned char *)slurp(path, &len);
    unsigned char *idat = NULL, *raw = NULL;
    size_t idat_len = 0;
    unsigned long width = 0, height = 0;
    int depth = 0, colour = -1, interlace = 1, ok = 0;

    if (!data || len < 8 || memcmp(data, "\x89PNG\r\n\x1a\n", 8) != 0)
        goto done;
    for (size_t pos = 8; pos + 12 <= len;) {
        unsigned long n = be32(data + pos);
        const unsigned char *type = data + pos + 4, *body = data + pos + 8;
        if (n > len - pos - 12)
            goto done;
        if (memcmp(type, "IHDR", 4) == 0 && n >= 13) {
            width = be32(body);
            height = be32(body + 4);
            depth = body[8];
            colour = body[9];
            interlace = body[12];
        } else if (memcmp(type, "IDAT", 4) == 0) {
            unsigned char *more = realloc(idat, idat_len + n + 1);
            if (!more)
                goto done;
            idat = more;
            memcpy(idat + idat_len, body, n);
            idat_len += n;
        } else if (memcmp(type, "IEND", 4) == 0) {
            break;
        }
        pos += 12 + n;
    }

    int channels = colour == 0 ? 1 : colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 0;
    if (depth != 8 || channels == 0 || interlace != 0 || width == 0 || height == 0 ||
        width > 10000 || height > 10000 || !idat)
        goto done;
    size_t stride = width * (size_t)channels;
    uLongf raw_len = (uLongf)(height * (stride + 1));
    raw = malloc(raw_len);
    if (!raw || uncompress(raw, &raw_len, idat, (uLong)idat_len) != Z_OK ||
        raw_len != height * (stride + 1))
        goto done;

    /* Undo the filters row by row; prev is the row above, already undone. */
    for (size_t y = 0; y < height; y++) {
        unsigned char *row = raw + y * (stride + 1);
        unsigned char *cur = row + 1;
        const unsigned char *prev = y > 0 ? row - stride : NULL;
        int filter = row[0];
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)channels ? cur[i - channels] : 0;
            int b = prev ? prev[i] : 0;
            int c = prev && i >= (size_t)channels ? prev[i - channels] : 0;
            int add = filter == 0 ? 0 : filter == 1 ? a : filter == 2 ? b
                    : filter == 3 ? (a + b) / 2 : paeth(a, b, c);
            if (filter > 4)
                goto done;
            cur[i] = (unsigned char)(cur[i] + add);
        }
    }

    img->width = width;
    img->height = height;
    img->rgb = malloc(width * height * 3);
    if (!img->rgb)
        goto done;
    for (size_t y = 0; y < height; y++) {
        const unsigned char *cur = raw + y * (stride + 1) + 1;
        for (size_t x = 0; x < width; x++) {
            const unsigned char *p = cur + x * (size_t)channels;
            int grey = channels <= 2;
            int alpha = channels == 2 ? p[1] : channels == 4 ? p[3] : 255;
            for (int k = 0; k < 3; k++) {
                int v = grey ? p[0] : p[k];
                img->rgb[(y * width + x) * 3 + (size_t)k] =
                    (unsigned char)((v * alpha + 255 * (255 - alpha) + 127) / 255);
            }
        }
    }
    ok = 1;

done:
    free(data);
    free(idat);
    free(raw);
    return ok;
}
#endif

/* The first 6-digit colour after "attr=\"#" in the element that starts at tag; -1 if none. */
static long element_colour(const char *tag, const char *attr)
{
    const char *end = strchr(tag, '>');
    char key[32];

    snprintf(key, sizeof key, "%s=\"#", attr);
    const char *at = strstr(tag, key);
    if (!at || !end || at > end)
        return -1;
    return strtol(at + strlen(key), NULL, 16);
}

/*
 * Render svg_path to PNG and check it: 800 x 500 as the SVG says, not blank (more than 1 %
 * of the pixels not white, or, without zlib, a file well above a blank image's size), and
 * with pixels of each colour in colours[0..n). Skipped without rsvg-convert.
 */
static void check_png(const char *svg_path, const long *colours, size_t n)
{
    char png_path[512], cmd[1200];

    if (!have_tool("rsvg-convert"))
        return;
    snprintf(png_path, sizeof png_path, "%s.png", svg_path);
    snprintf(cmd, sizeof cmd, "rsvg-convert -o '%s' '%s'", png_path, svg_path);
    REQUIRE(system(cmd) == 0);

    unsigned long width = 0, height = 0;
    REQUIRE(png_size(png_path, &width, &height));
    CHECK_EQ_INT(width, 800);
    CHECK_EQ_INT(height, 500);

#ifdef DSC_HAVE_ZLIB
    image img = {0, 0, NULL};
    REQUIRE(png_decode(png_path, &img));
    size_t pixels = img.width * img.height, not_white = 0;
    size_t *matches = calloc(n + 1, sizeof *matches);
    REQUIRE(matches);
    for (size_t i = 0; i < pixels; i++) {
        const unsigned char *p = img.rgb + 3 * i;
        if (p[0] < 245 || p[1] < 245 || p[2] < 245)
            not_white++;
        for (size_t c = 0; c < n; c++) {
            int r = (int)(colours[c] >> 16 & 255), g = (int)(colours[c] >> 8 & 255);
            int b = (int)(colours[c] & 255);
            if (abs(p[0] - r) <= 12 && abs(p[1] - g) <= 12 && abs(p[2] - b) <= 12)
                matches[c]++;
        }
    }
    CHECK(not_white * 100 > pixels);
    for (size_t c = 0; c < n; c++) {
        if (matches[c] < 20)
            test_report(__FILE__, __LINE__, "colour #%06lX: %zu pixels", colours[c],
                        matches[c]);
    }
    free(matches);
    free(img.rgb);
#else
    /* Without zlib: the drawing must compress to well over what a blank page does. */
    char blank_svg[512], blank_png[512];
    tmp_path(blank_svg, sizeof blank_svg, "blank.svg");
    tmp_path(blank_png, sizeof blank_png, "blank.png");
    FILE *f = fopen(blank_svg, "w");
    REQUIRE(f);
    fputs("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" "
          "height=\"500\"><rect width=\"800\" height=\"500\" fill=\"#FFFFFF\"/></svg>\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "rsvg-convert -o '%s' '%s'", blank_png, blank_svg);
    REQUIRE(system(cmd) == 0);
    CHECK(file_size(png_path) > 3 * file_size(blank_png));
    (void)colours;
    (void)n;
#endif
}

/* The colours of the series drawn in an SVG: the stroke of each line, the fill of a marker. */
static size_t series_colours(const char *svg, long *colours, size_t max)
{
    size_t n = 0;

    for (const char *p = svg; (p = strchr(p, '<')) != NULL; p++) {
        long c = -1;
        if (strncmp(p, "<polyline", 9) == 0)
            c = element_colour(p, "stroke");
        else if (strncmp(p, "<circle", 7) == 0)
            c = element_colour(p, "fill") == 0xFFFFFF ? element_colour(p, "stroke")
                                                      : element_colour(p, "fill");
        if (c < 0)
            continue;
        int seen = 0;
        for (size_t i = 0; i < n; i++)
            seen |= colours[i] == c;
        if (!seen && n < max)
            colours[n++] = c;
    }
    return n;
}

/* Validate and render an SVG file: well-formed, and a PNG showing its series' colours. */
static void check_rendered(const char *path)
{
    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(svg_valid(path));
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);

    long colours[16];
    size_t n = series_colours(svg, colours, 16);
    free(svg);
    check_png(path, colours, n);
}

/* ---- Reading back what the SVG says ---- */

/* A tick label: its position and value. */
typedef struct tick {
    double x, y, value;
    char label[48];
} tick;

/* The tick labels of class cls ("xtick", "ytick", "y2tick") in document order. */
static size_t find_ticks(const char *svg, const char *cls, tick *ticks, size_t max)
{
    char key[64];
    size_t n = 0;

    snprintf(key, sizeof key, "<text class=\"%s\"", cls);
    for (const char *p = svg; (p = strstr(p, key)) != NULL && n < max; p++) {
        const char *end = strchr(p, '>');
        const char *ax = strstr(p, " x=\""), *ay = strstr(p, " y=\"");
        if (!end || !ax || !ay || ax > end || ay > end)
            continue;
        tick *t = &ticks[n];
        t->x = strtod(ax + 4, NULL);
        t->y = strtod(ay + 4, NULL);
        const char *close = strchr(end, '<');
        size_t len = close ? (size_t)(close - end - 1) : 0;
        if (len >= sizeof t->label)
            len = sizeof t->label - 1;
        memcpy(t->label, end + 1, len);
        t->label[len] = '\0';
        t->value = strtod(t->label, NULL);
        n++;
    }
    return n;
}

/*
 * Whether the positions pos[i] of n ticks are an affine function of their values (of log10
 * of their values when log), to the 0.01 unit that coordinates are written with.
 */
static int affine(const tick *t, size_t n, int vertical, int log_scale)
{
    if (n < 3)
        return 0;

    double v0 = log_scale ? log10(t[0].value) : t[0].value;
    double v1 = log_scale ? log10(t[n - 1].value) : t[n - 1].value;
    double p0 = vertical ? t[0].y : t[0].x, p1 = vertical ? t[n - 1].y : t[n - 1].x;
    if (!isfinite(v0) || !isfinite(v1) || v0 == v1)
        return 0;
    for (size_t i = 1; i + 1 < n; i++) {
        double v = log_scale ? log10(t[i].value) : t[i].value;
        double expected = p0 + (p1 - p0) * (v - v0) / (v1 - v0);
        double got = vertical ? t[i].y : t[i].x;
        if (!isfinite(v) || fabs(expected - got) > 0.02)
            return 0;
    }
    return 1;
}

/* The plot frame: the rectangle of class "frame". */
static int find_frame(const char *svg, double *left, double *top, double *right, double *bottom)
{
    const char *p = strstr(svg, "<rect class=\"frame\"");
    if (!p)
        return 0;
    const char *x = strstr(p, " x=\""), *y = strstr(p, " y=\"");
    const char *w = strstr(p, " width=\""), *h = strstr(p, " height=\"");
    if (!x || !y || !w || !h)
        return 0;
    *left = strtod(x + 4, NULL);
    *top = strtod(y + 4, NULL);
    *right = *left + strtod(w + 8, NULL);
    *bottom = *top + strtod(h + 9, NULL);
    return 1;
}

/*
 * Whether every drawn point (polyline vertex, marker centre) lies in the frame, and, for y,
 * at least clear units away from the top and bottom edges.
 */
static int points_inside_frame(const char *svg, double clear)
{
    double left, top, right, bottom;
    if (!find_frame(svg, &left, &top, &right, &bottom))
        return 0;

    for (const char *p = svg; (p = strchr(p, '<')) != NULL; p++) {
        if (strncmp(p, "<polyline", 9) == 0) {
            const char *q = strstr(p, "points=\"");
            if (!q)
                return 0;
            q += 8;
            while (*q != '"') {
                char *end;
                double x = strtod(q, &end);
                if (*end != ',')
                    return 0;
                double y = strtod(end + 1, &end);
                if (x < left - 0.01 || x > right + 0.01 || y < top + clear || y > bottom - clear)
                    return 0;
                q = end;
                while (*q == ' ')
                    q++;
            }
        } else if (strncmp(p, "<circle", 7) == 0) {
            const char *cx = strstr(p, " cx=\""), *cy = strstr(p, " cy=\"");
            if (!cx || !cy)
                return 0;
            double x = strtod(cx + 5, NULL), y = strtod(cy + 5, NULL);
            if (x < left - 0.01 || x > right + 0.01 || y < top + clear || y > bottom - clear)
                return 0;
        }
    }
    return 1;
}

/* The mantissa of a positive v: v / 10^floor(log10 v), rounded to 6 digits. */
static double mantissa(double v)
{
    double m = v / pow(10.0, floor(log10(v) + 1e-9));
    return round(m * 1e6) / 1e6;
}

static size_t count_of(const char *text, const char *what)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The points of the k-th polyline (from 0) into xs, ys; the number of points. */
static size_t polyline_points(const char *svg, size_t k, double *xs, double *ys, size_t max)
{
    const char *p = svg;

    for (size_t i = 0; i <= k; i++) {
        p = strstr(p, "<polyline");
        if (!p)
            return 0;
        p++;
    }
    p = strstr(p, "points=\"");
    if (!p)
        return 0;
    p += 8;

    size_t n = 0;
    while (*p != '"' && n < max) {
        char *end;
        xs[n] = strtod(p, &end);
        if (*end != ',')
            break;
        ys[n] = strtod(end + 1, &end);
        n++;
        p = end;
        while (*p == ' ')
            p++;
    }
    return n;
}

/* ---- A training history ---- */

#define EPOCHS 30

typedef struct history {
    double epoch[EPOCHS], train[EPOCHS], valid[EPOCHS], lr[EPOCHS];
    dsc_series series[2], series2[1];
    dsc_plot plot;
} history;

/* Losses falling like a typical run and a cosine learning rate, over n epochs. */
static void make_history(history *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h->epoch[i] = (double)(i + 1);
        h->train[i] = 2.2 * exp(-0.15 * (double)i) + 0.06;
        h->valid[i] = 2.3 * exp(-0.12 * (double)i) + 0.15 + 0.004 * (double)i;
        h->lr[i] = 0.0005 + 0.05 * 0.5 * (1 + cos(3.14159265358979 * (double)i / EPOCHS));
    }
    h->series[0] = (dsc_series){"train loss", h->epoch, h->train, n};
    h->series[1] = (dsc_series){"validation loss", h->epoch, h->valid, n};
    h->series2[0] = (dsc_series){"learning rate", h->epoch, h->lr, n};
    h->plot = (dsc_plot){"mlp 64-32, adam, digits.csv", "epoch", "loss", -1, h->series, 2,
                         "learning rate", -1, h->series2, 1};
}

TEST(plot_training_history_renders)
{
    char path[512];
    history h;

    make_history(&h, EPOCHS);
    REQUIRE(render(tmp_path(path, sizeof path, "history.svg"), &h.plot) == DSC_OK);
    check_rendered(path);

    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, "train loss") && strstr(svg, "validation loss"));
    CHECK(strstr(svg, "learning rate (right)"));
    CHECK(strstr(svg, "mlp 64-32, adam, digits.csv"));
    CHECK_EQ_INT(count_of(svg, "<polyline"), 3);

    /* Three lines in three different colours, the secondary one dashed. */
    long colours[8];
    CHECK_EQ_INT(series_colours(svg, colours, 8), 3);
    const char *third = strstr(svg, "<polyline");
    third = third ? strstr(third + 1, "<polyline") : NULL;
    third = third ? strstr(third + 1, "<polyline") : NULL;
    REQUIRE(third);
    const char *dash = strstr(third, "stroke-dasharray");
    CHECK(dash && dash < strchr(third, '>'));

    /* x ticks: evenly spaced, covering epochs 1..30; y ticks affine on both axes. */
    tick xt[MAX_FOUND], yt[MAX_FOUND], y2t[MAX_FOUND];
    size_t nx = find_ticks(svg, "xtick", xt, MAX_FOUND);
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    size_t ny2 = find_ticks(svg, "y2tick", y2t, MAX_FOUND);
    REQUIRE(nx >= 3 && ny >= 3 && ny2 >= 3);
    CHECK(affine(xt, nx, 0, 0));
    CHECK(xt[0].value <= 1 && xt[nx - 1].value >= EPOCHS);
    CHECK(affine(yt, ny, 1, 0));
    CHECK(yt[0].value <= 0.5 && yt[ny - 1].value >= 2.0);
    CHECK(points_inside_frame(svg, 2));

    /* The rate spans about 0.0006..0.05, a factor near 80: a log axis on the right. */
    CHECK(strstr(svg, "id=\"y2-axis\" class=\"axis log\""));
    CHECK(affine(y2t, ny2, 1, 1));
    free(svg);
}

TEST(plot_one_epoch_draws_markers)
{
    char path[512];
    history h;

    make_history(&h, 1);
    REQUIRE(render(tmp_path(path, sizeof path, "one.svg"), &h.plot) == DSC_OK);
    check_rendered(path);

    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK_EQ_INT(count_of(svg, "<polyline"), 0);
    CHECK_EQ_INT(count_of(svg, "<circle"), 3);

    /* Each axis is a real range around the single value. */
    tick xt[MAX_FOUND], yt[MAX_FOUND];
    size_t nx = find_ticks(svg, "xtick", xt, MAX_FOUND);
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    REQUIRE(nx >= 2 && ny >= 2);
    CHECK(xt[0].value < 1 && xt[nx - 1].value > 1);
    CHECK(yt[0].value < h.valid[0] && yt[ny - 1].value > h.train[0]);
    CHECK(points_inside_frame(svg, 2));
    for (size_t i = 1; i < nx; i++)
        CHECK(xt[i].value > xt[i - 1].value && xt[i].x > xt[i - 1].x);
    free(svg);
}

TEST(plot_constant_losses_pad_the_axis)
{
    char path[512];
    double epoch[12], loss[12], zero[12];

    for (int i = 0; i < 12; i++) {
        epoch[i] = i + 1;
        loss[i] = 0.5;
        zero[i] = 0;
    }
    dsc_series series[2] = {{"train loss", epoch, loss, 12}, {"zero", epoch, zero, 12}};
    dsc_plot plot = {"constant", "epoch", "loss", -1, series, 1, NULL, 0, NULL, 0};
    REQUIRE(render(tmp_path(path, sizeof path, "constant.svg"), &plot) == DSC_OK);
    check_rendered(path);

    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    tick yt[MAX_FOUND];
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    REQUIRE(ny >= 2);
    CHECK(yt[0].value < 0.5 && yt[ny - 1].value > 0.5);
    CHECK(strstr(svg, "class=\"axis linear\""));
    CHECK(points_inside_frame(svg, 2));
    free(svg);

    /* All zeros, and a forced log axis over a constant, also get a valid range. */
    series[0] = series[1];
    REQUIRE(render(path, &plot) == DSC_OK);
    check_rendered(path);
    svg = slurp(path, NULL);
    REQUIRE(svg);
    ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    REQUIRE(ny >= 2);
    CHECK(yt[0].value < 0 && yt[ny - 1].value > 0);
    free(svg);

    series[0] = (dsc_series){"train loss", epoch, loss, 12};
    plot.log_y = 1;
    REQUIRE(render(path, &plot) == DSC_OK);
    check_rendered(path);
    svg = slurp(path, NULL);
    REQUIRE(svg);
    ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    REQUIRE(ny >= 2);
    CHECK(yt[0].value < 0.5 && yt[ny - 1].value > 0.5);
    CHECK(strstr(svg, "id=\"y-axis\" class=\"axis log\""));
    free(svg);
}

/* Runs of consecutive finite values in y[0..n): those of two or more, and single ones. */
static void count_runs(const double *y, size_t n, size_t *lines, size_t *singles)
{
    size_t i = 0;

    *lines = *singles = 0;
    while (i < n) {
        if (!isfinite(y[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && isfinite(y[j]))
            j++;
        if (j - i == 1)
            (*singles)++;
        else
            (*lines)++;
        i = j;
    }
}

TEST(plot_stopped_early_breaks_lines_at_gaps)
{
    char path[512];
    history h;

    make_history(&h, EPOCHS);
    /* Training diverged after epoch 18; validation skipped at some epochs. */
    for (size_t i = 18; i < EPOCHS; i++) {
        h.train[i] = i == 18 ? INFINITY : NAN;
        h.valid[i] = NAN;
        h.lr[i] = NAN;
    }
    h.valid[4] = NAN;
    h.valid[6] = NAN;   /* epoch 6 stands alone between two gaps */
    h.valid[10] = NAN;
    REQUIRE(render(tmp_path(path, sizeof path, "stopped.svg"), &h.plot) == DSC_OK);
    check_rendered(path);

    size_t lines = 0, singles = 0, l, s;
    count_runs(h.train, EPOCHS, &l, &s);
    lines += l;
    singles += s;
    count_runs(h.valid, EPOCHS, &l, &s);
    lines += l;
    singles += s;
    count_runs(h.lr, EPOCHS, &l, &s);
    lines += l;
    singles += s;

    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK_EQ_INT(count_of(svg, "<polyline"), lines);
    CHECK_EQ_INT(count_of(svg, "<circle"), singles);
    CHECK(singles >= 1);

    /* The x axis covers only the epochs with values. */
    tick xt[MAX_FOUND];
    size_t nx = find_ticks(svg, "xtick", xt, MAX_FOUND);
    REQUIRE(nx >= 2);
    CHECK(xt[nx - 1].value >= 18 && xt[nx - 1].value < EPOCHS);
    free(svg);
}

TEST(plot_huge_range_uses_log_ticks)
{
    char path[512];
    double epoch[40], loss[40];

    for (int i = 0; i < 40; i++) {
        epoch[i] = i + 1;
        loss[i] = 4.0 * pow(0.8, i);   /* 4 down to about 0.00066 */
    }
    dsc_series series[1] = {{"loss", epoch, loss, 40}};
    dsc_plot plot = {"huge range", "epoch", "loss", -1, series, 1, NULL, 0, NULL, 0};
    REQUIRE(render(tmp_path(path, sizeof path, "huge.svg"), &plot) == DSC_OK);
    check_rendered(path);

    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, "id=\"y-axis\" class=\"axis log\""));
    CHECK(strstr(svg, ">0.001</text>"));
    CHECK(strstr(svg, ">0.01</text>"));
    CHECK(strstr(svg, ">1</text>"));

    /* Ticks evenly spaced in log10, covering the data. */
    tick yt[MAX_FOUND];
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    REQUIRE(ny >= 3);
    CHECK(affine(yt, ny, 1, 1));
    CHECK(!affine(yt, ny, 1, 0));
    CHECK(yt[0].value < 0.01 && yt[ny - 1].value >= 1);
    for (size_t i = 0; i < ny; i++)
        CHECK(mantissa(yt[i].value) == 1);   /* over 3.8 decades: powers of ten only */
    CHECK(points_inside_frame(svg, 2));

    /* The line's points sit where the ticks say: distance proportional to log10 ratio. */
    double xs[64], ys[64];
    REQUIRE(polyline_points(svg, 0, xs, ys, 64) == 40);
    double per_decade = (yt[ny - 1].y - yt[0].y) / log10(yt[ny - 1].value / yt[0].value);
    for (int i = 1; i < 40; i++)
        CHECK_NEAR(ys[i] - ys[0], per_decade * log10(loss[i] / loss[0]), 0.03);
    free(svg);
}

/* Render one series y over x = 1..n on the left axis with log_flag; 1 when the axis is log. */
static int left_axis_is_log(const double *y, size_t n, int log_flag, char **svg_out)
{
    char path[512];
    double x[64];

    for (size_t i = 0; i < n; i++)
        x[i] = (double)(i + 1);
    dsc_series series[1] = {{"values", x, y, n}};
    dsc_plot plot = {"rule", "x", "y", log_flag, series, 1, NULL, 0, NULL, 0};
    if (render(tmp_path(path, sizeof path, "rule.svg"), &plot) != DSC_OK)
        return -1;

    char *svg = slurp(path, NULL);
    if (!svg)
        return -1;
    tick yt[MAX_FOUND];
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    int log_axis = strstr(svg, "id=\"y-axis\" class=\"axis log\"") != NULL;
    int linear_axis = strstr(svg, "id=\"y-axis\" class=\"axis linear\"") != NULL;

    /* The geometry must agree with the class the axis claims. */
    int result = -1;
    if (log_axis && !linear_axis && affine(yt, ny, 1, 1) && !affine(yt, ny, 1, 0))
        result = 1;
    else if (linear_axis && !log_axis && affine(yt, ny, 1, 0))
        result = 0;
    if (svg_out)
        *svg_out = svg;
    else
        free(svg);
    return result;
}

TEST(plot_log_scale_follows_factor_50_rule)
{
    double y[16];
    char *svg = NULL;

    /* Positive values spanning a factor of 49, then of 51. */
    for (int i = 0; i < 16; i++)
        y[i] = 1.0 + 48.0 * i / 15.0;
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, NULL), 0);
    for (int i = 0; i < 16; i++)
        y[i] = 1.0 + 50.0 * i / 15.0;
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, NULL), 1);

    /* The same factor in the other direction and at another magnitude. */
    for (int i = 0; i < 16; i++)
        y[i] = 0.002 * pow(51.0, 1.0 - i / 15.0);
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, NULL), 1);
    for (int i = 0; i < 16; i++)
        y[i] = 0.002 * pow(49.0, 1.0 - i / 15.0);
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, NULL), 0);

    /* log_y 0 never, log_y 1 always (when a value is positive). */
    for (int i = 0; i < 16; i++)
        y[i] = pow(10.0, i - 8);
    CHECK_EQ_INT(left_axis_is_log(y, 16, 0, NULL), 0);
    for (int i = 0; i < 16; i++)
        y[i] = 1.0 + i / 15.0;
    CHECK_EQ_INT(left_axis_is_log(y, 16, 1, NULL), 1);

    /* Zeros, negatives and NaN do not count, and are not drawn on the log axis. */
    for (int i = 0; i < 16; i++)
        y[i] = i < 3 ? 0.0 : i < 5 ? -2.0 : i == 9 ? NAN : 1.0 + 59.0 * (i - 5) / 10.0;
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, &svg), 1);
    REQUIRE(svg);
    double xs[64], ys[64];
    size_t drawn = 0;
    for (size_t k = 0; k < 4; k++)
        drawn += polyline_points(svg, k, xs, ys, 64);
    drawn += count_of(svg, "<circle");
    size_t positive = 0;
    for (int i = 0; i < 16; i++)
        positive += y[i] > 0;
    CHECK_EQ_INT(drawn, positive);
    free(svg);

    /* A forced log axis with nothing positive stays linear and draws the values. */
    for (int i = 0; i < 16; i++)
        y[i] = -1.0 - i;
    CHECK_EQ_INT(left_axis_is_log(y, 16, 1, NULL), 0);
}

TEST(plot_right_axis_follows_log_y2)
{
    char path[512];
    double x[20], loss[20], lr[20];

    for (int i = 0; i < 20; i++) {
        x[i] = i + 1;
        loss[i] = 1.0 - 0.02 * i;
        lr[i] = 0.1 * pow(0.7, i);   /* a factor of 0.7^-19, about 880 */
    }
    dsc_series left[1] = {{"loss", x, loss, 20}};
    dsc_series right[1] = {{"lr", x, lr, 20}};
    dsc_plot plot = {"lr", "epoch", "loss", -1, left, 1, "lr", -1, right, 1};
    REQUIRE(render(tmp_path(path, sizeof path, "right.svg"), &plot) == DSC_OK);
    check_rendered(path);
    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, "id=\"y-axis\" class=\"axis linear\""));
    CHECK(strstr(svg, "id=\"y2-axis\" class=\"axis log\""));
    tick t[MAX_FOUND];
    size_t n = find_ticks(svg, "y2tick", t, MAX_FOUND);
    CHECK(affine(t, n, 1, 1));
    free(svg);

    plot.log_y2 = 0;
    REQUIRE(render(path, &plot) == DSC_OK);
    svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, "id=\"y2-axis\" class=\"axis linear\""));
    n = find_ticks(svg, "y2tick", t, MAX_FOUND);
    CHECK(affine(t, n, 1, 0));
    free(svg);
}

/* Whether the tick values of an axis are nice: equal steps of 1, 2 or 5 times 10^k. */
static int nice_linear_ticks(const tick *t, size_t n)
{
    if (n < 2)
        return 0;

    double step = t[1].value - t[0].value;
    double magnitude = pow(10.0, floor(log10(step) + 1e-9));
    double m = step / magnitude;
    if (!(fabs(m - 1) < 1e-6 || fabs(m - 2) < 1e-6 || fabs(m - 5) < 1e-6))
        return 0;
    for (size_t i = 0; i < n; i++) {
        double multiple = t[i].value / step;
        if (fabs(multiple - round(multiple)) > 1e-6)
            return 0;
        if (i > 0 && fabs((t[i].value - t[i - 1].value) - step) > 1e-6 * step)
            return 0;
        if (strlen(t[i].label) > 8)
            return 0;
    }
    return 1;
}

TEST(plot_ticks_are_nice_and_cleanly_labelled)
{
    static const double ranges[][2] = {
        {0.1, 0.3}, {0.0, 1.0}, {0.31, 0.69}, {-3.0, 7.0}, {1e-7, 3e-7},
        {1e6, 5e6}, {0.7, 0.71}, {123.0, 4567.0}, {2.5, 2.6}, {-0.3, -0.1},
    };
    char path[512];

    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        double x[2] = {0.5, 7.25}, y[2] = {ranges[r][0], ranges[r][1]};
        dsc_series series[1] = {{"s", x, y, 2}};
        dsc_plot plot = {NULL, NULL, NULL, 0, series, 1, NULL, 0, NULL, 0};
        REQUIRE(render(tmp_path(path, sizeof path, "nice.svg"), &plot) == DSC_OK);
        char *svg = slurp(path, NULL);
        REQUIRE(svg);
        tick yt[MAX_FOUND], xt[MAX_FOUND];
        size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
        size_t nx = find_ticks(svg, "xtick", xt, MAX_FOUND);
        if (!nice_linear_ticks(yt, ny) || !nice_linear_ticks(xt, nx))
            test_report(__FILE__, __LINE__, "range [%g, %g]: ticks not nice", y[0], y[1]);
        CHECK(ny >= 4 && ny <= 12);
        CHECK(yt[1].value - yt[0].value <= (y[1] - y[0]) / 3 * (1 + 1e-9));
        /* A range starting at 0 keeps 0 at the bottom edge; others stay clear of it. */
        CHECK(points_inside_frame(svg, y[0] == 0 ? 0 : 2));
        CHECK(xt[0].value <= x[0] && xt[nx - 1].value >= x[1]);
        CHECK(strstr(svg, "0000000") == NULL);
        CHECK(strstr(svg, "9999999") == NULL);
        free(svg);
    }
}

TEST(plot_escapes_text)
{
    char path[512];
    double x[3] = {1, 2, 3}, y[3] = {3, 2, 1};
    dsc_series series[2] = {{"it's \"quoted\" <b>", x, y, 3},
                            {"ctrl\x01\x1f" "bad\xff" "byte", x, y, 3}};
    dsc_plot plot = {"a < b & c", "x > 0", "y\tlabel", -1, series, 2, NULL, 0, NULL, 0};

    REQUIRE(render(tmp_path(path, sizeof path, "escape.svg"), &plot) == DSC_OK);
    check_rendered(path);
    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, ">a &lt; b &amp; c<"));
    CHECK(strstr(svg, "x &gt; 0"));
    CHECK(strstr(svg, "it&apos;s &quot;quoted&quot; &lt;b&gt;"));
    CHECK(strstr(svg, "a < b") == NULL);
    CHECK(strstr(svg, "<b>") == NULL);
    CHECK(strchr(svg, '\x01') == NULL && strchr(svg, '\x1f') == NULL);
    CHECK(strstr(svg, "\xff") == NULL);
    CHECK(strstr(svg, "ctrl"));
    free(svg);
}

TEST(plot_without_data_is_a_valid_empty_chart)
{
    char path[512];
    dsc_plot plot = {"nothing yet", "epoch", "loss", -1, NULL, 0, NULL, 0, NULL, 0};

    REQUIRE(render(tmp_path(path, sizeof path, "empty.svg"), &plot) == DSC_OK);
    check_rendered(path);
    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, "no data"));
    tick xt[MAX_FOUND], yt[MAX_FOUND];
    CHECK(find_ticks(svg, "xtick", xt, MAX_FOUND) >= 2);
    CHECK(find_ticks(svg, "ytick", yt, MAX_FOUND) >= 2);
    free(svg);

    /* Series whose values are all NaN, or empty, on both axes. */
    double x[4] = {1, 2, 3, 4}, nan4[4] = {NAN, NAN, NAN, NAN};
    dsc_series series[2] = {{"train loss", x, nan4, 4}, {"empty", NULL, NULL, 0}};
    dsc_series series2[1] = {{"lr", x, nan4, 4}};
    plot.series = series;
    plot.n_series = 2;
    plot.series2 = series2;
    plot.n_series2 = 1;
    REQUIRE(render(path, &plot) == DSC_OK);
    check_rendered(path);
    svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK(strstr(svg, ">no data<"));
    CHECK(strstr(svg, "train loss"));
    CHECK_EQ_INT(count_of(svg, "<polyline"), 0);
    free(svg);

    /* No title or labels at all. */
    dsc_plot bare = {NULL, NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0};
    REQUIRE(render(path, &bare) == DSC_OK);
    CHECK(svg_valid(path));
}

TEST(plot_survives_extreme_values)
{
    char path[512];
    double x[8] = {-1e308, 1e308, 2, 3, 4, 5e-324, 6, 7};
    double y[8] = {1.7e308, -1.7e308, 5e-324, 1e-310, 0, 4, INFINITY, -INFINITY};
    double y2[8] = {5e-324, 1e-323, 1.5e-323, 2e-323, 1e300, 1.7e308, 3, 1};
    dsc_series series[1] = {{"extreme", x, y, 8}};
    dsc_series series2[1] = {{"tiny", x, y2, 8}};
    dsc_plot plot = {"extremes", "x", "y", -1, series, 1, "y2", 1, series2, 1};

    REQUIRE(render(tmp_path(path, sizeof path, "extreme.svg"), &plot) == DSC_OK);
    check_rendered(path);

    /* Each alone, and x values equal to within rounding. */
    double same_x[3] = {1e16, 1e16 + 2, 1e16 + 4}, tiny[3] = {5e-324, 1e-323, 5e-324};
    dsc_series one[1] = {{"close", same_x, tiny, 3}};
    dsc_plot plot2 = {"close", NULL, NULL, -1, one, 1, NULL, 0, NULL, 0};
    REQUIRE(render(path, &plot2) == DSC_OK);
    check_rendered(path);
    plot2.log_y = 1;
    REQUIRE(render(path, &plot2) == DSC_OK);
    check_rendered(path);
}

TEST(plot_many_series_cycle_the_palette)
{
    char path[512];
    double x[5] = {1, 2, 3, 4, 5}, y[30][5];
    dsc_series series[30];
    char names[30][16];

    for (int s = 0; s < 30; s++) {
        for (int i = 0; i < 5; i++)
            y[s][i] = s + 0.1 * i;
        snprintf(names[s], sizeof names[s], "run %d", s);
        series[s] = (dsc_series){names[s], x, y[s], 5};
    }
    dsc_plot plot = {"race", "epoch", "loss", -1, series, 30, NULL, 0, NULL, 0};
    REQUIRE(render(tmp_path(path, sizeof path, "many.svg"), &plot) == DSC_OK);
    check_rendered(path);

    /* Every series drawn; the first eight all different colours; the legend says more. */
    char *svg = slurp(path, NULL);
    REQUIRE(svg);
    CHECK_EQ_INT(count_of(svg, "<polyline"), 30);
    long colours[32];
    CHECK(series_colours(svg, colours, 32) >= 8);
    CHECK(strstr(svg, "more</text>"));
    CHECK(strstr(svg, "run 0"));
    free(svg);

    /* A very long title is shortened to fit. */
    char title[400];
    memset(title, 'W', sizeof title - 1);
    title[sizeof title - 1] = '\0';
    plot.title = title;
    plot.n_series = 3;
    REQUIRE(render(path, &plot) == DSC_OK);
    CHECK(svg_valid(path));
    svg = slurp(path, NULL);
    REQUIRE(svg);
    const char *shown = strstr(svg, "class=\"title\"");
    REQUIRE(shown);
    shown = strchr(shown, '>');
    REQUIRE(shown);
    CHECK(strchr(shown, '<') - shown < 200);
    free(svg);
}

TEST(plot_is_deterministic_with_fixed_decimals)
{
    char a[512], b[512];
    history h;

    make_history(&h, EPOCHS);
    REQUIRE(render(tmp_path(a, sizeof a, "a.svg"), &h.plot) == DSC_OK);
    REQUIRE(render(tmp_path(b, sizeof b, "b.svg"), &h.plot) == DSC_OK);
    size_t la = 0, lb = 0;
    char *sa = slurp(a, &la), *sb = slurp(b, &lb);
    REQUIRE(sa && sb);
    CHECK(la == lb && memcmp(sa, sb, la) == 0);

    /* Every coordinate attribute is written with exactly two decimals. */
    static const char *const attrs[] = {" x=\"", " y=\"", " x1=\"", " y2=\"", " cx=\""};
    size_t checked = 0;
    for (size_t k = 0; k < sizeof attrs / sizeof attrs[0]; k++) {
        for (const char *p = sa; (p = strstr(p, attrs[k])) != NULL; p++) {
            const char *v = p + strlen(attrs[k]);
            const char *end = strchr(v, '"');
            const char *dot = strchr(v, '.');
            if (!end)
                break;
            if (end - v == 1 && *v == '0')
                continue;   /* the background's x="0" */
            CHECK(dot && dot < end && end - dot == 3);
            checked++;
        }
    }
    CHECK(checked > 50);
    free(sa);
    free(sb);
}

TEST(plot_rejects_bad_arguments)
{
    char path[512];
    double x[2] = {1, 2}, y[2] = {1, 2};
    dsc_series good[1] = {{"s", x, y, 2}};
    dsc_series no_y[1] = {{"s", x, NULL, 2}};
    dsc_series no_x[1] = {{"s", NULL, y, 2}};
    dsc_plot plot = {"t", "x", "y", -1, good, 1, NULL, 0, NULL, 0};

    FILE *f = fopen(tmp_path(path, sizeof path, "bad.svg"), "w");
    REQUIRE(f);
    CHECK_EQ_INT(dsc_plot_write_svg(NULL, &plot), DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "out"));
    CHECK_EQ_INT(dsc_plot_write_svg(f, NULL), DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "plot"));
    plot.series = no_y;
    CHECK_EQ_INT(dsc_plot_write_svg(f, &plot), DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "series[0]"));
    plot.series = no_x;
    CHECK_EQ_INT(dsc_plot_write_svg(f, &plot), DSC_EINVAL);
    plot.series = good;
    plot.series2 = no_x;
    plot.n_series2 = 1;
    CHECK_EQ_INT(dsc_plot_write_svg(f, &plot), DSC_EINVAL);
    CHECK(strstr(dsc_last_error(), "series2[0]"));
    plot.series2 = NULL;
    CHECK_EQ_INT(dsc_plot_write_svg(f, &plot), DSC_EINVAL);
    fclose(f);
    CHECK_EQ_INT(file_size(path), 0);
}

TEST(plot_reports_write_failure)
{
    char path[512];
    history h;

    make_history(&h, EPOCHS);
    FILE *f = fopen(tmp_path(path, sizeof path, "ro.svg"), "w");
    REQUIRE(f);
    fclose(f);

    /* A stream opened for reading only: every write fails. */
    f = fopen(path, "r");
    REQUIRE(f);
    CHECK_EQ_INT(dsc_plot_write_svg(f, &h.plot), DSC_EIO);
    CHECK(dsc_last_error()[0] != '\0');
    fclose(f);

    /* A full device: the writes fail when the buffer is flushed. */
    f = fopen("/dev/full", "w");
    if (f) {
        CHECK_EQ_INT(dsc_plot_write_svg(f, &h.plot), DSC_EIO);
        fclose(f);
    }
}

TEST(plot_log_ticks_add_2_and_5_over_few_decades)
{
    double y[16];
    char *svg = NULL;

    /* 0.05 to 3: a factor of 60, under two decades. */
    for (int i = 0; i < 16; i++)
        y[i] = 0.05 * pow(60.0, i / 15.0);
    CHECK_EQ_INT(left_axis_is_log(y, 16, -1, &svg), 1);
    REQUIRE(svg);
    tick yt[MAX_FOUND];
    size_t ny = find_ticks(svg, "ytick", yt, MAX_FOUND);
    size_t powers = 0, twos = 0, fives = 0;
    for (size_t i = 0; i < ny; i++) {
        double m = mantissa(yt[i].value);
        powers += m == 1;
        twos += m == 2;
        fives += m == 5;
    }
    CHECK_EQ_INT(powers + twos + fives, ny);
    CHECK(powers >= 1 && twos >= 1 && fives >= 1);
    CHECK(points_inside_frame(svg, 2));
    free(svg);
}
