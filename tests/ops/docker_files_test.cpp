// No Docker engine runs here, so docker-compose.yml, the compose config, the Grafana provisioning
// and the Dockerfile are checked statically against each other and against the code's defaults:
// the hosts and ports the config names are the ones compose serves, every service has a
// healthcheck, the daemons' healthchecks ask the port their metrics_listen binds, and so on.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "webmon/common/config.hpp"
#include "webmon/common/metrics_server.hpp"

namespace {

namespace fs = std::filesystem;
const fs::path kSource(WEBMON_SOURCE_DIR);

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split(const std::string& hp) {
  HostPort out;
  EXPECT_TRUE(webmon::split_host_port(hp, out.host, out.port)) << hp;
  return out;
}

// postgresql://user:password@host:port/db
struct PgUri {
  std::string user, password, host, port, db;
};
PgUri parse_pg_uri(const std::string& uri) {
  static const std::regex re(R"(^postgres(?:ql)?://([^:@/]+):([^@/]*)@([^:/]+):([0-9]+)/([^?]+).*$)");
  std::smatch m;
  EXPECT_TRUE(std::regex_match(uri, m, re)) << uri;
  if (m.empty()) return {};
  return {m[1], m[2], m[3], m[4], m[5]};
}

// The "host:port" of a URL like http://127.0.0.1:9102/readyz, and its path.
std::pair<HostPort, std::string> parse_http(const std::string& url) {
  static const std::regex re(R"(^http://([^/]+)(/.*)$)");
  std::smatch m;
  EXPECT_TRUE(std::regex_match(url, m, re)) << url;
  if (m.empty()) return {};
  return {split(m[1]), m[2]};
}

std::vector<std::string> strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  for (const auto& n : seq) out.push_back(n.as<std::string>());
  return out;
}

class DockerFiles : public ::testing::Test {
 protected:
  YAML::Node compose_ = YAML::LoadFile((kSource / "docker-compose.yml").string());
  YAML::Node services_ = compose_["services"];
};

TEST_F(DockerFiles, ServicesImagesAndHealthchecks) {
  ASSERT_TRUE(services_.IsMap());
  std::set<std::string> names;
  for (const auto& kv : services_) names.insert(kv.first.as<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"kafka", "postgres", "checker", "writer", "grafana"}));

  EXPECT_EQ(services_["kafka"]["image"].as<std::string>().rfind("apache/kafka:", 0), 0u);
  EXPECT_EQ(services_["postgres"]["image"].as<std::string>().rfind("postgres:", 0), 0u);
  EXPECT_EQ(services_["grafana"]["image"].as<std::string>().rfind("grafana/grafana:", 0), 0u);
  for (const char* daemon : {"checker", "writer"}) {
    SCOPED_TRACE(daemon);
    EXPECT_EQ(services_[daemon]["build"]["dockerfile"].as<std::string>(), "docker/Dockerfile");
    EXPECT_EQ(services_[daemon]["build"]["context"].as<std::string>(), ".");
  }
  for (const auto& kv : services_) {
    SCOPED_TRACE(kv.first.as<std::string>());
    const auto test = kv.second["healthcheck"]["test"];
    ASSERT_TRUE(test.IsSequence());
    EXPECT_TRUE(test[0].as<std::string>() == "CMD" || test[0].as<std::string>() == "CMD-SHELL");
  }
  // Kafka runs KRaft, one node that is both broker and controller.
  const auto kenv = services_["kafka"]["environment"];
  EXPECT_EQ(kenv["KAFKA_PROCESS_ROLES"].as<std::string>(), "broker,controller");
  EXPECT_EQ(kenv["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"].as<int>(), 1);
}

TEST_F(DockerFiles, NamedVolumesAreDeclared) {
  const auto volumes = compose_["volumes"];
  bool pg_data = false;
  for (const auto& kv : services_) {
    for (const auto& v : strings(kv.second["volumes"])) {
      const std::string source = v.substr(0, v.find(':'));
      if (source.rfind("./", 0) == 0) {
        EXPECT_TRUE(fs::exists(kSource / source.substr(2))) << v;  // bind mounts exist in the repo
      } else {
        EXPECT_TRUE(volumes[source].IsDefined()) << "undeclared volume " << source;
      }
      if (kv.first.as<std::string>() == "postgres" && v.find(":/var/lib/postgresql/data") != std::string::npos) {
        pg_data = source.rfind("./", 0) != 0;
      }
    }
  }
  EXPECT_TRUE(pg_data) << "postgres keeps its data in a named volume";
  // Kafka's log too: the writer's offsets live in PostgreSQL, a fresh log would not match them.
  const std::string log_dirs = services_["kafka"]["environment"]["KAFKA_LOG_DIRS"].as<std::string>();
  const auto kafka_volumes = strings(services_["kafka"]["volumes"]);
  ASSERT_EQ(kafka_volumes.size(), 1u);
  EXPECT_EQ(kafka_volumes[0].substr(kafka_volumes[0].find(':') + 1), log_dirs);
  EXPECT_TRUE(volumes[kafka_volumes[0].substr(0, kafka_volumes[0].find(':'))].IsDefined());
}

TEST_F(DockerFiles, DaemonsRunTheMountedConfigAndWaitForHealthyDependencies) {
  for (const char* daemon : {"checker", "writer"}) {
    SCOPED_TRACE(daemon);
    const auto svc = services_[daemon];
    const auto volumes = strings(svc["volumes"]);
    EXPECT_NE(std::find(volumes.begin(), volumes.end(), "./config:/etc/webmon:ro"), volumes.end());

    const auto command = strings(svc["command"]);
    ASSERT_EQ(command.size(), 3u);
    EXPECT_EQ(command[0], std::string("webmon-") + daemon);
    EXPECT_EQ(command[1], "--config");
    EXPECT_EQ(svc["environment"]["WEBMON_CONFIG"].as<std::string>(), command[2]);
    ASSERT_EQ(command[2].rfind("/etc/webmon/", 0), 0u);
    EXPECT_TRUE(fs::exists(kSource / "config" / command[2].substr(12))) << command[2];

    EXPECT_EQ(svc["depends_on"]["kafka"]["condition"].as<std::string>(), "service_healthy");
  }
  EXPECT_EQ(services_["writer"]["depends_on"]["postgres"]["condition"].as<std::string>(), "service_healthy");
  EXPECT_EQ(services_["grafana"]["depends_on"]["postgres"]["condition"].as<std::string>(), "service_healthy");
}

TEST_F(DockerFiles, ComposeConfigNamesTheComposeServices) {
  const std::string path = strings(services_["writer"]["command"])[2];
  const auto cfg = YAML::LoadFile((kSource / "config" / path.substr(12)).string());

  // Kafka: the config's bootstrap server is the listener compose advertises on its network.
  const HostPort kafka = split(cfg["kafka"]["bootstrap_servers"].as<std::string>());
  EXPECT_TRUE(services_[kafka.host].IsDefined()) << kafka.host;
  const std::string advertised = services_["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].as<std::string>();
  EXPECT_NE(advertised.find("PLAINTEXT://" + kafka.host + ":" + kafka.port), std::string::npos) << advertised;
  EXPECT_NE(services_["kafka"]["environment"]["KAFKA_LISTENERS"].as<std::string>().find("PLAINTEXT://:" + kafka.port),
            std::string::npos);

  // PostgreSQL: host, port, user, password and database agree with the postgres service.
  const PgUri pg = parse_pg_uri(cfg["postgres"]["uri"].as<std::string>());
  const auto penv = services_["postgres"]["environment"];
  EXPECT_TRUE(services_[pg.host].IsDefined()) << pg.host;
  EXPECT_EQ(pg.host, "postgres");
  EXPECT_EQ(pg.port, "5432");
  EXPECT_EQ(pg.user, penv["POSTGRES_USER"].as<std::string>());
  EXPECT_EQ(pg.password, penv["POSTGRES_PASSWORD"].as<std::string>());
  EXPECT_EQ(pg.db, penv["POSTGRES_DB"].as<std::string>());

  // Each daemon's healthcheck asks its own metrics endpoint, which must listen beyond loopback
  // only if something outside the container asks; here the check runs inside, on 127.0.0.1.
  for (const char* daemon : {"checker", "writer"}) {
    SCOPED_TRACE(daemon);
    const HostPort listen = split(cfg[daemon]["metrics_listen"].as<std::string>());
    const auto test = strings(services_[daemon]["healthcheck"]["test"]);
    ASSERT_GE(test.size(), 2u);
    const auto [hp, http_path] = parse_http(test.back());
    EXPECT_EQ(hp.host, "127.0.0.1");
    EXPECT_EQ(hp.port, listen.port);
    EXPECT_TRUE(http_path == "/readyz" || http_path == "/healthz") << http_path;
    // The published port is the metrics port, on the host's loopback.
    const auto ports = strings(services_[daemon]["ports"]);
    ASSERT_EQ(ports.size(), 1u);
    EXPECT_EQ(ports[0], "127.0.0.1:" + listen.port + ":" + listen.port);
  }
  EXPECT_TRUE(cfg["targets"].IsSequence());
  EXPECT_GE(cfg["targets"].size(), 1u);
}

TEST_F(DockerFiles, PublishedPortsMatchTheLocalExampleConfig) {
  // From the host, compose looks like scripts/stack: Kafka 127.0.0.1:9092, PostgreSQL 127.0.0.1:5432,
  // so that the example config and `webmon stats` work against either.
  EXPECT_EQ(strings(services_["kafka"]["ports"]), std::vector<std::string>{"127.0.0.1:9092:29092"});
  EXPECT_NE(services_["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].as<std::string>().find("://127.0.0.1:9092"),
            std::string::npos);
  EXPECT_NE(services_["kafka"]["environment"]["KAFKA_LISTENERS"].as<std::string>().find("://:29092"),
            std::string::npos);
  EXPECT_EQ(strings(services_["postgres"]["ports"]), std::vector<std::string>{"127.0.0.1:5432:5432"});

  const fs::path example = kSource / "config/config.example.yml";
  if (!fs::exists(example)) GTEST_SKIP() << "config/config.example.yml not written yet";
  const auto cfg = YAML::LoadFile(example.string());
  const std::string bootstrap = cfg["kafka"]["bootstrap_servers"].as<std::string>();
  EXPECT_NE(bootstrap.find("127.0.0.1:9092"), std::string::npos) << bootstrap;
  const std::string uri = cfg["postgres"]["uri"].as<std::string>();
  EXPECT_NE(uri.find("@127.0.0.1:5432/webmon"), std::string::npos) << uri;
}

TEST_F(DockerFiles, GrafanaProvisioning) {
  const auto grafana = services_["grafana"];
  std::string provisioning_mount, dashboards_mount;
  for (const auto& v : strings(grafana["volumes"])) {
    if (v.rfind("./docker/grafana/provisioning:", 0) == 0) provisioning_mount = v;
    if (v.rfind("./docker/grafana/dashboards:", 0) == 0) dashboards_mount = v;
  }
  EXPECT_EQ(provisioning_mount, "./docker/grafana/provisioning:/etc/grafana/provisioning:ro");
  ASSERT_FALSE(dashboards_mount.empty());
  const std::string dashboards_dir = dashboards_mount.substr(dashboards_mount.find(':') + 1,
                                                             dashboards_mount.rfind(':') - dashboards_mount.find(':') - 1);

  const auto ds = YAML::LoadFile((kSource / "docker/grafana/provisioning/datasources/webmon.yml").string());
  const auto source = ds["datasources"][0];
  EXPECT_EQ(source["type"].as<std::string>(), "postgres");
  const auto penv = services_["postgres"]["environment"];
  EXPECT_EQ(source["url"].as<std::string>(), "postgres:5432");
  EXPECT_EQ(source["user"].as<std::string>(), penv["POSTGRES_USER"].as<std::string>());
  EXPECT_EQ(source["jsonData"]["database"].as<std::string>(), penv["POSTGRES_DB"].as<std::string>());
  EXPECT_EQ(source["secureJsonData"]["password"].as<std::string>(), penv["POSTGRES_PASSWORD"].as<std::string>());
  const std::string uid = source["uid"].as<std::string>();

  const auto provider = YAML::LoadFile((kSource / "docker/grafana/provisioning/dashboards/webmon.yml").string());
  EXPECT_EQ(provider["providers"][0]["options"]["path"].as<std::string>(), dashboards_dir);

  // Every panel and the target variable query the provisioned data source.
  const auto dash = boost::json::parse(read_file(kSource / "docker/grafana/dashboards/webmon.json")).as_object();
  const auto& panels = dash.at("panels").as_array();
  EXPECT_GE(panels.size(), 5u);
  std::set<std::string> titles;
  for (const auto& p : panels) {
    const auto& panel = p.as_object();
    titles.insert(std::string(panel.at("title").as_string()));
    EXPECT_EQ(panel.at("datasource").at("uid").as_string(), uid);
    for (const auto& t : panel.at("targets").as_array()) {
      EXPECT_EQ(t.at("datasource").at("uid").as_string(), uid);
      EXPECT_FALSE(t.at("rawSql").as_string().empty());
    }
  }
  for (const char* want : {"Response time per target", "Availability", "Status codes", "Errors by class",
                           "Checker lateness"}) {
    EXPECT_EQ(titles.count(want), 1u) << want;
  }
}

TEST_F(DockerFiles, ComposeConfigIsValidForEveryComponent) {
  // The daemons' own loader, as they will read it in the containers (no ${VAR} needed).
  const fs::path file = kSource / "config/compose.yml";
  const auto no_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  for (const auto component : {webmon::Component::checker, webmon::Component::writer, webmon::Component::admin}) {
    const auto load = webmon::parse_config(read_file(file), file, component, no_env);
    std::string errors;
    for (const auto& e : load.errors) errors += e.to_string() + "\n";
    ASSERT_TRUE(load.ok()) << errors;
    EXPECT_EQ(load.config->kafka.bootstrap_servers, "kafka:9092");
    EXPECT_EQ(load.config->checker.metrics_listen, "0.0.0.0:9101");
    EXPECT_EQ(load.config->writer.metrics_listen, "0.0.0.0:9102");
  }
  // The example config, which the published ports mirror: compose runs the same targets and
  // settings, only the hosts and the listen addresses differ.
  const fs::path example = kSource / "config/config.example.yml";
  const auto ex = webmon::load_config(example, webmon::Component::checker);
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex.config->kafka.bootstrap_servers, "127.0.0.1:9092");
  const auto co = webmon::parse_config(read_file(file), file, webmon::Component::checker, no_env);
  ASSERT_TRUE(co.ok());
  const webmon::Config& a = *ex.config;
  const webmon::Config& b = *co.config;
  EXPECT_EQ(b.kafka.topic, a.kafka.topic);
  EXPECT_EQ(b.kafka.topic_partitions, a.kafka.topic_partitions);
  EXPECT_EQ(b.writer.group_id, a.writer.group_id);
  EXPECT_EQ(b.writer.retention_days, a.writer.retention_days);
  EXPECT_EQ(b.checker.per_target_metrics, a.checker.per_target_metrics);
  EXPECT_EQ(b.log_format, a.log_format);
  EXPECT_EQ(split(b.checker.metrics_listen).port, split(a.checker.metrics_listen).port);
  EXPECT_EQ(split(b.writer.metrics_listen).port, split(a.writer.metrics_listen).port);
  ASSERT_EQ(b.targets.size(), a.targets.size());
  for (std::size_t i = 0; i < a.targets.size(); ++i) {
    EXPECT_EQ(b.targets[i].name, a.targets[i].name);
    EXPECT_TRUE(b.targets[i].same_probe(a.targets[i])) << a.targets[i].name;
  }
}

TEST(Dockerfile, MultiStageOnBookwormSlimWithInstallDepsAndANonRootUser) {
  const std::string text = read_file(kSource / "docker/Dockerfile");
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> froms;
  std::string user, base_arg;
  bool build_deps = false, runtime_deps = false, copies_sql = false, copies_binaries = false;
  while (std::getline(in, line)) {
    if (line.rfind("FROM ", 0) == 0) froms.push_back(line);
    if (line.rfind("ARG BASE_IMAGE=", 0) == 0 && froms.empty()) base_arg = line.substr(15);
    if (line.rfind("USER ", 0) == 0) user = line.substr(5);
    if (line.find("install-deps --build") != std::string::npos) build_deps = true;
    if (line.find("install-deps --runtime") != std::string::npos) runtime_deps = true;
    if (line.rfind("COPY sql/ ", 0) == 0) copies_sql = true;
    if (line.rfind("COPY --from=build", 0) == 0 && line.find("webmon-checker") != std::string::npos &&
        line.find("webmon-writer") != std::string::npos && line.find("/bin/webmon ") != std::string::npos) {
      copies_binaries = true;
    }
  }
  ASSERT_EQ(froms.size(), 2u);
  // Both stages on the one base: debian:bookworm-slim unless scripts/image passes its own.
  EXPECT_EQ(base_arg, "debian:bookworm-slim");
  for (const auto& f : froms) EXPECT_EQ(f.rfind("FROM ${BASE_IMAGE}", 0), 0u) << f;
  EXPECT_TRUE(build_deps);
  EXPECT_TRUE(runtime_deps);
  EXPECT_TRUE(copies_sql);
  EXPECT_TRUE(copies_binaries);
  EXPECT_FALSE(user.empty());
  EXPECT_NE(user.substr(0, user.find(':')), "root");
  EXPECT_NE(user.substr(0, user.find(':')), "0");
  // The runtime stage's package list names packages; the healthchecks need curl in it.
  const std::string deps = read_file(kSource / "scripts/install-deps");
  const auto runtime = deps.substr(deps.find("runtime_pkgs=("), deps.find(")", deps.find("runtime_pkgs=(")) -
                                                                     deps.find("runtime_pkgs=("));
  EXPECT_NE(runtime.find("curl"), std::string::npos);
  EXPECT_NE(runtime.find("libpqxx-6.4"), std::string::npos);
  EXPECT_TRUE(fs::exists(kSource / ".dockerignore"));
}

}  // namespace
