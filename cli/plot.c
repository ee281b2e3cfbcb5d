/*
 * plot.c - loss curves of one or several training runs as an SVG file, through the
 * library's plot writer: one chart for one run, and for several runs one chart per quantity
 * (training loss, validation loss, learning rate) stacked in one document.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The x values and the series' y values, kept alive until the plot is written. */
typedef struct curve_arrays {
    double *epoch, *train, *val, *lr;
} curve_arrays;

static int fill_arrays(const cli_curve *curve, curve_arrays *arrays, int *has_val)
{
    size_t n = curve->n_epochs;

    arrays->epoch = malloc((n + 1) * sizeof(double));
    arrays->train = malloc((n + 1) * sizeof(double));
    arrays->val = malloc((n + 1) * sizeof(double));
    arrays->lr = malloc((n + 1) * sizeof(double));
    if (!arrays->epoch || !arrays->train || !arrays->val || !arrays->lr)
        return -1;
    *has_val = 0;
    for (size_t i = 0; i < n; i++) {
        arrays->epoch[i] = (double)curve->history[i].epoch;
        arrays->train[i] = curve->history[i].train_loss;
        arrays->val[i] = curve->history[i].val_loss;
        arrays->lr[i] = curve->history[i].lr;
        *has_val |= !isnan(curve->history[i].val_loss);
    }
    return 0;
}

static void free_arrays(curve_arrays *arrays, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(arrays[i].epoch);
        free(arrays[i].train);
        free(arrays[i].val);
        free(arrays[i].lr);
    }
    free(arrays);
}

/* A number attribute of the opening <svg> tag of a chart document; 0 when absent. */
static double svg_attribute(const char *svg, const char *name)
{
    const char *tag = strstr(svg, "<svg");
    const char *end = tag ? strchr(tag, '>') : NULL;
    char key[32];

    if (!end)
        return 0.0;
    snprintf(key, sizeof key, " %s=\"", name);
    const char *at = strstr(tag, key);
    return at && at < end ? strtod(at + strlen(key), NULL) : 0.0;
}

/*
 * Copy the chart document svg into out as a nested <svg> element placed at (0, y): its XML
 * declaration dropped, and its ids and the references to them prefixed with the panel's
 * number so that they stay unique in the whole document. Known shortcoming: it relies on the
 * form of the library's output (ids written as ` id="..."`, referenced as `url(#...)`), and
 * a text that holds ` id="` is changed too (harmlessly).
 */
static void embed_chart(FILE *out, const char *svg, size_t panel, double y)
{
    const char *p = strstr(svg, "<svg");

    if (!p)
        return;
    fprintf(out, "<svg x=\"0\" y=\"%.0f\"", y);
    for (p += 4; *p; p++) {
        if (strncmp(p, " id=\"", 5) == 0) {
            fprintf(out, " id=\"p%zu-", panel);
            p += 4;
        } else if (strncmp(p, "url(#", 5) == 0) {
            fprintf(out, "url(#p%zu-", panel);
            p += 4;
        } else {
            fputc(*p, out);
        }
    }
}

/* Text for an XML element: &, < and > escaped. */
static void put_escaped(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '&')
            fputs("&amp;", out);
        else if (*text == '<')
            fputs("&lt;", out);
        else if (*text == '>')
            fputs("&gt;", out);
        else
            fputc(*text, out);
    }
}

/*
 * Write the charts plots[0..n) to out: the one chart itself, or several stacked from top to
 * bottom in one document. 0, or a negative code.
 */
static int write_charts(FILE *out, const char *title, const dsc_plot *plots, size_t n)
{
    if (n == 1)
        return dsc_plot_write_svg(out, &plots[0]);

    char **docs = calloc(n, sizeof *docs);
    double width = 0.0, height = 0.0;
    int rc = docs ? DSC_OK : DSC_ENOMEM;
    for (size_t i = 0; i < n && rc == DSC_OK; i++) {
        size_t len = 0;
        FILE *mem = open_memstream(&docs[i], &len);
        if (!mem) {
            rc = DSC_ENOMEM;
            break;
        }
        rc = dsc_plot_write_svg(mem, &plots[i]);
        if (fclose(mem) != 0 && rc == DSC_OK)
            rc = DSC_ENOMEM;
        if (rc == DSC_OK) {
            width = fmax(width, svg_attribute(docs[i], "width"));
            height += svg_attribute(docs[i], "height");
        }
    }

    if (rc == DSC_OK) {
        fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
        fprintf(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", width, height,
                width, height);
        fputs("<title>", out);
        put_escaped(out, title ? title : "");
        fputs("</title>\n", out);
        fprintf(out, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" "
                "fill=\"#FFFFFF\"/>\n", width, height);
        double y = 0.0;
        for (size_t i = 0; i < n; i++) {
            embed_chart(out, docs[i], i + 1, y);
            y += svg_attribute(docs[i], "height");
        }
        fputs("</svg>\n", out);
        if (fflush(out) != 0 || ferror(out))
            rc = DSC_EIO;
    }
    for (size_t i = 0; docs && i < n; i++)
        free(docs[i]);
    free(docs);
    return rc;
}

/* Widen [*lo, *hi] to the positive finite values of y[0..n). */
static void positive_extent(const double *y, size_t n, double *lo, double *hi)
{
    for (size_t i = 0; i < n; i++) {
        if (isfinite(y[i]) && y[i] > 0.0) {
            *lo = fmin(*lo, y[i]);
            *hi = fmax(*hi, y[i]);
        }
    }
}

/*
 * The charts of one run: its training and validation loss on the left axis and its rate on
 * the right. The chart of several runs would need twice as many colours as runs, so they
 * get one chart per quantity instead, stacked, with each run in the same colour in all.
 */
static size_t make_charts(const char *title, const cli_curve *curves, size_t n, int with_lr,
                          const curve_arrays *arrays, int any_val, dsc_series *series,
                          dsc_plot *plots)
{
    static const char *const labels[3] = {"training loss", "validation loss", "learning rate"};
    size_t n_plots = 0;

    if (n == 1) {
        size_t left = 0;
        series[left++] = (dsc_series){"training loss", arrays[0].epoch, arrays[0].train,
                                      curves[0].n_epochs};
        if (any_val)
            series[left++] = (dsc_series){"validation loss", arrays[0].epoch, arrays[0].val,
                                          curves[0].n_epochs};
        if (with_lr)
            series[left] = (dsc_series){"learning rate", arrays[0].epoch, arrays[0].lr,
                                        curves[0].n_epochs};
        plots[0] = (dsc_plot){
            .title = title, .x_label = "epoch", .y_label = "loss", .log_y = -1,
            .series = series, .n_series = left,
            .y2_label = with_lr ? "learning rate" : NULL, .log_y2 = -1,
            .series2 = with_lr ? &series[left] : NULL, .n_series2 = with_lr ? 1 : 0,
        };
        return 1;
    }

    /*
     * Both loss charts on the same kind of scale: logarithmic when the losses of both span
     * more than a factor of 50 (the library's rule for one chart).
     */
    double lo = INFINITY, hi = 0.0;
    for (size_t i = 0; i < n; i++) {
        positive_extent(arrays[i].train, curves[i].n_epochs, &lo, &hi);
        if (any_val)
            positive_extent(arrays[i].val, curves[i].n_epochs, &lo, &hi);
    }
    int log_loss = hi > 50.0 * lo;
    for (int q = 0; q < 3; q++) {
        if ((q == 1 && !any_val) || (q == 2 && !with_lr))
            continue;
        dsc_series *row = &series[n_plots * n];
        for (size_t i = 0; i < n; i++) {
            const double *y = q == 0 ? arrays[i].train : q == 1 ? arrays[i].val : arrays[i].lr;
            row[i] = (dsc_series){curves[i].name, arrays[i].epoch, y, curves[i].n_epochs};
        }
        plots[n_plots] = (dsc_plot){
            .title = n_plots == 0 ? title : NULL, .x_label = "epoch", .y_label = labels[q],
            .log_y = q == 2 ? -1 : log_loss, .series = row, .n_series = n,
        };
        n_plots++;
    }
    return n_plots;
}

int cli_plot_curves(const char *path, const char *title, const cli_curve *curves, size_t n,
                    int with_lr)
{
    curve_arrays *arrays = calloc(n ? n : 1, sizeof *arrays);
    dsc_series *series = calloc(3 * n + 3, sizeof *series);
    dsc_plot plots[3];
    int any_val = 0, rc = 0;

    if (!arrays || !series)
        rc = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int has_val;
        rc = fill_arrays(&curves[i], &arrays[i], &has_val);
        any_val |= has_val;
    }

    cli_output out = {0};
    if (rc == 0 && (rc = cli_output_open(&out, path)) == 0) {
        size_t n_plots = make_charts(title, curves, n, with_lr, arrays, any_val, series, plots);
        int err = write_charts(out.fp, title, plots, n_plots);
        if (err < 0) {
            cli_error("%s: %s", path, err == DSC_ENOMEM ? "out of memory"
                                                       : "writing the plot failed");
            cli_output_abort(&out);
            rc = EXIT_FAILURE_RUN;
        } else {
            rc = cli_output_commit(&out);
        }
    } else if (rc < 0) {
        cli_error("%s: out of memory", path);
        rc = EXIT_FAILURE_RUN;
    }
    if (arrays)
        free_arrays(arrays, n);
    free(series);
    return rc;
}
