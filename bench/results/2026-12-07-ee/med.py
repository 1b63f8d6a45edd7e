import sys,re,statistics as st,collections
d=collections.defaultdict(lambda: collections.defaultdict(list))
for l in open(sys.argv[1]):
    f=l.split()
    if len(f)<3: continue
    key=(f[1],f[2])
    for kv in f[3:]:
        if '=' in kv:
            k,v=kv.split('=')
            if k=='cpu': v=sum(map(float,v.split('+')))
            d[key][k].append(float(v))
for key in sorted(d):
    print(key[0],key[1],' '.join('%s=%.4g'%(k,st.median(v)) for k,v in d[key].items()), 'n=%d'%len(d[key]['peak_rss_kb']))
