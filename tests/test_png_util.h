/*
 * test_png_util.h - helpers shared by the tests of the commands that write plots: run the
 * `descent` binary, read what it wrote, and check an SVG file (well-formed by xmllint,
 * rendered by rsvg-convert to a PNG that is not blank).
 */
#ifndef DSC_TEST_PNG_UTIL_H
#define DSC_TEST_PNG_UTIL_H

#include <stddef.h>

/* $DSC_BUILD/descent (DSC_BUILD defaults to "build"). */
const char *tu_descent_binary(void);

/* A path in the test's folder, written into buf. */
const char *tu_tmp_path(char *buf, size_t size, const char *name);

/*
 * Run "descent ARGS" through the shell, standard input from /dev/null, standard output and
 * error into the files "stdout" and "stderr" of the test's folder. The exit status, or -1
 * when the command did not exit normally.
 */
int tu_run_descent(const char *args);

/* The whole of a file as a NUL-terminated string (empty when it cannot be read); free it. */
char *tu_read_text(const char *path);

/* What the last tu_run_descent wrote on standard output and standard error; free them. */
char *tu_stdout_text(void);
char *tu_stderr_text(void);

/* Cut text into its lines in place; at most max of them. */
size_t tu_split_lines(char *text, char **lines, size_t max);

/* 1 when the named program is on the PATH. */
int tu_have_tool(const char *name);

/*
 * Check the SVG file at path, reporting failures at file:line: well-formed (xmllint
 * --noout, skipped without xmllint), and rendered by rsvg-convert (skipped without it) to a
 * PNG of the size the document states, with more than 1 % of its pixels not white and at
 * least min_coloured strongly coloured pixels (the curves; axes and text are grey). Without
 * zlib to decode the PNG, only its size in bytes is compared with a blank page's.
 */
void tu_check_svg(const char *path, size_t min_coloured, const char *file, int line);

#define CHECK_SVG(path, min_coloured) tu_check_svg(path, min_coloured, __FILE__, __LINE__)

#endif /* DSC_TEST_PNG_UTIL_H */
