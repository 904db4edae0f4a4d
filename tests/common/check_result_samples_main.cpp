// Prints sample CheckResults encoded as v1 messages, one per line, for validate_messages.py to
// check against docs/message-schema.v1.json.
#include <iostream>

#include "check_result_samples.hpp"

int main() {
  for (const auto& r : webmon::test::sample_results()) std::cout << webmon::encode_check_result(r) << '\n';
  return 0;
}
