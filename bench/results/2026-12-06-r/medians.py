import sys,statistics as st
d={}
for line in open(sys.argv[1]):
    f=line.split()
    if len(f)<3: continue
    d.setdefault(f[0],[]).append([float(x) for x in f[1:]])
for k,v in d.items():
    cols=list(zip(*v))
    print(k, len(v), ' '.join(f"{st.median(c):.4g}" for c in cols))
