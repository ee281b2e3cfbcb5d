/*
 * fuzz_idx.c - libFuzzer harness for the IDX reader (images and labels files).
 *
 * Input: an option byte, a little-endian u16 length L, then L bytes of the features file and
 * the rest as the labels file. A pair that reads is fitted and its features file read again
 * with the encoding it taught (the path of predict, which needs no labels).
 */
#include "fuzz_common.h"

static fuzz_file features, targets;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!features.path[0]) {
        fuzz_file_init(&features, "fuzz-images-idx3-ubyte");
        fuzz_file_init(&targets, "fuzz-labels-idx1-ubyte");
    }
    return fuzz_two_file_reader(data, size, DSC_FORMAT_IDX, &features, &targets);
}
