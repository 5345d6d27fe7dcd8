/* The compiled core of p3/exact: the structured interior point and the
 * Lagrangian-dual certificate of P3 (eqs. 19-21) in normalized units.
 *
 * The mathematics is documented in exact.py and certificate.py (the Python
 * modules that call this one) and in docs/bandwidth.md; this file follows them
 * step by step.  Every array is a C-contiguous float64 buffer:
 *
 *   kappa, pi   [I, n]   normalized communication and compute coefficients
 *   g_down, g_up [R, n]  normalized SNR bandwidths, R = I (fast fading) or 1
 *   floor       [I]      optional: the compute time of the local devices (structure.py),
 *                        a constant each layer's latency cannot go below
 *
 * so that device k's normalized time in layer i is
 *   t[i, k](b) = kappa[i, k] (1/h_down(b) + 1/h_up(b)) + pi[i, k],
 *   h(b) = b ln(1 + g / b),
 * and layer i's latency is max(floor[i], max_k t[i, k]). With a floor, every array of
 * multipliers and slacks holds I n pairs then I floor entries (s_i >= floor[i]).
 *
 * Small arrays (tens of layers, up to a few hundred devices) make a numpy
 * implementation pay per call, not per flop; here one iteration is a few
 * loops over I x n and an LU factorization of a (min(n, I) + 1)-square matrix.
 * The GIL is released while solving.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Below this x = g / b the slope of h uses a series (no cancellation). */
#define SERIES_X 1e-3
/* Fraction of the step to the boundary of the positive orthant. */
#define TO_BOUNDARY 0.995
/* Certify once the duality gap is below CERTIFY_AT * tol (relative); accept at
 * ACCEPT * tol, a margin for the recomputation of the gap in seconds. */
#define CERTIFY_AT 1.0
#define ACCEPT 0.9
/* Relative allowance for round-off in the double sums of the dual function. */
#define ROUNDOFF_MARGIN 1e-13
#define BRACKET_WIDTH 1e-9
/* A point replaces the incumbent only this close to the budget sum b = 1. */
#define BUDGET_SLACK 1e-12
/* The 1-D searches of the certificate start inside this range of b. */
#define START_MIN 1e-12
#define START_MAX 1e12
/* A step lowers the duality gap by at least this fraction of its length. */
#define GAP_DECREASE 0.01
#define MAX_NEWTON_STEPS 50
#define MAX_BRACKET_STEPS 2100
#define MAX_BISECTION_STEPS 2100

enum { ST_OPTIMAL = 0, ST_FEASIBLE = 1, ST_TIME_LIMIT = 2, ST_SINGULAR = 3,
       ST_NOT_FINITE = 4, ST_NO_BRACKET = 5 };
/* Added to a failure code when the method broke down after a certified point,
 * which it returns (status feasible unless the point meets the tolerance). */
#define ST_AFTER_INCUMBENT 10

typedef struct {
    int I, n, R;
    const double *kappa, *pi, *gd, *gu;
    const double *floor;            /* [I], or NULL: no local device loaded */
} P3;

/* Constraints s_i >= floor[i]: I with a floor, else 0. */
static inline int n_floors(const P3 *p)
{
    return p->floor ? p->I : 0;
}

/* [f, -f', f''] of f = 1/h(b), h(b) = b ln(1 + g/b) (structure.inverse_rate_stack),
 * from ib = 1/b (shared by the two directions of a device).
 * ln(1 + x) is log(1 + x) from x = LOG_FROM on: there 1 + x rounds with relative
 * error 2^-53 and ln(1 + x) >= ln 2, so the result is within about 2 ulp, far inside
 * the certificate's ROUNDOFF_MARGIN, and log costs less than log1p (about 1.4x
 * fewer cycles per fast-fading solve, where these calls dominate). */
#define LOG_FROM 1.0
static inline void inverse_rate(double ib, double g, double *f, double *mf1, double *f2)
{
    double x = g * ib, lg = x >= LOG_FROM ? log(1.0 + x) : log1p(x);
    double inv = ib / lg, y = x / (1.0 + x);
    double h1 = x < SERIES_X
        ? x * x * (0.5 - x * (2.0 / 3.0 - x * (0.75 - x * (0.8 - x * 5.0 / 6.0))))
        : lg - y;
    double q = h1 * inv;
    *f = inv;
    *mf1 = q * inv;
    *f2 = (2.0 * q * q + y * y * ib * inv) * inv;
}

/* [f, -f', f''] of the curve 1/h_down + 1/h_up of gain row r, device k. */
static inline void curve(const P3 *p, int r, int k, double b, double *f, double *mf1,
                         double *f2)
{
    double a0, a1, a2, c0, c1, c2, ib = 1.0 / b;
    size_t idx = (size_t)r * p->n + k;
    inverse_rate(ib, p->gd[idx], &a0, &a1, &a2);
    inverse_rate(ib, p->gu[idx], &c0, &c1, &c2);
    *f = a0 + c0;
    *mf1 = a1 + c1;
    *f2 = a2 + c2;
}

/* ---------------------------------------------------------------- certificate */

/* Value, slope and curvature in b of device k's inner dual problem
 * sum_i w[i] t[i, k](b) + nu b (without the constant compute part). */
static void inner_slope(const P3 *p, const double *weight, const double *weight_sum, int k,
                        double nu, double b, double *val, double *d1, double *d2)
{
    double f, mf1, f2;
    if (p->R == 1) {
        curve(p, 0, k, b, &f, &mf1, &f2);
        *val = weight_sum[k] * f;
        *d1 = nu - weight_sum[k] * mf1;
        *d2 = weight_sum[k] * f2;
        return;
    }
    double v = 0.0, m = 0.0, c = 0.0;
    for (int i = 0; i < p->I; i++) {
        double w = weight[(size_t)i * p->n + k];
        if (w == 0.0)
            continue;
        curve(p, i, k, b, &f, &mf1, &f2);
        v += w * f;
        m += w * mf1;
        c += w * f2;
    }
    *val = v;
    *d1 = nu - m;
    *d2 = c;
}

/* Halve/double from x until the slope changes sign (it tends to -inf at 0 and to
 * nu > 0 at infinity), then safeguarded Newton on the bracket, for device k. */
static int bisect(const P3 *p, const double *weight, const double *weight_sum, int k,
                  double nu, double *x, double *lo_out, double *hi_out)
{
    double lo = *x, hi = *x, val, d1, d2;
    int steps;
    for (steps = 0; steps < MAX_BRACKET_STEPS; steps++) {
        inner_slope(p, weight, weight_sum, k, nu, lo, &val, &d1, &d2);
        int low_ok = d1 <= 0.0;
        inner_slope(p, weight, weight_sum, k, nu, hi, &val, &d1, &d2);
        int high_ok = d1 >= 0.0;
        if (low_ok && high_ok)
            break;
        if (!low_ok)
            lo *= 0.5;
        if (!high_ok)
            hi *= 2.0;
    }
    if (steps == MAX_BRACKET_STEPS)
        return ST_NO_BRACKET;
    double xx = fmin(fmax(*x, lo), hi);
    for (steps = 0; steps < MAX_BISECTION_STEPS; steps++) {
        inner_slope(p, weight, weight_sum, k, nu, xx, &val, &d1, &d2);
        if (d1 <= 0.0)
            lo = xx;
        if (d1 >= 0.0)
            hi = xx;
        double step = xx - d1 / d2;
        xx = (step > lo && step < hi) ? step : sqrt(lo * hi);
        if (hi - lo <= 4e-16 * hi)
            break;
    }
    *x = xx;
    *lo_out = lo;
    *hi_out = hi;
    return ST_OPTIMAL;
}

/* The dual function g(lam, nu) (certificate.py) for multipliers lam [I, n] (then [I]
 * of the floor, with one) already normalized per layer and nu >= 0: the floor's
 * multipliers add sum_i lam_floor[i] floor[i]; minimizers into x [n];
 * scratch [I*n + 2n]. */
static int dual_bound_c(const P3 *p, const double *lam, double nu, const double *start,
                        double *x, double *bound, double *scratch)
{
    int I = p->I, n = p->n;
    double *weight = scratch, *weight_sum = scratch + (size_t)I * n, *cst = weight_sum + n;
    for (int k = 0; k < n; k++)
        weight_sum[k] = cst[k] = 0.0;
    for (int i = 0; i < I; i++)
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            weight[idx] = lam[idx] * p->kappa[idx];
            weight_sum[k] += weight[idx];
            cst[k] += lam[idx] * p->pi[idx];
        }
    double total = 0.0;
    for (int i = 0; i < n_floors(p); i++)
        total += lam[(size_t)I * n + i] * p->floor[i];
    if (nu == 0.0) {
        /* inf over b of a decreasing function: the limit b -> inf, h(b) -> g. */
        for (int k = 0; k < n; k++) {
            double limit = 0.0;
            for (int i = 0; i < I; i++) {
                size_t idx = (size_t)i * n + k, r = p->R > 1 ? idx : (size_t)k;
                limit += weight[idx] * (1.0 / p->gd[r] + 1.0 / p->gu[r]);
            }
            total += cst[k] + limit;
            x[k] = INFINITY;
        }
        *bound = total - ROUNDOFF_MARGIN * fabs(total);
        return ST_OPTIMAL;
    }
    for (int k = 0; k < n; k++) {
        if (!(weight_sum[k] > 0.0)) {  /* no communication: the minimum is at b = 0 */
            total += cst[k];
            x[k] = 0.0;
            continue;
        }
        double xx = (start && start[k] > 0.0) ? fmin(fmax(start[k], START_MIN), START_MAX) : 1.0;
        double val, d1, d2;
        for (int it = 0; it < MAX_NEWTON_STEPS; it++) {
            inner_slope(p, weight, weight_sum, k, nu, xx, &val, &d1, &d2);
            double xn = xx - d1 / d2;
            if (!(xn > 0.0 && isfinite(xn)))  /* overshoot, or an overflowed slope */
                xn = d1 < 0.0 ? 2.0 * xx : 0.5 * xx;
            int done = fabs(xn - xx) <= 1e-11 * xx;
            xx = xn;
            if (done)
                break;
        }
        /* certify the bracket [lo, hi] of the minimizer by the signs of the slope */
        double lo = xx * (1.0 - BRACKET_WIDTH), hi = xx * (1.0 + BRACKET_WIDTH), dlo, dhi, t;
        inner_slope(p, weight, weight_sum, k, nu, lo, &t, &dlo, &d2);
        inner_slope(p, weight, weight_sum, k, nu, hi, &t, &dhi, &d2);
        if (!(dlo <= 0.0 && dhi >= 0.0)) {
            int status = bisect(p, weight, weight_sum, k, nu, &xx, &lo, &hi);
            if (status != ST_OPTIMAL)
                return status;
        }
        inner_slope(p, weight, weight_sum, k, nu, xx, &val, &d1, &d2);
        double tangent = fmin(d1 * (lo - xx), d1 * (hi - xx));  /* <= 0: covers the bracket */
        total += val + nu * xx + tangent + cst[k];
        x[k] = xx;
    }
    total -= nu;
    if (!isfinite(total))
        return ST_NOT_FINITE;
    *bound = total - ROUNDOFF_MARGIN * fabs(total);
    return ST_OPTIMAL;
}

/* Multipliers made valid: NaN and negatives to 0, +inf to the largest double, each
 * layer (its n pairs, and its floor entry when floors is 1) scaled to sum 1 (uniform
 * if all zero). */
static inline double valid_multiplier(double v)
{
    return v > 0.0 ? fmin(v, DBL_MAX) : 0.0;   /* NaN fails the test */
}

static void normalize_multipliers(int I, int n, int floors, const double *lam, double *out)
{
    size_t fl = (size_t)I * n;
    for (int i = 0; i < I; i++) {
        double sum = 0.0;
        for (int k = 0; k < n; k++) {
            double v = valid_multiplier(lam[(size_t)i * n + k]);
            out[(size_t)i * n + k] = v;
            sum += v;
        }
        if (floors) {
            out[fl + i] = valid_multiplier(lam[fl + i]);
            sum += out[fl + i];
            out[fl + i] = sum > 0.0 ? out[fl + i] / sum : 1.0 / (n + 1);
        }
        for (int k = 0; k < n; k++)
            out[(size_t)i * n + k] = sum > 0.0 ? out[(size_t)i * n + k] / sum
                                               : 1.0 / (n + floors);
    }
}

/* Sums in four independent chains (strict IEEE order forbids the compiler to
 * split a reduction; one chain waits on each addition). */
static inline double sum(const double *restrict x, size_t len)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t j = 0;
    for (; j + 4 <= len; j += 4) {
        s0 += x[j];
        s1 += x[j + 1];
        s2 += x[j + 2];
        s3 += x[j + 3];
    }
    for (; j < len; j++)
        s0 += x[j];
    return (s0 + s1) + (s2 + s3);
}

static inline double dot(const double *restrict x, const double *restrict y, size_t len)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t j = 0;
    for (; j + 4 <= len; j += 4) {
        s0 += x[j] * y[j];
        s1 += x[j + 1] * y[j + 1];
        s2 += x[j + 2] * y[j + 2];
        s3 += x[j + 3] * y[j + 3];
    }
    for (; j < len; j++)
        s0 += x[j] * y[j];
    return (s0 + s1) + (s2 + s3);
}

/* ----------------------------------------------------------- dense LU, K <= ~300 */

static int lu_factor(double *a, int m, int *piv)
{
    for (int c = 0; c < m; c++) {
        int best = c;
        double big = fabs(a[(size_t)c * m + c]);
        for (int r = c + 1; r < m; r++)
            if (fabs(a[(size_t)r * m + c]) > big) {
                big = fabs(a[(size_t)r * m + c]);
                best = r;
            }
        piv[c] = best;
        if (big == 0.0 || !isfinite(big))
            return -1;
        if (best != c)
            for (int j = 0; j < m; j++) {
                double tmp = a[(size_t)c * m + j];
                a[(size_t)c * m + j] = a[(size_t)best * m + j];
                a[(size_t)best * m + j] = tmp;
            }
        double inv = 1.0 / a[(size_t)c * m + c];
        for (int r = c + 1; r < m; r++) {
            double *row = a + (size_t)r * m, f = row[c] * inv;
            row[c] = f;
            if (f != 0.0) {
                const double *prow = a + (size_t)c * m;
                for (int j = c + 1; j < m; j++)
                    row[j] -= f * prow[j];
            }
        }
    }
    return 0;
}

static void lu_solve(const double *a, int m, const int *piv, double *x)
{
    for (int c = 0; c < m; c++)
        if (piv[c] != c) {
            double tmp = x[c];
            x[c] = x[piv[c]];
            x[piv[c]] = tmp;
        }
    for (int r = 1; r < m; r++) {
        double s = x[r];
        for (int j = 0; j < r; j++)
            s -= a[(size_t)r * m + j] * x[j];
        x[r] = s;
    }
    for (int r = m - 1; r >= 0; r--) {
        double s = x[r];
        for (int j = r + 1; j < m; j++)
            s -= a[(size_t)r * m + j] * x[j];
        x[r] = s / a[(size_t)r * m + r];
    }
}

/* The upper triangle (and the first subdiagonal of 2x2 blocks) of
 * out += S X^T for S, X [rows, len] row-major: out[r][j] += sum_k S[r, k] X[j, k],
 * j >= r. Dot products over the contiguous axis, in 2x2 blocks of independent
 * sums (four loads feed four multiply-adds). */
static void gram_upper(const double *restrict sx, const double *restrict x, int rows, int len,
                       double *restrict out, int ld)
{
    int r = 0;
    for (; r + 1 < rows; r += 2) {
        const double *a0 = sx + (size_t)r * len, *a1 = a0 + len;
        int j = r;
        for (; j + 1 < rows; j += 2) {
            const double *b0 = x + (size_t)j * len, *b1 = b0 + len;
            double s00 = 0.0, s01 = 0.0, s10 = 0.0, s11 = 0.0;
            for (int k = 0; k < len; k++) {
                double u0 = a0[k], u1 = a1[k], v0 = b0[k], v1 = b1[k];
                s00 += u0 * v0;
                s01 += u0 * v1;
                s10 += u1 * v0;
                s11 += u1 * v1;
            }
            out[(size_t)r * ld + j] += s00;
            out[(size_t)r * ld + j + 1] += s01;
            out[(size_t)(r + 1) * ld + j] += s10;
            out[(size_t)(r + 1) * ld + j + 1] += s11;
        }
        if (j < rows) {
            const double *b0 = x + (size_t)j * len;
            double s0 = 0.0, s1 = 0.0;
            for (int k = 0; k < len; k++) {
                s0 += a0[k] * b0[k];
                s1 += a1[k] * b0[k];
            }
            out[(size_t)r * ld + j] += s0;
            out[(size_t)(r + 1) * ld + j] += s1;
        }
    }
    if (r < rows) {
        const double *a0 = sx + (size_t)r * len, *b0 = x + (size_t)r * len;
        double s0 = 0.0;
        for (int k = 0; k < len; k++)
            s0 += a0[k] * b0[k];
        out[(size_t)r * ld + r] += s0;
    }
}

/* -------------------------------------------------------------- interior point */

typedef struct {
    P3 p;
    int I, n, K, onto_b;
    size_t m;                       /* I * n */
    size_t mf;                      /* m, plus I with a floor: multipliers and slacks */
    double *z, *dz;                 /* [s (I), b (n), lam (mf), slack (mf)] */
    double *s, *b, *lam, *slack, *ds, *db, *dlam, *dslack;
    double *t, *t1, *res, *d, *dres, *dt1, *dt1T, *wt, *scaled, *inv_slack;  /* [mf] */
    double *hb, *hs, *ihs, *rb, *rs, *acc;  /* [n], [I], [I]: 1 / hs, [n], [I], [n] */
    double *cf, *cm, *cc;               /* [R, n]: the curve f, -f', f'' */
    double *kkt, *rhs;             /* [(K+1)^2] (LU-factored in place), [K+1] */
    int *piv;
    double nu;
    double budget;                  /* 1 - sum b, the budget row's residual */
    double max_step;                /* largest step <= 1 along dz keeping b, lam, slack > 0 */
} Ipm;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The curve values f = 1/h_down + 1/h_up into out [R, n], at b [n] (or at the same
 * b_all for every device when b is NULL). */
static void curve_values(const P3 *p, const double *b, double b_all, double *out)
{
    double mf1, f2;
    for (int r = 0; r < p->R; r++)
        for (int k = 0; k < p->n; k++)
            curve(p, r, k, b ? b[k] : b_all, &out[(size_t)r * p->n + k], &mf1, &f2);
}

/* The start, in closed form. At the uniform split b0 = 1/n a device's communication
 * time is about a / b with a[i, k] = kappa f(b0) b0; equal finish times in a layer
 * (compute aside) give b ~ a[i], the sum over layers sum_i sum_k a / b gives
 * b ~ sqrt(sum_i a). The start takes b ~ (sum_i a[i, k])^0.75 between the two
 * (fewest iterations on paper-scale and large instances), floored at 1e-3 / n and
 * rescaled onto the simplex; every layer 0.1 above its bottleneck, multipliers
 * centred per layer (lam * slack constant) and summing to 1. */
static void ipm_start(Ipm *w)
{
    int I = w->I, n = w->n, R = w->p.R;
    const P3 *p = &w->p;
    double *cf = w->cf, total = 0.0, floored = 0.0;
    curve_values(p, NULL, 1.0 / n, cf);
    memset(w->b, 0, sizeof(double) * n);
    for (int i = 0; i < I; i++)
        for (int k = 0; k < n; k++)
            w->b[k] += p->kappa[(size_t)i * n + k] * cf[(size_t)(R > 1 ? i : 0) * n + k];
    for (int k = 0; k < n; k++) {
        w->b[k] = pow(w->b[k] / n, 0.75);
        total += w->b[k];
    }
    for (int k = 0; k < n; k++) {
        w->b[k] = fmax(w->b[k] / total, 1e-3 / n);
        floored += w->b[k];
    }
    for (int k = 0; k < n; k++)
        w->b[k] /= floored;
    curve_values(p, w->b, 0.0, cf);
    for (int i = 0; i < I; i++) {
        const double *f = cf + (size_t)(R > 1 ? i : 0) * n;
        double top = -INFINITY, sum = 0.0;
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            w->t[idx] = p->kappa[idx] * f[k] + p->pi[idx];
            top = fmax(top, w->t[idx]);
        }
        size_t fi = w->m + i;                   /* the floor's entry */
        if (p->floor)
            top = fmax(top, p->floor[i]);
        w->s[i] = top + 0.1;
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            w->slack[idx] = w->s[i] - w->t[idx];
            sum += 1.0 / w->slack[idx];
        }
        if (p->floor) {
            w->slack[fi] = w->s[i] - p->floor[i];
            sum += 1.0 / w->slack[fi];
            w->lam[fi] = 1.0 / w->slack[fi] / sum;
        }
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            w->lam[idx] = 1.0 / w->slack[idx] / sum;
        }
    }
    w->nu = 0.0;
}

/* Layer i's part of linearize: from kappa, pi, lam, slack [n] of the layer, its
 * bound si and the curves f, -f', f'' [n], the times t, slopes t1 = kappa (-f'),
 * residuals res = t - si + slack, d = lam / slack, dres = d res, dt1 = d t1 and
 * 1 / slack, each [n]; adds the layer's curvature to hb [n]. (Its own function, so
 * that the compiler sees restrict parameters and vectorizes it.) */
static void linearize_row(int n, double si, const double *restrict kappa,
                          const double *restrict pi, const double *restrict lam,
                          const double *restrict slack, const double *restrict f,
                          const double *restrict mf1, const double *restrict f2,
                          double *restrict t, double *restrict t1, double *restrict res,
                          double *restrict d, double *restrict dres, double *restrict dt1,
                          double *restrict inv_slack, double *restrict hb)
{
    for (int k = 0; k < n; k++) {
        double kap = kappa[k], l = lam[k], sl = slack[k];
        double tt = kap * f[k] + pi[k], q1 = kap * mf1[k];
        double is = 1.0 / sl, r = tt - si + sl, dd = l * is, q = dd * q1;
        inv_slack[k] = is;
        t[k] = tt;
        t1[k] = q1;
        res[k] = r;
        d[k] = dd;
        dres[k] = dd * r;
        dt1[k] = q;
        hb[k] += l * kap * f2[k] + q * q1;
    }
}

/* Derivatives, residual and the reduced Newton matrix (LU-factored) at the
 * iterate; returns the duality gap sum lam * slack, or NaN on failure. */
static double linearize(Ipm *w, int *status)
{
    int I = w->I, n = w->n, K = w->K;
    const P3 *p = &w->p;
    const double *restrict kappa = p->kappa, *restrict pi = p->pi, *restrict b = w->b;
    const double *restrict lam = w->lam, *restrict slack = w->slack, *restrict s = w->s;
    double *restrict t = w->t, *restrict t1 = w->t1;
    double *restrict res = w->res, *restrict d = w->d, *restrict dres = w->dres;
    double *restrict dt1 = w->dt1, *restrict hb = w->hb, *restrict hs = w->hs;
    double *restrict inv_slack = w->inv_slack;
    double *restrict cf = w->cf, *restrict cm = w->cm, *restrict cc = w->cc;
    int R = p->R;
    for (int r = 0; r < R; r++)          /* the curves: one per device, or per pair */
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)r * n + k;
            curve(p, r, k, b[k], &cf[idx], &cm[idx], &cc[idx]);
        }
    memset(hb, 0, sizeof(double) * n);
    for (int i = 0; i < I; i++) {
        size_t row = R > 1 ? (size_t)i * n : 0, at = (size_t)i * n;
        linearize_row(n, s[i], kappa + at, pi + at, lam + at, slack + at, cf + row, cm + row,
                      cc + row, t + at, t1 + at, res + at, d + at, dres + at, dt1 + at,
                      inv_slack + at, hb);
        hs[i] = sum(d + at, n);
        if (p->floor) {                  /* floor[i] - s_i + slack = 0: t' = 0 */
            size_t fi = w->m + i;
            double is = 1.0 / slack[fi], r = p->floor[i] - s[i] + slack[fi], dd = lam[fi] * is;
            inv_slack[fi] = is;
            res[fi] = r;
            d[fi] = dd;
            dres[fi] = dd * r;
            hs[i] += dd;
        }
        w->ihs[i] = 1.0 / hs[i];
    }
    double gap = dot(lam, slack, w->mf);
    w->budget = 1.0 - sum(b, n);
    /* the negated reduced system, (K+1)-square, bordered by the budget row */
    int m = K + 1;
    double *a = w->kkt;
    memset(a, 0, sizeof(double) * (size_t)m * m);
    double *sx = w->scaled;
    if (w->onto_b) {                     /* K = n: eliminate s */
        for (int k = 0; k < n; k++)     /* dt1 transposed, and scaled by 1 / hs */
            for (int i = 0; i < I; i++) {
                double v = dt1[(size_t)i * n + k];
                w->dt1T[(size_t)k * I + i] = v;
                sx[(size_t)k * I + i] = v * w->ihs[i];
            }
        gram_upper(sx, w->dt1T, n, I, a, m);
        for (int r = 0; r < n; r++) {
            a[(size_t)r * m + r] -= w->hb[r];
            a[(size_t)r * m + n] = a[(size_t)n * m + r] = -1.0;
        }
    } else {                             /* K = I: eliminate b */
        double corner = 0.0;
        for (int k = 0; k < n; k++)
            corner += 1.0 / w->hb[k];
        for (int i = 0; i < I; i++) {
            double border = 0.0;
            for (int k = 0; k < n; k++) {
                double v = w->dt1[(size_t)i * n + k] / w->hb[k];
                sx[(size_t)i * n + k] = v;
                border += v;
            }
            a[(size_t)i * m + I] = a[(size_t)I * m + i] = border;
        }
        gram_upper(sx, w->dt1, I, n, a, m);
        for (int r = 0; r < I; r++)
            a[(size_t)r * m + r] -= w->hs[r];
        a[(size_t)I * m + I] = corner;
    }
    for (int r = 0; r < K; r++)          /* mirror the upper triangle */
        for (int j = 0; j < r; j++)
            a[(size_t)r * m + j] = a[(size_t)j * m + r];
    if (!isfinite(gap)) {
        *status = ST_NOT_FINITE;
        return NAN;
    }
    if (lu_factor(a, m, w->piv) != 0) {
        *status = ST_SINGULAR;
        return NAN;
    }
    return gap;
}

/* dlam, dslack of constraint idx from linear = ds_i - t' db (the change of s_i - t);
 * returns worst lowered to min(dz / z) over its lam and slack. */
static inline double multiplier_step(Ipm *w, const double *restrict wt, size_t idx,
                                     double linear, double worst)
{
    double lam = w->lam[idx], slack = w->slack[idx];
    double dl = wt[idx] - w->d[idx] * linear - lam, dsl = linear - w->res[idx];
    w->dlam[idx] = dl;
    w->dslack[idx] = dsl;
    if (dl < worst * lam)
        worst = dl / lam;
    if (dsl < worst * slack)
        worst = dsl / slack;
    return worst;
}

/* The direction for the complementarity target wt [I, n] (then [I] of the floor)
 * into dz; returns the new budget price nu (exact.py's docstring). */
static double direction(Ipm *w, const double *restrict wt)
{
    int I = w->I, n = w->n, K = w->K;
    double *restrict rb = w->rb, *restrict rs = w->rs, *restrict rhs = w->rhs;
    double *restrict db = w->db, *restrict ds = w->ds;
    const double *restrict t1 = w->t1, *restrict dt1 = w->dt1;
    const double *restrict hb = w->hb, *restrict ihs = w->ihs;
    memset(rb, 0, sizeof(double) * n);
    for (int i = 0; i < I; i++) {
        const double *restrict wrow = wt + (size_t)i * n, *restrict trow = t1 + (size_t)i * n;
        for (int k = 0; k < n; k++)
            rb[k] += wrow[k] * trow[k];
        rs[i] = sum(wrow, n) - 1.0;
        if (w->p.floor)
            rs[i] += wt[w->m + i];
    }
    if (w->onto_b) {
        for (int k = 0; k < n; k++)
            rhs[k] = -rb[k];
        rhs[n] = -w->budget;
        for (int i = 0; i < I; i++) {
            double c = rs[i] * ihs[i];
            const double *row = dt1 + (size_t)i * n;
            for (int k = 0; k < n; k++)
                rhs[k] += row[k] * c;
        }
        lu_solve(w->kkt, K + 1, w->piv, rhs);
        memcpy(db, rhs, sizeof(double) * n);
        for (int i = 0; i < I; i++)
            ds[i] = (rs[i] - dot(dt1 + (size_t)i * n, db, n)) * ihs[i];
    } else {
        double total = 0.0;
        for (int k = 0; k < n; k++) {
            rb[k] /= hb[k];
            total += rb[k];
        }
        for (int i = 0; i < I; i++)
            rhs[i] = dot(dt1 + (size_t)i * n, rb, n) - rs[i];
        rhs[I] = total - w->budget;
        lu_solve(w->kkt, K + 1, w->piv, rhs);
        memcpy(ds, rhs, sizeof(double) * I);
        double *restrict acc = w->acc;
        memset(acc, 0, sizeof(double) * n);
        for (int i = 0; i < I; i++) {
            const double *restrict row = dt1 + (size_t)i * n;
            double c = ds[i];
            for (int k = 0; k < n; k++)
                acc[k] += row[k] * c;
        }
        for (int k = 0; k < n; k++)
            db[k] = rb[k] - (acc[k] + rhs[I]) / hb[k];
    }
    /* dlam, dslack, and the step to the boundary: min(-1, min dz / z) over b, lam and
     * slack (z > 0; the comparison first, so few divisions) */
    double worst = -1.0;
    for (int k = 0; k < n; k++)
        if (db[k] < worst * w->b[k])
            worst = db[k] / w->b[k];
    for (int i = 0; i < I; i++) {
        double dsi = ds[i];
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            worst = multiplier_step(w, wt, idx, t1[idx] * db[k] + dsi, worst);
        }
        if (w->p.floor)                  /* the floor's time has no slope */
            worst = multiplier_step(w, wt, w->m + i, dsi, worst);
    }
    w->max_step = -1.0 / worst;
    return rhs[K];
}

/* One Mehrotra predictor-corrector step from the linearized iterate. */
static void ipm_step(Ipm *w, double gap)
{
    size_t m = w->mf;
    double *restrict wt = w->wt;
    const double *restrict dlam = w->dlam, *restrict dslack = w->dslack;
    const double *restrict inv_slack = w->inv_slack, *restrict dres = w->dres;
    direction(w, dres);                             /* predictor (affine scaling) */
    double alpha = w->max_step;
    double gap_aff = gap * (1.0 - alpha) + alpha * alpha * dot(dlam, dslack, m);
    double ratio = fmax(gap_aff, 0.0) / gap;
    double mu = ratio * ratio * ratio * gap / (double)m;
    for (size_t j = 0; j < m; j++)
        wt[j] = (mu - dlam[j] * dslack[j]) * inv_slack[j] + dres[j];
    double nu = direction(w, wt);                   /* corrector */
    alpha = TO_BOUNDARY * w->max_step;
    /* the gap after the step is gap + alpha c1 + alpha^2 c2 (it is bilinear): take a
     * step that lowers it by at least GAP_DECREASE alpha, or the largest that does
     * (on strongly nonlinear instances the second-order term made it grow, and the
     * predictor-corrector went round in a cycle) */
    double c1 = dot(w->lam, dslack, m) + dot(w->slack, dlam, m), c2 = dot(dlam, dslack, m);
    if (gap + alpha * c1 + alpha * alpha * c2 > (1.0 - GAP_DECREASE * alpha) * gap
            && c2 > 0.0 && c1 + GAP_DECREASE * gap < 0.0)
        alpha = fmin(alpha, -(c1 + GAP_DECREASE * gap) / c2);
    size_t len = (size_t)w->I + w->n + 2 * m;
    double *restrict z = w->z;
    const double *restrict dz = w->dz;
    for (size_t j = 0; j < len; j++)
        z[j] += alpha * dz[j];
    w->nu += alpha * (nu - w->nu);
}

typedef struct {
    double bound, objective, nu;
    int have;
} Best;

/* Certify the iterate: best bound (with its multipliers) and best point so far. */
static int certify(Ipm *w, Best *best, double *b_best, double *lam_best, double *scratch,
                   double *lam_norm, double *x)
{
    int I = w->I, n = w->n, status;
    double bound;
    normalize_multipliers(I, n, w->p.floor != NULL, w->lam, lam_norm);
    status = dual_bound_c(&w->p, lam_norm, fmax(w->nu, 0.0), w->b, x, &bound, scratch);
    if (status != ST_OPTIMAL)
        return status;
    double objective = 0.0;
    for (int i = 0; i < I; i++) {
        double top = w->p.floor ? w->p.floor[i] : -INFINITY;
        for (int k = 0; k < n; k++)
            top = fmax(top, w->t[(size_t)i * n + k]);
        objective += top;
    }
    if (!best->have || bound >= best->bound) {
        best->bound = bound;
        best->nu = w->nu;
        memcpy(lam_best, w->lam, sizeof(double) * w->mf);
    }
    if (!best->have || (objective <= best->objective && fabs(w->budget) <= BUDGET_SLACK)) {
        best->objective = objective;
        memcpy(b_best, w->b, sizeof(double) * n);
    }
    best->have = 1;
    return ST_OPTIMAL;
}

/* The workspace of interior_point for I layers, n devices and R gain rows (a floor
 * or not): the doubles it needs, and the pivots (ints) into *pivots. It grows with n,
 * so one workspace for n serves every problem with fewer devices. */
static size_t ipm_workspace(int I, int n, int R, size_t *pivots)
{
    size_t m = (size_t)I * (n + 1), K = n <= I ? (size_t)n : (size_t)I;
    size_t zlen = (size_t)I + n + 2 * m, rn = (size_t)R * n;
    *pivots = K + 1;
    return 2 * zlen + 10 * m + 3 * (size_t)n + 3 * rn + 3 * (size_t)I + (K + 1) * (K + 1)
           + (K + 1) + (m + 3 * (size_t)n) + m + n;   /* + certificate scratch, lam_norm, x */
}

/* The whole solve in the workspace mem, piv (ipm_workspace); outputs b_best [n],
 * lam_best [I, n] (then [I] of the floor, with one) and the scalars. */
static int interior_point(const P3 *p, double tol, int max_iter,
                          double time_limit, double *b_best, double *lam_best, Best *best,
                          int *iterations, double *mem, int *piv)
{
    Ipm w;
    int I = p->I, n = p->n;
    size_t m = (size_t)I * n + n_floors(p);
    w.p = *p;
    w.I = I; w.n = n; w.m = (size_t)I * n; w.mf = m;
    w.onto_b = n <= I;
    w.K = w.onto_b ? n : I;
    size_t km = (size_t)(w.K + 1) * (w.K + 1);
    size_t zlen = (size_t)I + n + 2 * m;
    size_t rn = (size_t)p->R * n;
    double *q = mem;
#define TAKE(ptr, len) do { (ptr) = q; q += (len); } while (0)
    TAKE(w.z, zlen); TAKE(w.dz, zlen);
    TAKE(w.t, m); TAKE(w.t1, m); TAKE(w.res, m); TAKE(w.d, m); TAKE(w.dres, m);
    TAKE(w.dt1, m); TAKE(w.dt1T, m); TAKE(w.wt, m); TAKE(w.scaled, m);
    TAKE(w.inv_slack, m);
    TAKE(w.hb, n); TAKE(w.rb, n); TAKE(w.acc, n);
    TAKE(w.cf, rn); TAKE(w.cm, rn); TAKE(w.cc, rn);
    TAKE(w.hs, I); TAKE(w.ihs, I); TAKE(w.rs, I);
    TAKE(w.kkt, km); TAKE(w.rhs, w.K + 1);
    double *scratch, *lam_norm, *x;
    TAKE(scratch, m + 3 * (size_t)n); TAKE(lam_norm, m); TAKE(x, n);
#undef TAKE
    w.piv = piv;
    w.s = w.z; w.b = w.z + I; w.lam = w.b + n; w.slack = w.lam + m;
    w.ds = w.dz; w.db = w.dz + I; w.dlam = w.db + n; w.dslack = w.dlam + m;

    double deadline = now_s() + time_limit;
    int status = ST_FEASIBLE, certified = 0, it = 0, err = ST_OPTIMAL;
    best->have = 0;
    ipm_start(&w);
    for (it = 1; it <= max_iter; it++) {
        double gap = linearize(&w, &err);
        if (isnan(gap))
            break;
        double scale = 0.0;
        for (int i = 0; i < I; i++)
            scale += w.s[i];
        certified = gap <= CERTIFY_AT * tol * scale;
        if (certified) {
            err = certify(&w, best, b_best, lam_best, scratch, lam_norm, x);
            if (err != ST_OPTIMAL)
                break;
            if (best->objective - best->bound <= ACCEPT * tol * best->objective) {
                status = ST_OPTIMAL;
                break;
            }
        }
        if (now_s() > deadline) {
            status = ST_TIME_LIMIT;
            break;
        }
        ipm_step(&w, gap);
    }
    if (it > max_iter)
        it = max_iter;
    if (err == ST_OPTIMAL && !certified) {
        double gap = linearize(&w, &err);
        if (!isnan(gap))
            err = certify(&w, best, b_best, lam_best, scratch, lam_norm, x);
    }
    *iterations = it;
    int met = best->have && best->objective - best->bound <= ACCEPT * tol * best->objective;
    if (err != ST_OPTIMAL)
        return !best->have ? err : met ? ST_OPTIMAL : ST_AFTER_INCUMBENT + err;
    return status == ST_FEASIBLE && met ? ST_OPTIMAL : status;
}

/* ------------------------------------------------------------------- batches */

/* One instance of a batch whose arrays keep every device (idle and local ones:
 * kappa = 0 in every layer). The loaded linked devices (listed in cols, `used` of
 * them) are packed into `work` (kappa, pi [I, n'], gains [R, n'], then b [n'] and
 * lam [I, n' + 1]) and solved as above, with full's floor (or none), in the workspace
 * mem, piv; the point goes back to b_out [n] with 0 for idle and local devices. With
 * one loaded linked device it takes the whole budget (its times decrease; in_seconds
 * takes its objective as its own bound); with none the split is uniform and every
 * layer takes its floor. info: code, bound (NaN without a certified point; not
 * computed for at most one loaded device), iterations. */
static void solve_packed(const P3 *full, const int *cols, int used, double tol, int max_iter,
                         double time_limit, double *work, double *mem, int *piv,
                         double *b_out, double *info)
{
    int I = full->I, n = full->n, R = full->R;
    Best best = {0};
    int code = ST_OPTIMAL, iterations = 0;
    for (int k = 0; k < n; k++)
        b_out[k] = used ? 0.0 : 1.0 / n;
    if (used == 1) {
        b_out[cols[0]] = 1.0;
    } else if (used > 1) {
        size_t m = (size_t)I * used, rm = (size_t)R * used;
        double *kappa = work, *pi = kappa + m, *gd = pi + m, *gu = gd + rm;
        double *b = gu + rm, *lam = b + used;
        for (int i = 0; i < I; i++)
            for (int j = 0; j < used; j++) {
                kappa[(size_t)i * used + j] = full->kappa[(size_t)i * n + cols[j]];
                pi[(size_t)i * used + j] = full->pi[(size_t)i * n + cols[j]];
            }
        for (int r = 0; r < R; r++)
            for (int j = 0; j < used; j++) {
                gd[(size_t)r * used + j] = full->gd[(size_t)r * n + cols[j]];
                gu[(size_t)r * used + j] = full->gu[(size_t)r * n + cols[j]];
            }
        P3 packed = {I, used, R, kappa, pi, gd, gu, full->floor};
        code = interior_point(&packed, tol, max_iter, time_limit, b, lam, &best, &iterations,
                              mem, piv);
        if (best.have)
            for (int j = 0; j < used; j++)
                b_out[cols[j]] = b[j];
    }
    info[0] = code;
    info[1] = best.have ? best.bound : NAN;
    info[2] = iterations;
}

/* A batch in physical units, as batch.py's P3Batch: loads u, p [I, n] (eq. 9) and
 * compute times per token a [n] (eq. 7), each per instance or shared by the whole
 * batch (stride 0); received powers S = P g [2, R, n] (eqs. 2-3, downlink then uplink)
 * per instance; local [n] (nonzero: no link, SPEC section 6) or NULL, shared; the
 * token size L, the band B and the noise density N0. */
typedef struct {
    int I, n, R;
    const double *tokens, *pairs, *compute, *signal, *local;
    size_t load_stride, compute_stride;
    double token_bits, total_hz, noise_psd;
} Batch;

/* Whether device k of the batch is local (no link). */
static inline int is_local(const Batch *bt, int k)
{
    return bt->local && bt->local[k] != 0.0;
}

/* Instance j in the normalized units of structure.py (P3Data): g = S / (N0 B) into
 * g [2, R, n], kappa = u L ln 2 / (B T0) (0 on a local device) and pi = p a / T0 into
 * kappa, pi [I, n], the floor max over local devices of pi into floor [I], with T0 the
 * mean layer latency of the uniform split b = 1/n (idle devices take no time; 1 when
 * it is 0), returned; cf [R, n] is scratch. */
static double normalize(const Batch *bt, Py_ssize_t j, double *kappa, double *pi, double *g,
                        double *floor, double *cf)
{
    int I = bt->I, n = bt->n, R = bt->R;
    size_t rn = (size_t)R * n;
    const double *u = bt->tokens + j * bt->load_stride, *p = bt->pairs + j * bt->load_stride;
    const double *a = bt->compute + j * bt->compute_stride, *s = bt->signal + j * 2 * rn;
    double noise = bt->noise_psd * bt->total_hz, per_token = bt->token_bits * M_LN2 / bt->total_hz;
    for (size_t r = 0; r < 2 * rn; r++)
        g[r] = s[r] / noise;
    P3 raw = {I, n, R, kappa, pi, g, g + rn};
    curve_values(&raw, NULL, 1.0 / n, cf);
    double t0 = 0.0;
    for (int i = 0; i < I; i++) {
        const double *f = cf + (R > 1 ? (size_t)i * n : 0);
        double top = 0.0;              /* every time is >= 0 */
        floor[i] = 0.0;
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            kappa[idx] = is_local(bt, k) ? 0.0 : u[idx] * per_token;
            pi[idx] = p[idx] * a[k];
            double t = kappa[idx] * f[k] + pi[idx];
            top = t > top ? t : top;
            if (is_local(bt, k))
                floor[i] = fmax(floor[i], pi[idx]);
        }
        t0 += top;
    }
    t0 /= I;
    if (!(t0 > 0.0))
        t0 = 1.0;
    for (size_t idx = 0; idx < (size_t)I * n; idx++) {
        kappa[idx] /= t0;
        pi[idx] /= t0;
    }
    for (int i = 0; i < I; i++)
        floor[i] /= t0;
    return t0;
}

/* Statuses of solve_batch, in the order of batch.py's _STATUS. */
enum { OUT_OPTIMAL = 0, OUT_FEASIBLE = 1, OUT_TIME_LIMIT = 2, OUT_ERROR = 3 };

/* The answer in seconds for instance j from the kernel's normalized point b [n] and
 * info (solve_packed), by bandwidth/common.py's finish: after a failure before any
 * certified point (codes 3-5) the point is the uniform split over the loaded linked
 * devices (cols [used]), without a bound, status error. b rescaled onto the simplex gives hz [n]; the
 * objective (eq. 19) is recomputed in seconds from the physical data at hz, as
 * P3Batch.objective_s (R = B log2(1 + S / (N0 B)), 0 at B = 0; t = u L (1/R_down +
 * 1/R_up) + p a, 0 without load). The bound is the kernel's times T0 (the objective
 * itself with at most one loaded device); one above the objective by more than
 * `roundoff` (relative) is dropped, status error; else it is capped at the objective
 * and the status is optimal when the relative gap is at most tol, feasible otherwise,
 * time_limit when the kernel stopped on its clock. out: objective, bound, status;
 * link [R, n]: scratch. */
static void in_seconds(const Batch *bt, Py_ssize_t j, const int *cols, int used,
                       const double *info, double t0, double tol, double roundoff, double *b,
                       double *hz, double *link, double *out)
{
    int I = bt->I, n = bt->n, R = bt->R, code = (int)info[0];
    int failed = code >= ST_SINGULAR && code <= ST_NO_BRACKET;
    size_t rn = (size_t)R * n;
    const double *u = bt->tokens + j * bt->load_stride, *p = bt->pairs + j * bt->load_stride;
    const double *a = bt->compute + j * bt->compute_stride, *s = bt->signal + j * 2 * rn;
    if (failed) {
        for (int k = 0; k < n; k++)
            b[k] = 0.0;
        for (int c = 0; c < used; c++)
            b[cols[c]] = 1.0 / used;
    }
    double total = 0.0;
    for (int k = 0; k < n; k++)
        total += b[k];
    for (int k = 0; k < n; k++)
        hz[k] = b[k] / total * bt->total_hz;
    for (size_t r = 0; r < rn; r++) {   /* link [R, n]: seconds per token, both ways */
        double h = hz[r % n], noise = bt->noise_psd * h;
        double down = h > 0.0 ? h * log1p(s[r] / noise) / M_LN2 : 0.0;
        double up = h > 0.0 ? h * log1p(s[rn + r] / noise) / M_LN2 : 0.0;
        link[r] = is_local(bt, (int)(r % n)) ? 0.0 : bt->token_bits / down + bt->token_bits / up;
    }
    double objective = 0.0;
    for (int i = 0; i < I; i++) {
        const double *c = link + (R > 1 ? (size_t)i * n : 0);
        double top = -INFINITY;
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)i * n + k;
            double t = p[idx] * a[k] + (u[idx] > 0.0 ? u[idx] * c[k] : 0.0);
            top = t > top ? t : top;
        }
        objective += top;
    }
    double bound = failed ? NAN : used <= 1 ? objective : info[1] * t0;
    int above = bound > objective * (1.0 + roundoff), status;
    if (above)
        bound = NAN;
    else if (bound > objective)
        bound = objective;
    double gap = objective == bound ? 0.0 : (objective - bound) / fabs(objective);
    status = gap <= tol ? OUT_OPTIMAL : OUT_FEASIBLE;   /* NaN: feasible */
    if (code == ST_TIME_LIMIT)
        status = OUT_TIME_LIMIT;
    if (failed || above)
        status = OUT_ERROR;
    out[0] = objective;
    out[1] = bound;
    out[2] = status;
}

/* Instance j whole: normalized, solved (solve_packed) and answered in seconds
 * (in_seconds). work: per-instance scratch of batch_work doubles; mem, piv: the
 * interior point's workspace for n devices; cols [n]. out: objective, bound,
 * status, iterations, at stride `stride` (rows of a [4, N] array). */
static void solve_instance(const Batch *bt, Py_ssize_t j, double tol, int max_iter,
                           double time_limit, double roundoff, double *work, double *mem,
                           int *piv, int *cols, double *hz, double *out, Py_ssize_t stride)
{
    int I = bt->I, n = bt->n, R = bt->R, used = 0;
    size_t m = (size_t)I * n, rn = (size_t)R * n;
    double *kappa = work, *pi = kappa + m, *g = pi + m, *cf = g + 2 * rn, *b = cf + rn;
    double *floor = b + n, *info = floor + I, *packed = info + 3;
    const double *u = bt->tokens + j * bt->load_stride;
    for (int k = 0; k < n; k++) {
        int loaded = 0;
        for (int i = 0; i < I && !loaded && !is_local(bt, k); i++)
            loaded = u[(size_t)i * n + k] > 0.0;
        if (loaded)
            cols[used++] = k;
    }
    double t0 = normalize(bt, j, kappa, pi, g, floor, cf);
    int floored = 0;
    for (int i = 0; i < I; i++)
        floored |= floor[i] > 0.0;
    P3 full = {I, n, R, kappa, pi, g, g + rn, floored ? floor : NULL};
    solve_packed(&full, cols, used, tol, max_iter, time_limit, packed, mem, piv, b, info);
    double answer[3];
    in_seconds(bt, j, cols, used, info, t0, tol, roundoff, b, hz, cf, answer);
    for (int r = 0; r < 3; r++)
        out[r * stride] = answer[r];
    out[3 * stride] = info[2];
}

/* Doubles of solve_instance's per-instance scratch (its own arrays, then
 * solve_packed's). */
static size_t batch_work(int I, int n, int R)
{
    size_t m = (size_t)I * n, rn = (size_t)R * n;
    return 2 * m + 3 * rn + n + I + 3 + (3 * m + I + 2 * rn + n);
}

/* ------------------------------------------------------------ Python bindings */

/* A C-contiguous float64 buffer of exactly `len` items (writable if asked). */
static int get_array(PyObject *obj, Py_ssize_t len, int writable, const char *name,
                     Py_buffer *view)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0)
        return -1;
    if (view->itemsize != 8 || !view->format || strcmp(view->format, "d") != 0
            || view->len != len * 8) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float64 values", name, len);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The shape [ndim] of a C-contiguous float64 array of ndim dimensions (the axes
 * named in `axes` for the error message). */
static int get_shape(PyObject *obj, int ndim, const char *name, const char *axes,
                     Py_ssize_t *shape)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0)
        return -1;
    int ok = view.ndim == ndim && view.itemsize == 8 && view.format
             && strcmp(view.format, "d") == 0;
    for (int d = 0; ok && d < ndim; d++)
        shape[d] = view.shape[d];
    PyBuffer_Release(&view);
    if (!ok)
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-D [%s] contiguous float64 array",
                     name, ndim, axes);
    return ok ? 0 : -1;
}

/* Layers I and devices n from the shape of kappa, a 2-D float64 array. */
static int get_sizes(PyObject *kappa, Py_ssize_t *I, Py_ssize_t *n)
{
    Py_ssize_t shape[2];
    if (get_shape(kappa, 2, "kappa", "layers, devices", shape) != 0)
        return -1;
    *I = shape[0];
    *n = shape[1];
    return 0;
}

/* Parse (kappa, pi, g_down, g_up) for n_layers layers and n devices. */
static int get_problem(PyObject *const *objs, int I, int n, P3 *p, Py_buffer *views)
{
    static const char *names[4] = {"kappa", "pi", "g_down", "g_up"};
    Py_ssize_t m = (Py_ssize_t)I * n;
    for (int j = 0; j < 4; j++) {
        Py_ssize_t len = m;
        if (j >= 2) {          /* gain rows: I (fast fading) or 1 */
            Py_buffer probe;
            if (PyObject_GetBuffer(objs[j], &probe, PyBUF_SIMPLE) != 0)
                goto fail;
            len = probe.len / 8 == m ? m : n;
            PyBuffer_Release(&probe);
        }
        if (get_array(objs[j], len, 0, names[j], &views[j]) != 0)
            goto fail;
        if (j == 3 && views[3].len != views[2].len) {
            PyErr_SetString(PyExc_ValueError, "g_up: shape differs from g_down");
            PyBuffer_Release(&views[3]);
            goto fail;
        }
        continue;
    fail:
        for (int r = 0; r < j; r++)
            PyBuffer_Release(&views[r]);
        return -1;
    }
    p->I = I;
    p->n = n;
    p->R = views[2].len / 8 == m && I > 1 ? I : 1;
    p->kappa = views[0].buf;
    p->pi = views[1].buf;
    p->gd = views[2].buf;
    p->gu = views[3].buf;
    return 0;
}

static void release(Py_buffer *views, int count)
{
    for (int j = 0; j < count; j++)
        PyBuffer_Release(&views[j]);
}

/* The optional floor [I] into p->floor (NULL for None; view held only then). */
static int get_floor(PyObject *obj, Py_ssize_t I, P3 *p, Py_buffer *view)
{
    p->floor = NULL;
    if (obj == Py_None)
        return 0;
    if (get_array(obj, I, 0, "floor", view) != 0)
        return -1;
    p->floor = view->buf;
    return 0;
}

PyDoc_STRVAR(interior_point_doc,
"interior_point(kappa, pi, g_down, g_up, b_out, lam_out, tol, max_iter, time_limit,\n"
"               floor=None) -> (code, nu, bound, objective, iterations)\n\n"
"Solve normalized P3 from its closed-form start; kappa, pi are [I, n], the gains\n"
"[I, n] or [1, n], floor [I] (optional) a constant each layer latency is at least.\n"
"Writes the best point into b_out [n] and the multipliers of the best bound into\n"
"lam_out [I, n], or [I (n + 1)] with a floor (the pairs, then the floor's). code: 0 optimal, 1 iteration limit, 2 time limit,\n"
"3 singular Newton system, 4 non-finite iterate, 5 certificate could not bracket;\n"
"10 + (3, 4 or 5): that failure after a certified point, returned.");

static PyObject *py_interior_point(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[7];
    double tol, time_limit;
    int max_iter;
    objs[6] = Py_None;
    if (!PyArg_ParseTuple(args, "OOOOOOdid|O", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &tol, &max_iter, &time_limit, &objs[6]))
        return NULL;
    Py_buffer views[7];
    Py_ssize_t I, n;
    if (get_sizes(objs[0], &I, &n) != 0)
        return NULL;
    if (n < 2 || I < 1 || max_iter < 1) {
        PyErr_SetString(PyExc_ValueError, "need at least 2 devices, 1 layer, max_iter >= 1");
        return NULL;
    }
    P3 p;
    if (get_problem(objs, (int)I, (int)n, &p, views) != 0)
        return NULL;
    if (get_array(objs[4], n, 1, "b_out", &views[4]) != 0) {
        release(views, 4);
        return NULL;
    }
    if (get_floor(objs[6], I, &p, &views[6]) != 0) {
        release(views, 5);
        return NULL;
    }
    int views_held = 6 + (p.floor != NULL);
    if (get_array(objs[5], I * n + n_floors(&p), 1, "lam_out", &views[5]) != 0) {
        release(views, 5);
        if (p.floor)
            PyBuffer_Release(&views[6]);
        return NULL;
    }
    size_t pivots, doubles = ipm_workspace((int)I, (int)n, p.R, &pivots);
    double *mem = malloc(sizeof(double) * doubles);
    int *piv = malloc(sizeof(int) * pivots);
    if (!mem || !piv) {
        free(mem);
        free(piv);
        release(views, views_held);
        return PyErr_NoMemory();
    }
    Best best = {0};
    int iterations = 0, code;
    Py_BEGIN_ALLOW_THREADS
    code = interior_point(&p, tol, max_iter, time_limit, views[4].buf, views[5].buf, &best,
                          &iterations, mem, piv);
    Py_END_ALLOW_THREADS
    free(mem);
    free(piv);
    release(views, views_held);
    if (!best.have)
        best.bound = best.objective = best.nu = NAN;
    return Py_BuildValue("(idddi)", code, best.nu, best.bound, best.objective, iterations);
}

PyDoc_STRVAR(dual_bound_doc,
"dual_bound(kappa, pi, g_down, g_up, lam, nu, start, x_out, floor=None) -> bound\n\n"
"The dual function g(lam, nu), a lower bound on normalized P3, for lam [I, n]\n"
"(with a floor [I]: [I (n + 1)], the pairs then the floor's multipliers)\n"
"(made valid here: NaN and negatives to 0, +inf to the largest double, each layer\n"
"scaled to sum 1) and nu >= 0, the 1-D searches starting at start [n];\n"
"the inner minimizers go to x_out [n]. Raises FloatingPointError when a minimizer\n"
"cannot be bracketed or the value is not finite.");

static PyObject *py_dual_bound(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[8];
    double nu;
    objs[7] = Py_None;
    if (!PyArg_ParseTuple(args, "OOOOOdOO|O", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &nu, &objs[5], &objs[6], &objs[7]))
        return NULL;
    Py_buffer views[8];
    Py_ssize_t I, n;
    if (get_sizes(objs[0], &I, &n) != 0)
        return NULL;
    if (n < 1 || I < 1 || !(nu >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "need at least 1 device, 1 layer and nu >= 0");
        return NULL;
    }
    P3 p;
    if (get_problem(objs, (int)I, (int)n, &p, views) != 0)
        return NULL;
    if (get_floor(objs[7], I, &p, &views[4]) != 0) {
        release(views, 4);
        return NULL;
    }
    Py_buffer floor_view = views[4];
    int floors = n_floors(&p);
    size_t m = (size_t)I * n + floors;
    static const char *names[3] = {"lam", "start", "x_out"};
    Py_ssize_t lens[3] = {(Py_ssize_t)m, n, n};
    for (int j = 0; j < 3; j++)
        if (get_array(objs[4 + j], lens[j], j == 2, names[j], &views[4 + j]) != 0) {
            release(views, 4 + j);
            if (floors)
                PyBuffer_Release(&floor_view);
            return NULL;
        }
    double *scratch = malloc(sizeof(double) * (2 * m + 3 * (size_t)n)), *lam = scratch;
    if (!scratch) {
        release(views, 7);
        if (floors)
            PyBuffer_Release(&floor_view);
        return PyErr_NoMemory();
    }
    double bound = NAN;
    int code;
    Py_BEGIN_ALLOW_THREADS
    normalize_multipliers((int)I, (int)n, floors, views[4].buf, lam);
    code = dual_bound_c(&p, lam, nu, views[5].buf, views[6].buf, &bound, scratch + m);
    Py_END_ALLOW_THREADS
    free(scratch);
    release(views, 7);
    if (floors)
        PyBuffer_Release(&floor_view);
    if (code == ST_NO_BRACKET) {
        PyErr_SetString(PyExc_FloatingPointError,
                        "could not bracket the inner minimizer of the dual function");
        return NULL;
    }
    if (code != ST_OPTIMAL) {
        PyErr_SetString(PyExc_FloatingPointError, "the dual function is not finite");
        return NULL;
    }
    return PyFloat_FromDouble(bound);
}


PyDoc_STRVAR(solve_batch_doc,
"solve_batch(tokens, pairs, compute_s, signal_w, hz_out, out, token_bits,\n"
"            total_bandwidth_hz, noise_psd_w_per_hz, tol, max_iter, time_limit,\n"
"            bound_roundoff, start, stop, local=None) -> None\n\n"
"Solve and certify instances start..stop-1 of a batch of P3 problems in physical\n"
"units (batch.P3Batch): loads tokens, pairs [N, I, n] or [1, I, n] (shared), compute\n"
"times per token compute_s [N, n] or [1, n], received powers signal_w [N, 2, R, n]\n"
"(R = I or 1), local [n] (nonzero: a device without a link, 0 Hz, its compute time a\n"
"floor) or None. Per instance, with the GIL released: normalized as structure.P3Data,\n"
"solved by the interior point with its dual certificate (idle devices packed out),\n"
"then answered in seconds by bandwidth.common.finish's rules with bound_roundoff as\n"
"its round-off allowance. Writes the allocation in Hz into hz_out [N, n] and\n"
"(objective_s, lower_bound_s, status, iterations) into the columns of out [4, N];\n"
"status 0 optimal, 1 feasible, 2 time limit, 3 error (no bound: NaN).");

static PyObject *py_solve_batch(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[7];
    double token_bits, total_hz, noise_psd, tol, time_limit, roundoff;
    int max_iter;
    Py_ssize_t start, stop, ts[3], cs[2], ss[4];
    objs[6] = Py_None;
    if (!PyArg_ParseTuple(args, "OOOOOOddddiddnn|O", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &token_bits, &total_hz, &noise_psd, &tol,
                          &max_iter, &time_limit, &roundoff, &start, &stop, &objs[6]))
        return NULL;
    if (get_shape(objs[0], 3, "tokens", "batch or 1, layers, devices", ts) != 0
            || get_shape(objs[2], 2, "compute_s", "batch or 1, devices", cs) != 0
            || get_shape(objs[3], 4, "signal_w", "batch, 2, layers or 1, devices", ss) != 0)
        return NULL;
    Py_ssize_t N = ss[0], I = ts[1], n = ts[2], R = ss[2], m = I * n;
    if (ss[1] != 2 || ss[3] != n || (R != 1 && R != I) || (ts[0] != 1 && ts[0] != N)
            || cs[1] != n || (cs[0] != 1 && cs[0] != N)) {
        PyErr_SetString(PyExc_ValueError, "shapes: need tokens, pairs [N or 1, I, n], "
                        "compute_s [N or 1, n] and signal_w [N, 2, I or 1, n]");
        return NULL;
    }
    if (n < 1 || I < 1 || max_iter < 1 || start < 0 || stop > N || start > stop
            || !(total_hz > 0.0) || !(noise_psd > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "need 1 device, 1 layer, max_iter >= 1, a positive "
                        "band and noise, and 0 <= start <= stop <= N");
        return NULL;
    }
    static const char *names[7] = {"tokens", "pairs", "compute_s", "signal_w", "hz_out", "out",
                                   "local"};
    Py_ssize_t lens[7] = {ts[0] * m, ts[0] * m, cs[0] * n, N * 2 * R * n, N * n, 4 * N, n};
    Py_buffer views[7];
    int held = objs[6] == Py_None ? 6 : 7;
    for (int j = 0; j < held; j++)
        if (get_array(objs[j], lens[j], j == 4 || j == 5, names[j], &views[j]) != 0) {
            release(views, j);
            return NULL;
        }
    size_t pivots, doubles = ipm_workspace((int)I, (int)n, (int)R, &pivots);
    double *work = malloc(sizeof(double) * (batch_work((int)I, (int)n, (int)R) + doubles));
    int *ints = malloc(sizeof(int) * (pivots + n));
    if (!work || !ints) {
        free(work);
        free(ints);
        release(views, held);
        return PyErr_NoMemory();
    }
    Batch bt = {(int)I, (int)n, (int)R, views[0].buf, views[1].buf, views[2].buf, views[3].buf,
                held == 7 ? views[6].buf : NULL, ts[0] == 1 ? 0 : (size_t)m,
                cs[0] == 1 ? 0 : (size_t)n, token_bits, total_hz, noise_psd};
    double *hz = views[4].buf, *out = views[5].buf, *mem = work + batch_work(bt.I, bt.n, bt.R);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = start; j < stop; j++)
        solve_instance(&bt, j, tol, max_iter, time_limit, roundoff, work, mem, ints, ints + pivots,
                       hz + j * n, out + j, N);
    Py_END_ALLOW_THREADS
    free(work);
    free(ints);
    release(views, held);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"interior_point", py_interior_point, METH_VARARGS, interior_point_doc},
    {"dual_bound", py_dual_bound, METH_VARARGS, dual_bound_doc},
    {"solve_batch", py_solve_batch, METH_VARARGS, solve_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_p3kernel",
    "Compiled core of p3/exact: the interior point and the dual certificate.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__p3kernel(void)
{
    return PyModule_Create(&module);
}
