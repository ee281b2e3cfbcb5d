/*
 * fuzz_npy.c - libFuzzer harness for the .npy reader (features and targets files).
 *
 * Input: an option byte, a little-endian u16 length L, then L bytes of the features file and
 * the rest as the targets file. A pair that reads is fitted and its features file read again
 * with the encoding it taught (the path of predict, which needs no targets).
 */
#include "fuzz_common.h"

static fuzz_file features, targets;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!features.path[0]) {
        fuzz_file_init(&features, "fuzz_x.npy");
        fuzz_file_init(&targets, "fuzz_y.npy");
    }
    return fuzz_two_file_reader(data, size, DSC_FORMAT_NPY, &features, &targets);
}
