#include "webmon/common/version.hpp"

namespace webmon {

std::string_view version() noexcept { return WEBMON_VERSION; }

}  // namespace webmon
