# Packaging and tooling tests (issue "Install and use it like the allocators people already
# run"): installation into a prefix and programs built against it with find_package and
# pkg-config, the launcher, the manual pages against the code, valgrind, and the Debian
# packages. Labels: packaging (all of them), debian (the package build, the slow one).
# Scripts and the programs they build are in tests/packaging/.
#
# Sanitizer builds bring their own malloc, which preloading vtmalloc would fight: skipped.
if(VT_SANITIZE)
  return()
endif()

set(VT_PKG_DIR ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
set(VT_PKG_WORK ${CMAKE_CURRENT_BINARY_DIR}/packaging-work)
set(VT_LAUNCHER ${VT_LAUNCHER_BUILD}) # the build directory's launcher (top CMakeLists.txt)

# The probe finds out at run time whether its malloc is vtmalloc's (see probe.c); one copy
# knows nothing of vtmalloc, one is linked with the shared library, one with the static one.
add_executable(vt_pkg_probe ${VT_PKG_DIR}/probe.c)
target_include_directories(vt_pkg_probe PRIVATE ${PROJECT_SOURCE_DIR}/include)
add_executable(vt_pkg_probe_linked ${VT_PKG_DIR}/probe.c)
target_link_libraries(vt_pkg_probe_linked PRIVATE vtmalloc)
add_executable(vt_pkg_probe_static ${VT_PKG_DIR}/probe.c)
target_link_libraries(vt_pkg_probe_static PRIVATE vtmalloc_static)
# Exported, so that dlsym finds vtmalloc's names in the executable as it would in the library.
set_target_properties(vt_pkg_probe_static PROPERTIES ENABLE_EXPORTS ON)
foreach(probe vt_pkg_probe vt_pkg_probe_linked vt_pkg_probe_static)
  target_link_libraries(${probe} PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
  # The probe reads past a block on purpose, and malloc/free pairs must stay calls.
  target_compile_options(${probe} PRIVATE -fno-builtin -O1 -g)
endforeach()

set(vt_pkg_tests)

# ---- Installation into a prefix, and programs built against it --------------------------
# The fixture installs with `cmake --install --prefix` (and a DESTDIR staging) and checks
# what landed; the consumers build against the prefix with find_package and pkg-config.
add_test(NAME packaging_install
  COMMAND ${VT_PKG_DIR}/install.sh ${PROJECT_BINARY_DIR} ${VT_PKG_WORK}/install
          ${PROJECT_VERSION} ${CMAKE_INSTALL_LIBDIR} ${CMAKE_INSTALL_INCLUDEDIR}
          ${CMAKE_INSTALL_BINDIR} ${CMAKE_INSTALL_MANDIR} ${CMAKE_INSTALL_DOCDIR}
          $<TARGET_FILE:vt_pkg_probe> $<$<BOOL:${VT_TCL_BUILT}>:${VT_TCL_INSTALL_DIR_USED}>)
set_tests_properties(packaging_install PROPERTIES FIXTURES_SETUP vt_pkg_prefix)
add_test(NAME packaging_consumers
  COMMAND ${VT_PKG_DIR}/consumers.sh ${VT_PKG_WORK}/install/prefix
          ${VT_PKG_WORK}/install/prefix/${CMAKE_INSTALL_LIBDIR} ${PROJECT_VERSION}
          ${VT_PKG_WORK}/consumers)
set_tests_properties(packaging_consumers PROPERTIES FIXTURES_REQUIRED vt_pkg_prefix)
list(APPEND vt_pkg_tests packaging_install packaging_consumers)

# ---- The launcher: the build directory's copy, which preloads the library built here -----
foreach(case preload status environment options profile help)
  add_test(NAME packaging_launcher_${case}
    COMMAND ${VT_PKG_DIR}/launcher.sh ${case} ${VT_LAUNCHER} $<TARGET_SONAME_FILE:vtmalloc>
            $<TARGET_FILE:vt_pkg_probe> ${PROJECT_VERSION})
  list(APPEND vt_pkg_tests packaging_launcher_${case})
endforeach()

# ---- The manual pages and guides, checked against the code -------------------------------
add_test(NAME packaging_docs
  COMMAND python3 ${VT_PKG_DIR}/check_docs.py ${PROJECT_SOURCE_DIR} ${VT_LAUNCHER}
          ${PROJECT_VERSION})
list(APPEND vt_pkg_tests packaging_docs)

# ---- valgrind with vtmalloc preloaded, linked and static ---------------------------------
add_test(NAME packaging_valgrind
  COMMAND ${VT_PKG_DIR}/valgrind.sh $<TARGET_SONAME_FILE:vtmalloc> $<TARGET_FILE:vt_pkg_probe>
          $<TARGET_FILE:vt_pkg_probe_linked> $<TARGET_FILE:vt_pkg_probe_static> ${VT_LAUNCHER}
          ${VT_PKG_WORK}/valgrind)
list(APPEND vt_pkg_tests packaging_valgrind)

set_tests_properties(${vt_pkg_tests} PROPERTIES LABELS "packaging" TIMEOUT 300)

# ---- The Debian packages: dpkg-buildpackage in a copy of the working tree, the .debs'
# contents, lintian, an installation into a throwaway dpkg root and its removal. Slow (about
# a minute); needs dpkg-dev, debhelper, lintian (installed with apt-get when running as root
# and missing; without root and without them it is skipped, status 77).
add_test(NAME packaging_debian
  COMMAND ${VT_PKG_DIR}/debian.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}
          ${VT_PKG_WORK}/debian ${PROJECT_VERSION} $<TARGET_FILE:vt_pkg_probe>)
set_tests_properties(packaging_debian PROPERTIES LABELS "packaging;debian" TIMEOUT 900
  SKIP_RETURN_CODE 77 RUN_SERIAL ON)
