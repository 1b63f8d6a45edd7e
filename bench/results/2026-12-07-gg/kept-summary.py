import sys, statistics as st
d = {}
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) < 3: continue
    k = (p[1], p[0]); v = dict(x.split('=') for x in p[2:])
    d.setdefault(k, []).append(v)
for k in sorted(d):
    vs = d[k]
    ops = [float(v['ops_per_s']) / 1e6 for v in vs]; rss = [int(v['peak_rss_kb']) / 1024 for v in vs]
    fl = [float(v['faults_per_mop']) for v in vs]
    print("%-8s %s  n=%d  Mops med %.1f [%.1f-%.1f]  peak MiB med %.2f [%.2f-%.2f]  faults med %.0f [%.0f-%.0f]" % (
        k[0], k[1], len(vs), st.median(ops), min(ops), max(ops), st.median(rss), min(rss), max(rss), st.median(fl), min(fl), max(fl)))
