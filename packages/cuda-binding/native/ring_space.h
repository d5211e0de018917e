// The placement logic of the pinned staging ring, without CUDA: where the next
// piece of an upload goes, and which earlier pieces (still being read by a copy)
// it overlaps and so must wait for. Tokens name the in-flight pieces; the addon
// uses event ids. Tested in native/tests/native_tests.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace arkvale {

class RingSpace {
 public:
  explicit RingSpace(size_t capacity) : capacity_(capacity) {}

  size_t capacity() const { return capacity_; }
  size_t in_flight() const { return pieces_.size(); }

  // Places `bytes` (1..capacity) at the head, wrapping to offset 0 when it does
  // not fit before the end. Appends to `wait` the tokens of in-flight pieces the
  // placement overlaps and forgets them: the caller waits for each before writing.
  size_t place(size_t bytes, std::vector<uint64_t>* wait) {
    size_t offset = head_;
    if (offset + bytes > capacity_) offset = 0;
    const size_t end = offset + bytes;
    for (auto it = pieces_.begin(); it != pieces_.end();) {
      if (it->begin < end && offset < it->end) {
        wait->push_back(it->token);
        it = pieces_.erase(it);
      } else {
        ++it;
      }
    }
    head_ = end == capacity_ ? 0 : end;
    return offset;
  }

  // Records that [offset, offset + bytes) is being read until `token` completes.
  void commit(size_t offset, size_t bytes, uint64_t token) { pieces_.push_back({offset, offset + bytes, token}); }

  // The oldest in-flight piece, so a caller can retire pieces already done.
  bool oldest(uint64_t* token) const {
    if (pieces_.empty()) return false;
    *token = pieces_.front().token;
    return true;
  }
  void pop_oldest() { pieces_.pop_front(); }

 private:
  struct Piece {
    size_t begin;
    size_t end;
    uint64_t token;
  };
  size_t capacity_;
  size_t head_ = 0;
  std::deque<Piece> pieces_;
};

}  // namespace arkvale
