// webmon-writer as a whole: signals, metrics endpoint, migrations at start, then the ingest loop
// until SIGTERM/SIGINT. main() only parses the command line and calls run_writer().
#pragma once

#include "webmon/common/config.hpp"

namespace webmon::writer {

// Runs until SIGTERM or SIGINT; returns the process exit code (0 after a clean stop, 1 when the
// schema was refused or a setting was rejected). Blocks SIGINT/SIGTERM/SIGHUP in the calling
// thread first, so call it before any other thread is started. On SIGHUP the file at
// `config_path` is read again: log_format is applied, every other changed key is logged as needing
// a restart (config_keys.hpp); a bad file changes nothing.
int run_writer(const Config& config, const std::filesystem::path& config_path = {});

}  // namespace webmon::writer
