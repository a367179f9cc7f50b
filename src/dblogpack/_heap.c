/* The C library's allocator, tuned for a process that reads logs in chunks of megabytes
 * (allocator.py): glibc's mallopt, and memory faulted in ahead of the reads, by a thread that
 * runs while the process is still importing its modules.
 *
 * Python objects of more than 512 bytes come from malloc; a read of a few megabytes is one
 * such block. glibc serves a block that size with a fresh mmap, or from fresh heap pages, and
 * the kernel faults its pages in one by one as the read fills it (~1 ms per 2 MiB here). Pages
 * the allocator has already faulted in and kept are filled at the copy's speed.
 *
 * Elsewhere than glibc, nothing is changed: tune() returns False and warm() does nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static PyObject *
heap_tune(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"mmap_threshold", "trim_threshold", "arenas", NULL};
    int mmap_threshold, trim_threshold, arenas = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ii|$i:tune", keywords, &mmap_threshold,
                                     &trim_threshold, &arenas))
        return NULL;
    if (mmap_threshold < 0 || trim_threshold < 0 || arenas < 0) {
        PyErr_SetString(PyExc_ValueError, "thresholds and arenas must not be negative");
        return NULL;
    }
#ifdef __GLIBC__
    int done = mallopt(M_MMAP_THRESHOLD, mmap_threshold) && mallopt(M_TRIM_THRESHOLD, trim_threshold);
    if (arenas > 0)
        done = done && mallopt(M_ARENA_MAX, arenas);
    return PyBool_FromLong(done);
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *
heap_warm(PyObject *module, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
#ifdef __GLIBC__
    Py_BEGIN_ALLOW_THREADS
    /* volatile: the stores must happen, though nothing reads them before the block is freed */
    volatile char *block = malloc((size_t)size);
    if (block != NULL) {
        long page = sysconf(_SC_PAGESIZE);
        for (Py_ssize_t at = 0; at < size; at += page)
            block[at] = 0;
        free((void *)block);
    }
    Py_END_ALLOW_THREADS
#endif
    Py_RETURN_NONE;
}

static PyMethodDef heap_methods[] = {
    {"tune", (PyCFunction)(void (*)(void))heap_tune, METH_VARARGS | METH_KEYWORDS,
     "tune(mmap_threshold, trim_threshold, *, arenas=0) -> bool: glibc's mallopt; False "
     "where it is not glibc or it refused a value."},
    {"warm", heap_warm, METH_O,
     "warm(size): fault in `size` bytes of the allocator's memory and keep them (GIL released)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef heap_module = {
    PyModuleDef_HEAD_INIT, "dblogpack._heap",
    "glibc's allocator tuned for reads of megabytes (see allocator.py).", -1, heap_methods,
};

PyMODINIT_FUNC
PyInit__heap(void)
{
    return PyModule_Create(&heap_module);
}
