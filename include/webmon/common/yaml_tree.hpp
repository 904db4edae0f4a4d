// The config file as a compact tree built from yaml-cpp's parser events. yaml-cpp's own Node tree
// costs about 4 KiB per target (460 MB for 100,000 targets, measured); this one keeps a 20-byte
// record per node, the children's ids in one array and the scalars in one string, with the same
// marks (positions) yaml-cpp reports. Anchors and aliases are resolved to shared nodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>

namespace webmon::yaml {

enum class NodeKind : std::uint8_t { undefined, null, scalar, sequence, map };

class Tree;

// A view of one node; cheap to copy, valid while its Tree lives.
class Node {
 public:
  Node() = default;
  Node(const Tree* tree, std::uint32_t id) : tree_(tree), id_(id) {}
  NodeKind kind() const;
  bool IsDefined() const { return kind() != NodeKind::undefined; }
  bool IsNull() const { return kind() == NodeKind::null; }
  bool IsScalar() const { return kind() == NodeKind::scalar; }
  bool IsSequence() const { return kind() == NodeKind::sequence; }
  bool IsMap() const { return kind() == NodeKind::map; }
  std::string Scalar() const;
  YAML::Mark Mark() const;
  std::size_t size() const;              // elements of a sequence, pairs of a map
  Node operator[](std::size_t i) const;  // element i of a sequence
  Node key(std::size_t i) const;         // pair i of a map
  Node value(std::size_t i) const;

 private:
  const Tree* tree_ = nullptr;
  std::uint32_t id_ = 0;
};

// "a mapping", "a list", "a scalar", "nothing": for error messages.
std::string kind_name(const Node& n);

class Tree final : public YAML::EventHandler {
 public:
  // Parses the first document; throws YAML::ParserException like YAML::Load.
  explicit Tree(std::string_view text);
  Node root() const { return root_ == kNone ? Node() : Node(this, root_); }

 private:
  friend class Node;
  static constexpr std::uint32_t kNone = 0xffffffff;
  struct Record {
    NodeKind kind;
    std::int32_t line;
    std::int32_t column;
    std::uint32_t begin;  // scalar: offset in text_; container: offset in kids_
    std::uint32_t count;  // scalar: length; container: number of kids
  };

  std::uint32_t add(NodeKind kind, const YAML::Mark& mark, std::uint32_t begin = 0, std::uint32_t count = 0);
  void attach(std::uint32_t id);
  void remember(YAML::anchor_t anchor, std::uint32_t id);
  void open(NodeKind kind, const YAML::Mark& mark, YAML::anchor_t anchor);
  void close();

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override;
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override;
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override;
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override;
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override;
  void OnMapEnd() override { close(); }

  std::vector<Record> nodes_;
  std::vector<std::uint32_t> kids_;
  std::string text_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> open_;  // container id, first pending kid
  std::vector<std::uint32_t> pending_;                          // kids of the open containers
  std::unordered_map<YAML::anchor_t, std::uint32_t> anchors_;
  std::uint32_t root_ = kNone;
};

}  // namespace webmon::yaml
