// The admin CLI `webmon`: subcommands `migrate` (apply the schema migrations) and `stats`
// (per-target summary from PostgreSQL). main.cpp only calls run().
#pragma once

#include <iosfwd>

namespace webmon::cli {

// Exit codes: 0 success, 1 a runtime failure (e.g. PostgreSQL unreachable, a migration refused),
// 2 a usage error or an invalid config.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace webmon::cli
