/*
 * test_schedule.c - learning-rate schedules against their published definitions (torch's
 * lr_scheduler, scikit-learn's SGD rates, SGDR), computed here independently, plus values
 * worked out by hand.
 */
#include "test.h"

#include <stdint.h>
#include <string.h>

static const double test_pi = 3.14159265358979323846;

/* The rate at epoch t of an epoch-clocked schedule, with no metrics. */
static double lr_at(const dsc_schedule *s, const dsc_schedule_state *st, int64_t t)
{
    return dsc_schedule_lr(s, st, 1000 + 7 * t, t, NULL, 0);
}

TEST(schedule_constant_is_base_at_every_time)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_CONSTANT, 0.03);
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    for (int64_t t = 0; t < 50; t++)
        CHECK(lr_at(&s, NULL, t) == 0.03);
}

TEST(schedule_step_by_hand_and_by_definition)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_STEP, 0.1);
    CHECK_EQ_INT(s.step_size, 10);
    CHECK(s.gamma == 0.1);
    s.step_size = 3;
    s.gamma = 0.5;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: 0.1 for t = 0, 1, 2; 0.05 for 3, 4, 5; 0.025 for 6, 7, 8; 0.0125 at 9. */
    const double by_hand[10] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
    for (int t = 0; t < 10; t++)
        CHECK_REL(lr_at(&s, NULL, t), by_hand[t], 1e-15, 0);

    /* StepLR: multiply by gamma each time t reaches a multiple of step_size. */
    double expected = 0.1;
    for (int64_t t = 0; t < 40; t++) {
        if (t > 0 && t % 3 == 0)
            expected *= 0.5;
        CHECK_REL(lr_at(&s, NULL, t), expected, 1e-13, 0);
    }
}

TEST(schedule_multistep_counts_milestones_passed)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_MULTISTEP, 1.0);
    s.milestones[0] = 2;
    s.milestones[1] = 5;
    s.milestones[2] = 6;
    s.n_milestones = 3;
    s.gamma = 0.1;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: 1 at t 0-1, 0.1 at 2-4, 0.01 at 5, 0.001 from 6 on. */
    const double by_hand[9] = {1, 1, 0.1, 0.1, 0.1, 0.01, 0.001, 0.001, 0.001};
    for (int t = 0; t < 9; t++)
        CHECK_REL(lr_at(&s, NULL, t), by_hand[t], 1e-14, 0);

    /* No milestones: constant. */
    s.n_milestones = 0;
    CHECK(lr_at(&s, NULL, 100) == 1.0);
}

TEST(schedule_exp_is_gamma_to_the_t)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_EXP, 0.2);
    CHECK(s.gamma == 0.95);
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    double expected = 0.2;
    for (int64_t t = 0; t < 60; t++) {
        CHECK_REL(lr_at(&s, NULL, t), expected, 1e-12, 0);
        expected *= 0.95;
    }

    s.gamma = 0.5;
    s.base_lr = 1.0;
    CHECK_REL(lr_at(&s, NULL, 3), 0.125, 1e-15, 0);
}

TEST(schedule_invscaling_matches_scikit_learn)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_INVSCALING, 1.0);
    CHECK(s.power == 0.25);
    s.power = 0.5;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: 1 / sqrt(t + 1): 1 at t 0, 1/2 at t 3, 1/3 at t 8. */
    CHECK_REL(lr_at(&s, NULL, 0), 1.0, 1e-15, 0);
    CHECK_REL(lr_at(&s, NULL, 3), 0.5, 1e-15, 0);
    CHECK_REL(lr_at(&s, NULL, 8), 1.0 / 3.0, 1e-15, 0);

    /* scikit-learn: eta0 / pow(t, power_t), with its t from 1 at the first update. */
    s.base_lr = 0.01;
    s.power = 0.25;
    for (int64_t sk_t = 1; sk_t <= 50; sk_t++)
        CHECK_REL(lr_at(&s, NULL, sk_t - 1), 0.01 / pow((double)sk_t, 0.25), 1e-13, 0);
}

TEST(schedule_optimal_matches_scikit_learn_and_ignores_base)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_OPTIMAL, 0.5);
    CHECK(s.alpha == 1e-4);
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /*
     * By hand, alpha 1e-4 and hinge loss: typical = sqrt(1 / sqrt(1e-4)) = sqrt(100) = 10,
     * the hinge's dloss(-10, 1) = -1, so eta0 = 10 / max(1, -1) = 10 and t0 = 1 / (10 *
     * 1e-4) = 1000: the rate is 10 at t 0 and 1 / (1e-4 * 2000) = 5 at t 1000.
     */
    CHECK_REL(lr_at(&s, NULL, 0), 10.0, 1e-12, 0);
    CHECK_REL(lr_at(&s, NULL, 1000), 5.0, 1e-12, 0);

    /* scikit-learn: eta = 1 / (alpha * (optimal_init + t - 1)) with t from 1. */
    s.alpha = 0.01;
    double typw = sqrt(1.0 / sqrt(0.01));
    double optimal_init = 1.0 / (typw * 0.01);
    for (int64_t sk_t = 1; sk_t <= 40; sk_t++) {
        double expected = 1.0 / (0.01 * (optimal_init + (double)sk_t - 1.0));
        CHECK_REL(lr_at(&s, NULL, sk_t - 1), expected, 1e-12, 0);
    }

    /* base_lr plays no part. */
    dsc_schedule other = s;
    other.base_lr = 123.0;
    for (int64_t t = 0; t < 20; t++)
        CHECK(lr_at(&other, NULL, t) == lr_at(&s, NULL, t));

    /* A t0 given is used as it is. */
    s.t0 = 50.0;
    CHECK_REL(lr_at(&s, NULL, 0), 1.0 / (0.01 * 50.0), 1e-14, 0);
    CHECK_REL(lr_at(&s, NULL, 50), 1.0 / (0.01 * 100.0), 1e-14, 0);
}

TEST(schedule_cosine_without_restarts_stays_at_eta_min)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_COSINE, 0.1);
    CHECK_EQ_INT(s.t_max, 50);
    s.t_max = 8;
    s.eta_min = 0.001;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: base at 0, the midpoint (0.1 + 0.001) / 2 at t_max / 2, eta_min at t_max. */
    CHECK_NEAR(lr_at(&s, NULL, 0), 0.1, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 4), 0.0505, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 8), 0.001, 1e-15);

    for (int64_t t = 0; t <= 8; t++) {
        double expected = 0.001 + (0.1 - 0.001) * (1.0 + cos(test_pi * (double)t / 8.0)) / 2.0;
        CHECK_NEAR(lr_at(&s, NULL, t), expected, 1e-15);
    }
    for (int64_t t = 9; t < 40; t++)
        CHECK(lr_at(&s, NULL, t) == 0.001);
}

/*
 * SGDR reference, stepped as torch's CosineAnnealingWarmRestarts.step(): t_cur grows by one
 * and, on reaching the period, wraps to the next period, which is t_mult times longer.
 */
static void check_sgdr(double t_mult, int64_t t_max, int64_t horizon)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_COSINE, 0.5);
    s.t_max = t_max;
    s.t_mult = t_mult;
    s.eta_min = 0.01;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    double t_cur = 0.0, period = (double)t_max;
    for (int64_t t = 0; t < horizon; t++) {
        if (t > 0) {
            t_cur += 1.0;
            if (t_cur >= period) {
                t_cur -= period;
                period *= t_mult;
            }
        }
        double expected = 0.01 + (0.5 - 0.01) * (1.0 + cos(test_pi * t_cur / period)) / 2.0;
        CHECK_NEAR(lr_at(&s, NULL, t), expected, 1e-12);
    }
}

TEST(schedule_cosine_warm_restarts_follow_sgdr)
{
    check_sgdr(1.0, 5, 40);
    check_sgdr(2.0, 3, 100);
    check_sgdr(1.5, 4, 200); /* periods 4, 6, 9, 13.5, ...: restarts off the integers */
}

TEST(schedule_cosine_restart_returns_to_base)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_COSINE, 0.2);
    s.t_max = 10;
    s.t_mult = 2.0;
    s.eta_min = 0.0;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* Periods 10, 20, 40, 80: restarts at 0, 10, 30, 70, 150; the unit before is near 0. */
    const int64_t restarts[5] = {0, 10, 30, 70, 150};
    for (int i = 0; i < 5; i++) {
        CHECK_NEAR(lr_at(&s, NULL, restarts[i]), 0.2, 1e-15);
        if (i > 0) {
            double period = 10.0 * pow(2.0, i - 1);
            double before = 0.2 * (1.0 + cos(test_pi * (period - 1.0) / period)) / 2.0;
            CHECK_NEAR(lr_at(&s, NULL, restarts[i] - 1), before, 1e-14);
            CHECK(lr_at(&s, NULL, restarts[i] - 1) < 0.01);
        }
    }

    /* t_mult 1: every t_max units, far out as well. */
    s.t_mult = 1.0;
    CHECK_NEAR(lr_at(&s, NULL, 1000000), 0.2, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 1000005), 0.1, 1e-15);
}

/* torch's OneCycleLR (cos, two phases), written from its documentation. */
static double onecycle_reference(double max_lr, int64_t total, double pct_start, int64_t step)
{
    double initial = max_lr / 25.0, min_lr = initial / 1e4;
    double end1 = pct_start * (double)total - 1.0, end2 = (double)total - 1.0;
    double start, end, pct;

    if ((double)step <= end1) {
        start = initial;
        end = max_lr;
        pct = (double)step / end1;
    } else {
        start = max_lr;
        end = min_lr;
        pct = ((double)step - end1) / (end2 - end1);
    }
    return end + (start - end) / 2.0 * (cos(test_pi * pct) + 1.0);
}

TEST(schedule_onecycle_rises_to_base_and_falls)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_ONECYCLE, 0.4);
    CHECK(s.pct_start == 0.3);
    CHECK(s.div_factor == 25.0);
    CHECK(s.final_div_factor == 1e4);
    s.total = 100;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: starts at 0.4 / 25 = 0.016, peaks at 0.4 on unit 29, ends at 1.6e-6. */
    CHECK_NEAR(lr_at(&s, NULL, 0), 0.016, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 29), 0.4, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 99), 1.6e-6, 1e-15);

    double previous = 0.0;
    for (int64_t t = 0; t < 100; t++) {
        double lr = lr_at(&s, NULL, t);
        CHECK_NEAR(lr, onecycle_reference(0.4, 100, 0.3, t), 1e-14);
        CHECK(t <= 29 ? lr > previous : lr < previous);
        CHECK(lr <= 0.4);
        previous = lr;
    }
    for (int64_t t = 100; t < 130; t++)
        CHECK(lr_at(&s, NULL, t) == lr_at(&s, NULL, 99));

    /* By hand, total 10 and pct_start 0.3: the rise ends on unit 2, half way on unit 1. */
    s.base_lr = 1.0;
    s.total = 10;
    CHECK_NEAR(lr_at(&s, NULL, 1), (0.04 + 1.0) / 2.0, 1e-15);
    CHECK_NEAR(lr_at(&s, NULL, 2), 1.0, 1e-15);
    for (int64_t t = 0; t < 10; t++)
        CHECK_NEAR(lr_at(&s, NULL, t), onecycle_reference(1.0, 10, 0.3, t), 1e-14);
}

TEST(schedule_per_step_chooses_the_clock)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_STEP, 1.0);
    s.step_size = 1;
    s.gamma = 0.5;

    s.per_step = 0;
    CHECK(dsc_schedule_lr(&s, NULL, 5, 2, NULL, 0) == 0.25);
    s.per_step = 1;
    CHECK(dsc_schedule_lr(&s, NULL, 5, 2, NULL, 0) == 0.03125);
}

TEST(schedule_warmup_rises_linearly_to_the_inner_schedule)
{
    dsc_schedule s;

    dsc_schedule_default(&s, DSC_SCHED_STEP, 0.8);
    s.step_size = 2;
    s.gamma = 0.5;
    s.warmup = 4;
    s.warmup_start = 0.25;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* By hand: 0.2, 0.35, 0.5, 0.65, then step from its own 0: 0.8, 0.8, 0.4, 0.4, 0.2. */
    const double by_hand[9] = {0.2, 0.35, 0.5, 0.65, 0.8, 0.8, 0.4, 0.4, 0.2};
    for (int t = 0; t < 9; t++)
        CHECK_NEAR(lr_at(&s, NULL, t), by_hand[t], 1e-15);

    /* Cosine after a warm-up from 0 runs on t - warmup. */
    dsc_schedule_default(&s, DSC_SCHED_COSINE, 0.3);
    s.t_max = 6;
    s.warmup = 3;
    s.per_step = 1;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    for (int64_t t = 0; t < 3; t++)
        CHECK_NEAR(dsc_schedule_lr(&s, NULL, t, 0, NULL, 0), 0.3 * (double)t / 3.0, 1e-15);
    for (int64_t t = 3; t < 9; t++) {
        double expected = 0.3 * (1.0 + cos(test_pi * (double)(t - 3) / 6.0)) / 2.0;
        CHECK_NEAR(dsc_schedule_lr(&s, NULL, t, 0, NULL, 0), expected, 1e-15);
    }
}

TEST(schedule_plateau_reduces_after_patience_with_cooldown)
{
    dsc_schedule s;
    dsc_schedule_state st;

    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 1.0);
    CHECK(s.factor == 0.1);
    CHECK_EQ_INT(s.patience, 10);
    CHECK(s.threshold == 1e-4);
    s.factor = 0.5;
    s.patience = 1;
    s.cooldown = 2;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    dsc_schedule_state_init(&s, &st);

    /*
     * ReduceLROnPlateau by hand, patience 1, cooldown 2, a flat metric: epoch 0 sets the best;
     * 1 and 2 are bad (2 > patience: reduce after epoch 2, cooldown 2); 3 and 4 are in the
     * cooldown and not counted; 5 and 6 are bad (reduce after epoch 6).
     */
    const double scale[10] = {1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25};
    for (int e = 0; e < 10; e++) {
        CHECK(lr_at(&s, &st, e) == scale[e]);
        dsc_schedule_observe(&s, &st, 2.0);
    }
    CHECK_EQ_INT(st.n_observed, 10);
}

TEST(schedule_plateau_threshold_and_min_lr)
{
    dsc_schedule s;
    dsc_schedule_state st;

    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 1.0);
    s.patience = 0;
    s.threshold = 0.1;
    s.min_lr = 0.004;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    dsc_schedule_state_init(&s, &st);

    /* Improvement means metric < best * 0.9. best 1.0: 0.95 is not one, 0.85 is. */
    dsc_schedule_observe(&s, &st, 1.0);
    CHECK(lr_at(&s, &st, 1) == 1.0);
    dsc_schedule_observe(&s, &st, 0.95);
    CHECK_NEAR(lr_at(&s, &st, 2), 0.1, 1e-16);
    dsc_schedule_observe(&s, &st, 0.85);
    CHECK_NEAR(lr_at(&s, &st, 3), 0.1, 1e-16);
    CHECK(st.best == 0.85);

    /* A NaN is no improvement; then the rate bottoms out at min_lr. */
    dsc_schedule_observe(&s, &st, NAN);
    CHECK_NEAR(lr_at(&s, &st, 4), 0.01, 1e-17);
    for (int i = 0; i < 5; i++)
        dsc_schedule_observe(&s, &st, 0.85);
    CHECK(lr_at(&s, &st, 10) == 0.004);
}

TEST(schedule_warmup_then_plateau_ignores_warmup_metrics)
{
    dsc_schedule s;
    dsc_schedule_state st;

    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 0.5);
    s.warmup = 5;
    s.warmup_start = 0.1;
    s.patience = 2;
    s.factor = 0.1;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    dsc_schedule_state_init(&s, &st);

    /*
     * Epochs 0-4 warm up: 0.5 * (0.1 + 0.9 * e / 5), a straight line. Their metrics are tiny
     * and flat: counted, they would trigger a reduction within the warm-up, and as the best
     * they would make every later epoch bad. Then 1.0, 0.9, 0.8 improve; 0.8 three more times
     * is three bad epochs, more than patience 2, so the rate drops after epoch 10.
     */
    const double metric[14] = {1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 1.0, 0.9, 0.8, 0.8, 0.8, 0.8,
                               0.8,  0.7,  0.7};
    double previous_lr = 0.0, previous_rise = 0.0;
    for (int e = 0; e < 14; e++) {
        double lr = lr_at(&s, &st, e);
        if (e < 5) {
            CHECK_NEAR(lr, 0.5 * (0.1 + 0.9 * (double)e / 5.0), 1e-15);
            if (e >= 2)
                CHECK_NEAR(lr - previous_lr, previous_rise, 1e-15);
            previous_rise = lr - previous_lr;
        } else if (e <= 10) {
            CHECK(lr == 0.5);
        } else {
            CHECK_NEAR(lr, 0.05, 1e-17);
        }
        previous_lr = lr;
        dsc_schedule_observe(&s, &st, metric[e]);
    }
    CHECK(st.best == 0.7);
}

TEST(schedule_per_step_plateau_counts_every_metric)
{
    dsc_schedule s;
    dsc_schedule_state st;

    /* Documented choice: with a step clock the observer cannot tell warm-up epochs apart. */
    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 1.0);
    s.per_step = 1;
    s.warmup = 1000;
    s.patience = 0;
    s.factor = 0.5;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);
    dsc_schedule_state_init(&s, &st);

    dsc_schedule_observe(&s, &st, 1.0);
    dsc_schedule_observe(&s, &st, 1.0);
    CHECK(st.scale == 0.5);
    CHECK_NEAR(dsc_schedule_lr(&s, &st, 500, 2, NULL, 0), 0.5 * 0.5, 1e-16);
    CHECK(dsc_schedule_lr(&s, &st, 1000, 2, NULL, 0) == 0.5);
}

/* The rates of epochs 0..n-1 of s, observing metric[e] after each. */
static void run_epochs(const dsc_schedule *s, dsc_schedule_state *st, int first, int n,
                       const double *metric, double *lr)
{
    for (int e = first; e < n; e++) {
        lr[e] = lr_at(s, st, e);
        dsc_schedule_observe(s, st, metric[e]);
    }
}

TEST(schedule_restored_state_continues_bit_for_bit)
{
    dsc_schedule s;
    dsc_schedule_state st, saved_st;
    unsigned char saved[sizeof(dsc_schedule_state)];
    double metric[40], lr_whole[40], lr_resumed[40];

    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 0.3);
    s.warmup = 3;
    s.warmup_start = 0.2;
    s.patience = 2;
    s.cooldown = 1;
    s.factor = 0.3;
    s.min_lr = 1e-5;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    /* A metric that improves in bursts and stalls in between. */
    for (int e = 0; e < 40; e++)
        metric[e] = 1.0 / (1.0 + (double)(e / 6)) + 0.01 * (double)(e % 3);

    dsc_schedule_state_init(&s, &st);
    run_epochs(&s, &st, 0, 40, metric, lr_whole);

    /* Again, saved as bytes after epoch 17, disturbed, then restored. */
    dsc_schedule_state_init(&s, &st);
    run_epochs(&s, &st, 0, 17, metric, lr_resumed);
    memcpy(saved, &st, sizeof saved);
    for (int i = 0; i < 9; i++)
        dsc_schedule_observe(&s, &st, 5.0 + i);
    memcpy(&saved_st, saved, sizeof saved);
    run_epochs(&s, &saved_st, 17, 40, metric, lr_resumed);

    int reductions = 0;
    for (int e = 0; e < 40; e++) {
        CHECK(memcmp(&lr_whole[e], &lr_resumed[e], sizeof(double)) == 0);
        if (e > 3 && lr_whole[e] < lr_whole[e - 1])
            reductions++;
    }
    CHECK(reductions >= 2); /* the run did exercise the state */
}

struct callback_record {
    int calls;
    double base_lr;
    int64_t step, epoch;
    double metrics[4];
    size_t n_metrics;
};

static double record_callback(void *user, double base_lr, int64_t step, int64_t epoch,
                              const double *metrics, size_t n_metrics)
{
    struct callback_record *rec = user;

    rec->calls++;
    rec->base_lr = base_lr;
    rec->step = step;
    rec->epoch = epoch;
    rec->n_metrics = n_metrics;
    for (size_t i = 0; i < n_metrics && i < 4; i++)
        rec->metrics[i] = metrics[i];
    return base_lr / (double)(epoch + 1) + metrics[n_metrics - 1];
}

TEST(schedule_callback_receives_the_metrics)
{
    dsc_schedule s;
    struct callback_record rec;
    const double metrics[3] = {0.9, 0.7, 0.6};

    memset(&rec, 0, sizeof rec);
    dsc_schedule_default(&s, DSC_SCHED_CALLBACK, 0.25);
    CHECK(dsc_schedule_check(&s) == DSC_EINVAL);
    s.fn = record_callback;
    s.user = &rec;
    REQUIRE(dsc_schedule_check(&s) == DSC_OK);

    double lr = dsc_schedule_lr(&s, NULL, 123, 3, metrics, 3);
    CHECK_EQ_INT(rec.calls, 1);
    CHECK(rec.base_lr == 0.25);
    CHECK_EQ_INT(rec.step, 123);
    CHECK_EQ_INT(rec.epoch, 3);
    CHECK_EQ_INT(rec.n_metrics, 3);
    CHECK(rec.metrics[0] == 0.9 && rec.metrics[1] == 0.7 && rec.metrics[2] == 0.6);
    CHECK(lr == 0.25 / 4.0 + 0.6);

    /* After a warm-up of 2 epochs the callback's epoch clock starts at 0. */
    s.warmup = 2;
    lr = dsc_schedule_lr(&s, NULL, 50, 5, metrics, 2);
    CHECK_EQ_INT(rec.epoch, 3);
    CHECK_EQ_INT(rec.step, 50);
    CHECK(lr == 0.25 / 4.0 + 0.7);
}

/* DSC_EINVAL from dsc_schedule_check, with a message that names field. */
static void check_rejected(const dsc_schedule *s, const char *field, int line)
{
    int rc = dsc_schedule_check(s);

    if (rc != DSC_EINVAL)
        test_report(__FILE__, line, "check returned %d, expected DSC_EINVAL", rc);
    else if (!strstr(dsc_last_error(), field))
        test_report(__FILE__, line, "message \"%s\" does not name %s", dsc_last_error(),
                    field);
}

/* A copy of good with one field set to value must be rejected, naming name. */
#define REJECTS(good, field, value, name)                                                     \
    do {                                                                                      \
        dsc_schedule bad_ = (good);                                                           \
        bad_.field = (value);                                                                 \
        check_rejected(&bad_, (name), __LINE__);                                              \
    } while (0)

TEST(schedule_check_rejects_invalid_configurations)
{
    dsc_schedule s;

    for (int k = 0; k < DSC_SCHED_COUNT; k++) {
        dsc_schedule_default(&s, (dsc_schedule_kind)k, 0.01);
        if (k == DSC_SCHED_CALLBACK)
            s.fn = record_callback;
        CHECK_EQ_INT(dsc_schedule_check(&s), DSC_OK);
    }
    CHECK_EQ_INT(dsc_schedule_check(NULL), DSC_EINVAL);

    dsc_schedule_default(&s, DSC_SCHED_CONSTANT, 0.01);
    REJECTS(s, kind, DSC_SCHED_COUNT, "kind");
    REJECTS(s, per_step, 2, "per_step");
    REJECTS(s, base_lr, -0.1, "base_lr");
    REJECTS(s, base_lr, NAN, "base_lr");
    REJECTS(s, base_lr, INFINITY, "base_lr");
    REJECTS(s, warmup, -1, "warmup");
    REJECTS(s, warmup_start, 1.5, "warmup_start");
    REJECTS(s, warmup_start, -0.1, "warmup_start");
    s.base_lr = 0.0; /* 0 is allowed: dsc_train_config reads it as optim.lr */
    CHECK_EQ_INT(dsc_schedule_check(&s), DSC_OK);

    dsc_schedule_default(&s, DSC_SCHED_STEP, 0.01);
    REJECTS(s, step_size, 0, "step_size");
    REJECTS(s, gamma, 2.0, "gamma");
    CHECK(strstr(dsc_last_error(), "(0, 1]") && strstr(dsc_last_error(), "2"));
    REJECTS(s, gamma, 0.0, "gamma");
    REJECTS(s, gamma, NAN, "gamma");

    dsc_schedule_default(&s, DSC_SCHED_MULTISTEP, 0.01);
    s.milestones[0] = 3;
    s.milestones[1] = 7;
    s.n_milestones = 2;
    CHECK_EQ_INT(dsc_schedule_check(&s), DSC_OK);
    REJECTS(s, milestones[1], 3, "milestones");
    REJECTS(s, milestones[1], 2, "milestones");
    REJECTS(s, milestones[0], -1, "milestones");
    REJECTS(s, n_milestones, 17, "n_milestones");
    REJECTS(s, gamma, 1.5, "gamma");

    dsc_schedule_default(&s, DSC_SCHED_EXP, 0.01);
    REJECTS(s, gamma, -0.5, "gamma");

    dsc_schedule_default(&s, DSC_SCHED_INVSCALING, 0.01);
    REJECTS(s, power, INFINITY, "power");

    dsc_schedule_default(&s, DSC_SCHED_OPTIMAL, 0.01);
    REJECTS(s, alpha, 0.0, "alpha");
    REJECTS(s, t0, -1.0, "t0");

    dsc_schedule_default(&s, DSC_SCHED_COSINE, 0.01);
    REJECTS(s, t_max, 0, "t_max");
    REJECTS(s, t_mult, 0.5, "t_mult");
    REJECTS(s, t_mult, -1.0, "t_mult");
    REJECTS(s, eta_min, -1e-3, "eta_min");

    dsc_schedule_default(&s, DSC_SCHED_ONECYCLE, 0.01);
    REJECTS(s, total, 0, "total");
    REJECTS(s, pct_start, 0.0, "pct_start");
    REJECTS(s, pct_start, 1.0, "pct_start");
    REJECTS(s, div_factor, 0.0, "div_factor");
    REJECTS(s, final_div_factor, -1.0, "final_div_factor");

    dsc_schedule_default(&s, DSC_SCHED_PLATEAU, 0.01);
    REJECTS(s, factor, 1.0, "factor");
    REJECTS(s, factor, 0.0, "factor");
    REJECTS(s, patience, -1, "patience");
    REJECTS(s, threshold, -0.1, "threshold");
    REJECTS(s, cooldown, -1, "cooldown");
    REJECTS(s, min_lr, -1.0, "min_lr");

    dsc_schedule_default(&s, DSC_SCHED_CALLBACK, 0.01);
    check_rejected(&s, "fn", __LINE__);
}

TEST(schedule_names_round_trip)
{
    const char *names[DSC_SCHED_COUNT] = {"constant", "step",   "multistep", "exp",
                                          "invscaling", "optimal", "cosine", "onecycle",
                                          "plateau", "callback"};

    for (int k = 0; k < DSC_SCHED_COUNT; k++) {
        CHECK(strcmp(dsc_schedule_name((dsc_schedule_kind)k), names[k]) == 0);
        CHECK_EQ_INT(dsc_schedule_from_name(names[k]), k);
    }
    CHECK_EQ_INT(dsc_schedule_from_name("cosin"), -1);
    CHECK_EQ_INT(dsc_schedule_from_name("Step"), -1);
    CHECK_EQ_INT(dsc_schedule_from_name(""), -1);
    CHECK_EQ_INT(dsc_schedule_from_name(NULL), -1);
    CHECK(dsc_schedule_name(DSC_SCHED_COUNT) != NULL);
}
