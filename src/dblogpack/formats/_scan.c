/* The engine's compiled scan loops: the per-line work of a scan that no chain of C-speed
 * primitives called from Python does cheaply (docs/engine.md, "3. Scanning").
 *
 * Each function is an exact transcription of a Python reference kept beside its caller
 * (mongo_slow_lines.slow_lines_reference, mongo_slow.group_lines_reference,
 * pg_count.heads_and_tags_reference and follow_up_tags_reference,
 * json_lines.every_line_starts_with_reference, pg_csv.record_starts_reference), which also
 * runs where this module is not built; tests/unit/test_compiled_scan.py holds each to its
 * reference. The follow-up pairing reads line heads from a program (pg_prefix.line_program)
 * where its reference, pg_count.EntryCount.pairs_by_regex, matches a regex; the tests hold the
 * two to each other line by line and pair by pair. What is rare or needs a full parse stays in
 * Python: the loops call back into it, or leave it to the caller.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
/* AVX2 loops are compiled for x86-64 with GCC's or clang's target attribute, and run where the
 * CPU has AVX2 (decided once, at import; see use_avx2). */
#include <immintrin.h>
#define AVX2_BUILT 1
#else
#define AVX2_BUILT 0
#endif

static const char NEEDLE[] = "\"id\":51803,";
static const char AFTER_COMMAND[] = ",\"planSummary\":";
static const char DURATION[] = "\"durationMillis\":";
static const char CODE[] = "\"code\":";
#define NEEDLE_LEN ((Py_ssize_t)(sizeof NEEDLE - 1))
#define AFTER_COMMAND_LEN ((Py_ssize_t)(sizeof AFTER_COMMAND - 1))
#define DURATION_LEN ((Py_ssize_t)(sizeof DURATION - 1))
#define CODE_LEN ((Py_ssize_t)(sizeof CODE - 1))
/* find_pair's two offsets of each needle, the pair of bytes rarest in a 4 MiB chunk of the
 * benchmark's mongo-json (counted for every pair): the needle's `1` and `3` (2.1k offsets, 707 of
 * them hits), planSummary's `p` and `S` (only its hits), code's `c` and colon (261). */
#define NEEDLE_PAIR 6, 9
#define AFTER_COMMAND_PAIR 2, 6
#define CODE_PAIR 1, 6
/* mongo_slow_lines: _TAIL_BYTES, _DATE_AT, _MINUTE_TENS, _SECOND_TENS. */
#define TAIL_BYTES 64
#define DATE_AT 15
#define MINUTE_TENS 29
#define SECOND_TENS 32
#define COLUMNS 6

/* The offset of the last newline in data[from:to], -1 if none (bytes.rfind's). */
static Py_ssize_t
last_newline(const char *data, Py_ssize_t from, Py_ssize_t to)
{
    const char *found = to > from ? memrchr(data + from, '\n', (size_t)(to - from)) : NULL;
    return found == NULL ? -1 : found - data;
}

/* The first `needle` in buf[from:to]. Candidates are the offsets where two of its bytes, at
 * `one` and `two` (chosen for their pair being rare in these logs), match: 16 offsets at a time
 * with SSE2, then each candidate compared whole. For the slow-query needle, ~2k candidates in a
 * 4 MiB chunk of mongo-json, ~700 of them hits; a call costs nothing like stringzilla's from
 * Python, whose ~0.2 us a call doubled the search over a chunk's hits. */
static Py_ssize_t
find_pair(const char *buf, Py_ssize_t from, Py_ssize_t to, const char *needle, Py_ssize_t size,
          Py_ssize_t one, Py_ssize_t two)
{
    Py_ssize_t at = from, last = to - size;
#if defined(__SSE2__)
    const __m128i first = _mm_set1_epi8(needle[one]), second = _mm_set1_epi8(needle[two]);
    /* The loads reach `two` (the later of the two) + 16 bytes past the block's first offset. */
    for (; at + two + 16 <= to; at += 16) {
        __m128i ones = _mm_loadu_si128((const __m128i *)(buf + at + one));
        __m128i twos = _mm_loadu_si128((const __m128i *)(buf + at + two));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(ones, first), _mm_cmpeq_epi8(twos, second)));
        for (; mask != 0; mask &= mask - 1) {
            Py_ssize_t candidate = at + __builtin_ctz(mask);
            if (candidate <= last && memcmp(buf + candidate, needle, (size_t)size) == 0)
                return candidate;
        }
    }
#endif
    for (; at <= last; at++)
        if (buf[at + one] == needle[one] && memcmp(buf + at, needle, (size_t)size) == 0)
            return at;
    return -1;
}

/* A range's bounds as a slice's, negative ones refused: hi clamped to the buffer, lo to hi. */
static int
clamp_range(const char *name, Py_ssize_t size, Py_ssize_t *lo, Py_ssize_t *hi)
{
    if (*lo < 0 || *hi < 0) {
        PyErr_Format(PyExc_ValueError, "%s needs 0 <= lo and 0 <= hi", name);
        return -1;
    }
    *hi = Py_MIN(*hi, size);
    *lo = Py_MIN(*lo, *hi);
    return 0;
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The shape of buf[start:cut] (every digit written as 0) looked up in `shapes`: a borrowed
 * reference, or NULL (with an exception set when the lookup failed). */
static PyObject *
shape_of(PyObject *shapes, const char *buf, Py_ssize_t start, Py_ssize_t cut)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, cut - start);
    if (key == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(key);
    const unsigned char *in = (const unsigned char *)buf + start;
    for (Py_ssize_t i = 0; i < cut - start; i++)  /* branch-free: vectorised at -O3 */
        out[i] = (char)((unsigned char)(in[i] - '1') < 9 ? '0' : in[i]);
    PyObject *shape = PyDict_GetItemWithError(shapes, key);
    Py_DECREF(key);
    return shape;
}

/* Where the digits of _TAIL.search(buf, end - TAIL_BYTES, end) begin when that match starts
 * after `at` (`"durationMillis":<digits>}}\n` ending the line), else -1. The digits are the
 * maximal run before `}}\n`; the key must lie wholly inside the searched bytes. */
static Py_ssize_t
tail_digits(const char *buf, Py_ssize_t at, Py_ssize_t end)
{
    Py_ssize_t pos = end - TAIL_BYTES > 0 ? end - TAIL_BYTES : 0;
    if (end - pos < DURATION_LEN + 4 || memcmp(buf + end - 3, "}}\n", 3) != 0)
        return -1;
    Py_ssize_t digits = end - 3;
    while (digits > pos + DURATION_LEN && is_digit(buf[digits - 1]))
        digits--;
    if (digits == end - 3 || is_digit(buf[digits - 1]))
        return -1;
    Py_ssize_t key = digits - DURATION_LEN;
    if (key <= at || memcmp(buf + key, DURATION, DURATION_LEN) != 0)
        return -1;
    return digits;
}

/* float() of buf[from:to], ASCII digits only (at most TAIL_BYTES of them). */
static double
digits_value(const char *buf, Py_ssize_t from, Py_ssize_t to)
{
    char text[TAIL_BYTES + 1];
    memcpy(text, buf + from, (size_t)(to - from));
    text[to - from] = '\0';
    return PyOS_string_to_double(text, NULL, NULL);
}

/* Whether buf[cut:end] holds an error code (attr's `code`, or its `error`'s, which holds
 * `"code":` too), an escape or a NUL (an escaped name): no summary key then
 * (mongo_slow_lines._drop_unsafe_keys). */
static int
tail_unsafe(const char *buf, Py_ssize_t cut, Py_ssize_t end)
{
    return memchr(buf + cut, '\\', (size_t)(end - cut)) != NULL
           || memchr(buf + cut, '\0', (size_t)(end - cut)) != NULL
           || find_pair(buf, cut, end, CODE, CODE_LEN, CODE_PAIR) >= 0;
}

static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed;
}

static int
append_row(PyObject **columns, PyObject *row)
{
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != COLUMNS) {
        PyErr_SetString(PyExc_TypeError, "a judged line must be a 6-tuple or None");
        return -1;
    }
    for (int i = 0; i < COLUMNS; i++)
        if (PyList_Append(columns[i], PyTuple_GET_ITEM(row, i)) < 0)
            return -1;
    return 0;
}

/* One line of a known shape (what the Python loop does after its shape check): appended when
 * its duration is at least `least`. */
static int
add_shaped(PyObject **columns, PyObject *buf, Py_ssize_t start, Py_ssize_t at, Py_ssize_t end,
           Py_ssize_t cut, PyObject *shape, double least, int keyed, PyObject *last_duration)
{
    const char *data = PyBytes_AS_STRING(buf);
    Py_ssize_t size = PyBytes_GET_SIZE(buf);
    Py_ssize_t date_end = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, 1));
    if (date_end == -1 && PyErr_Occurred())
        return -1;
    PyObject *zone = PyTuple_GET_ITEM(shape, 2), *key = PyTuple_GET_ITEM(shape, 3);
    double ms;
    int closed;
    Py_ssize_t digits = tail_digits(data, at, end);
    if (digits >= 0) {
        closed = 1;
        ms = digits_value(data, digits, end - 3);
        if (ms == -1.0 && PyErr_Occurred())
            return -1;
    }
    else {
        /* The caller holds the shape, so its zone and key outlive any Python run here. */
        closed = end - start >= 3 && memcmp(data + end - 3, "}}\n", 3) == 0;
        PyObject *found = PyObject_CallFunction(last_duration, "Onn", buf, at, end);
        if (found == NULL)
            return -1;
        if (found == Py_None) {
            Py_DECREF(found);
            return 0;
        }
        ms = PyFloat_AsDouble(found);
        Py_DECREF(found);
        if (ms == -1.0 && PyErr_Occurred())
            return -1;
    }
    if (!(ms >= least))
        return 0;
    if (!(keyed && closed) || tail_unsafe(data, cut, end))
        key = Py_None;
    Py_ssize_t date_from = start + DATE_AT, date_to = start + date_end;
    if (date_to > size)
        date_to = size;
    if (date_to < date_from)
        date_to = date_from;
    if (append_new(columns[0], PyLong_FromSsize_t(start)) < 0
        || append_new(columns[1], PyLong_FromSsize_t(end)) < 0
        || append_new(columns[2], PyFloat_FromDouble(ms)) < 0
        || PyList_Append(columns[3], key) < 0
        || append_new(columns[4], PyBytes_FromStringAndSize(data + date_from, date_to - date_from))
               < 0
        || PyList_Append(columns[5], zone) < 0)
        return -1;
    return 0;
}

static int
is_shape(PyObject *shape)
{
    if (PyTuple_Check(shape) && PyTuple_GET_SIZE(shape) == 4)
        return 1;
    PyErr_SetString(PyExc_TypeError, "a shape must be a 4-tuple");
    return 0;
}

/* mongo_slow_lines.slow_lines_reference's loop, line for line (see there for the why). */
static int
slow_lines_into(PyObject **columns, PyObject *buf, Py_ssize_t lo, Py_ssize_t hi, double least,
                PyObject *keyed_flag, PyObject *shapes, PyObject *judge, PyObject *last_duration)
{
    const char *data = PyBytes_AS_STRING(buf);
    int keyed = PyObject_IsTrue(keyed_flag);
    if (keyed < 0)
        return -1;
    Py_ssize_t id_at = 0, at = find_pair(data, lo, hi, NEEDLE, NEEDLE_LEN, NEEDLE_PAIR);
    while (at >= 0) {
        const char *newline = memchr(data + at, '\n', (size_t)(hi - at));
        Py_ssize_t end = newline ? newline - data + 1 : hi;
        Py_ssize_t cut =
            find_pair(data, at, end, AFTER_COMMAND, AFTER_COMMAND_LEN, AFTER_COMMAND_PAIR);
        Py_ssize_t start = at - id_at;
        PyObject *shape = NULL;
        if (cut > 0 && ((start > lo && data[start - 1] == '\n') || start == lo)) {
            shape = shape_of(shapes, data, start, cut);
            if (shape == NULL && PyErr_Occurred())
                return -1;
        }
        if (shape == NULL) {
            Py_ssize_t line_start = last_newline(data, lo, at) + 1;
            line_start = line_start > 0 ? line_start : lo;
            if (cut > 0 && line_start != start) {
                shape = shape_of(shapes, data, line_start, cut);
                if (shape == NULL && PyErr_Occurred())
                    return -1;
            }
            start = line_start;
        }
        Py_ssize_t shape_id_at = -1;
        if (shape != NULL) {
            if (!is_shape(shape))
                return -1;
            shape_id_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, 0));
            if (shape_id_at == -1 && PyErr_Occurred())
                return -1;
        }
        /* A shape's id offset lies past its date, so both tens are inside the buffer. */
        if (shape != NULL && at - start == shape_id_at && start + SECOND_TENS < at
            && (unsigned char)data[start + MINUTE_TENS] < '6'
            && (unsigned char)data[start + SECOND_TENS] < '6') {
            id_at = shape_id_at;
            Py_INCREF(shape);
            int failed = add_shaped(columns, buf, start, at, end, cut, shape, least, keyed,
                                    last_duration);
            Py_DECREF(shape);
            if (failed)
                return -1;
        }
        else {
            PyObject *row =
                PyObject_CallFunction(judge, "OnnndO", buf, start, at, end, least, keyed_flag);
            if (row == NULL)
                return -1;
            int failed = row != Py_None && append_row(columns, row) < 0;
            Py_DECREF(row);
            if (failed)
                return -1;
        }
        at = find_pair(data, end, hi, NEEDLE, NEEDLE_LEN, NEEDLE_PAIR);
    }
    return 0;
}

PyDoc_STRVAR(slow_lines_doc,
"slow_lines(buf, lo, hi, least, keyed, shapes, judge, last_duration)\n--\n\n"
"The slow lines of buf[lo:hi] as six lists: starts, ends, durations, summary keys, dates and\n"
"zones (as mongo_slow_lines.slow_lines_reference gives them). Lines of a shape in `shapes` are\n"
"read here; the others by judge(buf, start, at, end, least, keyed), which returns a row or\n"
"None (and may learn a shape).");

static PyObject *
slow_lines(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *buf, *keyed, *shapes, *judge, *last_duration;
    Py_ssize_t lo, hi;
    double least;
    if (!PyArg_ParseTuple(args, "O!nndOO!OO:slow_lines", &PyBytes_Type, &buf, &lo, &hi, &least,
                          &keyed, &PyDict_Type, &shapes, &judge, &last_duration))
        return NULL;
    if (lo < 0 || lo > hi || hi > PyBytes_GET_SIZE(buf)) {
        PyErr_SetString(PyExc_ValueError, "slow_lines needs 0 <= lo <= hi <= len(buf)");
        return NULL;
    }
    PyObject *columns[COLUMNS] = {NULL};
    for (int i = 0; i < COLUMNS; i++)
        if ((columns[i] = PyList_New(0)) == NULL)
            goto fail;
    if (slow_lines_into(columns, buf, lo, hi, least, keyed, shapes, judge, last_duration) < 0)
        goto fail;
    PyObject *result = PyTuple_New(COLUMNS);
    if (result == NULL)
        goto fail;
    for (int i = 0; i < COLUMNS; i++)
        PyTuple_SET_ITEM(result, i, columns[i]);
    return result;
fail:
    for (int i = 0; i < COLUMNS; i++)
        Py_XDECREF(columns[i]);
    return NULL;
}

static int
followed_by(const char *data, Py_ssize_t newline, Py_ssize_t stop, const char *mark,
            Py_ssize_t size)
{
    return stop - newline - 1 >= size && memcmp(data + newline + 1, mark, (size_t)size) == 0;
}

/* glibc's memchr from newline to newline: 0.43 ms for a 4 MiB chunk of mongo-json (a newline
 * every ~300 bytes), as fast as an SSE2 or AVX2 loop over the bytes (bound by memory). */
static int
lines_start_with(const char *data, Py_ssize_t lo, Py_ssize_t stop, const char *mark,
                 Py_ssize_t size)
{
    const char *at = data + lo, *end = data + stop, *newline;
    while ((newline = memchr(at, '\n', (size_t)(end - at))) != NULL) {
        if (!followed_by(data, newline - data, stop, mark, size))
            return 0;
        at = newline + 1;
    }
    return 1;
}

PyDoc_STRVAR(every_line_starts_with_doc,
"every_line_starts_with(buf, marker, lo, stop)\n--\n\n"
"Whether every newline in buf[lo:stop] is followed by `marker` (which holds no newline),\n"
"wholly inside buf[lo:stop] (0 <= lo, 0 <= stop; stop is clamped to the buffer, as a slice's\n"
"end is).\n"
"The GIL is released while the bytes are read.");

static PyObject *
every_line_starts_with(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf, marker;
    Py_ssize_t lo, stop;
    if (!PyArg_ParseTuple(args, "y*y*nn:every_line_starts_with", &buf, &marker, &lo, &stop))
        return NULL;
    PyObject *result = NULL;
    if (clamp_range("every_line_starts_with", buf.len, &lo, &stop) < 0)
        goto done;
    const char *mark = marker.buf;
    if (memchr(mark, '\n', (size_t)marker.len) != NULL) {
        PyErr_SetString(PyExc_ValueError, "the marker must not hold a newline");
        goto done;
    }
    int every;
    Py_BEGIN_ALLOW_THREADS
    every = lines_start_with(buf.buf, lo, stop, mark, marker.len);
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(every);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&marker);
    return result;
}

/* ---- the summary groups of chosen slow lines (mongo_slow.group_lines_reference) ---------- */

typedef struct {
    Py_ssize_t count;
    double total, max;
} Tally;

typedef struct {
    PyObject *groups;     /* the DetailGroups, in first-seen order */
    PyObject *by_command; /* command -> index into groups and tallies */
    Tally *tallies;
    Py_ssize_t allocated;
} Grouping;

/* The group of a line whose command is `command` (None: a group of its own), made by
 * new_group(i, alike) when there is none yet; its index, or -1 on error. */
static Py_ssize_t
group_of(Grouping *grouping, PyObject *command, Py_ssize_t i, double ms, PyObject *new_group)
{
    if (command != Py_None) {
        PyObject *index = PyDict_GetItemWithError(grouping->by_command, command);
        if (index != NULL)
            return PyLong_AsSsize_t(index);
        if (PyErr_Occurred())
            return -1;
    }
    Py_ssize_t at = PyList_GET_SIZE(grouping->groups);
    if (at == grouping->allocated) {
        Py_ssize_t more = at ? 2 * at : 64;
        Tally *grown = PyMem_Realloc(grouping->tallies, (size_t)more * sizeof(Tally));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        grouping->tallies = grown;
        grouping->allocated = more;
    }
    PyObject *group = PyObject_CallFunction(new_group, "nO", i, command != Py_None ? Py_True
                                                                                  : Py_False);
    if (group == NULL || append_new(grouping->groups, group) < 0)
        return -1;
    if (command != Py_None) {
        PyObject *index = PyLong_FromSsize_t(at);
        int failed = index == NULL || PyDict_SetItem(grouping->by_command, command, index) < 0;
        Py_XDECREF(index);
        if (failed)
            return -1;
    }
    /* As DetailGroup(detail, 0, 0.0, ms) starts. */
    grouping->tallies[at] = (Tally){0, 0.0, ms};
    return at;
}

/* The command of a line's key: learnt[key] when learnt, else command_of(i, key); a new
 * reference. */
static PyObject *
command_of_line(PyObject *key, Py_ssize_t i, PyObject *learnt, PyObject *unseen,
                PyObject *met_once, PyObject *command_of)
{
    if (key == Py_None)
        return Py_NewRef(Py_None);
    PyObject *command = PyDict_GetItemWithError(learnt, key);
    if (command == NULL && PyErr_Occurred())
        return NULL;
    if (command != NULL && command != unseen && command != met_once)
        return Py_NewRef(command);
    return PyObject_CallFunction(command_of, "nO", i, key);
}

static int
tally_lines(Grouping *grouping, PyObject *chosen, PyObject *keys, PyObject *durations,
            PyObject *learnt, PyObject *unseen, PyObject *met_once, PyObject *command_of,
            PyObject *new_group)
{
    PyObject *indices = PyObject_GetIter(chosen), *item;
    if (indices == NULL)
        return -1;
    while ((item = PyIter_Next(indices)) != NULL) {
        Py_ssize_t i = PyLong_AsSsize_t(item);
        Py_DECREF(item);
        if (i == -1 && PyErr_Occurred())
            break;
        if (i < 0 || i >= PyList_GET_SIZE(keys) || i >= PyList_GET_SIZE(durations)) {
            PyErr_SetString(PyExc_IndexError, "a chosen line past the lines");
            break;
        }
        double ms = PyFloat_AsDouble(PyList_GET_ITEM(durations, i));
        if (ms == -1.0 && PyErr_Occurred())
            break;
        PyObject *key = Py_NewRef(PyList_GET_ITEM(keys, i));
        PyObject *command = command_of_line(key, i, learnt, unseen, met_once, command_of);
        Py_DECREF(key);
        if (command == NULL)
            break;
        Py_ssize_t at = group_of(grouping, command, i, ms, new_group);
        Py_DECREF(command);
        if (at < 0)
            break;
        Tally *tally = &grouping->tallies[at];
        tally->count += 1;
        tally->total += ms;
        if (ms > tally->max)
            tally->max = ms;
    }
    Py_DECREF(indices);
    return PyErr_Occurred() ? -1 : 0;
}

static int
set_tallies(Grouping *grouping)
{
    for (Py_ssize_t at = 0; at < PyList_GET_SIZE(grouping->groups); at++) {
        PyObject *group = PyList_GET_ITEM(grouping->groups, at);
        Tally tally = grouping->tallies[at];
        PyObject *count = PyLong_FromSsize_t(tally.count), *total = PyFloat_FromDouble(tally.total),
                 *max = PyFloat_FromDouble(tally.max);
        int failed = count == NULL || total == NULL || max == NULL
                     || PyObject_SetAttrString(group, "count", count) < 0
                     || PyObject_SetAttrString(group, "total_ms", total) < 0
                     || PyObject_SetAttrString(group, "max_ms", max) < 0;
        Py_XDECREF(count);
        Py_XDECREF(total);
        Py_XDECREF(max);
        if (failed)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(group_lines_doc,
"group_lines(chosen, keys, durations, learnt, unseen, met_once, command_of, new_group)\n--\n\n"
"The chosen lines' DetailGroups in first-seen order, as mongo_slow.group_lines_reference makes\n"
"them: lines of one learnt command in one group, each other line in a group of its own.");

static PyObject *
group_lines(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *chosen, *keys, *durations, *learnt, *unseen, *met_once, *command_of, *new_group;
    if (!PyArg_ParseTuple(args, "OO!O!O!OOOO:group_lines", &chosen, &PyList_Type, &keys,
                          &PyList_Type, &durations, &PyDict_Type, &learnt, &unseen, &met_once,
                          &command_of, &new_group))
        return NULL;
    Grouping grouping = {PyList_New(0), PyDict_New(), NULL, 0};
    int failed = grouping.groups == NULL || grouping.by_command == NULL
                 || tally_lines(&grouping, chosen, keys, durations, learnt, unseen, met_once,
                                command_of, new_group) < 0
                 || set_tallies(&grouping) < 0;
    PyMem_Free(grouping.tallies);
    Py_XDECREF(grouping.by_command);
    if (failed) {
        Py_XDECREF(grouping.groups);
        return NULL;
    }
    return grouping.groups;
}

/* ---- pg-stderr's line heads and follow-up tags (pg_count.heads_and_tags_reference) ------- */

/* The classes of pg_count's mapped pass. */
#define HEAD_CLASS 1
#define TAG_CLASS 2
static const char TAG_REST[] = ":  ";

typedef struct {
    Py_ssize_t *at;
    Py_ssize_t size, allocated;
} Offsets;

static int
offsets_add(Offsets *offsets, Py_ssize_t at)
{
    if (offsets->size == offsets->allocated) {
        Py_ssize_t more = offsets->allocated ? 2 * offsets->allocated : 1024;
        Py_ssize_t *grown = PyMem_RawRealloc(offsets->at, (size_t)more * sizeof(Py_ssize_t));
        if (grown == NULL)
            return -1;
        offsets->at = grown;
        offsets->allocated = more;
    }
    offsets->at[offsets->size++] = at;
    return 0;
}

/* Whether `table` maps 256 bytes, each byte of `marks` to itself and no other byte to one of
 * them (then a mapped mark is the byte itself); a ValueError naming `what` if not. */
static int
marks_alone(const Py_buffer *table, const char *marks, const char *what)
{
    const unsigned char *classes = table->buf;
    int alone = table->len == 256;
    for (int byte = 0; byte < 256 && alone; byte++) {
        int mark = byte != 0 && strchr(marks, byte) != NULL;
        int to_mark = classes[byte] != 0 && strchr(marks, classes[byte]) != NULL;
        alone = mark ? classes[byte] == byte : !to_mark;
    }
    if (!alone)
        PyErr_Format(PyExc_ValueError, "the table must map 256 bytes, %s to themselves alone",
                     what);
    return alone;
}

/* Newlines in data[lo:end] followed, inside it, by a byte of the head class. */
static Py_ssize_t
count_heads(const char *data, Py_ssize_t lo, Py_ssize_t end, const unsigned char *table)
{
    Py_ssize_t count = 0;
    const char *at = data + lo, *last = data + end - 1, *newline;
    while (at < last && (newline = memchr(at, '\n', (size_t)(last - at))) != NULL) {
        count += table[(unsigned char)newline[1]] == HEAD_CLASS;
        at = newline + 1;
    }
    return count;
}

static int
is_tag(const char *data, Py_ssize_t at, const unsigned char *table)
{
    return table[(unsigned char)data[at]] == TAG_CLASS && memcmp(data + at + 1, TAG_REST, 3) == 0;
}

/* Offsets of a tag-class byte followed by `:  `, wholly inside data[lo:hi]. With SSE2, 16
 * offsets a step are matched against the colon and the last space (a few instructions a step:
 * the pass is bound by them, not by memory), and each candidate is checked whole; a pg-stderr
 * line's level ends in `:  ` too, so there is about one a line. Tags cannot overlap. */
static int
find_tags(const char *data, Py_ssize_t lo, Py_ssize_t hi, const unsigned char *table,
          Offsets *tags)
{
    Py_ssize_t at = lo;
#if defined(__SSE2__)
    const __m128i colon = _mm_set1_epi8(':'), space = _mm_set1_epi8(' ');
    for (; at + 4 + 16 <= hi; at += 16) {
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(data + at + 1)), colon),
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(data + at + 3)), space)));
        for (; mask != 0; mask &= mask - 1) {
            Py_ssize_t tag = at + __builtin_ctz(mask);
            if (is_tag(data, tag, table) && offsets_add(tags, tag) < 0)
                return -1;
        }
    }
#endif
    for (; at + 4 <= hi; at++)
        if (is_tag(data, at, table) && offsets_add(tags, at) < 0)
            return -1;
    return 0;
}

#if AVX2_BUILT
/* Whether the AVX2 loops run: the CPU has them, and no test turned them off (use_avx2). */
static int avx2_on = 0;

/* The bytes `table` maps to `class`, as in_class_avx2 tests them: for each low nibble, one bit
 * per high nibble (0-7 in `below`, 8-15 in `above`) whose byte is in the set. */
typedef struct {
    __m256i below, above;
} NibbleSet;

__attribute__((target("avx2"))) static NibbleSet
nibble_set(const unsigned char *table, unsigned char class)
{
    unsigned char below[32] = {0}, above[32] = {0};
    for (int byte = 0; byte < 256; byte++)
        if (table[byte] == class) {
            unsigned char *row = byte < 128 ? below : above;
            row[byte & 15] |= (unsigned char)(1 << ((byte >> 4) & 7));
            row[16 + (byte & 15)] = row[byte & 15]; /* shuffles look up each 128-bit lane */
        }
    NibbleSet set = {_mm256_loadu_si256((const __m256i *)below),
                     _mm256_loadu_si256((const __m256i *)above)};
    return set;
}

/* 0xFF for each byte of `v` in `set`, 0 for the others: the row of its low nibble (the high
 * half's row where its top bit is set), and in it the bit of its high nibble. */
__attribute__((target("avx2"))) static inline __m256i
in_class_avx2(__m256i v, NibbleSet set)
{
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    const __m256i bits = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64,
                                          -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32,
                                          64, -128);
    __m256i low = _mm256_and_si256(v, nibble);
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    __m256i row = _mm256_blendv_epi8(_mm256_shuffle_epi8(set.below, low),
                                     _mm256_shuffle_epi8(set.above, low), v);
    __m256i bit = _mm256_shuffle_epi8(bits, high);
    return _mm256_cmpeq_epi8(_mm256_and_si256(row, bit), bit);
}

/* count_heads and find_tags in one pass, 32 offsets a step, each test a vector compare: the
 * heads are a count of the newlines followed by a head-class byte (no branch a line), the tags
 * the offsets of a tag-class byte followed by `:  ` (about one line in fifty). It stops where
 * the next step would read past `hi`, and returns that offset, from which the scalar loops go
 * on. The newlines it counts are at hi - 4 at most: before the heads' end (hi - 1, or the
 * buffer's end) less one, as count_heads counts them. On a 4 MiB chunk of pg-stderr-1g.log the
 * two passes took 1.46 ms; this one 0.69 ms. */
__attribute__((target("avx2,popcnt"))) static Py_ssize_t
mapped_pass_avx2(const char *data, Py_ssize_t lo, Py_ssize_t hi, const unsigned char *table,
                 Py_ssize_t *heads, Offsets *tags)
{
    const NibbleSet head_class = nibble_set(table, HEAD_CLASS);
    const NibbleSet tag_class = nibble_set(table, TAG_CLASS);
    const __m256i newline = _mm256_set1_epi8('\n'), colon = _mm256_set1_epi8(':'),
                  space = _mm256_set1_epi8(' ');
    Py_ssize_t at = lo, count = 0;
    for (; at + 35 <= hi; at += 32) {
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(data + at));
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(data + at + 1));
        __m256i v2 = _mm256_loadu_si256((const __m256i *)(data + at + 2));
        __m256i v3 = _mm256_loadu_si256((const __m256i *)(data + at + 3));
        if (heads != NULL)
            count += __builtin_popcount((unsigned)_mm256_movemask_epi8(_mm256_and_si256(
                _mm256_cmpeq_epi8(v0, newline), in_class_avx2(v1, head_class))));
        __m256i punctuation = _mm256_and_si256(
            _mm256_cmpeq_epi8(v1, colon),
            _mm256_and_si256(_mm256_cmpeq_epi8(v2, space), _mm256_cmpeq_epi8(v3, space)));
        unsigned mask = (unsigned)_mm256_movemask_epi8(
            _mm256_and_si256(punctuation, in_class_avx2(v0, tag_class)));
        for (; mask != 0; mask &= mask - 1)
            if (offsets_add(tags, at + __builtin_ctz(mask)) < 0)
                return -1;
    }
    if (heads != NULL)
        *heads = count;
    return at;
}
#endif

static PyObject *
offsets_list(const Offsets *offsets)
{
    PyObject *list = PyList_New(offsets->size);
    for (Py_ssize_t i = 0; list != NULL && i < offsets->size; i++) {
        PyObject *at = PyLong_FromSsize_t(offsets->at[i]);
        if (at == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, at);
    }
    return list;
}

/* heads_and_tags, and with `with_heads` 0 follow_up_tags: the tags found and the heads counted,
 * with the GIL released while the bytes are read. */
static PyObject *
mapped_pass(PyObject *args, const char *format, const char *name, int with_heads)
{
    Py_buffer buf, table;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, format, &buf, &table, &lo, &hi))
        return NULL;
    PyObject *result = NULL;
    Offsets tags = {NULL, 0, 0};
    /* The heads' range ends a byte before the tags' (at 0 for an empty one). */
    Py_ssize_t end = hi > 0 ? hi - 1 : 0;
    int usable = with_heads ? marks_alone(&table, "\n: ", "a newline, colon and space")
                            : marks_alone(&table, ": ", "a colon and space");
    if (usable && clamp_range(name, buf.len, &lo, &hi) == 0) {
        Py_ssize_t heads = 0;
        int failed;
        Py_ssize_t heads_end = Py_MIN(end, hi), from = lo;
        Py_BEGIN_ALLOW_THREADS
#if AVX2_BUILT
        if (avx2_on)
            from = mapped_pass_avx2(buf.buf, lo, hi, table.buf, with_heads ? &heads : NULL,
                                    &tags);
#endif
        failed = from < 0 || find_tags(buf.buf, from, hi, table.buf, &tags) < 0;
        if (!failed && with_heads)
            heads += count_heads(buf.buf, from, heads_end, table.buf);
        Py_END_ALLOW_THREADS
        result = failed ? PyErr_NoMemory() : offsets_list(&tags);
        if (with_heads && result != NULL)
            result = Py_BuildValue("nN", heads, result);
    }
    PyMem_RawFree(tags.at);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&table);
    return result;
}

PyDoc_STRVAR(heads_and_tags_doc,
"heads_and_tags(buf, table, lo, hi)\n--\n\n"
"With buf's bytes mapped by `table` (classes as pg_count maps them; a newline, colon and space\n"
"map to themselves alone): the newline + head-class pairs in buf[lo:hi-1] and the offsets of\n"
"the tag-class + `:  ` quadruples in buf[lo:hi] (0 <= lo, 0 <= hi; hi is clamped to the\n"
"buffer). The GIL is released while the bytes are read.");

static PyObject *
heads_and_tags(PyObject *Py_UNUSED(module), PyObject *args)
{
    return mapped_pass(args, "y*y*nn:heads_and_tags", "heads_and_tags", 1);
}

PyDoc_STRVAR(follow_up_tags_doc,
"follow_up_tags(buf, table, lo, hi)\n--\n\n"
"heads_and_tags' tags alone, for a table mapping a colon and space to themselves alone (the\n"
"newline and the head classes do not matter).");

static PyObject *
follow_up_tags(PyObject *Py_UNUSED(module), PyObject *args)
{
    return mapped_pass(args, "y*y*nn:follow_up_tags", "follow_up_tags", 0);
}

/* ---- pg-stderr's follow-up pairs (pg_count.EntryCount's pair regex) ---------------------- */

/* What a line head's program (pg_prefix.line_program) read: where its process value and its
 * level are (the process at -1 when the program marks none). */
typedef struct {
    Py_ssize_t process_start, process_end, level_start, level_end;
} HeadParse;

static int
in_class(const unsigned char *bits, unsigned char byte)
{
    return bits[byte >> 3] >> (byte & 7) & 1;
}

/* The end of the head program[i:stop] reads at data[at:n], or -1 if it does not match. Every
 * token is decided byte by byte (line_program refuses the others), so the first parse is the
 * only one: runs are taken greedily, and an optional part is left out only when the level does
 * not follow it. */
static Py_ssize_t
match_head(const unsigned char *program, Py_ssize_t i, Py_ssize_t stop, const char *data,
           Py_ssize_t n, Py_ssize_t at, HeadParse *parse)
{
    while (i < stop) {
        unsigned char token = program[i++];
        if (token == 'L') {
            /* Literals are a byte or two: compared inline, not by a call. */
            Py_ssize_t length = program[i++];
            if (length > n - at)
                return -1;
            for (Py_ssize_t k = 0; k < length; k++)
                if (data[at + k] != (char)program[i + k])
                    return -1;
            at += length;
            i += length;
        } else if (token == 'R') {
            int least = program[i], most = program[i + 1];
            const unsigned char *bits = program + i + 2;
            Py_ssize_t from = at, limit = most == 255 ? n : Py_MIN(n, at + most);
            i += 34;
            while (at < limit && in_class(bits, (unsigned char)data[at]))
                at++;
            if (at - from < least)
                return -1;
        } else if (token == 'P') {
            parse->process_start = at;
        } else if (token == 'p') {
            parse->process_end = at;
        } else if (token == 'O') {
            Py_ssize_t length = program[i++];
            Py_ssize_t end = match_head(program, i, i + length, data, n, at, parse);
            if (end >= 0 && (end = match_head(program, i + length, stop, data, n, end, parse)) >= 0)
                return end;
            i += length;
        } else { /* 'V': [A-Z]+[1-5]?:  */
            Py_ssize_t from = at;
            while (at < n && data[at] >= 'A' && data[at] <= 'Z')
                at++;
            if (at == from)
                return -1;
            if (at < n && data[at] >= '1' && data[at] <= '5')
                at++;
            if (3 > n - at || memcmp(data + at, TAG_REST, 3) != 0)
                return -1;
            parse->level_start = from;
            parse->level_end = at;
            at += 3;
        }
    }
    return at;
}

/* Whether program[i:stop] is tokens as line_program writes them, each one whole, the level last
 * (a ValueError otherwise): match_head then reads no byte outside it. */
static int
program_is_valid(const unsigned char *program, Py_ssize_t i, Py_ssize_t stop, int level_last)
{
    while (i < stop) {
        unsigned char token = program[i++];
        Py_ssize_t size = token == 'L' && i < stop   ? 1 + program[i]
                          : token == 'R'             ? 34
                          : token == 'O' && i < stop ? 1 + program[i]
                          : token == 'P' || token == 'p' || token == 'V' ? 0
                                                     : -1;
        if (size < 0 || size > stop - i ||
            (token == 'O' && !program_is_valid(program, i + 1, i + size, 0)) ||
            (token == 'V' && (!level_last || i != stop)))
            goto invalid;
        i += size;
        if (token == 'V')
            return 1;
    }
    if (!level_last) /* an optional part, whole */
        return 1;
invalid:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "not a line program (pg_prefix.line_program)");
    return 0;
}

static const char *const FOLLOW_UP_LEVELS[] = {
    "DETAIL", "HINT", "CONTEXT", "STATEMENT", "QUERY", "LOCATION",
};

static int
is_follow_up_level(const char *data, const HeadParse *parse)
{
    size_t length = (size_t)(parse->level_end - parse->level_start);
    for (size_t k = 0; k < sizeof FOLLOW_UP_LEVELS / sizeof FOLLOW_UP_LEVELS[0]; k++)
        if (strlen(FOLLOW_UP_LEVELS[k]) == length &&
            memcmp(data + parse->level_start, FOLLOW_UP_LEVELS[k], length) == 0)
            return 1;
    return 0;
}

/* pg_count's line of a hit and the line before it (_lines_and_befores; with `skip_tabs`, the
 * line before TAB lines, as _before_tabs). */
static void
line_and_before(const char *data, Py_ssize_t lo, Py_ssize_t hit, int skip_tabs,
                Py_ssize_t *line, Py_ssize_t *before)
{
    Py_ssize_t newline = last_newline(data, lo, hit);
    if (newline >= 0) {
        *line = newline + 1;
        *before = last_newline(data, 0, newline) + 1;
    } else {
        *line = lo;
        *before = lo ? last_newline(data, 0, lo - 1) + 1 : 0;
    }
    while (skip_tabs && *before > 0 && data[*before] == '\t')
        *before = last_newline(data, 0, *before - 1) + 1;
}

/* How the pair regex reads the hit: 1 paired (`same` tells whether both lines have one
 * process), 0 not paired; `follow_up` whether the hit's level is a follow-up's. */
static int
read_pair(const unsigned char *program, Py_ssize_t length, const char *data, Py_ssize_t n,
          Py_ssize_t line, Py_ssize_t before, Py_ssize_t hit, int *follow_up, int *same)
{
    HeadParse first = {-1, -1, -1, -1}, second = {-1, -1, -1, -1};
    Py_ssize_t at = match_head(program, 0, length, data, n, before, &first);
    if (at < 0)
        return 0;
    /* [^\n]*+(?:\n\t[^\n]*+)*+\n */
    for (;;) {
        const char *newline = memchr(data + at, '\n', (size_t)(n - at));
        at = newline == NULL ? n : newline - data;
        if (at + 1 < n && data[at + 1] == '\t')
            at += 2;
        else
            break;
    }
    if (at >= n || at + 1 != line || match_head(program, 0, length, data, n, line, &second) < 0 ||
        second.level_end != hit)
        return 0;
    *follow_up = is_follow_up_level(data, &second);
    /* Without a process in the program, every follow-up is the line before's process's. */
    Py_ssize_t size = first.process_end - first.process_start;
    *same = first.process_start < 0 ||
            (size == second.process_end - second.process_start &&
             memcmp(data + first.process_start, data + second.process_start, (size_t)size) == 0);
    return 1;
}

PyDoc_STRVAR(pair_follow_ups_doc,
"pair_follow_ups(buf, lo, tags, program, skip_tabs)\n--\n\n"
"The follow-up tags' lines read in pairs as pg_count.EntryCount's pair regex reads them, with\n"
"the heads' `program` (pg_prefix.line_program): (follow-ups of the process of the line before,\n"
"follow-ups of another, [(line, colon) of each tag the pair does not read]). `tags` ascend in\n"
"buf[lo:]; `skip_tabs`: the line before is the one before TAB lines. The GIL is released.");

static PyObject *
pair_follow_ups(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf, program;
    Py_ssize_t lo;
    PyObject *tag_list;
    int skip_tabs;
    if (!PyArg_ParseTuple(args, "y*nO!y*p:pair_follow_ups", &buf, &lo, &PyList_Type, &tag_list,
                          &program, &skip_tabs))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PyList_GET_SIZE(tag_list), same_count = 0, other_count = 0;
    Offsets hits = {NULL, 0, 0}, unpaired = {NULL, 0, 0};
    if (!program_is_valid(program.buf, 0, program.len, 1))
        goto done;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t tag = PyLong_AsSsize_t(PyList_GET_ITEM(tag_list, k));
        if (tag == -1 && PyErr_Occurred())
            goto done;
        if (tag < Py_MAX(lo, 0) || tag + 1 >= buf.len || (k > 0 && tag + 1 <= hits.at[k - 1])) {
            PyErr_SetString(PyExc_ValueError, "tags must ascend inside buf[lo:]");
            goto done;
        }
        if (offsets_add(&hits, tag + 1) < 0) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count && !failed; k++) {
        Py_ssize_t hit = hits.at[k], line, before;
        int follow_up = 0, same = 0;
        line_and_before(buf.buf, lo, hit, skip_tabs, &line, &before);
        if (read_pair(program.buf, program.len, buf.buf, buf.len, line, before, hit, &follow_up,
                      &same)) {
            same_count += follow_up && same;
            other_count += follow_up && !same;
        } else {
            failed = offsets_add(&unpaired, line) < 0 || offsets_add(&unpaired, hit) < 0;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *pairs = PyList_New(unpaired.size / 2);
    for (Py_ssize_t k = 0; pairs != NULL && k < unpaired.size / 2; k++) {
        PyObject *pair = Py_BuildValue("nn", unpaired.at[2 * k], unpaired.at[2 * k + 1]);
        if (pair == NULL)
            Py_CLEAR(pairs);
        else
            PyList_SET_ITEM(pairs, k, pair);
    }
    if (pairs != NULL)
        result = Py_BuildValue("nnN", same_count, other_count, pairs);
done:
    PyMem_RawFree(hits.at);
    PyMem_RawFree(unpaired.at);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&program);
    return result;
}

PyDoc_STRVAR(read_head_doc,
"read_head(buf, at, program)\n--\n\n"
"The line head `program` (pg_prefix.line_program) reads at buf[at:]: (end, process start,\n"
"process end, level start, level end), the process at -1 when the program has none; None\n"
"when it does not match.");

static PyObject *
read_head(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf, program;
    Py_ssize_t at;
    if (!PyArg_ParseTuple(args, "y*ny*:read_head", &buf, &at, &program))
        return NULL;
    PyObject *result = NULL;
    HeadParse parse = {-1, -1, -1, -1};
    if (at < 0 || at > buf.len) {
        PyErr_SetString(PyExc_ValueError, "at must be inside buf");
    } else if (program_is_valid(program.buf, 0, program.len, 1)) {
        Py_ssize_t end = match_head(program.buf, 0, program.len, buf.buf, buf.len, at, &parse);
        result = end < 0 ? Py_NewRef(Py_None)
                         : Py_BuildValue("nnnnn", end, parse.process_start, parse.process_end,
                                         parse.level_start, parse.level_end);
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&program);
    return result;
}

/* ---- pg-csv's record starts (pg_csv.record_starts_reference) ------------------------------ */

/* pg_csv._TS and a comma: `YYYY-MM-DD HH:MM:SS.mmm ZONE,`, ZONE of [A-Za-z0-9+-:], inside
 * data[at:hi]. */
static const char CSV_TIME_SHAPE[] = "0000-00-00 00:00:00.000 ";
#define CSV_TIME_LEN ((Py_ssize_t)(sizeof CSV_TIME_SHAPE - 1))

static int
is_zone_byte(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' ||
           c == '-' || c == ':';
}

static int
reads_as_record_start(const char *data, Py_ssize_t at, Py_ssize_t hi)
{
    if (hi - at < CSV_TIME_LEN + 2)
        return 0;
    for (Py_ssize_t i = 0; i < CSV_TIME_LEN; i++) {
        char want = CSV_TIME_SHAPE[i], got = data[at + i];
        if (want == '0' ? !is_digit(got) : got != want)
            return 0;
    }
    Py_ssize_t zone = at + CSV_TIME_LEN;
    if (!is_zone_byte(data[zone]))
        return 0;
    while (zone < hi && is_zone_byte(data[zone]))
        zone++;
    return zone < hi && data[zone] == ',';
}

/* _record_start_from: the first line start at or after `pos` (itself read as one) that reads
 * as a record's start; -1 if none. */
static Py_ssize_t
record_start_from(const char *data, Py_ssize_t pos, Py_ssize_t hi)
{
    while (pos < hi) {
        if (reads_as_record_start(data, pos, hi))
            return pos;
        const char *newline = memchr(data + pos, '\n', (size_t)(hi - pos));
        if (newline == NULL)
            return -1;
        pos = newline - data + 1;
    }
    return -1;
}

#define RECORD_BROKEN (-1)

/* _closing_quote: the quote that closes the field opened at `opening` ("" is a quote inside
 * it); `hi` when the range ends first. */
static Py_ssize_t
closing_quote(const char *data, Py_ssize_t opening, Py_ssize_t hi)
{
    Py_ssize_t close = opening;
    for (;;) {
        const char *quote = memchr(data + close + 1, '"', (size_t)(hi - close - 1));
        if (quote == NULL)
            return hi;
        close = quote - data;
        if (close + 1 < hi && data[close + 1] == '"') {
            close++;
            continue;
        }
        return close;
    }
}

/* _record_end: where the record at `start` ends (after its newline; `hi` when the range ends
 * first), or RECORD_BROKEN when its quoting breaks the rules. */
static Py_ssize_t
record_end(const char *data, Py_ssize_t start, Py_ssize_t hi)
{
    Py_ssize_t pos = start;
    while (pos < hi) {
        if (data[pos] == '"') {
            Py_ssize_t close = closing_quote(data, pos, hi);
            if (close + 1 >= hi)
                return hi;
            char after = data[close + 1];
            if (after == ',') {
                pos = close + 2;
                continue;
            }
            return after == '\n' ? close + 2 : RECORD_BROKEN;
        }
        while (pos < hi && data[pos] != ',' && data[pos] != '\n' && data[pos] != '"')
            pos++;
        if (pos == hi)
            return hi;
        if (data[pos] == '"')
            return RECORD_BROKEN;
        if (data[pos] == '\n')
            return pos + 1;
        pos++;
    }
    return hi;
}

/* record_starts_reference, transcribed. 0, or -1 when memory ran out. */
static int
record_starts(const char *data, Py_ssize_t lo, Py_ssize_t hi, Offsets *starts)
{
    Py_ssize_t start = record_start_from(data, lo, hi);
    while (start >= 0) {
        if (offsets_add(starts, start) < 0)
            return -1;
        Py_ssize_t end = record_end(data, start, hi);
        if (end == RECORD_BROKEN) {
            const char *newline = memchr(data + start, '\n', (size_t)(hi - start));
            start = newline == NULL ? -1 : record_start_from(data, newline - data + 1, hi);
        }
        else {
            start = record_start_from(data, end, hi);
        }
    }
    return 0;
}

PyDoc_STRVAR(csv_record_starts_doc,
"csv_record_starts(buf, lo, hi)\n--\n\n"
"The offsets (native 8-byte integers: memoryview format q) of the csvlog records starting in buf[lo:hi], lo read\n"
"as a line start: pg_csv.record_starts_reference's (0 <= lo, 0 <= hi; hi is clamped to the\n"
"buffer, as a slice's end is).\n"
"The GIL is released while the bytes are read.");

static PyObject *
csv_record_starts(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "y*nn:csv_record_starts", &buf, &lo, &hi))
        return NULL;
    PyObject *result = NULL;
    Offsets starts = {NULL, 0, 0};
    if (clamp_range("csv_record_starts", buf.len, &lo, &hi) < 0)
        goto done;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = record_starts(buf.buf, lo, hi, &starts);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, starts.size * (Py_ssize_t)sizeof(int64_t));
    if (result != NULL) {
        int64_t *out = (int64_t *)PyBytes_AS_STRING(result);
        for (Py_ssize_t i = 0; i < starts.size; i++)
            out[i] = (int64_t)starts.at[i];
    }
done:
    PyMem_RawFree(starts.at);
    PyBuffer_Release(&buf);
    return result;
}

PyDoc_STRVAR(use_avx2_doc,
"use_avx2(on=None)\n--\n\n"
"Whether the AVX2 loops run (where they are built and the CPU has AVX2; the SSE2 and scalar\n"
"loops otherwise); with `on`, turn them on (where they can run) or off first, so tests hold\n"
"both to the references.");

static PyObject *
use_avx2(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *on = Py_None;
    if (!PyArg_ParseTuple(args, "|O:use_avx2", &on))
        return NULL;
#if AVX2_BUILT
    if (on != Py_None) {
        int wanted = PyObject_IsTrue(on);
        if (wanted < 0)
            return NULL;
        avx2_on = wanted && __builtin_cpu_supports("avx2");
    }
    return PyBool_FromLong(avx2_on);
#else
    return PyBool_FromLong(0);
#endif
}

static PyMethodDef scan_methods[] = {
    {"use_avx2", use_avx2, METH_VARARGS, use_avx2_doc},
    {"heads_and_tags", heads_and_tags, METH_VARARGS, heads_and_tags_doc},
    {"follow_up_tags", follow_up_tags, METH_VARARGS, follow_up_tags_doc},
    {"pair_follow_ups", pair_follow_ups, METH_VARARGS, pair_follow_ups_doc},
    {"read_head", read_head, METH_VARARGS, read_head_doc},
    {"group_lines", group_lines, METH_VARARGS, group_lines_doc},
    {"slow_lines", slow_lines, METH_VARARGS, slow_lines_doc},
    {"every_line_starts_with", every_line_starts_with, METH_VARARGS, every_line_starts_with_doc},
    {"csv_record_starts", csv_record_starts, METH_VARARGS, csv_record_starts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT, "dblogpack.formats._scan",
    "The engine's compiled scan loops (exact transcriptions of Python references).", -1,
    scan_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
#if AVX2_BUILT
    __builtin_cpu_init();
    avx2_on = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&scan_module);
}
