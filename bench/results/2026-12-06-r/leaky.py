import json
cache = []
def build_reports(n):
    # a growing cache: the leak
    for i in range(n):
        cache.append(json.dumps({"id": i, "payload": "x" * 2000}))
def transient(n):
    s = 0
    for i in range(n):
        s += len(json.dumps({"id": i, "payload": "y" * 2000}))
    return s
build_reports(20000)
print(transient(20000), len(cache))
import os, signal, time
os.kill(os.getpid(), signal.SIGUSR2)
for i in range(50):  # the dump is written at the allocator's next safe point
    transient(100); time.sleep(0.01)
