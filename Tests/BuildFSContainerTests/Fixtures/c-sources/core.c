#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "parts.h"

static unsigned long (*const parts[])(unsigned long) = {
    part_0, part_1, part_2, part_3, part_4, part_5, part_6, part_7, part_8, part_9, part_10, part_11,
};

static PyObject *checksum(PyObject *self, PyObject *arg) {
    unsigned long x = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) x = parts[i](x);
    return PyLong_FromUnsignedLong(x);
}

static PyMethodDef methods[] = {{"checksum", checksum, METH_O, "Mixes x through every part."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};
PyMODINIT_FUNC PyInit__core(void) { return PyModule_Create(&module); }
