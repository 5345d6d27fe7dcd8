/* The compiled core of p2/exact: the per-device tables of its Lagrangian bound.
 *
 * The mathematics is in exact.py (fact 2) and docs/selection.md.  For device k
 * with P pairs (router weights w_j and multipliers l_j of their tokens) and
 * service time tau, the table is, for every count n in [first, last],
 *
 *   g(n) = max_{|S| = n} sum_{j in S} (w_j / (n tau) + l_j),
 *
 * the sum of the n largest scores s_j(n) = a_n w_j + l_j, a_n = 1 / (n tau).
 * numpy sorts every row (P log P per row).  Here the pairs stay in one order
 * from row to row: s_i(n) - s_j(n) is linear in a_n and a_n decreases
 * with n, so each pair of pairs swaps at most once over the whole table, and
 * an insertion sort from the previous row's order costs P plus the swaps of
 * that row (P^2 / 2 swaps over all rows at worst).  The first row is sorted
 * with qsort.
 *
 * Arrays: w, lam float64 [Ptot] (pairs grouped by device, device k's pairs at
 * start[k] .. start[k+1]); tau float64 [U]; start int64 [U + 1]; first, last
 * int64 [U] (1 <= first; no rows when last < first); g_out float64 with the
 * rows of every device one after another.  The GIL is released while
 * computing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double s;
    int64_t j;
} Scored;

static int by_score_desc(const void *a, const void *b)
{
    double x = ((const Scored *)a)->s, y = ((const Scored *)b)->s;
    return (x < y) - (x > y);
}

/* One device's rows first..last into g (the GIL is not held).  ow, ol, key hold
 * the pairs' weights, multipliers and scores in the current order (contiguous,
 * so that the score update vectorizes). */
static void device_table(const double *w, const double *lam, int64_t P, double tau,
                         int64_t first, int64_t last, double *g, double *ow, double *ol,
                         double *key, Scored *scratch)
{
    double a = 1.0 / ((double)first * tau);
    for (int64_t j = 0; j < P; j++) {
        scratch[j].s = a * w[j] + lam[j];
        scratch[j].j = j;
    }
    qsort(scratch, (size_t)P, sizeof(Scored), by_score_desc);
    for (int64_t i = 0; i < P; i++) {
        ow[i] = w[scratch[i].j];
        ol[i] = lam[scratch[i].j];
    }
    for (int64_t n = first; n <= last; n++) {
        a = 1.0 / ((double)n * tau);
        for (int64_t i = 0; i < P; i++)
            key[i] = a * ow[i] + ol[i];
        for (int64_t i = 1; i < P; i++) {          /* insertion sort, descending */
            double k = key[i];
            if (!(key[i - 1] < k))
                continue;
            double wi = ow[i], li = ol[i];
            int64_t h = i - 1;
            while (h >= 0 && key[h] < k) {
                key[h + 1] = key[h];
                ow[h + 1] = ow[h];
                ol[h + 1] = ol[h];
                h--;
            }
            key[h + 1] = k;
            ow[h + 1] = wi;
            ol[h + 1] = li;
        }
        double total = 0.0;
        int64_t top = n < P ? n : P;
        for (int64_t i = 0; i < top; i++)
            total += key[i];
        g[n - first] = total;
    }
}

/* A C-contiguous buffer of `len` items of 8 bytes, format `fmt` ("d" or an int64). */
static int get_array(PyObject *obj, Py_ssize_t len, int writable, int integer,
                     const char *name, Py_buffer *view)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0)
        return -1;
    const char *f = view->format ? view->format : "";
    int ok = view->itemsize == 8 && view->len == len * 8
             && (integer ? (strcmp(f, "q") == 0 || strcmp(f, "l") == 0) : strcmp(f, "d") == 0);
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous %s values", name, len,
                     integer ? "int64" : "float64");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(tables_doc,
"tables(w, lam, tau, start, first, last, g_out) -> None\n\n"
"Every device's Lagrangian table g(n), n = first[k] .. last[k], into g_out\n"
"(device after device); see the module comment of _p2kernel.c.");

static PyObject *py_tables(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o[7];
    if (!PyArg_ParseTuple(args, "OOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6]))
        return NULL;
    Py_buffer v[7];
    PyObject *result = NULL;
    Py_buffer probe;
    if (PyObject_GetBuffer(o[2], &probe, PyBUF_SIMPLE) != 0)
        return NULL;
    Py_ssize_t U = probe.len / 8;
    PyBuffer_Release(&probe);
    if (get_array(o[2], U, 0, 0, "tau", &v[2]) != 0)
        return NULL;
    if (get_array(o[3], U + 1, 0, 1, "start", &v[3]) != 0)
        goto done_tau;
    const int64_t *start = v[3].buf;
    Py_ssize_t Ptot = (Py_ssize_t)start[U];
    if (get_array(o[0], Ptot, 0, 0, "w", &v[0]) != 0)
        goto done;
    if (get_array(o[1], Ptot, 0, 0, "lam", &v[1]) != 0) {
        PyBuffer_Release(&v[0]);
        goto done;
    }
    if (get_array(o[4], U, 0, 1, "first", &v[4]) != 0)
        goto done_w;
    if (get_array(o[5], U, 0, 1, "last", &v[5]) != 0) {
        PyBuffer_Release(&v[4]);
        goto done_w;
    }
    const int64_t *first = v[4].buf, *last = v[5].buf;
    Py_ssize_t rows = 0, Pmax = 0;
    for (Py_ssize_t k = 0; k < U; k++) {
        Py_ssize_t P = start[k + 1] - start[k];
        if (P < 0 || (last[k] >= first[k] && first[k] < 1)) {
            PyErr_SetString(PyExc_ValueError, "start must not decrease; first >= 1");
            goto done_rows;
        }
        rows += last[k] >= first[k] ? last[k] - first[k] + 1 : 0;
        Pmax = P > Pmax ? P : Pmax;
    }
    if (get_array(o[6], rows, 1, 0, "g_out", &v[6]) != 0)
        goto done_rows;
    double *buf = malloc((size_t)(3 * (Pmax + 1)) * sizeof(double));
    Scored *scratch = malloc((size_t)(Pmax + 1) * sizeof(Scored));
    if (!buf || !scratch) {
        PyErr_NoMemory();
    } else {
        const double *w = v[0].buf, *lam = v[1].buf, *tau = v[2].buf;
        double *g = v[6].buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < U; k++) {
            if (last[k] < first[k])
                continue;
            device_table(w + start[k], lam + start[k], start[k + 1] - start[k], tau[k],
                         first[k], last[k], g, buf, buf + Pmax + 1, buf + 2 * (Pmax + 1),
                         scratch);
            g += last[k] - first[k] + 1;
        }
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    free(buf);
    free(scratch);
    PyBuffer_Release(&v[6]);
done_rows:
    PyBuffer_Release(&v[4]);
    PyBuffer_Release(&v[5]);
done_w:
    PyBuffer_Release(&v[0]);
    PyBuffer_Release(&v[1]);
done:
    PyBuffer_Release(&v[3]);
done_tau:
    PyBuffer_Release(&v[2]);
    return result;
}

static PyMethodDef methods[] = {
    {"tables", py_tables, METH_VARARGS, tables_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_p2kernel",
    "Compiled core of p2/exact: the tables of its Lagrangian bound.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__p2kernel(void)
{
    return PyModule_Create(&module);
}
