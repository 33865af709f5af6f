// An immutable list of byte strings (service IDs in need and have lists) that copies share
// instead of duplicating: a node sends one need list to every Online peer, and each receiver
// keeps it beside its ISE. Copying is a reference count; push_back copies first when shared.
// Threading: a value type; distinct copies may be used from different threads.
#pragma once

#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "core/bytes.h"

namespace idn {

class BytesList {
 public:
  BytesList() = default;
  BytesList(std::vector<Bytes> items)  // NOLINT(google-explicit-constructor): a list is a list
      : items_(items.empty() ? nullptr
                             : std::make_shared<const std::vector<Bytes>>(std::move(items))) {}
  BytesList(std::initializer_list<Bytes> items) : BytesList(std::vector<Bytes>(items)) {}

  const std::vector<Bytes>& get() const { return items_ ? *items_ : empty_list(); }
  operator const std::vector<Bytes>&() const { return get(); }  // NOLINT: reads as the vector
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  auto begin() const { return get().begin(); }
  auto end() const { return get().end(); }
  const Bytes& operator[](size_t i) const { return get()[i]; }
  void clear() { items_.reset(); }
  // Copy-on-write: the other holders keep the list they had.
  void push_back(Bytes b) {
    std::vector<Bytes> v = get();
    v.push_back(std::move(b));
    *this = BytesList(std::move(v));
  }

  // Holders of the same list compare without reading it.
  friend bool operator==(const BytesList& a, const BytesList& b) {
    return a.items_ == b.items_ || a.get() == b.get();
  }
  friend bool operator==(const BytesList& a, const std::vector<Bytes>& b) { return a.get() == b; }

 private:
  static const std::vector<Bytes>& empty_list() {
    static const std::vector<Bytes> none;
    return none;
  }
  std::shared_ptr<const std::vector<Bytes>> items_;
};

}  // namespace idn
