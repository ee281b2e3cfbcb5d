/*
 * plot.c - loss curves of one or several training runs as an SVG file, through the
 * library's plot writer.
 */
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

int cli_plot_curves(const char *path, const char *title, const cli_curve *curves, size_t n,
                    int with_lr)
{
    curve_arrays *arrays = calloc(n ? n : 1, sizeof *arrays);
    dsc_series *left = calloc(2 * n + 1, sizeof *left);
    dsc_series *right = calloc(n + 1, sizeof *right);
    char (*names)[160] = calloc(2 * n + 1, sizeof *names);
    size_t n_left = 0, n_right = 0;
    int rc = 0;

    if (!arrays || !left || !right || !names)
        rc = -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int has_val;
        if ((rc = fill_arrays(&curves[i], &arrays[i], &has_val)) != 0)
            break;

        /* One run: "training loss"; several: the run's name, and "(validation)" beside. */
        const char *sep = n > 1 ? " " : "";
        const char *run = n > 1 ? curves[i].name : "";
        snprintf(names[n_left], sizeof names[0], "%s%straining loss", run, sep);
        left[n_left] = (dsc_series){names[n_left], arrays[i].epoch, arrays[i].train,
                                    curves[i].n_epochs};
        n_left++;
        if (has_val) {
            snprintf(names[n_left], sizeof names[0], "%s%svalidation loss", run, sep);
            left[n_left] = (dsc_series){names[n_left], arrays[i].epoch, arrays[i].val,
                                        curves[i].n_epochs};
            n_left++;
        }
        if (with_lr)
            right[n_right++] = (dsc_series){n > 1 ? curves[i].name : "learning rate",
                                            arrays[i].epoch, arrays[i].lr, curves[i].n_epochs};
    }

    cli_output out = {0};
    if (rc == 0 && (rc = cli_output_open(&out, path)) == 0) {
        dsc_plot plot = {
            .title = title,
            .x_label = "epoch",
            .y_label = "loss",
            .log_y = -1,
            .series = left,
            .n_series = n_left,
            .y2_label = n_right ? "learning rate" : NULL,
            .log_y2 = -1,
            .series2 = right,
            .n_series2 = n_right,
        };
        if (dsc_plot_write_svg(out.fp, &plot) < 0) {
            cli_library_error(DSC_EIO);
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
    free(left);
    free(right);
    free(names);
    return rc;
}
