// See backend.h: the process's CPU backend and Buffer.
#include "backend/backend.h"

#include <utility>

namespace ll {

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::Fp32:
      return "fp32";
    case Precision::Bf16:
      return "bf16";
  }
  return "?";
}

void Buffer::resize(Backend& backend, int64_t count) {
  if (backend_ == &backend && count <= capacity_) {
    size_ = count;
    return;
  }
  reset();
  data_ = backend.allocate(count);
  backend_ = &backend;
  size_ = capacity_ = count;
}

void Buffer::reset() {
  if (backend_ && data_) backend_->release(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
}

void Buffer::swap(Buffer& other) noexcept {
  std::swap(backend_, other.backend_);
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  std::swap(capacity_, other.capacity_);
}

}  // namespace ll
