/* SHA-256 by OpenSSL's libcrypto, the library hashlib uses, for a thread that hashes a package
 * member while the scan goes on (members.sha256).
 *
 * hashlib's would do, but importing it loads and initialises OpenSSL with the GIL held (4.5-6 ms
 * of a 1-hour window's pack), and stringzilla's, which needs no load, holds the GIL while it
 * hashes (~2 ms of every 2 MiB the scanning thread then waits for). This hasher loads only
 * libcrypto's SHA256_Init/Update/Final (dlopen, once per process), from the first update and
 * with the GIL released, and hashes with the GIL released. Where libcrypto cannot be loaded,
 * every update goes to a hasher made by the `fallback` given to the constructor.
 *
 * One object is updated by one thread at a time (as hashlib's objects, it locks nothing).
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: the API without providers to load */
#include <Python.h>
#include <dlfcn.h>
#include <openssl/sha.h>
#include <pthread.h>

static __typeof__(SHA256_Init) *sha256_init;
static __typeof__(SHA256_Update) *sha256_update;
static __typeof__(SHA256_Final) *sha256_final;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
/* The library to load instead of the usual names, when libcrypto(name) asked before any load. */
static char only_name[1024];

static void
load_libcrypto(void)
{
    const char *usual[] = {"libcrypto.so.3", "libcrypto.so.1.1", NULL};
    const char *only[] = {only_name, NULL};
    for (const char *const *name = only_name[0] ? only : usual; *name != NULL; name++) {
        void *library = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
        if (library == NULL)
            continue;
        sha256_init = (__typeof__(SHA256_Init) *)dlsym(library, "SHA256_Init");
        sha256_update = (__typeof__(SHA256_Update) *)dlsym(library, "SHA256_Update");
        sha256_final = (__typeof__(SHA256_Final) *)dlsym(library, "SHA256_Final");
        if (sha256_init != NULL && sha256_update != NULL && sha256_final != NULL) {
            loaded = 1;
            return;
        }
        dlclose(library);
    }
}

/* Whether libcrypto is loaded (loading it the first time); call without the GIL. */
static int
libcrypto_loaded(void)
{
    pthread_once(&load_once, load_libcrypto);
    return loaded;
}

typedef struct {
    PyObject_HEAD
    SHA256_CTX context;
    int started;               /* context initialised */
    PyObject *fallback_factory;
    PyObject *fallback;        /* the fallback's hasher, once libcrypto turned out missing */
} Sha256Object;

static PyObject *
sha256_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fallback", NULL};
    PyObject *factory;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Sha256", keywords, &factory))
        return NULL;
    Sha256Object *self = (Sha256Object *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->fallback_factory = Py_NewRef(factory);
    return (PyObject *)self;
}

static void
sha256_dealloc(Sha256Object *self)
{
    Py_XDECREF(self->fallback_factory);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The fallback's hasher, made the first time (NULL with an exception if that fails). */
static PyObject *
fallback_hasher(Sha256Object *self)
{
    if (self->fallback == NULL)
        self->fallback = PyObject_CallNoArgs(self->fallback_factory);
    return self->fallback;
}

static PyObject *
sha256_update_method(Sha256Object *self, PyObject *data)
{
    if (self->fallback == NULL) {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        int hashed;
        Py_BEGIN_ALLOW_THREADS
        hashed = libcrypto_loaded();
        if (hashed) {
            if (!self->started)
                sha256_init(&self->context);
            self->started = 1;
            sha256_update(&self->context, view.buf, (size_t)view.len);
        }
        Py_END_ALLOW_THREADS
        PyBuffer_Release(&view);
        if (hashed)
            Py_RETURN_NONE;
    }
    PyObject *hasher = fallback_hasher(self);
    return hasher == NULL ? NULL : PyObject_CallMethod(hasher, "update", "O", data);
}

static PyObject *
sha256_hexdigest(Sha256Object *self, PyObject *Py_UNUSED(ignored))
{
    int hashed = self->fallback == NULL;
    if (hashed) {
        Py_BEGIN_ALLOW_THREADS
        hashed = libcrypto_loaded();
        Py_END_ALLOW_THREADS
    }
    if (!hashed) {
        PyObject *hasher = fallback_hasher(self);
        return hasher == NULL ? NULL : PyObject_CallMethod(hasher, "hexdigest", NULL);
    }
    SHA256_CTX copy = self->context; /* the digest so far; updates may follow */
    unsigned char digest[SHA256_DIGEST_LENGTH];
    if (!self->started)
        sha256_init(&copy);
    sha256_final(digest, &copy);
    char hex[2 * SHA256_DIGEST_LENGTH];
    for (int k = 0; k < SHA256_DIGEST_LENGTH; k++) {
        hex[2 * k] = "0123456789abcdef"[digest[k] >> 4];
        hex[2 * k + 1] = "0123456789abcdef"[digest[k] & 15];
    }
    return PyUnicode_FromStringAndSize(hex, sizeof hex);
}

static PyMethodDef sha256_methods[] = {
    {"update", (PyCFunction)sha256_update_method, METH_O,
     "update(data)\n--\n\nHash `data` after the bytes before it (the GIL released)."},
    {"hexdigest", (PyCFunction)sha256_hexdigest, METH_NOARGS,
     "hexdigest()\n--\n\nThe digest of the bytes so far, as 64 hex digits."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject Sha256Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dblogpack._sha256.Sha256",
    .tp_basicsize = sizeof(Sha256Object),
    .tp_dealloc = (destructor)sha256_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Sha256(fallback)\n--\n\n"
              "A SHA-256 hasher by OpenSSL's libcrypto, loaded by the first update; where it\n"
              "cannot be loaded, `fallback()` makes the hasher every update goes to.",
    .tp_methods = sha256_methods,
    .tp_new = sha256_new,
};

PyDoc_STRVAR(libcrypto_doc,
"libcrypto(name=None)\n--\n\n"
"Whether this process hashes with libcrypto, loading it the first time (the GIL released):\n"
"from the library `name` instead of libcrypto.so.3 or .so.1.1, if given before any load.");

static PyObject *
libcrypto(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|z:libcrypto", &name))
        return NULL;
    if (name != NULL && strlen(name) < sizeof only_name)
        strcpy(only_name, name); /* read by the load only: ignored once it ran */
    int available;
    Py_BEGIN_ALLOW_THREADS
    available = libcrypto_loaded();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(available);
}

static PyMethodDef module_methods[] = {
    {"libcrypto", libcrypto, METH_VARARGS, libcrypto_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sha256_module = {
    PyModuleDef_HEAD_INIT, "dblogpack._sha256",
    "SHA-256 by OpenSSL's libcrypto, loaded and run with the GIL released.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__sha256(void)
{
    if (PyType_Ready(&Sha256Type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&sha256_module);
    if (module != NULL && PyModule_AddObjectRef(module, "Sha256", (PyObject *)&Sha256Type) < 0)
        Py_CLEAR(module);
    return module;
}
