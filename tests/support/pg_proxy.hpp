// A TCP proxy in front of the stack's PostgreSQL that reads the wire protocol and loses one
// COMMIT on purpose: the real writer's "commit outcome unknown" path, driven by a real lost
// COMMIT instead of an exception thrown by a test hook.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace webmon::test {

class PgCommitLoser {
 public:
  enum class Mode {
    lose_reply,   // COMMIT reaches the server and commits; the connection dies before the reply
    lose_commit,  // the connection dies with the COMMIT unsent: the server rolls back
  };
  // Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:pg_port. Connect with
  // sslmode=disable and gssencmode=disable, so that the protocol stays readable.
  PgCommitLoser(unsigned short pg_port, Mode mode);
  ~PgCommitLoser();
  PgCommitLoser(const PgCommitLoser&) = delete;
  PgCommitLoser& operator=(const PgCommitLoser&) = delete;

  unsigned short port() const { return port_; }
  // `uri` (postgresql://user:pw@127.0.0.1:PORT/db) pointed at the proxy instead.
  std::string uri_through(const std::string& uri) const;
  // The next COMMIT that ends a transaction which ran a COPY (a batch of the writer) is lost.
  void arm() { armed_ = true; }
  int lost() const { return lost_; }

 private:
  void accept_loop();
  void serve(int client);

  unsigned short pg_port_;
  Mode mode_;
  int listener_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> armed_{false};
  std::atomic<int> lost_{0};
  std::mutex mutex_;
  std::vector<std::thread> sessions_;
  std::thread acceptor_;
};

}  // namespace webmon::test
