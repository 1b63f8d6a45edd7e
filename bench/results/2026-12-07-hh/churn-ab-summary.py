import sys, statistics as st, collections
d=collections.defaultdict(list)
for l in open(sys.argv[1]):
    t,m,p,f=l.split(); d[t].append((float(m),float(p),float(f)))
for t,v in sorted(d.items()):
    print(t, 'n=%d'%len(v), 'Mops med %.1f'%st.median(x[0] for x in v), 'peak med %.0f KiB (%.0f-%.0f)'%(st.median(x[1] for x in v),min(x[1] for x in v),max(x[1] for x in v)), 'faults med %.0f'%st.median(x[2] for x in v))
