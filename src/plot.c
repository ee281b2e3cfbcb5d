/*
 * plot.c - line charts as standalone SVG 1.1 documents (dsc_plot_write_svg).
 *
 * The chart is 800 x 500 user units: a white background, a title, a framed plot area with
 * grid lines at "nice" tick values (1, 2 or 5 times a power of ten), a linear x axis, a left
 * y axis and an optional right y axis, each linear or logarithmic, and a legend placed in the
 * corner of the plot area that hides the fewest data points. Every number is written with a
 * fixed number of decimals, so the same input gives the same bytes.
 *
 * Known shortcomings: text widths are estimated from the number of characters (no font
 * metrics), so a very wide or very narrow font may make labels and the legend box fit
 * loosely; a logarithmic axis cannot reach past 1e308, so values above it are clipped; every
 * point is written, with no thinning, so a series of a million points makes a file of tens
 * of megabytes.
 */
#include "internal.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVG_WIDTH 800.0
#define SVG_HEIGHT 500.0
#define MAX_TICKS 48
#define LABEL_SIZE 40

/* Approximate advance of one character at the tick-label (12) and legend (12) font sizes. */
#define CHAR_W 7.0

/* Longest title, axis label and legend name, in characters, before they are shortened. */
#define TITLE_CHARS 78
#define AXIS_LABEL_CHARS 60
#define LEGEND_CHARS 40

#define LEGEND_ROW 18.0
#define LEGEND_SWATCH 26.0

static const char font_family[] = "DejaVu Sans, Helvetica, Arial, sans-serif";

/*
 * The Okabe-Ito palette (Okabe and Ito, "Color Universal Design"), ordered so that the colours
 * that read best as thin lines on white come first; yellow, the faintest, comes last.
 */
static const char *const palette[] = {
    "#0072B2", /* blue */
    "#D55E00", /* vermillion */
    "#009E73", /* bluish green */
    "#CC79A7", /* reddish purple */
    "#E69F00", /* orange */
    "#56B4E9", /* sky blue */
    "#000000", /* black */
    "#F0E442", /* yellow */
};
#define PALETTE_SIZE (sizeof palette / sizeof palette[0])

/* One axis: its scale, the range it shows and its ticks with their labels. */
typedef struct axis {
    int log;                /* 1 for a base-10 logarithmic scale */
    int has_data;           /* some point of its series can be drawn */
    double lo, hi;          /* the range shown, lo < hi (both > 0 on a log axis) */
    size_t n_ticks;
    double ticks[MAX_TICKS];
    char labels[MAX_TICKS][LABEL_SIZE];
    size_t n_minor;         /* minor tick marks (log axes with few labelled decades) */
    double minor[MAX_TICKS];
} axis;

/* The plot area in SVG user units. */
typedef struct frame {
    double left, right, top, bottom;
} frame;

/* A number as SVG text: fixed two decimals, '.' as decimal point in every locale. */
typedef struct coord {
    char s[24];
} coord;

/* Format v with two decimals without printf's locale: integers print the same everywhere. */
static coord px(double v)
{
    coord c;

    if (!(v == v))
        v = 0;
    if (v > 1e6)
        v = 1e6;
    if (v < -1e6)
        v = -1e6;

    long long r = llround(v * 100.0);
    const char *sign = r < 0 ? "-" : "";
    if (r < 0)
        r = -r;
    snprintf(c.s, sizeof c.s, "%s%lld.%02lld", sign, r / 100, r % 100);
    return c;
}

/* Replace the locale's decimal point in text by '.', so that labels read the same anywhere. */
static void fix_decimal_point(char *text)
{
    const char *point = localeconv()->decimal_point;

    if (!point || !point[0] || strcmp(point, ".") == 0)
        return;

    size_t len = strlen(point);
    char *at = strstr(text, point);
    if (at) {
        *at = '.';
        memmove(at + 1, at + len, strlen(at + len) + 1);
    }
}

/* 10^k for an integer k, as close to the decimal value as pow allows. */
static double pow10i(int k)
{
    return pow(10.0, (double)k);
}

/* c * 10^k with c an integer: divide by an exact power of ten where one exists. */
static double scaled(double c, int k)
{
    if (k >= 0)
        return c * pow10i(k);
    if (k >= -22)
        return c / pow10i(-k);
    return c * pow10i(k);
}

/*
 * A tick label in exponent form with the fewest mantissa digits that give back the value as
 * %.15g has it, written compactly: 1e-5, 2.5e6.
 */
static void format_exponent(double v, char *buf, size_t size)
{
    char want[LABEL_SIZE];
    char raw[LABEL_SIZE];

    snprintf(want, sizeof want, "%.15g", v);
    double target = strtod(want, NULL);
    for (int digits = 0; digits <= 15; digits++) {
        snprintf(raw, sizeof raw, "%.*e", digits, v);
        if (strtod(raw, NULL) == target)
            break;
    }

    char *e = strchr(raw, 'e');
    if (!e) {
        snprintf(buf, size, "%s", raw);
        fix_decimal_point(buf);
        return;
    }
    *e = '\0';
    const char *exp = e + 1;
    int negative = *exp == '-';
    if (*exp == '-' || *exp == '+')
        exp++;
    while (*exp == '0' && exp[1])
        exp++;
    snprintf(buf, size, "%.24se%s%.4s", raw, negative ? "-" : "", exp);
    fix_decimal_point(buf);
}

/* A tick label on a log axis: plain decimals between 1e-4 and 1e6, exponent form outside. */
static void format_log_label(double v, char *buf, size_t size)
{
    if (v >= 1e-4 && v < 1e6) {
        snprintf(buf, size, "%.15g", v);
        fix_decimal_point(buf);
    } else {
        format_exponent(v, buf, size);
    }
}

/* Whether point i of s can be drawn on a y axis of the given scale. */
static int drawable(const dsc_series *s, size_t i, int log_scale)
{
    double x = s->x[i], y = s->y[i];

    return isfinite(x) && isfinite(y) && (!log_scale || y > 0);
}

/* The smallest and largest y of the points of n series that can be drawn; 0 when none. */
static int y_extent(const dsc_series *series, size_t n, int log_scale, double *min, double *max)
{
    int found = 0;

    for (size_t s = 0; s < n; s++) {
        for (size_t i = 0; i < series[s].n; i++) {
            if (!drawable(&series[s], i, log_scale))
                continue;
            double y = series[s].y[i];
            if (!found || y < *min)
                *min = y;
            if (!found || y > *max)
                *max = y;
            found = 1;
        }
    }
    return found;
}

/*
 * Whether a y axis is logarithmic: log_flag 1 asks for it, 0 refuses it and -1 chooses it when
 * the positive values span more than a factor of 50. A log axis needs a positive value; with
 * none it stays linear.
 */
static int choose_log(int log_flag, const dsc_series *series, size_t n)
{
    double min = 0, max = 0;

    if (log_flag == 0 || !y_extent(series, n, 1, &min, &max))
        return 0;
    if (log_flag > 0)
        return 1;
    return max / min > 50.0;
}

/* Widen a zero-width range [v, v] around v so that an axis can be drawn. */
static void pad_zero_width(double v, int integers, double *lo, double *hi)
{
    double delta;

    if (v == 0)
        delta = 1;
    else if (integers)
        delta = fmax(1.0, 0.05 * fabs(v));
    else
        delta = 0.1 * fabs(v);

    *lo = v - delta;
    *hi = v + delta;
    if (!isfinite(*hi))
        *hi = v;
    if (!isfinite(*lo))
        *lo = v;
    if (!(*hi > *lo)) {
        *lo = v - 1;
        *hi = v + 1;
    }
}

/* An axis with two ticks at the ends of [lo, hi], for ranges too odd for nice ticks. */
static void plain_ticks(axis *a, double lo, double hi)
{
    a->lo = lo;
    a->hi = hi;
    a->n_ticks = 2;
    a->ticks[0] = lo;
    a->ticks[1] = hi;
    for (size_t i = 0; i < 2; i++) {
        double v = a->ticks[i];
        if (fabs(v) >= 1e-3 && fabs(v) < 1e6) {
            snprintf(a->labels[i], LABEL_SIZE, "%.6g", v);
            fix_decimal_point(a->labels[i]);
        } else {
            format_exponent(v, a->labels[i], LABEL_SIZE);
        }
    }
}

/* Label linear ticks: the decimals of step m * 10^k, or exponent form for extreme values. */
static void label_linear_ticks(axis *a, int k)
{
    double largest = 0;

    for (size_t i = 0; i < a->n_ticks; i++)
        largest = fmax(largest, fabs(a->ticks[i]));

    int exponent_form = largest >= 1e6 || largest < 1e-3;
    for (size_t i = 0; i < a->n_ticks; i++) {
        if (a->ticks[i] == 0)
            snprintf(a->labels[i], LABEL_SIZE, "0");
        else if (exponent_form)
            format_exponent(a->ticks[i], a->labels[i], LABEL_SIZE);
        else
            snprintf(a->labels[i], LABEL_SIZE, "%.*f", k < 0 ? -k : 0, a->ticks[i]);
        fix_decimal_point(a->labels[i]);
    }
}

/*
 * Ticks at the multiples of a step of 1, 2 or 5 times a power of ten, about intervals of them
 * over [min, max] (min < max). snap: the axis ends at the multiples around [min, max];
 * otherwise it is [min, max] with the multiples inside. integers: a step of at least 1.
 * Returns 0 when the range is too odd for such ticks.
 */
static int nice_ticks(axis *a, double min, double max, int intervals, int snap, int integers)
{
    double rough = (max / 2 - min / 2) * 2.0 / intervals;
    if (!isfinite(rough) || rough < 1e-290)
        return 0;

    /* The step: rough rounded to 1, 2 or 5 times 10^k. */
    int k = (int)floor(log10(rough));
    double f = rough / pow10i(k);
    int m = f < 1.5 ? 1 : f < 3.0 ? 2 : f < 7.0 ? 5 : 10;
    if (m == 10) {
        m = 1;
        k++;
    }
    if (integers && k < 0) {
        m = 1;
        k = 0;
    }

    /* The ticks are n * m * 10^k for whole n, outside or inside [min, max]. */
    double step = scaled(m, k);
    double n_lo, n_hi;
    if (snap) {
        n_lo = floor(min / step);
        n_hi = ceil(max / step);
    } else {
        n_lo = ceil(min / step - 1e-9);
        n_hi = floor(max / step + 1e-9);
    }
    if (!isfinite(n_lo) || !isfinite(n_hi) || fabs(n_lo) > 1e15 || fabs(n_hi) > 1e15 ||
        n_hi - n_lo + 1 > MAX_TICKS || n_hi <= n_lo)
        return 0;

    a->n_ticks = (size_t)(n_hi - n_lo) + 1;
    for (size_t i = 0; i < a->n_ticks; i++)
        a->ticks[i] = scaled((n_lo + (double)i) * m, k) + 0.0;
    a->lo = snap ? a->ticks[0] : min;
    a->hi = snap ? a->ticks[a->n_ticks - 1] : max;
    if (!isfinite(a->ticks[0]) || !isfinite(a->ticks[a->n_ticks - 1]) || !(a->hi > a->lo))
        return 0;
    label_linear_ticks(a, k);
    return 1;
}

/*
 * A linear axis over the data range [min, max]. x axis (snap): it ends at nice ticks around
 * the data. y axis: the range is widened by a small margin so that no point sits on the
 * frame (but not across zero: losses start at a 0 tick), with nice ticks inside.
 * integers: every value is a whole number (epochs), so the step is at least 1.
 */
static void linear_axis(axis *a, double min, double max, int snap, int integers)
{
    a->log = 0;
    if (!(max - min > 1e-12 * fmax(fabs(min), fabs(max))))
        pad_zero_width(min / 2 + max / 2, integers, &min, &max);

    if (!snap) {
        double margin = (max / 2 - min / 2) * 0.08;
        double lo = min - margin, hi = max + margin;
        if (min >= 0 && lo < 0)
            lo = 0;
        if (max <= 0 && hi > 0)
            hi = 0;
        if (isfinite(lo) && isfinite(hi)) {
            min = lo;
            max = hi;
        }
    }

    if (!nice_ticks(a, min, max, snap ? 7 : 6, snap, integers))
        plain_ticks(a, min, max);
}

/* Add a tick at v to a log axis unless it is full. */
static void add_log_tick(axis *a, double v)
{
    if (a->n_ticks < MAX_TICKS) {
        a->ticks[a->n_ticks] = v;
        format_log_label(v, a->labels[a->n_ticks], LABEL_SIZE);
        a->n_ticks++;
    }
}

/*
 * A log axis over the positive data range [min, max], widened by a small margin (in
 * decades). Ticks inside it: at 1, 2 and 5 times powers of ten over up to 3 decades, at
 * powers of ten (every s-th one for very wide ranges) beyond; a range too narrow to hold four
 * such ticks gets linear nice values instead, still placed on the log scale.
 */
static void log_axis(axis *a, double min, double max)
{
    a->log = 1;
    a->n_ticks = 0;
    a->n_minor = 0;
    if (!(max > min * (1 + 1e-9))) {
        double v = min;
        min = v / 1.25;
        max = v * 1.25;
        if (!isfinite(max) || !(min > 0)) {
            min = v;
            max = v;
        }
    }

    /* The range in decades, with a margin of 4 % of it on each side. */
    double l_min = log10(min), l_max = log10(max);
    double span = l_max - l_min;
    if (!(span > 0))
        span = 1;
    double lo = pow(10.0, l_min - 0.04 * span), hi = pow(10.0, l_max + 0.04 * span);
    if (!(lo > 0) || !isfinite(lo))
        lo = min;
    if (!isfinite(hi))
        hi = max;
    if (!(hi > lo)) {
        lo = min / 2 > 0 ? min / 2 : min;
        hi = isfinite(max * 2) ? max * 2 : max;
    }
    a->lo = lo;
    a->hi = hi;

    int d_lo = (int)floor(log10(lo)) - 1, d_hi = (int)ceil(log10(hi)) + 1;
    if (d_lo < -324)
        d_lo = -324;
    if (d_hi > 308)
        d_hi = 308;
    if (span <= 3.0) {
        static const int mantissas[3] = {1, 2, 5};
        for (int d = d_lo; d <= d_hi; d++) {
            for (int j = 0; j < 3; j++) {
                double c = scaled(mantissas[j], d);
                if (isfinite(c) && c >= lo && c <= hi)
                    add_log_tick(a, c);
            }
        }
    } else {
        int every = (int)ceil(span / 8.0);
        for (int d = d_lo; d <= d_hi; d++) {
            double c = scaled(1, d);
            if (d % every == 0 && c >= lo && c <= hi)
                add_log_tick(a, c);
            for (int j = 2; every == 1 && j <= 9 && a->n_minor < MAX_TICKS; j++) {
                double minor = scaled(j, d);
                if (minor >= lo && minor <= hi)
                    a->minor[a->n_minor++] = minor;
            }
        }
    }

    /* Too few ticks for a narrow range: linear nice values inside it. */
    if (a->n_ticks < 3 || (a->n_ticks < 4 && span < 1.0)) {
        axis linear;
        memset(&linear, 0, sizeof linear);
        if (nice_ticks(&linear, lo, hi, 6, 0, 0) && linear.ticks[0] > 0 &&
            linear.n_ticks > a->n_ticks) {
            *a = linear;
            a->log = 1;
            a->n_minor = 0;
        }
    }
    if (a->n_ticks < 2) {
        a->n_ticks = 0;
        add_log_tick(a, lo);
        add_log_tick(a, hi);
    }
}

/* The position of v on axis a, between pixel p_lo (at a->lo) and p_hi (at a->hi). */
static double project(const axis *a, double v, double p_lo, double p_hi)
{
    double t;

    if (a->log) {
        double l0 = log10(a->lo), l1 = log10(a->hi);
        t = (log10(v) - l0) / (l1 - l0);
    } else {
        double half = a->hi / 2 - a->lo / 2;
        t = half > 0 ? (v / 2 - a->lo / 2) / half : 0.5;
    }
    if (!(t == t))
        t = 0.5;
    t = fmin(fmax(t, -0.5), 1.5);
    return p_lo + t * (p_hi - p_lo);
}

/* Number of characters (code points) in UTF-8 text; each invalid byte counts as one. */
static size_t text_chars(const char *text)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        if ((*p & 0xC0) != 0x80)
            n++;
    }
    return n;
}

/*
 * Decode one UTF-8 character at s into *cp and return its length in bytes. A malformed
 * sequence (truncated, overlong, surrogate, beyond U+10FFFF) gives U+FFFD for one byte.
 */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned char b = s[0];
    size_t len;
    uint32_t c, min;

    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if ((b & 0xE0) == 0xC0) {
        len = 2;
        c = b & 0x1F;
        min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        len = 3;
        c = b & 0x0F;
        min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        len = 4;
        c = b & 0x07;
        min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }

    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = c;
    return len;
}

/* Whether XML 1.0 allows character cp in text. */
static int xml_char(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* Write code point cp as UTF-8. */
static void put_utf8(FILE *out, uint32_t cp)
{
    if (cp < 0x80) {
        fputc((int)cp, out);
    } else if (cp < 0x800) {
        fputc((int)(0xC0 | (cp >> 6)), out);
        fputc((int)(0x80 | (cp & 0x3F)), out);
    } else if (cp < 0x10000) {
        fputc((int)(0xE0 | (cp >> 12)), out);
        fputc((int)(0x80 | ((cp >> 6) & 0x3F)), out);
        fputc((int)(0x80 | (cp & 0x3F)), out);
    } else {
        fputc((int)(0xF0 | (cp >> 18)), out);
        fputc((int)(0x80 | ((cp >> 12) & 0x3F)), out);
        fputc((int)(0x80 | ((cp >> 6) & 0x3F)), out);
        fputc((int)(0x80 | (cp & 0x3F)), out);
    }
}

/*
 * Write text as XML character data: the five special characters escaped, characters XML 1.0
 * forbids dropped, malformed UTF-8 replaced by U+FFFD, tabs and line breaks turned into
 * spaces, and text longer than max_chars characters cut short with an ellipsis.
 */
static void put_text(FILE *out, const char *text, size_t max_chars)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t total = 0, written = 0;

    if (!text)
        return;

    /* Count what would be written, to know whether it must be shortened. */
    for (const unsigned char *q = p; *q;) {
        uint32_t cp;
        q += utf8_next(q, &cp);
        if (xml_char(cp))
            total++;
    }
    size_t keep = total > max_chars ? max_chars - 1 : total;

    while (*p && written < keep) {
        uint32_t cp;
        p += utf8_next(p, &cp);
        if (!xml_char(cp))
            continue;
        written++;
        switch (cp) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        case '\t':
        case '\n':
        case '\r': fputc(' ', out); break;
        default: put_utf8(out, cp); break;
        }
    }
    if (keep < total)
        put_utf8(out, 0x2026);
}

/* The estimated width of text at the label font size, counting at most max_chars. */
static double text_width(const char *text, size_t max_chars)
{
    size_t n = text_chars(text);

    return (double)(n < max_chars ? n : max_chars) * CHAR_W;
}

/* The width of the widest tick label of a. */
static double widest_label(const axis *a)
{
    double w = 0;

    for (size_t i = 0; i < a->n_ticks; i++)
        w = fmax(w, text_width(a->labels[i], LABEL_SIZE));
    return w;
}

/* Whether all x values that can be drawn on either axis are whole numbers. */
static int x_all_integers(const dsc_plot *plot, int log1, int log2)
{
    for (int side = 0; side < 2; side++) {
        const dsc_series *series = side ? plot->series2 : plot->series;
        size_t n = side ? plot->n_series2 : plot->n_series;
        for (size_t s = 0; s < n; s++) {
            for (size_t i = 0; i < series[s].n; i++) {
                double x = series[s].x[i];
                if (drawable(&series[s], i, side ? log2 : log1) &&
                    !(fabs(x) < 1e15 && x == floor(x)))
                    return 0;
            }
        }
    }
    return 1;
}

/* The x range of the points that can be drawn on either axis; 0 when there are none. */
static int x_extent(const dsc_plot *plot, int log1, int log2, double *min, double *max)
{
    int found = 0;

    for (int side = 0; side < 2; side++) {
        const dsc_series *series = side ? plot->series2 : plot->series;
        size_t n = side ? plot->n_series2 : plot->n_series;
        for (size_t s = 0; s < n; s++) {
            for (size_t i = 0; i < series[s].n; i++) {
                if (!drawable(&series[s], i, side ? log2 : log1))
                    continue;
                double x = series[s].x[i];
                if (!found || x < *min)
                    *min = x;
                if (!found || x > *max)
                    *max = x;
                found = 1;
            }
        }
    }
    return found;
}

/* Set up a y axis for n series: its scale from log_flag, its range from the data. */
static void y_axis(axis *a, int log_flag, const dsc_series *series, size_t n)
{
    double min = 0, max = 1;

    memset(a, 0, sizeof *a);
    int log_scale = choose_log(log_flag, series, n);
    a->has_data = y_extent(series, n, log_scale, &min, &max);
    if (log_scale)
        log_axis(a, min, max);
    else
        linear_axis(a, min, max, 0, 0);
}

/* The colour of series index (counting the left axis's series, then the right's). */
static const char *series_colour(size_t index)
{
    return palette[index % PALETTE_SIZE];
}

/* Solid lines on the left axis, dashed on the right; dotted variants once colours repeat. */
static const char *series_dash(size_t index, int secondary)
{
    int cycle = (int)(index / PALETTE_SIZE % 2);

    if (secondary)
        return cycle ? "10,3,2,3" : "7,4";
    return cycle ? "1.5,3" : NULL;
}

/* Write the stroke attributes of a series line. */
static void put_stroke(FILE *out, size_t index, int secondary)
{
    const char *dash = series_dash(index, secondary);

    fprintf(out, "fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", series_colour(index));
    if (dash)
        fprintf(out, " stroke-dasharray=\"%s\"", dash);
}

/*
 * Draw one series: a polyline for each run of drawable points, a circle for a run of one.
 * Non-finite points (and non-positive ones on a log axis) break the line.
 */
static void put_series(FILE *out, const dsc_series *s, const axis *ax, const axis *ay,
                       const frame *f, size_t index, int secondary)
{
    size_t i = 0;

    while (i < s->n) {
        if (!drawable(s, i, ay->log)) {
            i++;
            continue;
        }
        size_t end = i;
        while (end < s->n && drawable(s, end, ay->log))
            end++;

        if (end - i == 1) {
            double x = project(ax, s->x[i], f->left, f->right);
            double y = project(ay, s->y[i], f->bottom, f->top);
            fprintf(out, "<circle class=\"point\" cx=\"%s\" cy=\"%s\" r=\"4.00\" ", px(x).s,
                    px(y).s);
            if (secondary)
                fprintf(out, "fill=\"#FFFFFF\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                        series_colour(index));
            else
                fprintf(out, "fill=\"%s\"/>\n", series_colour(index));
        } else {
            fputs("<polyline class=\"series\" points=\"", out);
            for (size_t j = i; j < end; j++) {
                double x = project(ax, s->x[j], f->left, f->right);
                double y = project(ay, s->y[j], f->bottom, f->top);
                fprintf(out, "%s%s,%s", j > i ? " " : "", px(x).s, px(y).s);
            }
            fputs("\" ", out);
            put_stroke(out, index, secondary);
            fputs(" stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n", out);
        }
        i = end;
    }
}

/* A rectangle in SVG user units. */
typedef struct box {
    double x0, y0, x1, y1;
} box;

/* Count the sample points of the drawn lines of n series that fall inside each box. */
static void count_hits(const dsc_series *series, size_t n, const axis *ax, const axis *ay,
                       const frame *f, const box *boxes, size_t n_boxes, size_t *hits)
{
    for (size_t s = 0; s < n; s++) {
        const dsc_series *ser = &series[s];
        for (size_t i = 0; i < ser->n; i++) {
            if (!drawable(ser, i, ay->log))
                continue;
            double x0 = project(ax, ser->x[i], f->left, f->right);
            double y0 = project(ay, ser->y[i], f->bottom, f->top);
            int next = i + 1 < ser->n && drawable(ser, i + 1, ay->log);
            double x1 = next ? project(ax, ser->x[i + 1], f->left, f->right) : x0;
            double y1 = next ? project(ay, ser->y[i + 1], f->bottom, f->top) : y0;
            int samples = next ? 12 : 1;
            for (int k = 0; k < samples; k++) {
                double t = (double)k / samples;
                double x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
                for (size_t b = 0; b < n_boxes; b++) {
                    if (x >= boxes[b].x0 && x <= boxes[b].x1 && y >= boxes[b].y0 &&
                        y <= boxes[b].y1)
                        hits[b]++;
                }
            }
        }
    }
}

/* Whether series s has a point that can be drawn on an axis of the given scale. */
static int has_points(const dsc_series *s, int log_scale)
{
    for (size_t i = 0; i < s->n; i++) {
        if (drawable(s, i, log_scale))
            return 1;
    }
    return 0;
}

/*
 * The legend: one row per series (its line style, its name, "(right)" for the right axis),
 * in a box in the corner of the plot area where it hides the fewest points of the lines.
 */
static void put_legend(FILE *out, const dsc_plot *plot, const axis *ax, const axis *ay,
                       const axis *ay2, const frame *f)
{
    size_t n_entries = plot->n_series + plot->n_series2;
    if (n_entries == 0)
        return;

    /* Rows that fit in the plot area; the last one says how many are left out. */
    size_t max_rows = (size_t)fmax(1.0, floor((f->bottom - f->top - 24) / LEGEND_ROW));
    size_t rows = n_entries <= max_rows ? n_entries : max_rows;
    size_t shown = n_entries <= max_rows ? n_entries : max_rows - 1;

    double text_w = 0;
    for (size_t e = 0; e < shown; e++) {
        int secondary = e >= plot->n_series;
        const dsc_series *s = secondary ? &plot->series2[e - plot->n_series]
                                        : &plot->series[e];
        double w = s->name ? text_width(s->name, LEGEND_CHARS) : 8 * CHAR_W;
        if (secondary)
            w += 8 * CHAR_W;
        if (!has_points(s, secondary ? ay2->log : ay->log))
            w += 10 * CHAR_W;
        text_w = fmax(text_w, w);
    }
    if (shown < n_entries)
        text_w = fmax(text_w, 16 * CHAR_W);
    double width = 10 + LEGEND_SWATCH + 8 + text_w + 8;
    double height = (double)rows * LEGEND_ROW + 10;
    width = fmin(width, f->right - f->left - 20);

    /* The corners in order of preference: top right, top left, bottom right, bottom left. */
    box corners[4];
    double inset = 10;
    for (int c = 0; c < 4; c++) {
        double x0 = c % 2 == 0 ? f->right - inset - width : f->left + inset;
        double y0 = c < 2 ? f->top + inset : f->bottom - inset - height;
        corners[c] = (box){x0, y0, x0 + width, y0 + height};
    }
    /*
     * Score each corner by the line samples inside its box (hidden) and, at a quarter of the
     * weight, inside a margin around it (crowded); the lowest score wins, the first on ties.
     */
    box areas[8];
    for (int c = 0; c < 4; c++) {
        areas[c] = corners[c];
        areas[4 + c] = (box){corners[c].x0 - 16, corners[c].y0 - 16, corners[c].x1 + 16,
                             corners[c].y1 + 16};
    }
    size_t hits[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    count_hits(plot->series, plot->n_series, ax, ay, f, areas, 8, hits);
    count_hits(plot->series2, plot->n_series2, ax, ay2, f, areas, 8, hits);
    int best = 0;
    for (int c = 1; c < 4; c++) {
        if (4 * hits[c] + hits[4 + c] < 4 * hits[best] + hits[4 + best])
            best = c;
    }
    box b = corners[best];

    fprintf(out, "<g class=\"legend\">\n");
    fprintf(out, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" rx=\"3.00\" "
            "fill=\"#FFFFFF\" fill-opacity=\"0.90\" stroke=\"#BBBBBB\" stroke-width=\"1\"/>\n",
            px(b.x0).s, px(b.y0).s, px(width).s, px(height).s);
    for (size_t e = 0; e < rows; e++) {
        double y = b.y0 + 5 + LEGEND_ROW * ((double)e + 0.5);
        double x = b.x0 + 10;
        if (e == shown) {
            fprintf(out, "<text x=\"%s\" y=\"%s\" font-size=\"12\" fill=\"#555555\">"
                    "\xE2\x80\xA6 and %zu more</text>\n", px(x).s, px(y + 4).s,
                    n_entries - shown);
            break;
        }
        int secondary = e >= plot->n_series;
        const dsc_series *s = secondary ? &plot->series2[e - plot->n_series]
                                        : &plot->series[e];
        fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" ", px(x).s, px(y).s,
                px(x + LEGEND_SWATCH).s, px(y).s);
        put_stroke(out, e, secondary);
        fputs("/>\n", out);
        fprintf(out, "<text class=\"legend-entry\" x=\"%s\" y=\"%s\" font-size=\"12\" "
                "fill=\"#222222\">", px(x + LEGEND_SWATCH + 8).s, px(y + 4).s);
        if (s->name)
            put_text(out, s->name, LEGEND_CHARS);
        else
            fprintf(out, "series %zu", e + 1);
        if (secondary)
            fputs(" (right)", out);
        if (!has_points(s, secondary ? ay2->log : ay->log))
            fputs(" (no data)", out);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);
}

/* Grid lines, tick marks and tick labels of the x axis. */
static void put_x_axis(FILE *out, const axis *ax, const frame *f)
{
    fputs("<g id=\"x-axis\" class=\"axis linear\">\n", out);
    for (size_t i = 0; i < ax->n_ticks; i++) {
        double x = project(ax, ax->ticks[i], f->left, f->right);
        fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#E4E4E4\" "
                "stroke-width=\"1\"/>\n", px(x).s, px(f->top).s, px(x).s, px(f->bottom).s);
        fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#444444\" "
                "stroke-width=\"1\"/>\n", px(x).s, px(f->bottom).s, px(x).s,
                px(f->bottom + 5).s);
        fprintf(out, "<text class=\"xtick\" x=\"%s\" y=\"%s\" text-anchor=\"middle\" "
                "font-size=\"12\" fill=\"#333333\">", px(x).s, px(f->bottom + 19).s);
        put_text(out, ax->labels[i], LABEL_SIZE);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);
}

/*
 * Tick marks and labels of a y axis; grid lines for the left one. right: the axis on the
 * right side, with its labels left-aligned.
 */
static void put_y_axis(FILE *out, const axis *ay, const frame *f, int right)
{
    double edge = right ? f->right : f->left;
    double dir = right ? 1 : -1;

    fprintf(out, "<g id=\"%s\" class=\"axis %s\">\n", right ? "y2-axis" : "y-axis",
            ay->log ? "log" : "linear");
    for (size_t i = 0; i < ay->n_minor; i++) {
        double y = project(ay, ay->minor[i], f->bottom, f->top);
        if (y < f->top - 0.01 || y > f->bottom + 0.01)
            continue;
        fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#444444\" "
                "stroke-width=\"1\"/>\n", px(edge).s, px(y).s, px(edge + 3 * dir).s, px(y).s);
    }
    for (size_t i = 0; i < ay->n_ticks; i++) {
        double y = project(ay, ay->ticks[i], f->bottom, f->top);
        if (!right)
            fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#E4E4E4\" "
                    "stroke-width=\"1\"/>\n", px(f->left).s, px(y).s, px(f->right).s,
                    px(y).s);
        fprintf(out, "<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"#444444\" "
                "stroke-width=\"1\"/>\n", px(edge).s, px(y).s, px(edge + 5 * dir).s, px(y).s);
        fprintf(out, "<text class=\"%s\" x=\"%s\" y=\"%s\" text-anchor=\"%s\" "
                "font-size=\"12\" fill=\"#333333\">", right ? "y2tick" : "ytick",
                px(edge + 8 * dir).s, px(y + 4).s, right ? "start" : "end");
        put_text(out, ay->labels[i], LABEL_SIZE);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);
}

/* A y axis label, rotated to read upwards, centred on the plot area at x. */
static void put_y_label(FILE *out, const char *label, double x, const frame *f)
{
    double y = (f->top + f->bottom) / 2;

    fprintf(out, "<text x=\"%s\" y=\"%s\" transform=\"rotate(-90 %s %s)\" "
            "text-anchor=\"middle\" font-size=\"13\" fill=\"#222222\">", px(x).s, px(y).s,
            px(x).s, px(y).s);
    put_text(out, label, AXIS_LABEL_CHARS);
    fputs("</text>\n", out);
}

/* Check the arguments: non-NULL, and every series with points has its arrays. */
static int check_plot(FILE *out, const dsc_plot *plot)
{
    if (!out)
        return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: out is NULL");
    if (!plot)
        return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: plot is NULL");
    if (plot->n_series > 0 && !plot->series)
        return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: plot->series is NULL with "
                         "n_series = %zu", plot->n_series);
    if (plot->n_series2 > 0 && !plot->series2)
        return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: plot->series2 is NULL with "
                         "n_series2 = %zu", plot->n_series2);
    for (size_t s = 0; s < plot->n_series; s++) {
        if (plot->series[s].n > 0 && (!plot->series[s].x || !plot->series[s].y))
            return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: plot->series[%zu] has n = %zu "
                             "but x or y is NULL", s, plot->series[s].n);
    }
    for (size_t s = 0; s < plot->n_series2; s++) {
        if (plot->series2[s].n > 0 && (!plot->series2[s].x || !plot->series2[s].y))
            return dsc__fail(DSC_EINVAL, "dsc_plot_write_svg: plot->series2[%zu] has n = "
                             "%zu but x or y is NULL", s, plot->series2[s].n);
    }
    return DSC_OK;
}

int dsc_plot_write_svg(FILE *out, const dsc_plot *plot)
{
    int rc = check_plot(out, plot);
    if (rc != DSC_OK)
        return rc;

    /* The axes: the y scales first, since a log scale leaves out the points <= 0. */
    axis ax, ay, ay2;
    int has_right = plot->n_series2 > 0;
    y_axis(&ay, plot->log_y, plot->series, plot->n_series);
    y_axis(&ay2, plot->log_y2, plot->series2, plot->n_series2);
    memset(&ax, 0, sizeof ax);
    double x_min = 0, x_max = 1;
    ax.has_data = x_extent(plot, ay.log, ay2.log, &x_min, &x_max);
    linear_axis(&ax, x_min, x_max, 1, ax.has_data && x_all_integers(plot, ay.log, ay2.log));

    /* The plot area: room for the title, the labels and the widest tick labels. */
    frame f;
    f.top = plot->title ? 48 : 20;
    f.bottom = SVG_HEIGHT - (plot->x_label ? 62 : 42);
    f.left = fmax(56, (plot->y_label ? 36 : 12) + widest_label(&ay) + 10);
    if (has_right)
        f.right = SVG_WIDTH - fmax(40, (plot->y2_label ? 36 : 12) + widest_label(&ay2) + 10);
    else
        f.right = SVG_WIDTH - fmax(24, widest_label(&ax) / 2 + 8);

    /* The document, the background and the title. */
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"%s\">\n", (int)SVG_WIDTH,
            (int)SVG_HEIGHT, (int)SVG_WIDTH, (int)SVG_HEIGHT, font_family);
    if (plot->title) {
        fputs("<title>", out);
        put_text(out, plot->title, 1000);
        fputs("</title>\n", out);
    }
    fprintf(out, "<defs><clipPath id=\"plot-area\"><rect x=\"%s\" y=\"%s\" width=\"%s\" "
            "height=\"%s\"/></clipPath></defs>\n", px(f.left - 6).s, px(f.top - 6).s,
            px(f.right - f.left + 12).s, px(f.bottom - f.top + 12).s);
    fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#FFFFFF\"/>\n",
            (int)SVG_WIDTH, (int)SVG_HEIGHT);
    if (plot->title) {
        fprintf(out, "<text class=\"title\" x=\"%s\" y=\"30.00\" text-anchor=\"middle\" "
                "font-size=\"16\" font-weight=\"bold\" fill=\"#111111\">", px(SVG_WIDTH / 2).s);
        put_text(out, plot->title, TITLE_CHARS);
        fputs("</text>\n", out);
    }

    /* Grid, ticks and labels, then the frame over the grid. */
    put_x_axis(out, &ax, &f);
    put_y_axis(out, &ay, &f, 0);
    if (has_right)
        put_y_axis(out, &ay2, &f, 1);
    fprintf(out, "<rect class=\"frame\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" "
            "fill=\"none\" stroke=\"#444444\" stroke-width=\"1\"/>\n", px(f.left).s,
            px(f.top).s, px(f.right - f.left).s, px(f.bottom - f.top).s);
    if (plot->x_label) {
        fprintf(out, "<text x=\"%s\" y=\"%s\" text-anchor=\"middle\" font-size=\"13\" "
                "fill=\"#222222\">", px((f.left + f.right) / 2).s, px(f.bottom + 44).s);
        put_text(out, plot->x_label, AXIS_LABEL_CHARS);
        fputs("</text>\n", out);
    }
    if (plot->y_label)
        put_y_label(out, plot->y_label, 20, &f);
    if (has_right && plot->y2_label)
        put_y_label(out, plot->y2_label, SVG_WIDTH - 14, &f);

    /* The curves, clipped to the plot area, then the legend over them. */
    fputs("<g clip-path=\"url(#plot-area)\">\n", out);
    for (size_t s = 0; s < plot->n_series; s++)
        put_series(out, &plot->series[s], &ax, &ay, &f, s, 0);
    for (size_t s = 0; s < plot->n_series2; s++)
        put_series(out, &plot->series2[s], &ax, &ay2, &f, plot->n_series + s, 1);
    fputs("</g>\n", out);
    put_legend(out, plot, &ax, &ay, &ay2, &f);
    if (!ax.has_data)
        fprintf(out, "<text class=\"no-data\" x=\"%s\" y=\"%s\" text-anchor=\"middle\" "
                "font-size=\"15\" fill=\"#777777\">no data</text>\n",
                px((f.left + f.right) / 2).s, px((f.top + f.bottom) / 2 + 5).s);
    fputs("</svg>\n", out);

    if (fflush(out) != 0 || ferror(out))
        return dsc__fail(DSC_EIO, "dsc_plot_write_svg: writing the SVG failed");
    return DSC_OK;
}
