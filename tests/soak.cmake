# The soak benchmark's quick mode on vtmalloc alone (issue "Memory that stays bounded"): a
# server-shaped load (connection threads in waves, a logger thread that frees what connections
# hand it, a size mix that shifts A -> B -> C and comes back) for 3 cycles, then the load stops.
# See bench/SOAK.md. Memory figures, not timings; five runs, about 40 s on 2 cores.
#
# tests/soak-quick.sh runs it five times and asserts on the medians (one run's end of cycle can
# land 10-19 % off: what a cycle freed in its last second and has not purged yet moves with timing):
#   growth   the highest RSS of the last cycle at most 1.10 x that of the first cycle, and RSS at
#            the end of the last cycle at most 1.25 x RSS at the end of the first (both read with
#            every connection closed and the same live data, the logger's backlog).
#   after    RSS after the load stopped (logger drained: no live data; 2 s idle; then one small
#            malloc/free) at most 25 % of peak RSS. An allocator that keeps what it freed stays near
#            its peak (tcmalloc 90-100 %, mimalloc 70-90 %, jemalloc 50-60 %, vtmalloc without a
#            purge in that window 80-87 %); one that returns free memory to the OS falls to a few
#            MiB (vtmalloc after malloc_trim(0): under 5 % of peak). glibc, which trims only the
#            top of each arena, lands between 14 and 30 %.
#
# Included from tests/CMakeLists.txt: PROJECT_SOURCE_DIR is the repository root, the library
# target is vtmalloc. Sanitizer builds bring their own malloc, so the test runs in normal builds.
if(NOT VT_SANITIZE)
  if(NOT TARGET soak)
    add_executable(soak ${PROJECT_SOURCE_DIR}/bench/soak.c)
    target_link_libraries(soak PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
    # Keep every malloc/realloc/free the benchmark writes: the compiler must not fold any away.
    target_compile_options(soak PRIVATE -fno-builtin)
  endif()
  add_test(NAME soak_quick
    COMMAND ${PROJECT_SOURCE_DIR}/tests/soak-quick.sh $<TARGET_FILE:soak>)
  # Tests running beside it on the same cores would shift those moments more: it runs alone.
  set_tests_properties(soak_quick PROPERTIES
    LABELS "soak;bench"
    RUN_SERIAL TRUE
    TIMEOUT 180
    ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:vtmalloc>")
  # The same with the heap profiler on, at the usual mean: its pages go back when nobody samples
  # into them, and that must not keep the process from going quiet (retain.c: an idle give-back
  # once restarted the quiet clock, and 48 % of the peak was still resident after the 2 s idle).
  add_test(NAME soak_quick_profiled
    COMMAND ${PROJECT_SOURCE_DIR}/tests/soak-quick.sh $<TARGET_FILE:soak>)
  set_tests_properties(soak_quick_profiled PROPERTIES
    LABELS "soak;bench"
    RUN_SERIAL TRUE
    TIMEOUT 180
    ENVIRONMENT "LD_PRELOAD=$<TARGET_FILE:vtmalloc>;VTMALLOC_PROF_SAMPLE=524288")
endif()
