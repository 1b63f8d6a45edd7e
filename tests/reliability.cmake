# Reliability suite (issue "Prove it cannot lose or corrupt memory"); see tests/RELIABILITY.md.
vt_unit_test(test_edge TIMEOUT 300)
target_compile_options(test_edge PRIVATE -fno-builtin)
vt_unit_test(test_oom TIMEOUT 300)
