#include "webmon/common/yaml_tree.hpp"

#include <sstream>

#include <yaml-cpp/parser.h>

namespace webmon::yaml {

Tree::Tree(std::string_view text) {
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  parser.HandleNextDocument(*this);
}

std::uint32_t Tree::add(NodeKind kind, const YAML::Mark& mark, std::uint32_t begin, std::uint32_t count) {
  const auto id = static_cast<std::uint32_t>(nodes_.size());
  nodes_.push_back({kind, mark.line, mark.column, begin, count});
  attach(id);
  return id;
}

void Tree::attach(std::uint32_t id) {
  if (open_.empty()) {
    if (root_ == kNone) root_ = id;
  } else {
    pending_.push_back(id);
  }
}

void Tree::remember(YAML::anchor_t anchor, std::uint32_t id) {
  if (anchor != YAML::NullAnchor) anchors_[anchor] = id;
}

void Tree::open(NodeKind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
  const auto id = add(kind, mark);
  remember(anchor, id);
  open_.push_back({id, static_cast<std::uint32_t>(pending_.size())});
}

void Tree::close() {
  const auto [id, first] = open_.back();
  open_.pop_back();
  nodes_[id].begin = static_cast<std::uint32_t>(kids_.size());
  nodes_[id].count = static_cast<std::uint32_t>(pending_.size() - first);
  kids_.insert(kids_.end(), pending_.begin() + first, pending_.end());
  pending_.resize(first);
}

void Tree::OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) { remember(anchor, add(NodeKind::null, mark)); }

void Tree::OnAlias(const YAML::Mark&, YAML::anchor_t anchor) {
  if (auto it = anchors_.find(anchor); it != anchors_.end()) attach(it->second);
}

void Tree::OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) {
  const auto begin = static_cast<std::uint32_t>(text_.size());
  text_ += value;
  remember(anchor, add(NodeKind::scalar, mark, begin, static_cast<std::uint32_t>(value.size())));
}

void Tree::OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                           YAML::EmitterStyle::value) {
  open(NodeKind::sequence, mark, anchor);
}

void Tree::OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) {
  open(NodeKind::map, mark, anchor);
}

NodeKind Node::kind() const { return tree_ ? tree_->nodes_[id_].kind : NodeKind::undefined; }

std::string Node::Scalar() const {
  if (!IsScalar()) return {};
  const auto& r = tree_->nodes_[id_];
  return tree_->text_.substr(r.begin, r.count);
}

YAML::Mark Node::Mark() const {
  if (!tree_) return YAML::Mark::null_mark();
  YAML::Mark m;
  m.line = tree_->nodes_[id_].line;
  m.column = tree_->nodes_[id_].column;
  return m;
}

std::size_t Node::size() const {
  if (!IsSequence() && !IsMap()) return 0;
  const auto n = tree_->nodes_[id_].count;
  return IsMap() ? n / 2 : n;
}

Node Node::operator[](std::size_t i) const { return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + i]); }
Node Node::key(std::size_t i) const { return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + 2 * i]); }
Node Node::value(std::size_t i) const { return Node(tree_, tree_->kids_[tree_->nodes_[id_].begin + 2 * i + 1]); }

std::string kind_name(const Node& n) {
  switch (n.kind()) {
    case NodeKind::map: return "a mapping";
    case NodeKind::sequence: return "a list";
    case NodeKind::scalar: return "a scalar";
    default: return "nothing";
  }
}

}  // namespace webmon::yaml
