# kpgen.cmake: generate a kpgen model at build time and link it as a static library.
#
#   include(path/to/kpgen/cmake/kpgen.cmake)
#   kpgen_add_model(<name> SPEC <spec.yaml>
#                   [TARGET <core>]            # a built-in target or a target .toml (cortex-m4)
#                   [PRECISION f32|int16|int8]
#                   [CALIBRATE <inputs.npy>]
#                   [FLASH_BUDGET <bytes>] [RAM_BUDGET <bytes>]
#                   [OUT <dir>])               # default ${CMAKE_CURRENT_BINARY_DIR}/kpgen/<name>
#   target_link_libraries(app PRIVATE <name>)
#
# <name> is the spec's `name`. `kpgen build` runs when the library is built and again whenever
# the spec, a tensor it names, the calibration file or a target file changes (kpgen writes
# them to a depfile). The kpgen binary is KPGEN_EXECUTABLE, or `kpgen` found on PATH.
cmake_minimum_required(VERSION 3.20)  # DEPFILE with the Makefile generators

function(kpgen_add_model name)
    cmake_parse_arguments(PARSE_ARGV 1 KP ""
        "SPEC;TARGET;PRECISION;CALIBRATE;FLASH_BUDGET;RAM_BUDGET;OUT" "")
    if(KP_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "kpgen_add_model(${name}): unknown arguments ${KP_UNPARSED_ARGUMENTS}")
    endif()
    if(NOT KP_SPEC)
        message(FATAL_ERROR "kpgen_add_model(${name}): SPEC <spec.yaml> is required")
    endif()
    if(NOT KPGEN_EXECUTABLE)
        find_program(KPGEN_EXECUTABLE kpgen)
        if(NOT KPGEN_EXECUTABLE)
            message(FATAL_ERROR "kpgen_add_model(${name}): kpgen not found: put it on PATH or set KPGEN_EXECUTABLE")
        endif()
    endif()
    get_filename_component(spec "${KP_SPEC}" ABSOLUTE)
    if(NOT EXISTS "${spec}")
        message(FATAL_ERROR "kpgen_add_model(${name}): spec ${spec} does not exist")
    endif()
    if(NOT KP_TARGET)
        set(KP_TARGET cortex-m4)
    endif()
    if(NOT KP_OUT)
        set(KP_OUT "${CMAKE_CURRENT_BINARY_DIR}/kpgen/${name}")
    endif()
    get_filename_component(out "${KP_OUT}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

    set(args build "${spec}" --target "${KP_TARGET}" --out "${out}" --depfile "${out}.d")
    if(KP_PRECISION)
        list(APPEND args --precision "${KP_PRECISION}")
    endif()
    if(KP_CALIBRATE)
        get_filename_component(calibrate "${KP_CALIBRATE}" ABSOLUTE)
        list(APPEND args --calibrate "${calibrate}")
    endif()
    if(KP_FLASH_BUDGET)
        list(APPEND args --flash-budget "${KP_FLASH_BUDGET}")
    endif()
    if(KP_RAM_BUDGET)
        list(APPEND args --ram-budget "${KP_RAM_BUDGET}")
    endif()

    set(source "${out}/c/${name}.c")
    set(header "${out}/c/${name}.h")
    get_filename_component(parent "${out}" DIRECTORY)
    add_custom_command(
        OUTPUT "${source}" "${header}"
        COMMAND "${CMAKE_COMMAND}" -E make_directory "${parent}"
        COMMAND "${KPGEN_EXECUTABLE}" ${args}
        DEPENDS "${spec}" "${KPGEN_EXECUTABLE}"
        DEPFILE "${out}.d"
        COMMENT "kpgen: ${name} from ${KP_SPEC} for ${KP_TARGET}"
        VERBATIM)
    add_library(${name} STATIC "${source}" "${header}")
    target_include_directories(${name} PUBLIC "${out}/c")
    set_target_properties(${name} PROPERTIES
        C_STANDARD 99
        C_STANDARD_REQUIRED ON
        C_EXTENSIONS OFF)
endfunction()
