# memtest-report.awk: medians and ratios from the CSV that bench/run-memtest writes.
#
#   awk -F, -v allocs="glibc vtmalloc ..." -v wls="original ..." -v thr="1 2" -v summary=FILE \
#       [-v futex=memtest-futex.csv] -f memtest-report.awk memtest.csv > memtest.md
#
# Writes one row of medians per (workload, allocator, threads) to `summary` (CSV) and Markdown
# tables to stdout. Written for POSIX awk (Debian's default is mawk): no asort, no gensub.

# The median of one metric over the runs of a cell; insertion sort, as there are only a few.
function median(key, metric,    vals, cnt, i, j, x) {
    cnt = n[key]
    for (i = 1; i <= cnt; i++)
        vals[i] = val[key, i, metric] + 0
    for (i = 2; i <= cnt; i++) {
        x = vals[i]
        for (j = i - 1; j >= 1 && vals[j] > x; j--)
            vals[j + 1] = vals[j]
        vals[j + 1] = x
    }
    if (cnt % 2)
        return vals[(cnt + 1) / 2]
    return (vals[cnt / 2] + vals[cnt / 2 + 1]) / 2
}

function ratio(a, b) {
    return (b > 0 && a != "") ? sprintf("%.2f", a / b) : "-"
}

BEGIN {
    metrics = "ops_per_s ns_per_pair peak_rss_kb end_rss_kb tables_kb peak_live_kb"
    metrics = metrics " wave_rss_first_kb wave_rss_last_kb wave_live_first_kb wave_live_last_kb"
    metrics = metrics " faults_per_mop"
    # Derived per run: RSS without the benchmark's own tables, the same for every allocator.
    metrics = metrics " net_peak_kb net_end_kb net_wave_first_kb net_wave_last_kb"
    nm = split(metrics, ms, " ")
    # Futex calls per million operations, one traced run per cell (run-memtest), if given.
    if (futex != "") {
        while ((getline line < futex) > 0) {
            split(line, f, ",")
            if (f[1] != "allocator")
                fx[f[2], f[1], f[3]] = f[6]
        }
        close(futex)
    }
}

NR == 1 {
    for (i = 1; i <= NF; i++)
        col[$i] = i
    next
}

{
    key = $col["workload"] SUBSEP $col["allocator"] SUBSEP $col["threads"]
    k = ++n[key]
    if (mode == "")
        mode = $col["mode"]
    for (m = 1; m <= nm; m++)
        val[key, k, ms[m]] = (ms[m] in col) ? $col[ms[m]] : "" # older CSVs lack some
    tables = $col["tables_kb"]
    val[key, k, "net_peak_kb"] = $col["peak_rss_kb"] - tables
    val[key, k, "net_end_kb"] = $col["end_rss_kb"] - tables
    if ($col["wave_rss_first_kb"] != "") {
        val[key, k, "net_wave_first_kb"] = $col["wave_rss_first_kb"] - tables
        val[key, k, "net_wave_last_kb"] = $col["wave_rss_last_kb"] - tables
    }
    runs = k > runs ? k : runs
}

# One row of the main table: throughput and peak RSS with their ratios.
function main_row(w, a, t,    key, b, other, ops, rss, best_ops, best_rss, g, gops, grss) {
    key = W[w] SUBSEP A[a] SUBSEP T[t]
    ops = med[key, "ops_per_s"]
    rss = med[key, "net_peak_kb"]
    best_ops = ""
    best_rss = ""
    for (b = 1; b <= na; b++) {
        other = W[w] SUBSEP A[b] SUBSEP T[t]
        # vtmalloc's two builds are measured against the others, not against each other
        if (b == a || !(other in n) || (A[a] ~ /^vtmalloc/ && A[b] ~ /^vtmalloc/))
            continue
        if (best_ops == "" || med[other, "ops_per_s"] > best_ops)
            best_ops = med[other, "ops_per_s"]
        if (best_rss == "" || med[other, "net_peak_kb"] < best_rss)
            best_rss = med[other, "net_peak_kb"]
    }
    g = W[w] SUBSEP "glibc" SUBSEP T[t]
    gops = (g in n) ? med[g, "ops_per_s"] : ""
    grss = (g in n) ? med[g, "net_peak_kb"] : ""
    printf "| %s | %s | %.2f | %s | %s | %.1f ", A[a], T[t], ops / 1e6, ratio(ops, gops),
        ratio(ops, best_ops), med[key, "ns_per_pair"]
    printf "| %.1f | %s | %s | %.1f | %.1f | %.1f ", rss / 1024, ratio(rss, grss),
        ratio(rss, best_rss), med[key, "net_end_kb"] / 1024, med[key, "tables_kb"] / 1024,
        med[key, "peak_live_kb"] / 1024
    printf "| %s | %s |\n",
        ("faults_per_mop" in col) ? sprintf("%.0f", med[key, "faults_per_mop"]) : "-",
        (key in fx) ? sprintf("%.1f", fx[key]) : "-"
}

# One row of the churn table: RSS after early and late waves against the exact live data.
function churn_row(w, a, t,    key, early, late) {
    key = W[w] SUBSEP A[a] SUBSEP T[t]
    early = med[key, "net_wave_first_kb"]
    late = med[key, "net_wave_last_kb"]
    printf "| %s | %s | %.1f | %.1f | %.1f | %.1f | %s |\n", A[a], T[t], early / 1024,
        med[key, "wave_live_first_kb"] / 1024, late / 1024, med[key, "wave_live_last_kb"] / 1024,
        ratio(late, early)
}

END {
    na = split(allocs, A, " ")
    nw = split(wls, W, " ")
    nt = split(thr, T, " ")

    line = "workload,allocator,threads,runs"
    for (m = 1; m <= nm; m++)
        line = line "," ms[m]
    print line > summary
    for (w = 1; w <= nw; w++)
        for (t = 1; t <= nt; t++)
            for (a = 1; a <= na; a++) {
                key = W[w] SUBSEP A[a] SUBSEP T[t]
                if (!(key in n))
                    continue
                line = W[w] "," A[a] "," T[t] "," n[key]
                for (m = 1; m <= nm; m++) {
                    med[key, ms[m]] = median(key, ms[m])
                    line = line "," med[key, ms[m]]
                }
                print line > summary
            }

    printf "# memtest results (%s mode: median of %d runs, each in a fresh process)\n\n", mode, runs
    print "Mops/s: million mallocs per second of wall time, all threads together; every malloc"
    print "is matched by a free. ns/pair: CPU time per malloc+free pair, all threads, waiting"
    print "included. Peak RSS: VmHWM of the timed work (reset just before it) minus the"
    print "benchmark's own tables (the pre-generated work and pointer tables, the same for every"
    print "allocator: column tables), so it is the allocator's memory plus program text, libraries"
    print "and thread stacks. End RSS: VmRSS after the threads joined, every block freed, tables"
    print "subtracted likewise. Peak live: bytes the benchmark had requested and not yet freed, the"
    print "sum of each thread's exact peak (an upper bound of the process peak when threads do not"
    print "peak together). x glibc: ratio to glibc. x best other: ratio to the best of the other"
    print "allocators at the same thread count (highest throughput, lowest RSS; for vtmalloc and"
    print "vtmalloc-linked, the best of the rest, not each other); above 1 means faster, or more"
    print "memory. Faults/Mop: minor page faults of the timed work per million operations"
    print "(mallocs + frees), median; futex/Mop: futex calls per million operations in one more"
    print "run of the cell under strace (-), outside the timed runs."
    print ""
    for (w = 1; w <= nw; w++) {
        printf "## %s\n\n", W[w]
        printf "| allocator | threads | Mops/s | x glibc | x best other | ns/pair "
        printf "| peak RSS MiB | x glibc | x best other | end RSS MiB | tables MiB "
        printf "| peak live MiB | faults/Mop | futex/Mop |\n"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (t = 1; t <= nt; t++)
            for (a = 1; a <= na; a++)
                if ((W[w] SUBSEP A[a] SUBSEP T[t]) in n)
                    main_row(w, a, t)
        print ""
        if (W[w] != "churn")
            continue
        print "RSS after waves of churn, tables subtracted: early is after the first full cycle"
        print "of the shifting size mix (wave 4), late after the last wave before the final frees."
        print "The live data at these points is exact (all workers of a wave have joined) and"
        print "stationary, so growth from early to late is the allocator's."
        print ""
        printf "| allocator | threads | RSS early MiB | live early MiB | RSS late MiB "
        printf "| live late MiB | late / early |\n"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (t = 1; t <= nt; t++)
            for (a = 1; a <= na; a++)
                if ((W[w] SUBSEP A[a] SUBSEP T[t]) in n)
                    churn_row(w, a, t)
        print ""
    }
}
