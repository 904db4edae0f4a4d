// A real binary run as a child process by a test: its output goes to a log file the test can read,
// it can be signalled, waited for, and is killed (by its pid, which the test started) when the
// test lets go of it.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace webmon::test {

class ChildProcess {
 public:
  // Starts argv[0] with the arguments; `env` entries (NAME=value) are added to this process's
  // environment. stdout and stderr go to `log_file`.
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file,
               std::vector<std::string> env = {});
  ~ChildProcess();  // SIGKILL and reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  bool running();
  // The exit status (exit code, or 128+signal) once it has exited within `limit`; nullopt otherwise.
  std::optional<int> wait_for_exit(std::chrono::milliseconds limit);
  // Everything it has written so far.
  std::string log() const;
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_file_;
};

// Runs a command to completion (stdout+stderr captured); returns {exit status, output}.
std::pair<int, std::string> run_command(const std::vector<std::string>& argv,
                                        std::chrono::milliseconds limit = std::chrono::minutes(2),
                                        std::vector<std::string> env = {});

}  // namespace webmon::test
