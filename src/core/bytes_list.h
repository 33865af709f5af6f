// Immutable lists that copies share instead of duplicating: a node sends one need list (service
// IDs and their request counts) to every Online peer, and each receiver keeps it beside its ISE.
// Copying is a reference count; push_back copies first when shared. BytesList holds service IDs,
// CountList the counts that go with them.
// Threading: a value type; distinct copies may be used from different threads.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "core/bytes.h"

namespace idn {

template <class T>
class SharedList {
 public:
  SharedList() = default;
  SharedList(std::vector<T> items)  // NOLINT(google-explicit-constructor): a list is a list
      : items_(items.empty() ? nullptr : std::make_shared<const std::vector<T>>(std::move(items))) {
  }
  SharedList(std::initializer_list<T> items) : SharedList(std::vector<T>(items)) {}

  const std::vector<T>& get() const { return items_ ? *items_ : empty_list(); }
  operator const std::vector<T>&() const { return get(); }  // NOLINT: reads as the vector
  size_t size() const { return get().size(); }
  bool empty() const { return get().empty(); }
  auto begin() const { return get().begin(); }
  auto end() const { return get().end(); }
  const T& operator[](size_t i) const { return get()[i]; }
  void clear() { items_.reset(); }
  // Copy-on-write: the other holders keep the list they had.
  void push_back(T b) {
    std::vector<T> v = get();
    v.push_back(std::move(b));
    *this = SharedList(std::move(v));
  }

  // Holders of the same list compare without reading it.
  friend bool operator==(const SharedList& a, const SharedList& b) {
    return a.items_ == b.items_ || a.get() == b.get();
  }
  friend bool operator==(const SharedList& a, const std::vector<T>& b) { return a.get() == b; }

 private:
  static const std::vector<T>& empty_list() {
    static const std::vector<T> none;
    return none;
  }
  std::shared_ptr<const std::vector<T>> items_;
};

using BytesList = SharedList<Bytes>;
using CountList = SharedList<uint32_t>;

}  // namespace idn
