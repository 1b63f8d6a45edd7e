# The Tcl package (tcl/, label tcl; also programs: a real tclsh runs them). tests/tcl/
# vtmalloc.test runs in tclsh8.6 with the build's package on TCLLIBPATH:
#   tcl_preloaded, tcl_preloaded_prof  libvtmalloc.so preloaded, VTMALLOC_PROF_SAMPLE unset / set
#   tcl_not_preloaded                  glibc's malloc: the package loads and says it is inactive
#   tcl_threads                        under the launcher, with threads of the Thread package
# By hand: ctest --test-dir build -L tcl --output-on-failure (vtmalloc.test says how to run
# it without ctest).
if(VT_SANITIZE)
  return()
endif()
if(NOT VT_TCL_BUILT)
  message(STATUS "vtmalloc: no Tcl package tests (the Tcl package is not built)")
  return()
endif()
find_program(VT_TCLSH NAMES tclsh8.6 tclsh DOC "tclsh for the Tcl package's tests")
if(NOT VT_TCLSH)
  message(STATUS "vtmalloc: no Tcl package tests: tclsh8.6 not found (Debian: apt-get install tcl8.6 tcl-thread)")
  return()
endif()

# Functions of vtmalloc.h that the library must define: the tests of the commands that need
# them fail if it does not. (A library without one, an older vtmalloc, gives "this vtmalloc
# has no NAME" for that command: vtmalloc.test checks that too when it meets one.)
set(VT_TCL_REQUIRE vt_stats_dump vt_prof_dump vt_prof_sample_bytes)

list(JOIN VT_TCL_REQUIRE "," vt_tcl_require)
set(vt_tcl_script ${CMAKE_CURRENT_SOURCE_DIR}/tcl/vtmalloc.test)
set(vt_tcl_pkgdir $<TARGET_FILE_DIR:vtmalloc_tcl>)
set(vt_tcl_args -module $<TARGET_FILE:vtmalloc_tcl> -header ${PROJECT_SOURCE_DIR}/include/vtmalloc.h
    -version ${PROJECT_VERSION})
set(vt_tcl_tests)
foreach(lib vtmalloc)
  set(name tcl_preloaded)
  set(require -require=${vt_tcl_require})
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} -E env --unset=VTMALLOC_PROF_SAMPLE LD_PRELOAD=$<TARGET_FILE:${lib}>
            TCLLIBPATH=${vt_tcl_pkgdir} ${VT_TCLSH} ${vt_tcl_script} preloaded
            -library $<TARGET_FILE:${lib}> ${vt_tcl_args} ${require})
  add_test(NAME ${name}_prof
    COMMAND ${CMAKE_COMMAND} -E env VTMALLOC_PROF_SAMPLE=65536 LD_PRELOAD=$<TARGET_FILE:${lib}>
            TCLLIBPATH=${vt_tcl_pkgdir} ${VT_TCLSH} ${vt_tcl_script} preloaded
            -library $<TARGET_FILE:${lib}> ${vt_tcl_args} ${require})
  list(APPEND vt_tcl_tests ${name} ${name}_prof)
endforeach()
add_test(NAME tcl_not_preloaded
  COMMAND ${CMAKE_COMMAND} -E env --unset=LD_PRELOAD TCLLIBPATH=${vt_tcl_pkgdir}
          ${VT_TCLSH} ${vt_tcl_script} not-preloaded -library $<TARGET_FILE:vtmalloc> ${vt_tcl_args})
add_test(NAME tcl_threads
  COMMAND ${CMAKE_COMMAND} -E env TCLLIBPATH=${vt_tcl_pkgdir}
          ${VT_LAUNCHER_BUILD} ${VT_TCLSH} ${vt_tcl_script} threads
          -library $<TARGET_SONAME_FILE:vtmalloc> ${vt_tcl_args})
list(APPEND vt_tcl_tests tcl_not_preloaded tcl_threads)
set_tests_properties(${vt_tcl_tests} PROPERTIES LABELS "tcl;programs" TIMEOUT 120)
