/* The optional C codec of the generated messages (see _codec_compiler.py, "backends").
 *
 * One `Message` object per message class, described from Python (`setup`) with the same model
 * the Python codec is compiled from. `encode(m, out)` and `decode(cls, data, pos, end, depth)`
 * have the signatures of the compiled `_enc_M` / `_dec_M` and give the same results.
 *
 * The C side only takes the common path: exact types (int, str, bytes, float, bool, list,
 * dict, the field's message class), well-formed input. Whatever else it meets -- a value of
 * another type, an out-of-range integer, any malformed input, groups, a singular message field
 * seen twice (a merge) -- makes the whole call start over in the Python codec of the message
 * (`py_enc` / `py_dec`), which then gives the result or raises the exact error the pure-Python
 * codec raises. Encoding writes into a buffer of its own and appends it to `out` only at the
 * end, and decoding has no side effects, so starting over is always safe.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum {
    K_DOUBLE, K_FLOAT, K_INT64, K_UINT64, K_INT32, K_FIXED64, K_FIXED32, K_BOOL,
    K_STRING, K_BYTES, K_UINT32, K_SFIXED32, K_SFIXED64, K_SINT32, K_SINT64, K_MESSAGE,
    K_COUNT
};
enum { C_SINGLE, C_REPEATED, C_PACKED, C_MAP };
enum { S_NEW, S_READY, S_PYTHON };

static const int WIRE[K_COUNT] = {1, 5, 0, 0, 0, 1, 5, 0, 2, 2, 0, 5, 1, 0, 0, 2};

typedef struct MessageObject MessageObject;

typedef struct {
    PyObject *name;       /* attribute name */
    uint32_t number;
    int kind;             /* element kind (value kind for maps; map keys are strings) */
    int card;
    MessageObject *sub;   /* the message of a message element / map value */
    PyObject *zero;       /* zero value of a map value */
    unsigned char key[5]; /* the field's key as written */
    int keylen;
} Field;

struct MessageObject {
    PyObject_HEAD
    int state;
    int recursive;
    PyObject *cls;
    PyObject *py_enc;
    PyObject *py_dec;
    PyObject *py_bytes;
    PyObject *init;
    PyObject *zero; /* the instance dict with zero values (containers None) */
    Py_ssize_t nfields;
    Field *fields;
    int16_t by_number[64]; /* field index + 1 by number, for numbers < 64 */
    int plain;             /* no data descriptor shadows a field: the instance dict is the truth */
    Py_ssize_t *order;     /* the field of each instance dict entry last seen (a guess), or -1 */
};

static PyTypeObject MessageType;
static PyObject *str_unknown_fields; /* "_unknown_fields" */
static PyObject *str_dict;           /* "__dict__" */
static PyObject *empty_bytes;
static PyObject *empty_str;
static PyObject *empty_tuple;

/* -- buffers ------------------------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
    int depth; /* of the message being encoded */
    unsigned char small[512];
} Buf;

/* Deeper nesting is left to Python (a recursive message nests at most MAX_DEPTH = 100 deep
 * on the wire; only an object graph with a cycle goes on): bounds the C stack. */
#define MAX_ENCODE_DEPTH 200

static void buf_init(Buf *b) {
    b->p = b->small;
    b->len = 0;
    b->depth = 0;
    b->cap = (Py_ssize_t)sizeof(b->small);
}

static void buf_free(Buf *b) {
    if (b->p != b->small) {
        PyMem_Free(b->p);
    }
    b->p = b->small;
}

static int buf_reserve(Buf *b, Py_ssize_t extra) {
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    Py_ssize_t cap = b->cap * 2;
    if (cap < need) {
        cap = need;
    }
    unsigned char *p;
    if (b->p == b->small) {
        p = PyMem_Malloc((size_t)cap);
        if (p != NULL) {
            memcpy(p, b->small, (size_t)b->len);
        }
    } else {
        p = PyMem_Realloc(b->p, (size_t)cap);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_write(Buf *b, const void *data, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->p + b->len, data, (size_t)n);
    b->len += n;
    return 0;
}

static int varint_size(uint64_t v) {
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static int put_varint(unsigned char *p, uint64_t v) {
    int n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static int buf_varint(Buf *b, uint64_t v) {
    if (buf_reserve(b, 10) < 0) {
        return -1;
    }
    b->len += put_varint(b->p + b->len, v);
    return 0;
}

/* A length-prefixed value: `buf_open_length` leaves one byte for its length (enough below
 * 128) and sets *start to where the value begins; `buf_close_length` writes the length there,
 * moving the value when the length needs more bytes. */
static int buf_open_length(Buf *b, Py_ssize_t *start) {
    if (buf_reserve(b, 1) < 0) {
        return -1;
    }
    b->len += 1;
    *start = b->len;
    return 0;
}

static int buf_close_length(Buf *b, Py_ssize_t start) {
    uint64_t n = (uint64_t)(b->len - start);
    if (n < 0x80) {
        b->p[start - 1] = (unsigned char)n;
        return 0;
    }
    int extra = varint_size(n) - 1;
    if (buf_reserve(b, extra) < 0) {
        return -1;
    }
    memmove(b->p + start + extra, b->p + start, (size_t)n);
    put_varint(b->p + start - 1, n);
    b->len += extra;
    return 0;
}

/* -- encoding ----------------------------------------------------------------------------- */

/* Any failure returns -1 with an exception set; the caller starts over in Python. */
static int bail(void) {
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "not taken by the C codec");
    }
    return -1;
}

static int encode_message(MessageObject *self, PyObject *m, Buf *b);

/* A Python int of an integer kind as the 64 bits it is written with; -1 (bail) when the
 * object is not exactly an int or out of the kind's range. */
static int int_bits(int kind, PyObject *v, uint64_t *out) {
    if (!PyLong_CheckExact(v)) {
        return bail();
    }
    if (kind == K_UINT64 || kind == K_FIXED64) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            return -1;
        }
        *out = (uint64_t)u;
        return 0;
    }
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (s == -1 && PyErr_Occurred())) {
        return bail();
    }
    switch (kind) {
    case K_INT32:
    case K_SINT32:
    case K_SFIXED32:
        if (s < INT32_MIN || s > INT32_MAX) {
            return bail();
        }
        break;
    case K_UINT32:
    case K_FIXED32:
        if (s < 0 || s > (long long)UINT32_MAX) {
            return bail();
        }
        break;
    default:
        break;
    }
    if (kind == K_SINT32) {
        int32_t x = (int32_t)s;
        *out = (uint32_t)(((uint32_t)x << 1) ^ (uint32_t)(x >> 31));
    } else if (kind == K_SINT64) {
        int64_t x = (int64_t)s;
        *out = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
    } else {
        *out = (uint64_t)s;
    }
    return 0;
}

/* Write the value `v` of kind `kind` without its key (a packed element, or after a key). */
static int encode_bare(int kind, MessageObject *sub, PyObject *v, Buf *b) {
    switch (kind) {
    case K_DOUBLE:
    case K_FLOAT: {
        double d;
        if (PyFloat_CheckExact(v)) {
            d = PyFloat_AS_DOUBLE(v);
        } else if (PyLong_CheckExact(v)) {
            d = PyLong_AsDouble(v); /* OverflowError as struct.pack's */
            if (d == -1.0 && PyErr_Occurred()) {
                return -1;
            }
        } else {
            return bail();
        }
        if (buf_reserve(b, 8) < 0) {
            return -1;
        }
        if (kind == K_DOUBLE) {
            if (PyFloat_Pack8(d, (char *)(b->p + b->len), 1) < 0) {
                return -1;
            }
            b->len += 8;
        } else {
            if (PyFloat_Pack4(d, (char *)(b->p + b->len), 1) < 0) {
                return -1;
            }
            b->len += 4;
        }
        return 0;
    }
    case K_BOOL:
        if (v == Py_True || v == Py_False) {
            unsigned char c = v == Py_True;
            return buf_write(b, &c, 1);
        }
        return bail();
    case K_STRING: {
        if (!PyUnicode_CheckExact(v)) {
            return bail();
        }
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        if (s == NULL) {
            return -1;
        }
        if (buf_varint(b, (uint64_t)n) < 0) {
            return -1;
        }
        return buf_write(b, s, n);
    }
    case K_BYTES: {
        if (!PyBytes_CheckExact(v)) {
            return bail();
        }
        Py_ssize_t n = PyBytes_GET_SIZE(v);
        if (buf_varint(b, (uint64_t)n) < 0) {
            return -1;
        }
        return buf_write(b, PyBytes_AS_STRING(v), n);
    }
    case K_MESSAGE: {
        if (sub == NULL || (PyObject *)Py_TYPE(v) != sub->cls) {
            return bail();
        }
        Py_ssize_t start;
        if (buf_open_length(b, &start) < 0 || encode_message(sub, v, b) < 0) {
            return -1;
        }
        return buf_close_length(b, start);
    }
    default: {
        uint64_t bits;
        if (int_bits(kind, v, &bits) < 0) {
            return -1;
        }
        if (kind == K_FIXED32 || kind == K_SFIXED32) {
            unsigned char p[4];
            uint32_t x = (uint32_t)bits;
            for (int i = 0; i < 4; i++) {
                p[i] = (unsigned char)(x >> (8 * i));
            }
            return buf_write(b, p, 4);
        }
        if (kind == K_FIXED64 || kind == K_SFIXED64) {
            unsigned char p[8];
            for (int i = 0; i < 8; i++) {
                p[i] = (unsigned char)(bits >> (8 * i));
            }
            return buf_write(b, p, 8);
        }
        return buf_varint(b, bits);
    }
    }
}

/* Whether a singular field's value is present (proto3 implicit presence); -1 bails. */
static int present(int kind, PyObject *v) {
    switch (kind) {
    case K_MESSAGE:
        return v != Py_None;
    case K_DOUBLE:
    case K_FLOAT:
        if (PyLong_CheckExact(v)) {
            return PyObject_IsTrue(v);
        }
        if (!PyFloat_CheckExact(v)) {
            return bail();
        }
        /* every non-zero bit pattern is written: -0.0 and NaN included */
        return PyFloat_AS_DOUBLE(v) != 0.0 || signbit(PyFloat_AS_DOUBLE(v));
    case K_BOOL:
        if (v == Py_True) {
            return 1;
        }
        return v == Py_False ? 0 : bail();
    case K_STRING:
        if (!PyUnicode_CheckExact(v)) {
            return bail();
        }
        return PyUnicode_GET_LENGTH(v) != 0;
    case K_BYTES:
        if (!PyBytes_CheckExact(v)) {
            return bail();
        }
        return PyBytes_GET_SIZE(v) != 0;
    default:
        if (!PyLong_CheckExact(v)) {
            return bail();
        }
        return PyObject_IsTrue(v);
    }
}

static int encode_field(Field *f, PyObject *v, Buf *b) {
    switch (f->card) {
    case C_SINGLE: {
        int p = present(f->kind, v);
        if (p <= 0) {
            return p;
        }
        if (buf_write(b, f->key, f->keylen) < 0) {
            return -1;
        }
        return encode_bare(f->kind, f->sub, v, b);
    }
    case C_REPEATED: {
        if (!PyList_CheckExact(v)) {
            return bail();
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            PyObject *x = Py_NewRef(PyList_GET_ITEM(v, i));
            int rc = buf_write(b, f->key, f->keylen);
            if (rc == 0) {
                rc = encode_bare(f->kind, f->sub, x, b);
            }
            Py_DECREF(x);
            if (rc < 0) {
                return -1;
            }
        }
        return 0;
    }
    case C_PACKED: {
        if (!PyList_CheckExact(v)) {
            return bail();
        }
        if (PyList_GET_SIZE(v) == 0) {
            return 0;
        }
        if (buf_write(b, f->key, f->keylen) < 0) {
            return -1;
        }
        Py_ssize_t start;
        if (buf_open_length(b, &start) < 0) {
            return -1;
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); i++) {
            if (encode_bare(f->kind, NULL, PyList_GET_ITEM(v, i), b) < 0) {
                return -1;
            }
        }
        return buf_close_length(b, start);
    }
    case C_MAP: {
        if (!PyDict_CheckExact(v)) {
            return bail();
        }
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        unsigned char value_key = (unsigned char)(2 << 3 | WIRE[f->kind]);
        unsigned char key_key = 1 << 3 | 2;
        while (PyDict_Next(v, &pos, &k, &x)) {
            /* held: a message value's attributes may run Python code that changes v */
            Py_INCREF(k);
            Py_INCREF(x);
            Py_ssize_t start = 0;
            int rc = buf_write(b, f->key, f->keylen);
            if (rc == 0) {
                rc = buf_open_length(b, &start);
            }
            if (rc == 0) {
                rc = buf_write(b, &key_key, 1);
            }
            if (rc == 0) {
                rc = encode_bare(K_STRING, NULL, k, b);
            }
            if (rc == 0) {
                rc = buf_write(b, &value_key, 1);
            }
            if (rc == 0) {
                rc = encode_bare(f->kind, f->sub, x, b);
            }
            if (rc == 0) {
                rc = buf_close_length(b, start);
            }
            Py_DECREF(k);
            Py_DECREF(x);
            if (rc < 0) {
                return -1;
            }
        }
        return 0;
    }
    }
    return bail();
}

/* Look up field j of an instance dict entry with key k, guessing from the entry's index i. */
static Py_ssize_t entry_field(MessageObject *self, Py_ssize_t i, PyObject *k) {
    Py_ssize_t n = self->nfields;
    Py_ssize_t j = i < n ? self->order[i] : -1;
    if (j >= 0 && self->fields[j].name == k) {
        return j;
    }
    j = -1;
    for (Py_ssize_t t = 0; t < n; t++) {
        if (self->fields[t].name == k) {
            j = t;
            break;
        }
    }
    if (i < n) {
        self->order[i] = j;
    }
    return j;
}

static int encode_unknown(PyObject *u, Buf *b) {
    if (!PyBytes_CheckExact(u)) {
        return bail();
    }
    return buf_write(b, PyBytes_AS_STRING(u), PyBytes_GET_SIZE(u));
}

/* The fast path for instances whose dict holds every field: one pass over the dict (its
 * entries matched to fields by key identity: attribute names are interned), then the fields
 * that may be present, in number order. Returns 1 when it does not apply. */
static int encode_from_dict(MessageObject *self, PyObject *m, Buf *b) {
    PyObject *d = PyObject_GenericGetDict(m, NULL);
    if (d == NULL) {
        return -1;
    }
    Py_ssize_t n = self->nfields;
    Py_ssize_t small_idx[64];
    PyObject *small_val[64];
    Py_ssize_t *idx = small_idx;
    PyObject **val = small_val;
    if (n > 64) {
        idx = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
        val = PyMem_Malloc(sizeof(PyObject *) * (size_t)n);
        if (idx == NULL || val == NULL) {
            PyMem_Free(idx);
            PyMem_Free(val);
            Py_DECREF(d);
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_ssize_t pos = 0, i = 0, np = 0, matched = 0, last = -1;
    int sorted = 1, rc = 1;
    PyObject *k, *v, *u = NULL;
    if (PyDict_CheckExact(d)) {
        while (PyDict_Next(d, &pos, &k, &v)) {
            if (k == str_unknown_fields) {
                Py_XSETREF(u, Py_NewRef(v));
            } else {
                Py_ssize_t j = entry_field(self, i, k);
                if (j >= 0 && matched < n) {
                    matched++;
                    Field *f = &self->fields[j];
                    if (!(v == Py_None && f->card == C_SINGLE && f->kind == K_MESSAGE)) {
                        idx[np] = j;
                        val[np] = Py_NewRef(v);
                        if (j < last) {
                            sorted = 0;
                        }
                        last = j;
                        np++;
                    }
                }
            }
            i++;
        }
    }
    Py_DECREF(d);
    if (matched == n && u != NULL) {
        if (!sorted) {
            for (Py_ssize_t a = 1; a < np; a++) {
                Py_ssize_t ji = idx[a];
                PyObject *vi = val[a];
                Py_ssize_t c = a - 1;
                while (c >= 0 && idx[c] > ji) {
                    idx[c + 1] = idx[c];
                    val[c + 1] = val[c];
                    c--;
                }
                idx[c + 1] = ji;
                val[c + 1] = vi;
            }
        }
        rc = 0;
        for (Py_ssize_t a = 0; a < np && rc == 0; a++) {
            rc = encode_field(&self->fields[idx[a]], val[a], b);
        }
        if (rc == 0) {
            rc = encode_unknown(u, b);
        }
    }
    for (Py_ssize_t a = 0; a < np; a++) {
        Py_DECREF(val[a]);
    }
    Py_XDECREF(u);
    if (idx != small_idx) {
        PyMem_Free(idx);
        PyMem_Free(val);
    }
    return rc;
}

static int encode_message(MessageObject *self, PyObject *m, Buf *b) {
    if (self->state != S_READY) {
        return bail();
    }
    if (b->depth >= MAX_ENCODE_DEPTH) {
        return bail();
    }
    if (Py_EnterRecursiveCall(" in the C codec")) {
        return -1;
    }
    b->depth++;
    int rc = 1;
    if (self->plain && (PyObject *)Py_TYPE(m) == self->cls &&
        Py_TYPE(m)->tp_getattro == PyObject_GenericGetAttr) {
        rc = encode_from_dict(self, m, b);
    }
    if (rc == 1) {
        /* attribute by attribute (encode_from_dict wrote nothing when it returned 1) */
        rc = 0;
        for (Py_ssize_t i = 0; i < self->nfields && rc == 0; i++) {
            PyObject *v = PyObject_GetAttr(m, self->fields[i].name);
            if (v == NULL) {
                rc = -1;
                break;
            }
            rc = encode_field(&self->fields[i], v, b);
            Py_DECREF(v);
        }
        if (rc == 0) {
            PyObject *u = PyObject_GetAttr(m, str_unknown_fields);
            rc = u == NULL ? -1 : encode_unknown(u, b);
            Py_XDECREF(u);
        }
    }
    b->depth--;
    Py_LeaveRecursiveCall();
    return rc;
}

/* -- decoding ----------------------------------------------------------------------------- */

/* Go's rules: up to 10 bytes, the 10th 0 or 1; never reads at or past `end`. */
static int read_varint(const unsigned char *p, Py_ssize_t *pos, Py_ssize_t end, uint64_t *out) {
    uint64_t r = 0;
    Py_ssize_t i = *pos;
    for (int n = 0; n < 10; n++) {
        if (i >= end) {
            return -1;
        }
        unsigned char c = p[i++];
        if (n == 9 && c > 1) {
            return -1;
        }
        r |= (uint64_t)(c & 0x7F) << (7 * n);
        if (c < 0x80) {
            *pos = i;
            *out = r;
            return 0;
        }
    }
    return -1;
}

static int read_length(const unsigned char *p, Py_ssize_t *pos, Py_ssize_t end, Py_ssize_t *stop) {
    uint64_t n;
    if (read_varint(p, pos, end, &n) < 0 || n > (uint64_t)(end - *pos)) {
        return -1;
    }
    *stop = *pos + (Py_ssize_t)n;
    return 0;
}

/* Skip an unknown field's value; groups and invalid wire types are left to Python. */
static int skip_field(const unsigned char *p, Py_ssize_t *pos, Py_ssize_t end, uint64_t tag) {
    uint64_t ignored;
    if (tag >> 3 == 0) {
        return -1;
    }
    switch (tag & 7) {
    case 0:
        return read_varint(p, pos, end, &ignored);
    case 1:
        if (end - *pos < 8) {
            return -1;
        }
        *pos += 8;
        return 0;
    case 2:
        return read_length(p, pos, end, pos);
    case 5:
        if (end - *pos < 4) {
            return -1;
        }
        *pos += 4;
        return 0;
    default:
        return -1;
    }
}

static PyObject *decode_message(MessageObject *self, PyObject *cls, const unsigned char *p,
                                Py_ssize_t pos, Py_ssize_t end, long depth);

/* Decode one scalar (or message) value of `kind` at *pos, within `end`; a new reference. */
static PyObject *decode_value(int kind, MessageObject *sub, const unsigned char *p,
                              Py_ssize_t *pos, Py_ssize_t end, long depth) {
    uint64_t v;
    switch (kind) {
    case K_STRING:
    case K_BYTES:
    case K_MESSAGE: {
        Py_ssize_t stop;
        if (read_length(p, pos, end, &stop) < 0) {
            return NULL;
        }
        PyObject *r;
        if (kind == K_STRING) {
            r = PyUnicode_DecodeUTF8((const char *)p + *pos, stop - *pos, NULL);
        } else if (kind == K_BYTES) {
            r = PyBytes_FromStringAndSize((const char *)p + *pos, stop - *pos);
        } else {
            r = decode_message(sub, sub == NULL ? NULL : sub->cls, p, *pos, stop, depth - 1);
        }
        *pos = stop;
        return r;
    }
    case K_DOUBLE:
    case K_FIXED64:
    case K_SFIXED64: {
        if (end - *pos < 8) {
            return NULL;
        }
        const unsigned char *q = p + *pos;
        *pos += 8;
        if (kind == K_DOUBLE) {
            double d = PyFloat_Unpack8((const char *)q, 1);
            if (d == -1.0 && PyErr_Occurred()) {
                return NULL;
            }
            return PyFloat_FromDouble(d);
        }
        v = 0;
        for (int i = 7; i >= 0; i--) {
            v = v << 8 | q[i];
        }
        if (kind == K_FIXED64) {
            return PyLong_FromUnsignedLongLong(v);
        }
        return PyLong_FromLongLong((long long)(int64_t)v);
    }
    case K_FLOAT:
    case K_FIXED32:
    case K_SFIXED32: {
        if (end - *pos < 4) {
            return NULL;
        }
        const unsigned char *q = p + *pos;
        *pos += 4;
        if (kind == K_FLOAT) {
            double d = PyFloat_Unpack4((const char *)q, 1);
            if (d == -1.0 && PyErr_Occurred()) {
                return NULL;
            }
            return PyFloat_FromDouble(d);
        }
        uint32_t x = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                     (uint32_t)q[3] << 24;
        if (kind == K_FIXED32) {
            return PyLong_FromUnsignedLong(x);
        }
        return PyLong_FromLong((long)(int32_t)x);
    }
    default:
        break;
    }
    if (read_varint(p, pos, end, &v) < 0) {
        return NULL;
    }
    switch (kind) {
    case K_INT32:
        return PyLong_FromLong((long)(int32_t)(uint32_t)v);
    case K_INT64:
        return PyLong_FromLongLong((long long)(int64_t)v);
    case K_UINT32:
        return PyLong_FromUnsignedLong((unsigned long)(uint32_t)v);
    case K_UINT64:
        return PyLong_FromUnsignedLongLong(v);
    case K_SINT32:
    case K_SINT64: {
        int64_t z = (int64_t)((v >> 1) ^ (uint64_t)(-(int64_t)(v & 1)));
        if (kind == K_SINT32) {
            return PyLong_FromLong((long)(int32_t)(uint32_t)(uint64_t)z);
        }
        return PyLong_FromLongLong((long long)z);
    }
    case K_BOOL:
        return Py_NewRef(v != 0 ? Py_True : Py_False);
    }
    return NULL;
}

/* A map entry in p[pos:end]: 1 and sets key and value (new references) when it holds only its
 * key and value, 0 when it holds anything else (kept as an unknown field), -1 on failure. */
static int decode_entry(Field *f, const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                        long depth, PyObject **key, PyObject **value) {
    PyObject *k = Py_NewRef(empty_str);
    PyObject *x = NULL;
    int clean = 1;
    uint64_t value_tag = (uint64_t)(2 << 3 | WIRE[f->kind]);
    while (pos < end) {
        uint64_t tag;
        if (read_varint(p, &pos, end, &tag) < 0 || tag > 0xFFFFFFFFu) {
            goto fail;
        }
        if (tag == (1 << 3 | 2)) {
            PyObject *nk = decode_value(K_STRING, NULL, p, &pos, end, depth);
            if (nk == NULL) {
                goto fail;
            }
            Py_SETREF(k, nk);
        } else if (tag == value_tag) {
            PyObject *nx = decode_value(f->kind, f->sub, p, &pos, end, depth);
            if (nx == NULL) {
                goto fail;
            }
            Py_XSETREF(x, nx);
        } else {
            if (skip_field(p, &pos, end, tag) < 0) {
                goto fail;
            }
            clean = 0;
        }
    }
    if (!clean) {
        Py_DECREF(k);
        Py_XDECREF(x);
        return 0;
    }
    if (x == NULL) {
        if (f->kind == K_MESSAGE) {
            x = PyObject_CallNoArgs(f->sub->cls);
            if (x == NULL) {
                goto fail;
            }
        } else {
            x = Py_NewRef(f->zero);
        }
    }
    *key = k;
    *value = x;
    return 1;
fail:
    Py_DECREF(k);
    Py_XDECREF(x);
    return -1;
}

static Field *find_field(MessageObject *self, uint64_t number) {
    if (number < 64) {
        int i = self->by_number[number];
        return i ? &self->fields[i - 1] : NULL;
    }
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        if (self->fields[i].number == number) {
            return &self->fields[i];
        }
    }
    return NULL;
}

static PyObject *decode_message(MessageObject *self, PyObject *cls, const unsigned char *p,
                                Py_ssize_t pos, Py_ssize_t end, long depth) {
    if (self == NULL || self->state != S_READY || (self->recursive && depth < 0)) {
        bail();
        return NULL;
    }
    if (Py_EnterRecursiveCall(" in the C codec")) {
        return NULL;
    }
    PyObject *obj = NULL;
    Buf unknown;
    buf_init(&unknown);
    /* the containers of repeated fields and maps, borrowed from d (which holds them) */
    PyObject *small[64];
    PyObject **containers = small;
    PyObject *d = PyDict_Copy(self->zero);
    if (d == NULL) {
        goto done;
    }
    if (self->nfields > 64) {
        containers = PyMem_Calloc((size_t)self->nfields, sizeof(PyObject *));
        if (containers == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Field *f = &self->fields[i];
        containers[i] = NULL;
        if (f->card != C_SINGLE) {
            PyObject *c = f->card == C_MAP ? PyDict_New() : PyList_New(0);
            if (c == NULL || PyDict_SetItem(d, f->name, c) < 0) {
                Py_XDECREF(c);
                goto done;
            }
            Py_DECREF(c);
            containers[i] = c;
        }
    }
    while (pos < end) {
        Py_ssize_t start = pos;
        uint64_t tag;
        if (read_varint(p, &pos, end, &tag) < 0 || tag > 0xFFFFFFFFu) {
            bail();
            goto done;
        }
        Field *f = find_field(self, tag >> 3);
        int wt = (int)(tag & 7);
        int expected = f == NULL ? -1 : (f->card == C_MAP ? 2 : WIRE[f->kind]);
        if (f != NULL && f->card == C_PACKED && wt == 2) {
            /* a packed run of scalars */
            Py_ssize_t stop;
            if (read_length(p, &pos, end, &stop) < 0) {
                bail();
                goto done;
            }
            PyObject *list = containers[f - self->fields];
            while (pos < stop) {
                PyObject *x = decode_value(f->kind, NULL, p, &pos, stop, depth);
                if (x == NULL || PyList_Append(list, x) < 0) {
                    Py_XDECREF(x);
                    bail();
                    goto done;
                }
                Py_DECREF(x);
            }
            continue;
        }
        if (f == NULL || wt != expected) {
            /* unknown, or a known field with another wire type: kept as it is */
            if (skip_field(p, &pos, end, tag) < 0 || buf_write(&unknown, p + start, pos - start) < 0) {
                bail();
                goto done;
            }
            continue;
        }
        if (f->card == C_MAP) {
            Py_ssize_t stop;
            if (read_length(p, &pos, end, &stop) < 0) {
                bail();
                goto done;
            }
            PyObject *k = NULL, *x = NULL;
            int r = decode_entry(f, p, pos, stop, depth - 1, &k, &x);
            if (r < 0) {
                bail();
                goto done;
            }
            if (r == 0) {
                if (buf_write(&unknown, p + start, stop - start) < 0) {
                    goto done;
                }
            } else {
                int rc = PyDict_SetItem(containers[f - self->fields], k, x);
                Py_DECREF(k);
                Py_DECREF(x);
                if (rc < 0) {
                    bail();
                    goto done;
                }
            }
            pos = stop;
            continue;
        }
        if (f->card == C_SINGLE && f->kind == K_MESSAGE) {
            PyObject *old = PyDict_GetItemWithError(d, f->name);
            if (old != Py_None) {
                bail(); /* a repeated occurrence merges: left to Python */
                goto done;
            }
        }
        PyObject *x = decode_value(f->kind, f->sub, p, &pos, end, depth);
        if (x == NULL) {
            bail();
            goto done;
        }
        int rc;
        if (f->card == C_SINGLE) {
            rc = PyDict_SetItem(d, f->name, x);
        } else {
            rc = PyList_Append(containers[f - self->fields], x);
        }
        Py_DECREF(x);
        if (rc < 0) {
            bail();
            goto done;
        }
    }
    if (unknown.len) {
        PyObject *u = PyBytes_FromStringAndSize((const char *)unknown.p, unknown.len);
        if (u == NULL || PyDict_SetItem(d, str_unknown_fields, u) < 0) {
            Py_XDECREF(u);
            goto done;
        }
        Py_DECREF(u);
    }
    PyTypeObject *type = (PyTypeObject *)cls;
#if PY_VERSION_HEX < 0x030C0000
    if (cls == self->cls && !(type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        /* object.__new__(cls) without its instance values (CPython 3.11 makes them, then
         * turns them into a dict that the assignment of __dict__ drops at once) */
        obj = type->tp_alloc(type, 0);
    } else {
        obj = PyBaseObject_Type.tp_new(type, empty_tuple, NULL);
    }
#else
    obj = PyBaseObject_Type.tp_new(type, empty_tuple, NULL);
#endif
#if PY_VERSION_HEX < 0x030C0000
    if (obj != NULL && PyObject_GenericSetDict(obj, d, NULL) < 0) {
        Py_CLEAR(obj);
    }
#else
    /* `obj.__dict__ = d` as Python does it (3.13's inline values need the type's setter) */
    if (obj != NULL && PyObject_SetAttr(obj, str_dict, d) < 0) {
        Py_CLEAR(obj);
    }
#endif
done:
    Py_XDECREF(d);
    if (containers != small) {
        PyMem_Free(containers);
    }
    buf_free(&unknown);
    Py_LeaveRecursiveCall();
    return obj;
}

/* -- the Message type --------------------------------------------------------------------- */

static int ensure_ready(MessageObject *self) {
    if (self->state == S_NEW) {
        PyObject *r = PyObject_CallNoArgs(self->init);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        if (self->state == S_NEW) {
            self->state = S_PYTHON;
        }
    }
    return 0;
}

static PyObject *Message_encode(MessageObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(m, out) takes 2 arguments");
        return NULL;
    }
    if (ensure_ready(self) < 0) {
        return NULL;
    }
    PyObject *out = args[1];
    if (self->state == S_READY && PyByteArray_CheckExact(out)) {
        Buf b;
        buf_init(&b);
        if (encode_message(self, args[0], &b) == 0) {
            Py_ssize_t n = PyByteArray_GET_SIZE(out);
            int rc = -1;
            if (b.len <= PY_SSIZE_T_MAX - n) {
                rc = PyByteArray_Resize(out, n + b.len);
            }
            if (rc == 0) {
                memcpy(PyByteArray_AS_STRING(out) + n, b.p, (size_t)b.len);
            }
            buf_free(&b);
            if (rc < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        buf_free(&b);
        PyErr_Clear();
    }
    return PyObject_Vectorcall(self->py_enc, args, (size_t)nargs, NULL);
}

static PyObject *Message_to_bytes(MessageObject *self, PyObject *m) {
    if (ensure_ready(self) < 0) {
        return NULL;
    }
    if (self->state == S_READY) {
        Buf b;
        buf_init(&b);
        if (encode_message(self, m, &b) == 0) {
            PyObject *r = PyBytes_FromStringAndSize((const char *)b.p, b.len);
            buf_free(&b);
            return r;
        }
        buf_free(&b);
        PyErr_Clear();
    }
    return PyObject_CallOneArg(self->py_bytes, m);
}

static PyObject *Message_decode(MessageObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "decode(cls, data, pos, end, depth) takes 5 arguments");
        return NULL;
    }
    if (ensure_ready(self) < 0) {
        return NULL;
    }
    PyObject *cls = args[0], *data = args[1];
    if (self->state == S_READY && PyType_Check(cls) &&
        PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)self->cls) &&
        PyBytes_CheckExact(data) && PyLong_CheckExact(args[2]) && PyLong_CheckExact(args[3]) &&
        PyLong_CheckExact(args[4])) {
        Py_ssize_t pos = PyLong_AsSsize_t(args[2]);
        Py_ssize_t end = PyLong_AsSsize_t(args[3]);
        int overflow = 0;
        long depth = PyLong_AsLongAndOverflow(args[4], &overflow);
        if (PyErr_Occurred()) {
            PyErr_Clear();
        } else if (!overflow && 0 <= pos && pos <= end && end <= PyBytes_GET_SIZE(data) &&
                   depth > -1000000 && depth < 1000000) {
            const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
            PyObject *obj = decode_message(self, cls, p, pos, end, depth);
            if (obj != NULL) {
                return obj;
            }
            PyErr_Clear();
        }
    }
    return PyObject_Vectorcall(self->py_dec, args, (size_t)nargs, NULL);
}

static void clear_fields(MessageObject *self) {
    Field *fields = self->fields;
    Py_ssize_t n = self->nfields;
    self->fields = NULL;
    self->nfields = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(fields[i].name);
        Py_XDECREF(fields[i].sub);
        Py_XDECREF(fields[i].zero);
    }
    PyMem_Free(fields);
    PyMem_Free(self->order);
    self->order = NULL;
}

/* setup(fields, zero, recursive): fields is a tuple of
 * (name: str, number: int, kind: int, card: int, sub: Message | None, zero: object), and plain
 * says that no data descriptor of cls has a field's name (its instance dict holds the values);
 * setup(None, None, False, False) leaves the message to Python. */
static PyObject *Message_setup(MessageObject *self, PyObject *args) {
    PyObject *fields, *zero;
    int recursive, plain;
    if (!PyArg_ParseTuple(args, "OOpp", &fields, &zero, &recursive, &plain)) {
        return NULL;
    }
    if (self->state != S_NEW) {
        Py_RETURN_NONE;
    }
    if (fields == Py_None) {
        self->state = S_PYTHON;
        Py_RETURN_NONE;
    }
    if (!PyTuple_Check(fields) || !PyDict_CheckExact(zero)) {
        PyErr_SetString(PyExc_TypeError, "setup(fields: tuple, zero: dict, recursive: bool)");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    Field *fs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Field));
    if (fs == NULL) {
        return PyErr_NoMemory();
    }
    int16_t by_number[64] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name, *sub, *fzero;
        unsigned long number;
        int kind, card;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "UkiiOO", &name, &number, &kind,
                              &card, &sub, &fzero)) {
            goto fail;
        }
        if (number == 0 || number > 0x1FFFFFFF || kind < 0 || kind >= K_COUNT || card < C_SINGLE ||
            card > C_MAP || (kind == K_MESSAGE) != (sub != Py_None) ||
            (sub != Py_None && !PyObject_TypeCheck(sub, &MessageType)) ||
            (card == C_PACKED && WIRE[kind] == 2)) {
            PyErr_SetString(PyExc_ValueError, "invalid field description");
            goto fail;
        }
        Field *f = &fs[i];
        f->name = Py_NewRef(name);
        PyUnicode_InternInPlace(&f->name);
        f->number = (uint32_t)number;
        f->kind = kind;
        f->card = card;
        f->sub = sub == Py_None ? NULL : (MessageObject *)Py_NewRef(sub);
        f->zero = Py_NewRef(fzero);
        int wt = (card == C_PACKED || card == C_MAP) ? 2 : WIRE[kind];
        f->keylen = put_varint(f->key, (uint64_t)number << 3 | (uint64_t)wt);
        if (number < 64 && by_number[number] == 0) {
            by_number[number] = (int16_t)(i + 1);
        }
    }
    self->order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    if (self->order == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        self->order[i] = -1;
    }
    self->plain = plain;
    self->fields = fs;
    self->nfields = n;
    memcpy(self->by_number, by_number, sizeof(by_number));
    Py_XSETREF(self->zero, Py_NewRef(zero));
    self->recursive = recursive;
    self->state = S_READY;
    Py_RETURN_NONE;
fail:
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(fs[i].name);
        Py_XDECREF(fs[i].sub);
        Py_XDECREF(fs[i].zero);
    }
    PyMem_Free(fs);
    return NULL;
}

static PyObject *Message_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *cls, *py_enc, *py_dec, *py_bytes, *init;
    static char *kwlist[] = {"cls", "py_enc", "py_dec", "py_bytes", "init", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO", kwlist, &cls, &py_enc, &py_dec,
                                     &py_bytes, &init)) {
        return NULL;
    }
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a class");
        return NULL;
    }
    MessageObject *self = (MessageObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->state = S_NEW;
    self->cls = Py_NewRef(cls);
    self->py_enc = Py_NewRef(py_enc);
    self->py_dec = Py_NewRef(py_dec);
    self->py_bytes = Py_NewRef(py_bytes);
    self->init = Py_NewRef(init);
    self->zero = NULL;
    self->fields = NULL;
    self->nfields = 0;
    self->order = NULL;
    self->plain = 0;
    return (PyObject *)self;
}

static int Message_traverse(MessageObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->cls);
    Py_VISIT(self->py_enc);
    Py_VISIT(self->py_dec);
    Py_VISIT(self->py_bytes);
    Py_VISIT(self->init);
    Py_VISIT(self->zero);
    for (Py_ssize_t i = 0; i < self->nfields; i++) {
        Py_VISIT(self->fields[i].sub);
        Py_VISIT(self->fields[i].zero);
    }
    return 0;
}

static int Message_clear(MessageObject *self) {
    self->state = S_PYTHON;
    clear_fields(self);
    Py_CLEAR(self->zero);
    Py_CLEAR(self->init);
    /* py_enc/py_dec/py_bytes stay until deallocation: a call may still delegate to them */
    return 0;
}

static void Message_dealloc(MessageObject *self) {
    PyObject_GC_UnTrack(self);
    Message_clear(self);
    Py_CLEAR(self->cls);
    Py_CLEAR(self->py_enc);
    Py_CLEAR(self->py_dec);
    Py_CLEAR(self->py_bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Message_get_backend(MessageObject *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(self->state == S_READY ? "c" : self->state == S_NEW ? "new" : "python");
}

static PyMethodDef Message_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Message_encode, METH_FASTCALL,
     "encode(m, out): append the encoding of m to the bytearray out."},
    {"to_bytes", (PyCFunction)Message_to_bytes, METH_O,
     "to_bytes(m): the encoding of m."},
    {"decode", (PyCFunction)(void (*)(void))Message_decode, METH_FASTCALL,
     "decode(cls, data, pos, end, depth): the message encoded in data[pos:end]."},
    {"setup", (PyCFunction)Message_setup, METH_VARARGS,
     "setup(fields, zero, recursive): describe the message (once)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Message_getset[] = {
    {"state", (getter)Message_get_backend, NULL, "'c', 'python' or 'new' (not described yet)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "centrifugo_types._speedups.Message",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C codec of one message class.",
    .tp_new = Message_new,
    .tp_dealloc = (destructor)Message_dealloc,
    .tp_traverse = (traverseproc)Message_traverse,
    .tp_clear = (inquiry)Message_clear,
    .tp_methods = Message_methods,
    .tp_getset = Message_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "centrifugo_types._speedups",
    .m_doc = "The optional C protobuf codec of the generated messages.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&MessageType) < 0) {
        return NULL;
    }
    str_unknown_fields = PyUnicode_InternFromString("_unknown_fields");
    str_dict = PyUnicode_InternFromString("__dict__");
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    empty_str = PyUnicode_FromStringAndSize(NULL, 0);
    empty_tuple = PyTuple_New(0);
    if (str_unknown_fields == NULL || str_dict == NULL || empty_bytes == NULL || empty_str == NULL ||
        empty_tuple == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Message", (PyObject *)&MessageType) < 0 ||
        PyModule_AddIntConstant(m, "K_MESSAGE", K_MESSAGE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
