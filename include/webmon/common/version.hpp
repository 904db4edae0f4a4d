// The version every binary reports (--version, User-Agent, the `checker` field's software).
#pragma once

#include <string_view>

namespace webmon {

std::string_view version() noexcept;

}  // namespace webmon
