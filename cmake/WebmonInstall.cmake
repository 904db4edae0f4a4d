# `cmake --install` puts binaries, units, the example config and the migrations in the usual places.
install(TARGETS webmon-checker webmon-writer webmon RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sql/ DESTINATION ${CMAKE_INSTALL_DATADIR}/webmon/sql
        FILES_MATCHING PATTERN "*.sql")
install(FILES ${PROJECT_SOURCE_DIR}/config/config.example.yml DESTINATION ${CMAKE_INSTALL_DATADIR}/webmon OPTIONAL)
install(FILES ${PROJECT_SOURCE_DIR}/docs/operations.md DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)

# The units in systemd/ name /usr/bin (a distribution package's prefix); the installed copies name
# the binaries where this install puts them (the prefix as given at install time, --prefix too).
# Their own component: the .deb ships the units in /lib/systemd/system instead (WebmonPackage).
file(GLOB WEBMON_UNITS ${PROJECT_SOURCE_DIR}/systemd/*.service)
foreach(unit ${WEBMON_UNITS})
  get_filename_component(unit_name ${unit} NAME)
  set(unit_out ${PROJECT_BINARY_DIR}/systemd/${unit_name})
  install(CODE "
    file(READ \"${unit}\" unit_text)
    string(REPLACE \"/usr/bin/webmon\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/webmon\" unit_text \"\${unit_text}\")
    string(REPLACE \"/usr/share/doc/webmon/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}/\" unit_text \"\${unit_text}\")
    file(WRITE \"${unit_out}\" \"\${unit_text}\")" COMPONENT prefix_units)
  install(FILES ${unit_out} DESTINATION lib/systemd/system COMPONENT prefix_units)
endforeach()

include(WebmonPackage)
