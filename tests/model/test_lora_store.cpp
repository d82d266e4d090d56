// The LoRA parameter store (model/lora.h): one parameter block and one gradient block per
// adapter, allocated through the backend, a table of named views in file order with the
// replicated tensors first in memory, deep copies, moves between backends, and the host copy
// that I/O takes of an adapter in device memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "forwarding_backend.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "small_model.h"
#include "test_util.h"

namespace ll {
namespace {

namespace fs = std::filesystem;

LoraConfig all_targets() {
  LoraConfig config;
  config.r = 4;
  config.alpha = 8;
  config.targets.fill(true);
  return config;
}

// Counts the blocks allocated and released through it; can claim to be device memory (the
// memory is still the host's, which lets a test see what host code does with a device
// adapter).
class StoreBackend final : public test::ForwardingBackend {
 public:
  explicit StoreBackend(MemorySpace space) : space_(space) {}
  MemorySpace memory_space() const override { return space_; }
  float* allocate(int64_t count) override {
    ++allocations;
    elements += count;
    return ForwardingBackend::allocate(count);
  }
  void release(float* data) override {
    if (data) ++releases;
    ForwardingBackend::release(data);
  }
  int allocations = 0;
  int releases = 0;
  int64_t elements = 0;

 private:
  MemorySpace space_;
};

TEST(LoraStore, TheTableListsFileOrderAndPlacesReplicatedTensorsFirst) {
  const LlamaConfig model = test::small_llama_config();
  const LoraAdapter adapter = lora_init(model, all_targets(), 3);
  const auto& tensors = adapter.tensors();
  ASSERT_EQ(tensors.size(), static_cast<size_t>(model.num_hidden_layers) * 7 * 2);

  // File order: layer, target, A then B; shapes A [r, in], B [out, r]; the split rule.
  size_t i = 0;
  for (int64_t layer = 0; layer < model.num_hidden_layers; ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto [in, out] = lora_target_shape(model, target);
      for (LoraPart part : kLoraParts) {
        const LoraTensor& t = tensors[i++];
        EXPECT_EQ(t.name(), lora_tensor_name(layer, target, part));
        EXPECT_EQ(t.rows, part == LoraPart::A ? 4 : out);
        EXPECT_EQ(t.cols, part == LoraPart::A ? in : 4);
        EXPECT_EQ(t.split, lora_tp_split(target, part));
      }
    }
  }
  // The offsets tile the block exactly once, the replicated tensors first.
  std::vector<const LoraTensor*> by_offset;
  for (const LoraTensor& t : tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const LoraTensor* a, const LoraTensor* b) { return a->offset < b->offset; });
  int64_t next = 0;
  int64_t replicated = 0;
  for (const LoraTensor* t : by_offset) {
    EXPECT_EQ(t->offset, next) << t->name();
    if (t->split == TpSplit::Replicated) {
      EXPECT_LT(t->offset, adapter.replicated_count()) << t->name();
      replicated += t->count();
    } else {
      EXPECT_GE(t->offset, adapter.replicated_count()) << t->name();
    }
    next += t->count();
  }
  EXPECT_EQ(next, adapter.parameter_count());
  EXPECT_EQ(replicated, adapter.replicated_count());

  // The matrix views are the table's views.
  const LoraMatrix& down = *adapter.layers()[1][static_cast<size_t>(LoraTarget::Down)];
  const LoraTensor& down_a = tensors[(1 * 7 + 6) * 2];
  EXPECT_EQ(down.a.data(), adapter.parameter(down_a).data());
  EXPECT_EQ(down.grad_a.data(), adapter.gradient(down_a).data());
  EXPECT_EQ(down.a.data(), adapter.parameters().data() + down_a.offset);
}

TEST(LoraStore, BlocksComeFromTheBackendAndCopiesAreDeep) {
  const LlamaConfig model = test::small_llama_config();
  const LoraAdapter host = lora_init(model, all_targets(), 3);
  StoreBackend backend(MemorySpace::Host);
  {
    LoraAdapter on = host.on_backend(backend);
    EXPECT_EQ(&on.backend(), &backend);
    EXPECT_EQ(backend.allocations, 2);  // parameters and gradients, one block each
    EXPECT_EQ(backend.elements, 2 * host.parameter_count());
    EXPECT_EQ(test::values_of(on.parameters()), test::values_of(host.parameters()));

    LoraAdapter copy = on;  // deep, on the same backend
    EXPECT_EQ(backend.allocations, 4);
    copy.parameters()[0] += 1.0f;
    copy.gradients()[0] = 5.0f;
    EXPECT_EQ(on.parameters()[0], host.parameters()[0]);
    EXPECT_EQ(on.gradients()[0], 0.0f);

    LoraAdapter moved = std::move(copy);  // a move allocates nothing and keeps the views
    EXPECT_EQ(backend.allocations, 4);
    EXPECT_EQ(moved.layers()[0][0]->a.data(),
              moved.parameters().data() + moved.tensors()[0].offset);
    EXPECT_EQ(copy.parameter_count(), 0);  // the moved-from adapter is empty, not dangling
    EXPECT_TRUE(copy.tensors().empty());
    EXPECT_TRUE(copy.parameters().empty());
    moved.zero_grad();
    EXPECT_EQ(moved.gradients()[0], 0.0f);
  }
  EXPECT_EQ(backend.releases, 4);
}

TEST(LoraStore, DeviceAdaptersReachHostCodeAsHostCopies) {
  const LlamaConfig model = test::small_llama_config();
  const LoraAdapter host = lora_init(model, all_targets(), 3);
  StoreBackend device(MemorySpace::Device);
  const LoraAdapter on_device = host.on_backend(device);

  std::optional<LoraAdapter> copy;
  EXPECT_EQ(&host_view(host, copy), &host);  // host memory: no copy
  EXPECT_FALSE(copy.has_value());
  const LoraAdapter& seen = host_view(on_device, copy);
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(&seen, &*copy);
  EXPECT_EQ(&seen.backend(), &cpu_backend());
  EXPECT_EQ(test::values_of(seen.parameters()), test::values_of(host.parameters()));

  // A model refuses an adapter whose memory is not its backend's, in one line.
  const fs::path dir = test::fixtures() / "golden" / "gqa_tied";
  const LlamaWeights weights = load_llama_weights(dir / "model");
  LoraAdapter mutable_device = lora_init(weights.config, all_targets(), 3).on_backend(device);
  const std::string error = [&] {
    try {
      LlamaLoraModel refused(weights, &mutable_device, ModelOptions{});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  }();
  EXPECT_NE(error.find("the adapter's memory is not backend cpu's"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace ll
