// Weights bound to the backend (model/llama_weights.h BoundLlamaWeights): a model binds every
// frozen tensor exactly once, with its exact element count (what a device backend uploads),
// never again while it runs, and releases each one when it goes; the CPU backend's bound
// views are the host views themselves (no copy of the memory-mapped weights).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "forwarding_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/peft_adapter.h"
#include "test_util.h"

namespace ll {
namespace {

class BindingBackend final : public test::ForwardingBackend {
 public:
  int64_t binds = 0;
  int64_t releases = 0;
  int64_t elements = 0;
  std::set<const void*> host_data;

  WeightView bind_weight(WeightView host, int64_t count) override {
    ++binds;
    elements += count;
    host_data.insert(host.data);
    return ForwardingBackend::bind_weight(host, count);
  }
  void release_weight(WeightView bound) override {
    ++releases;
    ForwardingBackend::release_weight(bound);
  }
};

TEST(BoundWeights, EveryTensorOnceWithItsSizeAndReleased) {
  const fs::path dir = test::fixtures() / "golden" / "gqa_tied";
  const LlamaWeights base = load_llama_weights(dir / "model");
  LoraAdapter adapter = load_peft_adapter(dir / "adapter", base.config);
  const SafetensorsModel file = SafetensorsModel::open(dir / "model");
  int64_t file_elements = 0;
  for (const std::string& name : file.tensor_names()) file_elements += file.info(name).numel();
  ASSERT_TRUE(base.config.tie_word_embeddings);  // the LM head is bound again as a view
  const int64_t expected_elements =
      file_elements + base.config.vocab_size * base.config.hidden_size;
  const int64_t expected_binds = 3 + 9 * base.config.num_hidden_layers;

  BindingBackend backend;
  {
    ModelOptions options;
    options.backend = &backend;
    LlamaLoraModel model(base, &adapter, options);
    EXPECT_EQ(backend.binds, expected_binds);
    EXPECT_EQ(backend.elements, expected_elements);
    TokenBatch batch;
    batch.rows = 1;
    batch.seq_len = 6;
    batch.input_ids = {1, 5, 9, 2, 7, 3};
    batch.targets = {5, 9, 2, 7, 3, -100};
    batch.positions = {0, 1, 2, 3, 4, 5};
    batch.document_starts = {{0}};
    LlamaLoraModel reference(base, &adapter, ModelOptions{});  // the plain CPU backend
    const int64_t binds = backend.binds;
    EXPECT_EQ(model.forward_logits(batch), reference.forward_logits(batch));
    model.forward_backward(batch, 0.2);
    EXPECT_EQ(backend.binds, binds) << "bound once, at construction";
    EXPECT_EQ(backend.releases, 0);
  }
  EXPECT_EQ(backend.releases, backend.binds);

  // The CPU backend reads the map in place: a bound view is the host view.
  const BoundLlamaWeights bound(cpu_backend(), base);
  EXPECT_EQ(bound.layers[1].q_proj.data, base.layers[1].q_proj.data);
  EXPECT_EQ(bound.lm_head.data, base.lm_head.data);
  EXPECT_EQ(bound.embed_tokens.dtype, base.embed_tokens.dtype);
}

}  // namespace
}  // namespace ll
