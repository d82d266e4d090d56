// The LM head's default chunk (llama_model.h lm_head_chunk_tokens): fp32 logits of one chunk
// within 128 MiB, 64 .. 512 tokens, a multiple of 64.
#include <gtest/gtest.h>

#include "model/llama_model.h"

namespace ll {
namespace {

TEST(LmHeadChunk, FitsTheBudgetWithinItsBounds) {
  EXPECT_EQ(lm_head_chunk_tokens(97), 512);      // tiny test vocabularies: the largest chunk
  EXPECT_EQ(lm_head_chunk_tokens(49152), 512);   // SmolLM2: 100 MiB
  EXPECT_EQ(lm_head_chunk_tokens(128256), 256);  // Llama-3: 125 MiB (261 rounded down)
  EXPECT_EQ(lm_head_chunk_tokens(152064), 192);  // Qwen2.5-7B: 111 MiB
  EXPECT_EQ(lm_head_chunk_tokens(1000000), 64);  // the smallest chunk, over budget
  for (int64_t vocab : {1000, 32000, 65536, 128256, 256000}) {
    const int64_t chunk = lm_head_chunk_tokens(vocab);
    EXPECT_EQ(chunk % 64, 0) << vocab;
    EXPECT_TRUE(chunk == 64 || chunk * vocab * 4 <= (int64_t{128} << 20)) << vocab;
  }
}

}  // namespace
}  // namespace ll
