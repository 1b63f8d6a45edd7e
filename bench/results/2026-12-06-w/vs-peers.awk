# vs-peers.awk: vtmalloc against the fastest, the leanest and the fewest-faults peer of each
# memtest cell (the first table of each workload). awk -f vs-peers.awk bench/out/memtest.md | sort
/^## / { w = $2; tab = 0 }
/^\| allocator/ { tab++ }
/^\| [a-z]/ && $2 != "allocator" && tab == 1 {
    split($0, f, "|"); a = f[2]; gsub(/ /, "", a); t = f[3] + 0
    ops = f[4] + 0; peak = f[8] + 0; flt = f[14] + 0
    key = w " " t
    if (a == "vtmalloc") { vo[key] = ops; vp[key] = peak; vf[key] = flt; seen[key] = 1; next }
    if (a == "vtmalloc-linked") next
    if (!(key in bo) || ops > bo[key]) { bo[key] = ops; bon[key] = a }
    if (!(key in bp) || peak < bp[key]) { bp[key] = peak; bpn[key] = a }
    if (!(key in bf) || flt < bf[key]) { bf[key] = flt; bfn[key] = a }
}
END {
    for (k in seen)
        printf "%-12s vt %6.2f best %-8s %6.2f x%.2f | peak vt %6.1f leanest %-8s %7.1f x%.2f | faults/Mop vt %6d best %-8s %6d x%.2f\n",
            k, vo[k], bon[k], bo[k], vo[k] / bo[k], vp[k], bpn[k], bp[k], vp[k] / bp[k],
            vf[k], bfn[k], bf[k], (bf[k] > 0 ? vf[k] / bf[k] : 0)
}
