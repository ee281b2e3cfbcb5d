/*
 * test_example.c - the example program builds (make) and runs: it trains logistic
 * regression on the bundled breast-cancer set and prints its held-out accuracy.
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <string.h>

TEST(example_quickstart_trains_and_prints_its_accuracy)
{
    const char *build = getenv("DSC_BUILD");
    char command[1024];
    snprintf(command, sizeof command, "%s/examples/quickstart data/breast_cancer.csv",
             build && *build ? build : "build");

    FILE *out = popen(command, "r");
    REQUIRE(out);
    char line[512] = "";
    char *got = fgets(line, sizeof line, out);
    int status = pclose(out);
    REQUIRE(got);
    CHECK_EQ_INT(status, 0);

    int epochs = 0;
    double train_loss = 0, val_loss = 0, accuracy = 0;
    int fields = sscanf(line, "%d epochs: training loss %lf, held-out loss %lf, held-out "
                        "accuracy %lf", &epochs, &train_loss, &val_loss, &accuracy);
    CHECK_EQ_INT(fields, 4);
    CHECK(epochs >= 1 && epochs <= 50);
    CHECK(train_loss > 0.0 && train_loss < 0.2);
    CHECK(accuracy >= 0.95 && accuracy <= 1.0);
}
