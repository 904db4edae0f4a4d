# The Debian package: `cpack -G DEB` (scripts/package) builds webmon_<version>_amd64.deb from the
# install rules above plus what only a package installs (component `deb`, left out of a plain
# `cmake --install`): the units in /lib/systemd/system as systemd/ has them (naming /usr/bin), the
# example config as /etc/webmon/config.yml and an empty /etc/webmon/webmon.env (0640) for secrets,
# both conffiles, and the copyright and changelog Debian policy asks for. Dependencies are computed
# by dpkg-shlibdeps from the binaries. The version is the project's, the one --version prints.
set(WEBMON_PACKAGE_MAINTAINER "webmon maintainers <webmon@example.org>" CACHE STRING
    "Maintainer field of the Debian package")

install(FILES ${WEBMON_UNITS} DESTINATION /lib/systemd/system COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/config/config.example.yml DESTINATION /etc/webmon RENAME config.yml
        COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/webmon.env DESTINATION /etc/webmon
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT deb EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/packaging/lintian-overrides DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
        RENAME webmon COMPONENT deb EXCLUDE_FROM_ALL)

# Debian's changelog, compressed as policy wants it (gzip -9n: no name or time stamp inside).
string(TIMESTAMP WEBMON_PACKAGE_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${PROJECT_SOURCE_DIR}/packaging/changelog.in ${PROJECT_BINARY_DIR}/packaging/changelog @ONLY)
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/packaging/changelog.gz
  COMMAND gzip -9nc ${PROJECT_BINARY_DIR}/packaging/changelog > ${PROJECT_BINARY_DIR}/packaging/changelog.gz
  DEPENDS ${PROJECT_BINARY_DIR}/packaging/changelog VERBATIM)
add_custom_target(webmon_package_changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/packaging/changelog.gz)
install(FILES ${PROJECT_BINARY_DIR}/packaging/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT deb EXCLUDE_FROM_ALL)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME webmon)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# One package of these components; `prefix_units` (the units for /usr/local-style prefixes) is not
# among them.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL Unspecified deb)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME webmon_${PROJECT_VERSION}_amd64.deb)
set(CPACK_DEBIAN_PACKAGE_NAME webmon)
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${WEBMON_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "website monitor: HTTP(S) probes to Kafka to PostgreSQL")
set(CPACK_PACKAGE_DESCRIPTION "webmon-checker probes HTTP(S) targets on their own intervals and
publishes one result per probe to Kafka; webmon-writer writes the results into
PostgreSQL, exactly once; webmon applies the schema and prints statistics.
.
The systemd units webmon-checker.service and webmon-writer.service are
installed but not enabled: edit /etc/webmon/config.yml (secrets go in
/etc/webmon/webmon.env), then enable them.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Besides the libraries dpkg-shlibdeps finds: the units' ExecReload runs /bin/kill (procps).
set(CPACK_DEBIAN_PACKAGE_DEPENDS procps)
# TLS probes verify against the system's CAs unless a target names its own.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS ca-certificates)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
