/*
 * vtmalloc_tcl.c - the Tcl package vtmalloc (`package require vtmalloc`): the command
 * `vtmalloc` shows the allocator's statistics to a Tcl script, returns free memory to the OS
 * and writes the statistics and the heap profile to files, from inside a running tclsh or
 * NaviServer. docs/tcl-naviserver.md, "The Tcl package", describes the commands.
 *
 * The extension does not link libvtmalloc, on purpose. A tclsh that has been allocating with
 * glibc's malloc and then loaded libvtmalloc.so (as a dependency of this extension) would have
 * vtmalloc's malloc and free in front of glibc's from then on for every object loaded later,
 * and the first free of a glibc block by vtmalloc would abort. So the extension finds vtmalloc's
 * functions at load time with dlsym(RTLD_DEFAULT), where they are only when vtmalloc is the
 * process's allocator: preloaded (LD_PRELOAD, the vtmalloc launcher) or linked into the
 * program. It counts them as vtmalloc's only when they live in the same object as the
 * process's malloc. Otherwise the package still loads, `vtmalloc active` says 0 and the other
 * commands raise an error that says how to run the program.
 *
 * Each function is looked up on its own: a library older than vtmalloc.h (without
 * vt_stats_dump, vt_prof_dump, vt_prof_sample_bytes) leaves only the commands that need the
 * missing function failing, with "this vtmalloc has no NAME".
 *
 * Built with Tcl's stubs (USE_TCL_STUBS, libtclstub8.6.a), so it does not link libtcl either
 * and loads into any Tcl 8.6 or later 8.x interpreter.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <tcl.h>
#include <vtmalloc.h>

#ifndef VT_TCL_PACKAGE_VERSION
#error "VT_TCL_PACKAGE_VERSION must be defined (the build passes the project's version)"
#endif

#define VT_TCL_INACTIVE                                                                            \
    "vtmalloc is not this process's allocator (run with LD_PRELOAD=libvtmalloc.so.0 or the "       \
    "vtmalloc launcher)"

/* ---- The functions, found at load time ---------------------------------------------------- */

enum vt_sym {
    VT_SYM_MALLOC, /* the anchor: vtmalloc is active when malloc lives in its object */
    VT_SYM_STATS_GET,
    VT_SYM_STATS_DUMP,
    VT_SYM_TRIM,
    VT_SYM_PROF_DUMP,
    VT_SYM_PROF_SAMPLE,
    VT_SYM_VERSION,
    VT_SYM_COUNT
};

/* One line per name. */
/* clang-format off */
static const char *const vt_sym_names[VT_SYM_COUNT] = {
    [VT_SYM_MALLOC] = "vt_malloc",
    [VT_SYM_STATS_GET] = "vt_stats_get",
    [VT_SYM_STATS_DUMP] = "vt_stats_dump",
    [VT_SYM_TRIM] = "vt_malloc_trim",
    [VT_SYM_PROF_DUMP] = "vt_prof_dump",
    [VT_SYM_PROF_SAMPLE] = "vt_prof_sample_bytes",
    [VT_SYM_VERSION] = "vt_version",
};
/* clang-format on */

typedef void (*vt_stats_get_fn)(vt_stats_t *);
typedef int (*vt_path_fn)(const char *);
typedef int (*vt_trim_fn)(size_t);
typedef size_t (*vt_sample_fn)(void);
typedef const char *(*vt_version_fn)(void);

/* Written once (pthread_once), before any command can run, and only read afterwards. */
static void *vt_syms[VT_SYM_COUNT];
static int vt_active;
static pthread_once_t vt_lookup_once = PTHREAD_ONCE_INIT;

/* The load address of the object that defines `name` in the process's global scope. */
static void *vt_object_of(const char *name, void **addr)
{
    Dl_info info;
    *addr = dlsym(RTLD_DEFAULT, name);
    if (*addr == NULL || dladdr(*addr, &info) == 0)
        return NULL;
    return info.dli_fbase;
}

static void vt_lookup(void)
{
    void *malloc_addr, *anchor;
    void *base = vt_object_of("malloc", &malloc_addr);
    /* vtmalloc serves this process when its API and malloc come from one object:
     * libvtmalloc.so, preloaded or linked, or the program itself when it was linked with
     * libvtmalloc.a and exports its symbols. The core library, which has the vt_* names
     * beside the system's malloc, does not count. */
    if (base == NULL || vt_object_of(vt_sym_names[VT_SYM_MALLOC], &anchor) != base)
        return;
    for (int i = 0; i < VT_SYM_COUNT; i++) {
        void *addr;
        /* A name that another object defines is not this vtmalloc's: leave it missing. */
        if (vt_object_of(vt_sym_names[i], &addr) == base)
            vt_syms[i] = addr;
    }
    vt_active = 1;
}

/* The function `sym`, or NULL with the error left in interp. */
static void *vt_need(Tcl_Interp *interp, enum vt_sym sym)
{
    if (!vt_active) {
        Tcl_SetObjResult(interp, Tcl_NewStringObj(VT_TCL_INACTIVE, -1));
        Tcl_SetErrorCode(interp, "VTMALLOC", "INACTIVE", (char *)NULL);
        return NULL;
    }
    if (vt_syms[sym] == NULL) {
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("this vtmalloc has no %s", vt_sym_names[sym]));
        Tcl_SetErrorCode(interp, "VTMALLOC", "MISSING", vt_sym_names[sym], (char *)NULL);
        return NULL;
    }
    return vt_syms[sym];
}

/* ---- vtmalloc stats: the fields of vtmalloc.h's structures, in the header's order --------- */

#define VT_STATS_FIELDS(X)                                                                         \
    X(spans_mapped)                                                                                \
    X(span_bytes)                                                                                  \
    X(spans_reserved)                                                                              \
    X(span_maps_total)                                                                             \
    X(span_unmaps_total)                                                                           \
    X(large_blocks)                                                                                \
    X(large_bytes)                                                                                 \
    X(large_allocs_total)                                                                          \
    X(large_cached_bytes)                                                                          \
    X(large_cache_hits_total)                                                                      \
    X(thread_caches_live)                                                                          \
    X(thread_caches_total)                                                                         \
    X(pages_adopted_total)                                                                         \
    X(pages_abandoned_total)                                                                       \
    X(remote_frees_total)                                                                          \
    X(global_lock_total)                                                                           \
    X(global_lock_waits)                                                                           \
    X(purged_bytes_total)                                                                          \
    X(purges_total)                                                                                \
    X(bytes_in_use)                                                                                \
    X(bytes_requested_live)                                                                        \
    X(bytes_free_threads)                                                                          \
    X(bytes_free_global)                                                                           \
    X(bytes_free_units)                                                                            \
    X(bytes_free_resident)                                                                         \
    X(bytes_reserve)                                                                               \
    X(bytes_mapped)                                                                                \
    X(bytes_returned_total)

#define VT_CLASS_FIELDS(X)                                                                         \
    X(block_size)                                                                                  \
    X(pages)                                                                                       \
    X(in_use)                                                                                      \
    X(free_in_threads)                                                                             \
    X(free_in_global)                                                                              \
    X(gets)                                                                                        \
    X(puts)                                                                                        \
    X(requested_total)                                                                             \
    X(lock_acquisitions)                                                                           \
    X(lock_waits)

/* The lists above must name every field: a field added to vtmalloc.h and not here stops the
 * build. Every counter is a uint64_t, and they come before class_count and classes[]. */
#define VT_PLUS_ONE(field) +1
enum {
    VT_STATS_NFIELDS = 0 VT_STATS_FIELDS(VT_PLUS_ONE),
    VT_CLASS_NFIELDS = 0 VT_CLASS_FIELDS(VT_PLUS_ONE)
};
#define VT_STATS_IS_U64(field)                                                                     \
    _Static_assert(sizeof(((vt_stats_t *)0)->field) == sizeof(uint64_t), #field);
#define VT_CLASS_IS_U64(field)                                                                     \
    _Static_assert(sizeof(((vt_class_stats_t *)0)->field) == sizeof(uint64_t), #field);
VT_STATS_FIELDS(VT_STATS_IS_U64)
VT_CLASS_FIELDS(VT_CLASS_IS_U64)
_Static_assert(offsetof(vt_stats_t, class_count) == VT_STATS_NFIELDS * sizeof(uint64_t),
               "vt_stats_t has counters that VT_STATS_FIELDS does not list");
_Static_assert(offsetof(vt_stats_t, classes) + sizeof(((vt_stats_t *)0)->classes) ==
                   sizeof(vt_stats_t),
               "vt_stats_t has fields after classes[] that vtmalloc_tcl.c does not know");
_Static_assert(sizeof(vt_class_stats_t) == VT_CLASS_NFIELDS * sizeof(uint64_t),
               "vt_class_stats_t has fields that VT_CLASS_FIELDS does not list");

/* vt_stats_get has no size argument: a newer library whose vt_stats_t has grown would write
 * past ours. The buffer leaves it this much room. */
#define VT_STATS_SLACK 4096

static Tcl_Obj *vt_u64_obj(uint64_t value)
{
    if (value <= (uint64_t)INT64_MAX)
        return Tcl_NewWideIntObj((Tcl_WideInt)value);
    char text[24]; /* Tcl reads it back as a big integer */
    snprintf(text, sizeof text, "%" PRIu64, value);
    return Tcl_NewStringObj(text, -1);
}

static void vt_put(Tcl_Obj *dict, const char *key, Tcl_Obj *value)
{
    Tcl_DictObjPut(NULL, dict, Tcl_NewStringObj(key, -1), value);
}

static int vt_stats(Tcl_Interp *interp)
{
    vt_stats_get_fn get = (vt_stats_get_fn)vt_need(interp, VT_SYM_STATS_GET);
    if (get == NULL)
        return TCL_ERROR;
    size_t size = sizeof(vt_stats_t) + VT_STATS_SLACK;
    vt_stats_t *st = (vt_stats_t *)Tcl_Alloc((unsigned int)size);
    memset(st, 0, size);
    get(st);

    Tcl_Obj *dict = Tcl_NewDictObj();
#define VT_PUT_TOTAL(field) vt_put(dict, #field, vt_u64_obj(st->field));
    VT_STATS_FIELDS(VT_PUT_TOTAL)
#undef VT_PUT_TOTAL
    vt_put(dict, "class_count", Tcl_NewWideIntObj(st->class_count));
    Tcl_Obj *classes = Tcl_NewListObj(0, NULL);
    uint32_t count = st->class_count;
    if (count > VT_STATS_MAX_CLASSES)
        count = VT_STATS_MAX_CLASSES;
    for (uint32_t i = 0; i < count; i++) {
        const vt_class_stats_t *c = &st->classes[i];
        Tcl_Obj *one = Tcl_NewDictObj();
#define VT_PUT_CLASS(field) vt_put(one, #field, vt_u64_obj(c->field));
        VT_CLASS_FIELDS(VT_PUT_CLASS)
#undef VT_PUT_CLASS
        Tcl_ListObjAppendElement(NULL, classes, one);
    }
    vt_put(dict, "classes", classes);
    Tcl_Free((char *)st);
    Tcl_SetObjResult(interp, dict);
    return TCL_OK;
}

/* ---- vtmalloc stats dump FILE, vtmalloc profile dump FILE --------------------------------- */

static int vt_dump(Tcl_Interp *interp, enum vt_sym sym, const char *what, Tcl_Obj *path)
{
    vt_path_fn dump = (vt_path_fn)vt_need(interp, sym);
    if (dump == NULL)
        return TCL_ERROR;
    /* Relative to Tcl's current directory, in the system's encoding. */
    const char *native = (const char *)Tcl_FSGetNativePath(path);
    if (native == NULL) {
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("couldn't write %s to \"%s\": not a native path",
                                               what, Tcl_GetString(path)));
        Tcl_SetErrorCode(interp, "VTMALLOC", "PATH", (char *)NULL);
        return TCL_ERROR;
    }
    errno = 0;
    if (dump(native) == 0)
        return TCL_OK;
    int err = errno;
    char buf[256];
    const char *reason = strerror_r(err, buf, sizeof buf);
    if (sym == VT_SYM_PROF_DUMP && err == ENOTSUP)
        Tcl_SetObjResult(interp,
                         Tcl_NewStringObj("heap profiling is off: set VTMALLOC_PROF_SAMPLE", -1));
    else
        Tcl_SetObjResult(interp, Tcl_ObjPrintf("couldn't write %s to \"%s\": %s", what,
                                               Tcl_GetString(path), reason));
    Tcl_SetErrno(err);
    Tcl_SetErrorCode(interp, "POSIX", Tcl_ErrnoId(), reason, (char *)NULL);
    return TCL_ERROR;
}

/* ---- The command ----------------------------------------------------------------------------- */

static int vt_stats_command(Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    static const char *const options[] = {"dump", NULL};
    int index;
    if (objc == 2)
        return vt_stats(interp);
    if (objc != 4) {
        Tcl_WrongNumArgs(interp, 2, objv, "?dump file?");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[2], options, "option", 0, &index) != TCL_OK)
        return TCL_ERROR;
    return vt_dump(interp, VT_SYM_STATS_DUMP, "the statistics", objv[3]);
}

static int vt_profile_command(Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    static const char *const options[] = {"dump", "sample", NULL};
    enum { OPT_DUMP, OPT_SAMPLE };
    int index;
    if (objc < 3) {
        Tcl_WrongNumArgs(interp, 2, objv, "option ?arg ...?");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[2], options, "option", 0, &index) != TCL_OK)
        return TCL_ERROR;
    if (index == OPT_DUMP) {
        if (objc != 4) {
            Tcl_WrongNumArgs(interp, 3, objv, "file");
            return TCL_ERROR;
        }
        return vt_dump(interp, VT_SYM_PROF_DUMP, "the heap profile", objv[3]);
    }
    if (objc != 3) {
        Tcl_WrongNumArgs(interp, 3, objv, NULL);
        return TCL_ERROR;
    }
    vt_sample_fn sample = (vt_sample_fn)vt_need(interp, VT_SYM_PROF_SAMPLE);
    if (sample == NULL)
        return TCL_ERROR;
    Tcl_SetObjResult(interp, vt_u64_obj(sample()));
    return TCL_OK;
}

static int vt_command(ClientData data, Tcl_Interp *interp, int objc, Tcl_Obj *const objv[])
{
    static const char *const subcommands[] = {"active", "profile", "stats",
                                              "trim",   "version", NULL};
    enum { CMD_ACTIVE, CMD_PROFILE, CMD_STATS, CMD_TRIM, CMD_VERSION };
    int index;
    (void)data;
    if (objc < 2) {
        Tcl_WrongNumArgs(interp, 1, objv, "subcommand ?arg ...?");
        return TCL_ERROR;
    }
    if (Tcl_GetIndexFromObj(interp, objv[1], subcommands, "subcommand", 0, &index) != TCL_OK)
        return TCL_ERROR;
    switch (index) {
    case CMD_PROFILE:
        return vt_profile_command(interp, objc, objv);
    case CMD_STATS:
        return vt_stats_command(interp, objc, objv);
    default:
        break;
    }
    /* The others take no argument. */
    if (objc != 2) {
        Tcl_WrongNumArgs(interp, 2, objv, NULL);
        return TCL_ERROR;
    }
    if (index == CMD_ACTIVE) {
        Tcl_SetObjResult(interp, Tcl_NewIntObj(vt_active));
    } else if (index == CMD_TRIM) {
        vt_trim_fn trim = (vt_trim_fn)vt_need(interp, VT_SYM_TRIM);
        if (trim == NULL)
            return TCL_ERROR;
        Tcl_SetObjResult(interp, Tcl_NewIntObj(trim(0) != 0));
    } else {
        vt_version_fn version = (vt_version_fn)vt_need(interp, VT_SYM_VERSION);
        if (version == NULL)
            return TCL_ERROR;
        Tcl_SetObjResult(interp, Tcl_NewStringObj(version(), -1));
    }
    return TCL_OK;
}

/* ---- Loading ------------------------------------------------------------------------------ */

/* Called by `load` (the package index says `load FILE Vtmalloc`) in every interpreter that
 * requires the package. There is no Vtmalloc_SafeInit: safe interpreters do not get it. */
DLLEXPORT int Vtmalloc_Init(Tcl_Interp *interp);

DLLEXPORT int Vtmalloc_Init(Tcl_Interp *interp)
{
    if (Tcl_InitStubs(interp, "8.6", 0) == NULL)
        return TCL_ERROR;
    pthread_once(&vt_lookup_once, vt_lookup);
    if (Tcl_CreateObjCommand(interp, "::vtmalloc", vt_command, NULL, NULL) == NULL)
        return TCL_ERROR;
    return Tcl_PkgProvide(interp, "vtmalloc", VT_TCL_PACKAGE_VERSION);
}
