# The reliability suite: issue "Prove it cannot lose or corrupt memory". What each test
# asserts is in tests/RELIABILITY.md, with the bugs these tests found (all fixed).

# glibc's checklist of edge cases, compared with the glibc installed here where C and glibc
# differ. -fno-builtin: the comparisons call glibc's malloc with impossible sizes on purpose.
vt_unit_test(test_edge TIMEOUT 300)
target_compile_options(test_edge PRIVATE -fno-builtin)

# Out of memory: the failure-injection hook on every mapping path, and RLIMIT_AS.
vt_unit_test(test_oom TIMEOUT 300)

# Threads ending with memory live (also under ThreadSanitizer, which scales it down).
vt_unit_test(test_threadexit LABELS threads TIMEOUT 300)
# The same with heap profiling sampling every 4 KiB on average: threads' own profiler pages
# handed to the shards as the threads end, and frees of their samples by other threads, which
# the statistics must count (also under ThreadSanitizer).
add_test(NAME test_threadexit_profiled COMMAND test_threadexit)
set_tests_properties(test_threadexit_profiled PROPERTIES LABELS "unit;threads" TIMEOUT 300
  ENVIRONMENT "VTMALLOC_PROF_SAMPLE=4096")

# The multi-threaded stress, on the vt_* API: label threads only (ThreadSanitizer runs a
# smaller default; the UBSan run of the unit label leaves it out). Purging runs every few
# milliseconds, so madvise races with every allocation. Longer runs:
#   test_stress THREADS SCALE ITER SEED   (or VT_STRESS_* in the environment)
add_executable(test_stress test_stress.c)
target_include_directories(test_stress PRIVATE ${PROJECT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_stress PRIVATE vtmalloc_core cmocka::cmocka Threads::Threads)
add_test(NAME test_stress COMMAND test_stress)
set_tests_properties(test_stress PROPERTIES LABELS "threads;stress" TIMEOUT 900
  ENVIRONMENT "VTMALLOC_PURGE_MS=5")

if(NOT VT_SANITIZE)
  set(VT_PRELOAD "LD_PRELOAD=$<TARGET_FILE:vtmalloc>")

  # The same stress on plain malloc/free, not linked with vtmalloc, run preloaded (default
  # options).
  add_executable(test_stress_plain test_stress.c)
  target_compile_definitions(test_stress_plain PRIVATE STRESS_PLAIN_MALLOC)
  target_include_directories(test_stress_plain PRIVATE ${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_stress_plain PRIVATE cmocka::cmocka Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_options(test_stress_plain PRIVATE -fno-builtin)
  add_test(NAME test_stress_preloaded COMMAND test_stress_plain 4 1 1000000)
  set_tests_properties(test_stress_preloaded PROPERTIES LABELS "preload;stress" TIMEOUT 600
    ENVIRONMENT "${VT_PRELOAD};VT_STRESS_REQUIRE_VTMALLOC=1")

  # Thread exits on plain malloc/free, preloaded: glibc's own allocations for threads and
  # thread-specific data come through vtmalloc too.
  add_executable(test_threadexit_plain test_threadexit.c)
  target_compile_definitions(test_threadexit_plain PRIVATE THREADEXIT_PLAIN_MALLOC)
  target_include_directories(test_threadexit_plain PRIVATE ${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_threadexit_plain PRIVATE cmocka::cmocka Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_options(test_threadexit_plain PRIVATE -fno-builtin)
  add_test(NAME test_threadexit_preloaded COMMAND test_threadexit_plain)
  set_tests_properties(test_threadexit_preloaded PROPERTIES LABELS "preload" TIMEOUT 300
    ENVIRONMENT "${VT_PRELOAD}")

  # Every allocation path of a program and of glibc itself ends in vtmalloc.
  add_executable(test_interpose test_interpose.c)
  target_include_directories(test_interpose PRIVATE ${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(test_interpose PRIVATE cmocka::cmocka Threads::Threads ${CMAKE_DL_LIBS})
  target_compile_options(test_interpose PRIVATE -fno-builtin -Wno-deprecated-declarations)
  add_test(NAME test_interpose COMMAND test_interpose)
  set_tests_properties(test_interpose PROPERTIES LABELS "preload" TIMEOUT 120
    ENVIRONMENT "${VT_PRELOAD};VTMALLOC_ON_ERROR=warn")

  # libFuzzer on the vt_* API, built with clang by the script (60 s here; longer by argument:
  # tests/fuzz/run.sh SECONDS [WORKDIR]). Skipped (77) only without clang and libFuzzer.
  add_test(NAME fuzz_ops COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh 60)
  set_tests_properties(fuzz_ops PROPERTIES LABELS "fuzz" TIMEOUT 400 SKIP_RETURN_CODE 77)

  # Real programs preloaded, compared with glibc (Debian packages: libpython3.11-testsuite,
  # gcc, sqlite3, redis-server, redis-tools; a case whose programs are missing is skipped).
  foreach(case python gcc sqlite redis)
    add_test(NAME programs_${case}
      COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/programs-more.sh $<TARGET_FILE:vtmalloc> ${case})
    set_tests_properties(programs_${case} PROPERTIES LABELS "preload;programs" TIMEOUT 600
      SKIP_RETURN_CODE 77)
  endforeach()
endif()
