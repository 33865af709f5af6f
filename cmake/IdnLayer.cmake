# idn_layer(NAME [TORCH] [NO_TESTS] [DEPS targets...])
# Builds src/NAME/*.cpp into the static library idn_NAME (include root: src/, so code says
# #include "core/varint.h") and tests/NAME/*_test.cpp into NAME_tests, registered with CTest.
# Globbing keeps adding a module to adding its files.
function(idn_layer name)
  cmake_parse_arguments(L "TORCH;NO_TESTS" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.cpp)
  if(srcs)
    add_library(idn_${name} STATIC ${srcs})
    target_include_directories(idn_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_BINARY_DIR}/gen)
    target_link_libraries(idn_${name} PUBLIC ${L_DEPS})
  else()
    add_library(idn_${name} INTERFACE)
    target_include_directories(idn_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(idn_${name} INTERFACE ${L_DEPS})
  endif()
  if(L_TORCH)
    get_target_property(kind idn_${name} TYPE)
    if(kind STREQUAL "INTERFACE_LIBRARY")
      target_link_libraries(idn_${name} INTERFACE idn_torch)
    else()
      target_link_libraries(idn_${name} PUBLIC idn_torch)
      # torch/torch.h costs ~25 s per translation unit; precompile it once per layer.
      target_precompile_headers(idn_${name} PRIVATE <torch/torch.h>)
    endif()
  endif()
  file(GLOB tests CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${name}/*_test.cpp)
  if(tests AND NOT L_NO_TESTS)
    add_executable(${name}_tests ${tests})
    set_target_properties(${name}_tests PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
    target_include_directories(${name}_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    target_link_libraries(${name}_tests PRIVATE idn_${name} ${L_TEST_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${name}_tests PRIVATE IDN_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                                     IDN_BINARY_DIR="${PROJECT_BINARY_DIR}")
    # A test that hangs (a missed wake-up, a peer that never answers) fails after 5 minutes
    # instead of ctest's default 25; the slowest test takes well under a minute.
    gtest_discover_tests(${name}_tests DISCOVERY_MODE PRE_TEST PROPERTIES LABELS ${name} TIMEOUT 300)
  endif()
endfunction()
