import sys,re,statistics as st,collections
d=collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    if line.startswith("#"): continue
    f=line.split()
    if len(f)<3: continue
    key=(f[1],f[2])
    for kv in f[3:]:
        if '=' in kv:
            k,v=kv.split('=',1)
            if k=='cpu': v=sum(float(x) for x in v.split('+'))
            d[key][k].append(float(v))
for key in sorted(d):
    print(key[0],key[1],' '.join('%s=%.4g'%(k,st.median(v)) for k,v in d[key].items()), 'n=%d'%len(d[key]['peak_rss_kb']))
