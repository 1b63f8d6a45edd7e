# The page ownership protocol, model-checked with spin (tests/spin/README.md): the protocol as
# src/ implements it must pass, the earlier protocol and the broken variants must fail.
find_program(SPIN_EXECUTABLE spin)
if(SPIN_EXECUTABLE)
  add_test(NAME spin_ownership COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/spin/check.sh)
  set_tests_properties(spin_ownership PROPERTIES LABELS "spin" TIMEOUT 300 PROCESSORS 2)
else()
  message(WARNING "spin not found: the ownership protocol's model check will not run")
endif()
