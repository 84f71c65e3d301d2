// Helpers shared by the engine tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "runtime/engine/kv_cache.h"

namespace tessera::test_util {

// A cache for a test's (small) shape, which must be creatable; null (with the test failed)
// when it is not.
inline std::unique_ptr<KvCache> NewCache(const KvCacheShape& shape) {
  auto c = KvCache::Create(shape);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

}  // namespace tessera::test_util
