// Unit: the one declaration of message v1 (webmon/common/message_fields.hpp) against what is
// written elsewhere by hand: the published JSON Schema (docs/message-schema.v1.json), the tables
// and the view of sql/*.sql, and the error classes. A field added to one and not the others, or
// a column of the wrong type, fails here.
#include "webmon/common/message_fields.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace webmon::v1 {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

fs::path source_dir() { return fs::path(WEBMON_SOURCE_DIR); }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) ADD_FAILURE() << "cannot read " << p;
  return ss.str();
}

// Every migration in version order, comments removed: the schema as a database ends up with it.
std::string all_sql() {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(source_dir() / "sql")) {
    if (e.path().extension() == ".sql") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) out += std::regex_replace(read(f), std::regex("--[^\n]*"), "") + "\n";
  return out;
}

struct Column {
  std::string type;
  bool not_null = false;
};

// The columns of `table`: from its CREATE TABLE, then any ALTER TABLE ... ADD COLUMN.
std::map<std::string, Column> table_columns(const std::string& sql, const std::string& table) {
  std::map<std::string, Column> out;
  std::smatch m;
  const std::regex create("CREATE TABLE " + table + R"( \(([^;]*?)\)( PARTITION BY[^;]*)?;)");
  if (!std::regex_search(sql, m, create)) {
    ADD_FAILURE() << "no CREATE TABLE " << table;
    return out;
  }
  const std::regex line(R"re(^\s*"?([a-z_]+)"?\s+([a-z]+)([^,]*))re");
  std::istringstream body(m[1].str());
  for (std::string l; std::getline(body, l);) {
    std::smatch c;
    if (!std::regex_search(l, c, line) || c[1] == "PRIMARY") continue;
    out[c[1]] = Column{c[2], c[3].str().find("NOT NULL") != std::string::npos};
  }
  const std::regex add("ALTER TABLE " + table + R"( ADD COLUMN ([a-z_]+) ([a-z]+)([^;]*);)");
  for (auto it = std::sregex_iterator(sql.begin(), sql.end(), add); it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = Column{(*it)[2], (*it)[3].str().find("NOT NULL") != std::string::npos};
  }
  return out;
}

// The output columns of the last definition of the view check_results.
std::vector<std::string> view_columns(const std::string& sql) {
  const std::regex view(R"(CREATE (OR REPLACE )?VIEW check_results AS\s+SELECT([\s\S]*?)\sFROM )");
  std::string select;
  for (auto it = std::sregex_iterator(sql.begin(), sql.end(), view); it != std::sregex_iterator(); ++it) {
    select = (*it)[2];
  }
  EXPECT_FALSE(select.empty()) << "no view check_results";
  std::vector<std::string> out;
  std::istringstream items(select);
  for (std::string item; std::getline(items, item, ',');) {
    std::smatch m;
    // "t.name AS target" is named by its alias, "c.scheduled_at" by its column.
    if (std::regex_search(item, m, std::regex(R"(AS\s+([a-z_]+)\s*$)")) ||
        std::regex_search(item, m, std::regex(R"(\.([a-z_]+)\s*$)"))) {
      out.push_back(m[1]);
    } else {
      ADD_FAILURE() << "cannot read the view's column " << item;
    }
  }
  return out;
}

const json::object& schema() {
  static const json::value v = json::parse(read(source_dir() / "docs" / "message-schema.v1.json"));
  return v.as_object();
}

// The JSON types a schema node allows: its "type", or those of a "$ref", "oneOf", "enum" or "const".
std::set<std::string> allowed_types(const json::object& node) {
  std::set<std::string> out;
  auto type_of = [](const json::value& v) -> std::string {
    if (v.is_null()) return "null";
    if (v.is_string()) return "string";
    if (v.is_bool()) return "boolean";
    if (v.is_int64() || v.is_uint64()) return "integer";
    return "number";
  };
  if (const auto* t = node.if_contains("type")) {
    if (t->is_string()) out.insert(std::string(t->as_string()));
    else for (const auto& x : t->as_array()) out.insert(std::string(x.as_string()));
  }
  if (const auto* r = node.if_contains("$ref")) {
    const std::string ref(r->as_string());
    const auto name = ref.substr(ref.rfind('/') + 1);
    const auto more = allowed_types(schema().at("$defs").at(name).as_object());
    out.insert(more.begin(), more.end());
  }
  if (const auto* one = node.if_contains("oneOf")) {
    for (const auto& x : one->as_array()) {
      const auto more = allowed_types(x.as_object());
      out.insert(more.begin(), more.end());
    }
  }
  if (const auto* e = node.if_contains("enum")) {
    for (const auto& x : e->as_array()) out.insert(type_of(x));
  }
  if (const auto* c = node.if_contains("const")) out.insert(type_of(*c));
  return out;
}

// The schema node of a field ("timings.dns" is properties.timings.properties.dns) and the object
// that holds it.
const json::object* schema_node(const FieldInfo& f, const json::object** holder) {
  const json::object* obj = &schema();
  if (!f.parent().empty()) {
    const auto* parent = obj->at("properties").as_object().if_contains(f.parent());
    if (!parent) return nullptr;
    obj = &parent->as_object();
  }
  *holder = obj;
  const auto* node = obj->at("properties").as_object().if_contains(f.key());
  return node ? &node->as_object() : nullptr;
}

std::set<std::string> expected_types(const FieldInfo& f) {
  std::set<std::string> out;
  switch (f.json) {
    case Json::version:
    case Json::status:
    case Json::count: out = {"integer"}; break;
    case Json::name:
    case Json::string:
    case Json::time:
    case Json::error_class: out = {"string"}; break;
    case Json::seconds: out = {"number"}; break;
    case Json::boolean: out = {"boolean"}; break;
    case Json::object: out = {"object"}; break;
  }
  if (f.null != Null::no) out.insert("null");
  return out;
}

TEST(MessageFields, TheJsonSchemaHasEveryFieldWithItsTypeAndNothingElse) {
  for (const auto& f : kFieldInfo) {
    SCOPED_TRACE(std::string(f.name));
    const json::object* holder = nullptr;
    const auto* node = schema_node(f, &holder);
    ASSERT_NE(node, nullptr) << "not in docs/message-schema.v1.json";
    EXPECT_EQ(allowed_types(*node), expected_types(f));
    bool required = false;
    for (const auto& r : holder->at("required").as_array()) required = required || r.as_string() == f.key();
    // An added field is absent from older messages (a when_set one also from messages without a
    // value), so the schema cannot require it.
    EXPECT_EQ(required, !may_be_absent(f.null));
  }
  // And the other way: every property the schema defines is a field of the table.
  std::size_t properties = 0;
  for (const auto& [key, node] : schema().at("properties").as_object()) {
    ++properties;
    EXPECT_NE(field_index(key), kFieldCount) << key << " is in the JSON Schema, not in the field table";
    if (const auto* inner = node.as_object().if_contains("properties")) {
      for (const auto& [sub, ignored] : inner->as_object()) {
        ++properties;
        EXPECT_NE(field_index(std::string(key) + "." + std::string(sub)), kFieldCount)
            << key << "." << sub << " is in the JSON Schema, not in the field table";
      }
    }
  }
  EXPECT_EQ(properties, kFieldCount);
}

TEST(MessageFields, BoundsAndErrorClassesAreTheSchemas) {
  const auto& props = schema().at("properties").as_object();
  EXPECT_EQ(props.at("schema_version").at("const").as_int64(), kSchemaVersion);
  EXPECT_EQ(props.at("target").at("minLength").as_int64(), 1);  // Json::name
  EXPECT_EQ(props.at("http_status").at("minimum").as_int64(), 0);  // Json::status
  EXPECT_EQ(props.at("http_status").at("maximum").as_int64(), 999);
  for (const char* count : {"body_bytes", "redirects"}) EXPECT_EQ(props.at(count).at("minimum").as_int64(), 0);
  std::vector<std::string> names;
  for (const auto& e : props.at("error").at("enum").as_array()) {
    if (!e.is_null()) names.emplace_back(e.as_string());
  }
  std::vector<std::string> classes;
  for (const auto& c : kErrorClasses) classes.emplace_back(c.name);
  EXPECT_EQ(names, classes);
}

std::string sql_type(Sql s) {
  switch (s) {
    case Sql::timestamptz: return "timestamptz";
    case Sql::real: return "real";
    case Sql::smallint:
    case Sql::error_id:
    case Sql::location_id: return "smallint";
    case Sql::integer:
    case Sql::target_id:
    case Sql::checker_id: return "integer";
    case Sql::boolean: return "boolean";
    case Sql::text:
    case Sql::target_url: return "text";
    case Sql::inet: return "inet";
    case Sql::none: return "";
  }
  return "";
}

TEST(MessageFields, EveryColumnOfChecksIsAFieldsWithTheFieldsTypeAndNullability) {
  const auto sql = all_sql();
  const auto checks = table_columns(sql, "checks");
  ASSERT_FALSE(checks.empty());
  std::set<std::string> filled;
  for (const auto& f : kFieldInfo) {
    SCOPED_TRACE(std::string(f.name));
    if (f.sql == Sql::none || f.sql == Sql::target_url) {
      EXPECT_EQ(f.columns[0], nullptr);
      continue;
    }
    ASSERT_NE(f.columns[0], nullptr);
    const auto it = checks.find(f.columns[0]);
    ASSERT_NE(it, checks.end()) << "checks has no column " << f.columns[0];
    EXPECT_EQ(it->second.type, sql_type(f.sql));
    EXPECT_EQ(it->second.not_null, f.null == Null::no);
    filled.insert(f.columns[0]);
    if (f.sql == Sql::inet) {
      ASSERT_NE(f.columns[1], nullptr) << "the port's column";
      const auto port = checks.find(f.columns[1]);
      ASSERT_NE(port, checks.end()) << "checks has no column " << f.columns[1];
      EXPECT_EQ(port->second.type, "integer");
      EXPECT_FALSE(port->second.not_null);
      filled.insert(f.columns[1]);
    } else {
      EXPECT_EQ(f.columns[1], nullptr);
    }
  }
  // No column of checks is left for the COPY to leave NULL, and the COPY's list is the same set.
  std::set<std::string> table;
  for (const auto& [name, column] : checks) table.insert(name);
  EXPECT_EQ(filled, table);
  EXPECT_EQ(std::set<std::string>(kColumns.begin(), kColumns.end()), table);
  EXPECT_EQ(kColumns.size(), table.size());
}

TEST(MessageFields, TargetsAndCheckersHoldTheNamesTheIdsStandFor) {
  const auto sql = all_sql();
  const auto targets = table_columns(sql, "targets");
  const auto checkers = table_columns(sql, "checkers");
  const auto locations = table_columns(sql, "locations");
  for (const auto& f : kFieldInfo) {
    SCOPED_TRACE(std::string(f.name));
    const Column* column = nullptr;
    if (f.sql == Sql::target_id) column = &targets.at("name");
    else if (f.sql == Sql::target_url) column = &targets.at(std::string(f.name));
    else if (f.sql == Sql::checker_id) column = &checkers.at("name");
    else if (f.sql == Sql::location_id) column = &locations.at("name");
    if (!column) continue;
    EXPECT_EQ(column->type, "text");
    EXPECT_TRUE(column->not_null);
  }
}

TEST(MessageFields, TheViewShowsTheViewFieldsUnderTheirNamesInTheTablesOrder) {
  std::vector<std::string> expected;
  for (const auto& f : kFieldInfo) {
    if (f.in_view) expected.emplace_back(f.name);
  }
  EXPECT_EQ(view_columns(all_sql()), expected);
  // The view is a public interface: its first columns are those it was released with, as they were.
  const std::vector<std::string> released = {"target", "url", "scheduled_at", "started_at", "http_response_time",
                                             "http_status", "regexp_match", "ok", "error", "error_detail"};
  ASSERT_GE(expected.size(), released.size());
  EXPECT_EQ(std::vector<std::string>(expected.begin(), expected.begin() + static_cast<long>(released.size())),
            released);
}

TEST(MessageFields, ErrorClassesTableHoldsTheMapping) {
  const auto sql = all_sql();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(sql, m, std::regex(R"(INSERT INTO error_classes \(id, name\) VALUES([^;]*);)")));
  std::vector<std::pair<int, std::string>> rows;
  const std::string values = m[1];
  const std::regex row(R"(\((\d+), '([a-z_]+)'\))");
  for (auto it = std::sregex_iterator(values.begin(), values.end(), row); it != std::sregex_iterator(); ++it) {
    rows.emplace_back(std::stoi((*it)[1]), (*it)[2]);
  }
  std::vector<std::pair<int, std::string>> expected;
  for (const auto& c : kErrorClasses) expected.emplace_back(c.id, std::string(c.name));
  EXPECT_EQ(rows, expected);
}

TEST(MessageFields, TheEncoderWritesTheTablesFieldsInItsOrder) {
  // The codec is built from the table; this holds the built thing to it from the outside.
  CheckResult r;
  r.target = "t";
  r.checker = "c";
  r.dns_cached = true;
  r.location = "l";  // written only when set
  const auto text = encode_check_result(r);
  const auto v = json::parse(text).as_object();
  std::vector<std::string> keys;
  for (const auto& [key, value] : v) {
    keys.emplace_back(key);
    if (value.is_object()) {
      for (const auto& [sub, ignored] : value.as_object()) keys.push_back(std::string(key) + "." + std::string(sub));
    }
  }
  std::vector<std::string> expected;
  for (const auto& f : kFieldInfo) expected.emplace_back(f.name);
  EXPECT_EQ(keys, expected) << text;
}

}  // namespace
}  // namespace webmon::v1
