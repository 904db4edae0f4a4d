// The values with rules of their own (lists, mappings, names, URLs, regexps), each read into
// its section's struct; config.cpp's tables name them in their rows. Private to src/common.
#pragma once

#include <string>
#include <string_view>

#include "config_reader.hpp"

namespace webmon::config_detail {

// Kafka's characters for topic names and group.instance.id: ASCII letters, digits, . _ -
bool kafka_name_chars(std::string_view v) noexcept;

void parse_bootstrap(Reader& r, const Field& f, const std::string& path, KafkaConfig& k);
void parse_topic(Reader& r, const Field& f, const std::string& path, KafkaConfig& k);
void parse_coordination_topic(Reader& r, const Field& f, const std::string& path, KafkaConfig& k);
void parse_properties(Reader& r, const Field& f, const std::string& path, KafkaConfig& k);
void parse_mechanism(Reader& r, const Field& f, const std::string& path, KafkaSasl& s);
void parse_password(Reader& r, const Field& f, const std::string& path, KafkaSasl& s);
void parse_servers(Reader& r, const Field& f, const std::string& path, CheckerDns& d);
void parse_checker_id(Reader& r, const Field& f, const std::string& path, CheckerSection& c);
void parse_writer_id(Reader& r, const Field& f, const std::string& path, WriterSection& w);
void parse_location(Reader& r, const Field& f, const std::string& path, CheckerSection& c);
void parse_group(Reader& r, const Field& f, const std::string& path, CheckerSection& c);
void parse_name(Reader& r, const Field& f, const std::string& path, TargetConfig& t);
void parse_url(Reader& r, const Field& f, const std::string& path, TargetConfig& t);
void parse_regexp(Reader& r, const Field& f, const std::string& path, TargetConfig& t);
void parse_ca_file(Reader& r, const Field& f, const std::string& path, TargetConfig& t);
void parse_headers(Reader& r, const Field& f, const std::string& path, TargetConfig& t);
void parse_status_codes(Reader& r, const Field& f, const std::string& path, TargetConfig& t);

}  // namespace webmon::config_detail
