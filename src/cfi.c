/*
 * cfi.c - DWARF call-frame information (CFI) read to find, for a code address, how its frame
 * leads to its caller's: the rules that unwind.c caches.
 *
 * Layer: 1 call-frame information
 * Calls: nothing
 *
 * Owns: nothing; it only reads the unwind tables of loaded objects (.eh_frame, found through
 * .eh_frame_hdr's sorted table, as the linker leaves them for exception handling).
 *
 * What a rule can say, on x86-64, which covers the code compilers emit: the caller's stack
 * pointer (the CFA) is rsp or rbp plus an offset, and the return address and the saved rbp sit
 * at offsets from it. Anything else (a CFA computed by an expression, as in signal trampolines
 * and PLT stubs; rbp or the return address kept in another register; a 64-bit CIE; an encoding
 * x86-64 linkers do not emit) is VT_CFI_UNKNOWN, for the caller to hand to a full unwinder.
 * The format: the DWARF 5 standard, section 6.4, and the LSB's description of .eh_frame.
 */
#include "internal.h"

#if defined(__x86_64__)

/* DWARF register numbers of x86-64. */
#define REG_RBP 6
#define REG_RSP 7
#define REG_RA  16
/* Nesting of DW_CFA_remember_state that a rule may use. */
#define STATE_DEPTH 4

static uint64_t read_uleb(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

static int64_t read_sleb(const uint8_t **p, const uint8_t *end)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (*p < end) {
        b = *(*p)++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= (int64_t)(~(uint64_t)0 << shift);
    return v;
}

/* A pointer in DW_EH_PE encoding `enc`; false for an encoding the FDEs of x86-64 code do not
 * use (those of .eh_frame_hdr's table are read directly). */
static bool read_pointer(const uint8_t **p, const uint8_t *end, uint8_t enc, uintptr_t *out)
{
    const uint8_t *at = *p;
    uint64_t v;
    switch (enc & 0x0f) {
    case 0x00: /* absptr */
    case 0x04: /* udata8 */
    case 0x0c: /* sdata8 */
        if (end - at < 8)
            return false;
        memcpy(&v, at, 8);
        *p += 8;
        break;
    case 0x03: { /* udata4 */
        uint32_t u;
        if (end - at < 4)
            return false;
        memcpy(&u, at, 4);
        v = u;
        *p += 4;
        break;
    }
    case 0x0b: { /* sdata4 */
        int32_t s;
        if (end - at < 4)
            return false;
        memcpy(&s, at, 4);
        v = (uint64_t)(int64_t)s;
        *p += 4;
        break;
    }
    case 0x01: /* uleb128 */
        v = read_uleb(p, end);
        break;
    case 0x09: /* sleb128 */
        v = (uint64_t)read_sleb(p, end);
        break;
    default:
        return false;
    }
    switch (enc & 0x70) {
    case 0x00: /* absolute */
        break;
    case 0x10: /* relative to the field */
        v += (uintptr_t)at;
        break;
    default:
        return false;
    }
    if (enc & 0x80) /* indirect: only personality routines are, and they are skipped */
        return false;
    *out = (uintptr_t)v;
    return true;
}

/* The FDE that may cover pc (the last that starts at or below it) in the object whose
 * .eh_frame_hdr is hdr; NULL when none does. *readable is false when the table is not in the
 * form linkers write (offsets of 4 bytes from the header), which this file does not read. */
static const uint8_t *find_fde(const uint8_t *hdr, uintptr_t pc, bool *readable)
{
    const uint8_t table_enc_datarel_sdata4 = 0x3b;
    *readable = false;
    if (hdr[0] != 1 || hdr[3] != table_enc_datarel_sdata4)
        return NULL;
    const uint8_t *p = hdr + 4;
    uintptr_t eh_frame, count;
    if (!read_pointer(&p, p + 8, hdr[1], &eh_frame) || !read_pointer(&p, p + 8, hdr[2], &count))
        return NULL;
    *readable = true;
    const int32_t *table = (const int32_t *)(const void *)p; /* pairs: start, FDE */
    intptr_t rel = (intptr_t)(pc - (uintptr_t)hdr);
    size_t lo = 0, hi = count;
    while (lo < hi) { /* the last entry that starts at or below pc */
        size_t mid = lo + (hi - lo) / 2;
        if (table[2 * mid] <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    return hdr + table[2 * (lo - 1) + 1];
}

/* The state of the CFI program at one point: where the CFA, rbp and the return address are. */
typedef struct cfa_state {
    int64_t cfa_off, rbp_off, ra_off;
    uint8_t cfa_reg;
    bool rbp_saved, ra_saved, ra_undefined;
} cfa_state_t;

typedef struct cie_info {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    bool fde_aug; /* the FDEs carry augmentation data ('z') */
    const uint8_t *insns, *insns_end;
} cie_info_t;

static bool parse_cie(const uint8_t *cie, cie_info_t *info)
{
    uint32_t len;
    memcpy(&len, cie, 4);
    if (len == 0 || len == 0xffffffffu)
        return false; /* a terminator, or the 64-bit form, which no x86-64 linker emits */
    const uint8_t *p = cie + 8, *end = cie + 4 + len;
    uint8_t version = *p++;
    const char *aug = (const char *)p;
    p += strnlen(aug, (size_t)(end - p)) + 1;
    if (version >= 4)
        p += 2; /* address and segment sizes */
    info->code_align = read_uleb(&p, end);
    info->data_align = read_sleb(&p, end);
    uint64_t ra_reg = version == 1 ? *p++ : read_uleb(&p, end);
    if (ra_reg != REG_RA)
        return false;
    info->fde_enc = 0; /* absptr */
    info->fde_aug = aug[0] == 'z';
    if (aug[0] == 'z') {
        uint64_t aug_len = read_uleb(&p, end);
        const uint8_t *aug_end = p + aug_len;
        for (const char *a = aug + 1; *a != '\0'; a++) {
            if (*a == 'R') {
                info->fde_enc = *p++;
            } else if (*a == 'L') {
                p++;
            } else if (*a == 'P') {
                uint8_t enc = *p++;
                uintptr_t ignored;
                if (!read_pointer(&p, aug_end, enc & 0x7f, &ignored))
                    return false;
            } else if (*a == 'S') {
                return false; /* a signal frame: not a call, backtrace() knows it */
            } else {
                return false;
            }
        }
        p = aug_end;
    } else if (aug[0] != '\0') {
        return false;
    }
    info->insns = p;
    info->insns_end = end;
    return p <= end;
}

/* Runs a CFI program up to (and not past) target; false for an instruction the cached rules
 * cannot express. */
static bool run_cfi(const uint8_t *p, const uint8_t *end, const cie_info_t *cie, uintptr_t loc,
                    uintptr_t target, cfa_state_t *st, const cfa_state_t *initial)
{
    cfa_state_t saved[STATE_DEPTH];
    unsigned depth = 0;
    while (p < end) {
        uint8_t op = *p++;
        uint64_t reg = op & 0x3f;
        int64_t off;
        switch (op >> 6) {
        case 1: /* advance_loc */
            loc += reg * cie->code_align;
            if (loc > target)
                return true;
            continue;
        case 2: /* offset */
            off = (int64_t)read_uleb(&p, end) * cie->data_align;
            goto save_at;
        case 3: /* restore */
            goto restore;
        default:
            break;
        }
        switch (op) {
        case 0x00: /* nop */
            break;
        case 0x02:   /* advance_loc1 */
        case 0x03:   /* advance_loc2 */
        case 0x04: { /* advance_loc4 */
            unsigned size = op == 0x02 ? 1 : op == 0x03 ? 2 : 4;
            uint32_t delta = 0;
            if (end - p < (ptrdiff_t)size)
                return false;
            memcpy(&delta, p, size); /* little-endian */
            p += size;
            loc += delta * cie->code_align;
            if (loc > target)
                return true;
            break;
        }
        case 0x05: /* offset_extended */
            reg = read_uleb(&p, end);
            off = (int64_t)read_uleb(&p, end) * cie->data_align;
            goto save_at;
        case 0x11: /* offset_extended_sf */
            reg = read_uleb(&p, end);
            off = read_sleb(&p, end) * cie->data_align;
            goto save_at;
        case 0x2f: /* GNU_negative_offset_extended */
            reg = read_uleb(&p, end);
            off = -(int64_t)read_uleb(&p, end) * cie->data_align;
            goto save_at;
        case 0x06: /* restore_extended */
            reg = read_uleb(&p, end);
            goto restore;
        case 0x07: /* undefined */
        case 0x08: /* same_value */
            reg = read_uleb(&p, end);
            if (reg == REG_RBP)
                st->rbp_saved = false;
            else if (reg == REG_RA)
                st->ra_undefined = op == 0x07;
            break;
        case 0x09: /* register: reg is kept in another register */
            reg = read_uleb(&p, end);
            read_uleb(&p, end);
            if (reg == REG_RBP || reg == REG_RA)
                return false;
            break;
        case 0x0a: /* remember_state */
            if (depth == STATE_DEPTH)
                return false;
            saved[depth++] = *st;
            break;
        case 0x0b: /* restore_state */
            if (depth == 0)
                return false;
            *st = saved[--depth];
            break;
        case 0x0c: /* def_cfa */
            st->cfa_reg = (uint8_t)read_uleb(&p, end);
            st->cfa_off = (int64_t)read_uleb(&p, end);
            break;
        case 0x12: /* def_cfa_sf */
            st->cfa_reg = (uint8_t)read_uleb(&p, end);
            st->cfa_off = read_sleb(&p, end) * cie->data_align;
            break;
        case 0x0d: /* def_cfa_register */
            st->cfa_reg = (uint8_t)read_uleb(&p, end);
            break;
        case 0x0e: /* def_cfa_offset */
            st->cfa_off = (int64_t)read_uleb(&p, end);
            break;
        case 0x13: /* def_cfa_offset_sf */
            st->cfa_off = read_sleb(&p, end) * cie->data_align;
            break;
        case 0x10:   /* expression */
        case 0x14:   /* val_offset */
        case 0x15:   /* val_offset_sf */
        case 0x16: { /* val_expression */
            reg = read_uleb(&p, end);
            if (reg == REG_RBP || reg == REG_RA)
                return false;
            uint64_t skip = read_uleb(&p, end); /* a block's length, or the offset */
            if (op == 0x10 || op == 0x16)
                p += skip;
            break;
        }
        case 0x2e: /* GNU_args_size */
            read_uleb(&p, end);
            break;
        default: /* def_cfa_expression, set_loc and the rest */
            return false;
        }
        continue;
    save_at:
        if (reg == REG_RBP) {
            st->rbp_saved = true;
            st->rbp_off = off;
        } else if (reg == REG_RA) {
            st->ra_saved = true;
            st->ra_undefined = false;
            st->ra_off = off;
        }
        continue;
    restore:
        if (initial == NULL)
            return false; /* a restore inside the CIE itself */
        if (reg == REG_RBP) {
            st->rbp_saved = initial->rbp_saved;
            st->rbp_off = initial->rbp_off;
        } else if (reg == REG_RA) {
            st->ra_saved = initial->ra_saved;
            st->ra_undefined = initial->ra_undefined;
            st->ra_off = initial->ra_off;
        }
    }
    return true;
}

/* The rule for pc (a return address minus one) in the object whose .eh_frame_hdr is hdr
 * (NULL: an object without one). */
vt_cfi_rule_t vt_cfi_rule(uintptr_t pc, const void *eh_frame_hdr)
{
    vt_cfi_rule_t rule = {.kind = VT_CFI_UNKNOWN};
    const uint8_t *hdr = eh_frame_hdr;
    if (hdr == NULL)
        return rule; /* an object linked without the table: backtrace() may know more */
    bool readable;
    const uint8_t *fde = find_fde(hdr, pc, &readable);
    if (fde == NULL) {
        if (readable)
            rule.kind = VT_CFI_END; /* no function there that has CFI */
        return rule;
    }
    uint32_t len, cie_delta;
    memcpy(&len, fde, 4);
    memcpy(&cie_delta, fde + 4, 4);
    if (len == 0 || len == 0xffffffffu || cie_delta == 0)
        return rule;
    cie_info_t cie;
    if (!parse_cie(fde + 4 - cie_delta, &cie))
        return rule;
    const uint8_t *p = fde + 8, *end = fde + 4 + len;
    uintptr_t start, range;
    if (!read_pointer(&p, end, cie.fde_enc, &start) ||
        !read_pointer(&p, end, cie.fde_enc & 0x0f, &range))
        return rule;
    if (pc < start || pc - start >= range) {
        rule.kind = VT_CFI_END;
        return rule;
    }
    if (cie.fde_aug)
        p += read_uleb(&p, end); /* the FDE's augmentation data (an LSDA pointer) */
    cfa_state_t initial = {0};
    if (!run_cfi(cie.insns, cie.insns_end, &cie, start, UINTPTR_MAX, &initial, NULL))
        return rule;
    cfa_state_t st = initial;
    if (!run_cfi(p, end, &cie, start, pc, &st, &initial))
        return rule;
    if (st.ra_undefined) {
        rule.kind = VT_CFI_END; /* the first frame of the thread */
        return rule;
    }
    if ((st.cfa_reg != REG_RSP && st.cfa_reg != REG_RBP) || !st.ra_saved || st.cfa_off < 8 ||
        st.cfa_off >= VT_CFI_CFA_MAX || st.ra_off < INT16_MIN || st.ra_off >= 0 ||
        (st.rbp_saved && (st.rbp_off < INT16_MIN || st.rbp_off >= 0)))
        return rule;
    rule.cfa_from_rbp = st.cfa_reg == REG_RBP;
    rule.cfa_off = (int32_t)st.cfa_off;
    rule.ra_off = (int16_t)st.ra_off;
    rule.rbp_off = st.rbp_saved ? (int16_t)st.rbp_off : 0;
    rule.kind = VT_CFI_STEP;
    return rule;
}

#endif /* __x86_64__ */
