/*
 * report.c - messages to stderr without allocating: a small formatter, misuse reports and
 * assertion failures.
 *
 * Layer: 0 messages
 * Calls: os.c
 *
 * Owns: the message format, and what a misuse does (VTMALLOC_ON_ERROR, set by options.c).
 * Never allocates, never takes a lock, so it is safe inside any allocator path, including with
 * a lock held.
 */
#include "internal.h"

#include <stdarg.h>

typedef struct out {
    char *buf;
    size_t cap, len;
} out_t;

static void put_char(out_t *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void put_padded(out_t *o, const char *s, size_t n, unsigned width, bool left)
{
    if (!left)
        for (size_t i = n; i < width; i++)
            put_char(o, ' ');
    for (size_t i = 0; i < n; i++)
        put_char(o, s[i]);
    if (left)
        for (size_t i = n; i < width; i++)
            put_char(o, ' ');
}

static size_t utoa(uint64_t v, unsigned base, char *tmp)
{
    char rev[24];
    size_t n = 0;
    do {
        rev[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        tmp[i] = rev[n - 1 - i];
    return n;
}

static size_t vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
    out_t o = {buf, cap, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_char(&o, *f);
            continue;
        }
        f++;
        bool left = false;
        if (*f == '-') {
            left = true;
            f++;
        }
        unsigned width = 0;
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (unsigned)(*f++ - '0');
        bool wide = false; /* z or l: a 64-bit argument */
        while (*f == 'z' || *f == 'l') {
            wide = true;
            f++;
        }
        char tmp[32];
        size_t n;
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            put_padded(&o, s, strlen(s), width, left);
            break;
        }
        case 'd': {
            int64_t v = wide ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            n = 0;
            if (v < 0)
                tmp[n++] = '-';
            n += utoa(mag, 10, tmp + n);
            put_padded(&o, tmp, n, width, left);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = wide ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            n = utoa(v, *f == 'u' ? 10 : 16, tmp);
            put_padded(&o, tmp, n, width, left);
            break;
        }
        case 'p': {
            tmp[0] = '0';
            tmp[1] = 'x';
            n = 2 + utoa((uint64_t)(uintptr_t)va_arg(ap, void *), 16, tmp + 2);
            put_padded(&o, tmp, n, width, left);
            break;
        }
        case '%':
            put_char(&o, '%');
            break;
        default: /* not supported: print it as it stands */
            put_char(&o, '%');
            if (*f == '\0')
                f--;
            else
                put_char(&o, *f);
            break;
        }
    }
    if (cap > 0)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len < cap ? o.len : (cap ? cap - 1 : 0);
}

/* A private copy of stderr for the statistics printed at exit: programs such as the coreutils
 * close stderr before the process ends. A program may also close the copy (daemons close every
 * descriptor at start) and open a file of its own under its number: the message is written only
 * to a descriptor that still refers to the stderr that was kept. */
static int kept_stderr = -1;
static vt_fd_identity_t kept_identity; /* what fd 2 referred to when it was kept */

void vt_report_keep_stderr(void)
{
    if (vt_os_fd_identity(2, &kept_identity))
        kept_stderr = vt_os_dup_fd(2);
}

/* True when fd still refers to the file, device or pipe that stderr was when it was kept. */
static bool is_kept_stderr(int fd)
{
    vt_fd_identity_t now;
    return fd >= 0 && vt_os_fd_identity(fd, &now) && now.dev == kept_identity.dev &&
           now.ino == kept_identity.ino && now.rdev == kept_identity.rdev;
}

/* Formats into a stack buffer and writes the line to fd in one write(2). */
static void write_message(int fd, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n = vformat(buf, sizeof(buf), fmt, ap);
    vt_os_write(fd, buf, n);
}

/* For files (dumps): the same, but false with errno set when the write failed. */
bool vt_vmessage_fd(int fd, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n = vformat(buf, sizeof(buf), fmt, ap);
    return vt_os_write_all(fd, buf, n);
}

bool vt_message_fd(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = vt_vmessage_fd(fd, fmt, ap);
    va_end(ap);
    return ok;
}

/* Formats into a caller's buffer (truncating to cap - 1); the length written. */
size_t vt_format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = vformat(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

/* Where the statistics printed at exit go: the kept copy if it is still stderr's, else fd 2
 * if that is; otherwise -1 (nowhere): writing would corrupt a file of the program's. */
int vt_report_stderr_fd(void)
{
    return kept_stderr < 0               ? 2
           : is_kept_stderr(kept_stderr) ? kept_stderr
           : is_kept_stderr(2)           ? 2
                                         : -1;
}

void vt_message(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_message(2, fmt, ap);
    va_end(ap);
}

/* Written at start-up (options.c) or by a test, before any misuse it governs. */
static vt_on_error_t on_error = VT_ON_ERROR_ABORT;

void vt_report_set_on_error(vt_on_error_t action)
{
    on_error = action;
}

void vt_report_misuse(const char *fn, const char *what, const void *p)
{
    bool warn = on_error == VT_ON_ERROR_WARN;
    vt_message("vtmalloc: %s(): %s: pointer %p%s\n", fn, what, p,
               warn ? " (ignored, block leaked)" : "");
    if (!warn)
        vt_os_abort();
}

void vt_report_corrupt_list(const void *block)
{
    vt_report_misuse("malloc",
                     "corrupted free list (the link of a free block was overwritten, most "
                     "likely by an overflow of the block before it)",
                     block);
}

void vt_assert_fail(const char *file, int line, const char *expr)
{
    vt_message("vtmalloc: internal assertion failed at %s:%d: %s\n", file, line, expr);
    vt_os_abort();
}
