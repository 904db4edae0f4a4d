# `cmake --install` puts binaries, units, the example config and the migrations in the usual places.
install(TARGETS webmon-checker webmon-writer webmon RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sql/ DESTINATION ${CMAKE_INSTALL_DATADIR}/webmon/sql
        FILES_MATCHING PATTERN "*.sql")
install(FILES ${PROJECT_SOURCE_DIR}/config/config.example.yml DESTINATION ${CMAKE_INSTALL_DATADIR}/webmon)
file(GLOB WEBMON_UNITS ${PROJECT_SOURCE_DIR}/systemd/*.service)
if(WEBMON_UNITS)
  install(FILES ${WEBMON_UNITS} DESTINATION lib/systemd/system)
endif()
