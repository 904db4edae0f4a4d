#include "support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/stack.hpp"

namespace webmon::test {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log_file,
            const std::vector<std::string>& env) {
  if (argv.empty()) throw std::invalid_argument("empty argv");
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_file.string());
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    ::execvp(args[0], args.data());
    const std::string msg = std::string("exec ") + args[0] + ": " + std::strerror(errno) + "\n";
    (void)!::write(STDERR_FILENO, msg.data(), msg.size());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file,
                           std::vector<std::string> env)
    : log_file_(std::move(log_file)) {
  pid_ = spawn(argv, log_file_, env);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void ChildProcess::signal(int sig) const {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

bool ChildProcess::running() {
  if (status_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return true;
}

std::optional<int> ChildProcess::wait_for_exit(std::chrono::milliseconds limit) {
  eventually([this] { return !running(); }, limit, std::chrono::milliseconds(20));
  return status_;
}

std::string ChildProcess::log() const {
  std::ifstream in(log_file_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::pair<int, std::string> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds limit,
                                        std::vector<std::string> env) {
  TempDir dir;
  const auto out = dir.path() / "out.log";
  ChildProcess child(argv, out, std::move(env));
  const auto status = child.wait_for_exit(limit);
  if (!status) {
    child.signal(SIGKILL);
    child.wait_for_exit(std::chrono::seconds(10));
    return {-1, child.log() + "\n[run_command: timed out]"};
  }
  return {*status, child.log()};
}

}  // namespace webmon::test
