#include "kernels/buffer.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "kernels/cpu/check.h"

namespace tessera::kernels {

std::optional<int64_t> CheckedProduct(std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(p, f, &p)) return std::nullopt;
  }
  return p;
}

std::optional<int64_t> CheckedSum(std::initializer_list<std::optional<int64_t>> terms) {
  int64_t s = 0;
  for (const std::optional<int64_t>& t : terms) {
    if (!t || __builtin_add_overflow(s, *t, &s)) return std::nullopt;
  }
  return s;
}

int64_t AvailableMemoryBytes() {
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    long long kib = -1;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::sscanf(line, "MemAvailable: %lld kB", &kib) == 1) break;
    }
    std::fclose(f);
    if (kib >= 0 && kib <= std::numeric_limits<int64_t>::max() / 1024) return kib * 1024;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0 && pages <= std::numeric_limits<int64_t>::max() / page) {
    return static_cast<int64_t>(pages) * page;
  }
  return std::numeric_limits<int64_t>::max();
}

namespace {
absl::Status Exhausted(absl::string_view what, int64_t bytes, absl::string_view why) {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "%s: cannot allocate %d bytes (%.1f MiB): %s", what, bytes, bytes / 1048576.0, why));
}
}  // namespace

absl::Status CheckAvailable(std::optional<int64_t> bytes, absl::string_view what) {
  if (!bytes) return absl::ResourceExhaustedError(absl::StrCat(what, ": the byte size overflows int64"));
  const int64_t available = AvailableMemoryBytes();
  if (*bytes <= available) return absl::OkStatus();
  return Exhausted(what, *bytes,
                   absl::StrFormat("only %d bytes (%.1f MiB) of memory are available", available,
                                   available / 1048576.0));
}

absl::StatusOr<HostBuffer> HostBuffer::Allocate(int64_t bytes, absl::string_view what) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": negative size ", bytes, " bytes"));
  }
  // RoundUp must not overflow; no machine has this much memory anyway.
  if (bytes > std::numeric_limits<int64_t>::max() - 64) return Exhausted(what, bytes, "too large");
  if (absl::Status s = CheckAvailable(bytes, what); !s.ok()) return s;
  HostBuffer b;
  b.data_ = static_cast<uint8_t*>(std::aligned_alloc(64, RoundUp(bytes)));
  if (b.data_ == nullptr && bytes > 0) return Exhausted(what, bytes, "the allocation failed");
  b.bytes_ = bytes;
  return b;
}

absl::StatusOr<std::pair<Tensor, int64_t>> OwnedTensor::Plan(DType type,
                                                             const std::vector<int64_t>& dims) {
  const std::string shape = absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
  if (dims.size() > static_cast<size_t>(kMaxRank)) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", shape, " has ", dims.size(),
                                                   " dimensions; at most ", kMaxRank,
                                                   " are supported"));
  }
  Tensor v;
  v.type = type;
  v.rank = static_cast<int>(dims.size());
  int64_t n = 1;
  for (int i = 0; i < v.rank; ++i) {
    if (dims[i] < 0) return absl::InvalidArgumentError(absl::StrCat("shape ", shape, " is negative"));
    const std::optional<int64_t> next = CheckedProduct({n, dims[i]});
    if (!next) return absl::InvalidArgumentError(absl::StrCat("shape ", shape, " overflows int64"));
    n = *next;
    v.shape[i] = dims[i];
  }
  const int64_t block = Info(type).block_elems;
  if (v.cols() % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shape ", shape, ": the row length ", v.cols(), " is not a multiple of the ", Name(type),
        " block size ", block));
  }
  const std::optional<int64_t> bytes = BytesFor(type, n);
  if (!bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", shape, " of ", Name(type), ": the byte size overflows int64"));
  }
  return std::pair<Tensor, int64_t>{v, *bytes};
}

absl::StatusOr<OwnedTensor> OwnedTensor::Create(DType type, const std::vector<int64_t>& dims,
                                                absl::string_view what) {
  auto plan = Plan(type, dims);
  if (!plan.ok()) return absl::Status(plan.status().code(), absl::StrCat(what, ": ", plan.status().message()));
  auto buffer = HostBuffer::Allocate(plan->second, what);
  if (!buffer.ok()) return buffer.status();
  OwnedTensor t;
  t.view_ = plan->first;
  t.buffer_ = std::move(*buffer);
  t.view_.data = t.buffer_.data();
  return t;
}

OwnedTensor::OwnedTensor(DType type, const std::vector<int64_t>& dims) {
  auto plan = Plan(type, dims);
  TESSERA_KCHECK(plan.ok(), std::string(plan.status().message()).c_str());
  view_ = plan->first;
  buffer_ = HostBuffer(plan->second);
  view_.data = buffer_.data();
}

}  // namespace tessera::kernels
