// See verify.h.
#include "tools/verify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/llama_model.h"
#include "model/llama_weights.h"
#include "model/peft_adapter.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "verify";

// A few fixed prompts of token ids spread over the vocabulary: 2 rows of 8 tokens.
TokenBatch verification_prompts(int64_t vocab_size) {
  TokenBatch batch;
  batch.rows = 2;
  batch.seq_len = 8;
  for (int64_t row = 0; row < batch.rows; ++row) {
    for (int64_t t = 0; t < batch.seq_len; ++t) {
      batch.input_ids.push_back(static_cast<int32_t>((1 + row * 7919 + t * 104729) % vocab_size));
      batch.targets.push_back(-100);
      batch.positions.push_back(static_cast<int32_t>(t));
    }
    batch.document_starts.push_back({0});
  }
  return batch;
}

// Digits of precision, for "the lowest precision" among the projections.
int mantissa_bits(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return 8;
    case DType::F16:
      return 11;
    case DType::F32:
    case DType::I32:
    case DType::I64:
      break;
  }
  return 24;
}

DType projection_dtype(const LlamaWeights& weights) {
  DType lowest = DType::F32;
  for (const LlamaLayerWeights& layer : weights.layers) {
    for (const auto* view : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.o_proj,
                             &layer.gate_proj, &layer.up_proj, &layer.down_proj}) {
      if (mantissa_bits(view->dtype) < mantissa_bits(lowest)) lowest = view->dtype;
    }
  }
  return lowest;
}

std::vector<float> logits_of(const LlamaWeights& weights, LoraAdapter* adapter,
                             const TokenBatch& batch) {
  LlamaLoraModel model(weights, adapter, ModelOptions{});
  return model.forward_logits(batch, ForwardMode::Eval);
}

}  // namespace

double verify_default_tolerance(DType merged_dtype) {
  switch (merged_dtype) {
    case DType::BF16:
      return 2e-2;
    case DType::F16:
      return 5e-3;
    case DType::F32:
    case DType::I32:
    case DType::I64:
      break;
  }
  return 1e-4;
}

void check_verify_options(const VerifyOptions& options) {
  if (options.tolerance) {
    check(std::isfinite(*options.tolerance) && *options.tolerance >= 0, kOrigin,
          "--tolerance must be a finite number >= 0");
  }
}

Verification verify_merged_model(const fs::path& base, const fs::path& adapter,
                                 const fs::path& merged, const VerifyOptions& options) {
  check_verify_options(options);
  const LlamaWeights base_weights = load_llama_weights(base);
  LoraAdapter lora = load_peft_adapter(adapter, base_weights.config);
  const LlamaWeights merged_weights = load_llama_weights(merged);
  check(merged_weights.config.vocab_size == base_weights.config.vocab_size &&
            merged_weights.config.hidden_size == base_weights.config.hidden_size &&
            merged_weights.config.num_hidden_layers == base_weights.config.num_hidden_layers,
        kOrigin,
        merged.string() + ": the merged model has another shape than the base " + base.string() +
            " (vocab_size, hidden_size or num_hidden_layers)");
  const TokenBatch batch = verification_prompts(base_weights.config.vocab_size);

  const std::vector<float> reference = logits_of(base_weights, &lora, batch);  // [tokens, vocab]
  const std::vector<float> base_only = logits_of(base_weights, nullptr, batch);
  const std::vector<float> logits = logits_of(merged_weights, nullptr, batch);

  Verification out;
  out.tokens = batch.tokens();
  out.merged_dtype = projection_dtype(merged_weights);
  out.tolerance = options.tolerance.value_or(verify_default_tolerance(out.merged_dtype));
  const auto vocab = static_cast<size_t>(base_weights.config.vocab_size);
  bool finite = true;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(logits[i]) - reference[i]);
    finite = finite && std::isfinite(diff);
    if (diff > out.max_abs_diff) {
      out.max_abs_diff = diff;
      out.worst_position = static_cast<int64_t>(i / vocab);
      out.worst_token = static_cast<int64_t>(i % vocab);
    }
    out.max_abs_logit = std::max(out.max_abs_logit, std::fabs(static_cast<double>(reference[i])));
    out.adapter_effect =
        std::max(out.adapter_effect, std::fabs(static_cast<double>(reference[i]) - base_only[i]));
  }
  check(finite, kOrigin,
        merged.string() +
            ": the merged model's logits differ from base + adapter by a non-finite amount "
            "(NaN or inf)");
  out.relative = out.max_abs_logit > 0 ? out.max_abs_diff / out.max_abs_logit : out.max_abs_diff;
  return out;
}

std::string verification_summary(const Verification& v) {
  char text[512];
  std::snprintf(text, sizeof text,
                "max |logit(merged) - logit(base + adapter)| = %.3g (relative %.3g of the largest "
                "|logit| %.3g; at position %lld, token %lld) over %lld positions; the adapter "
                "itself moves logits by up to %.3g; tolerance %.3g (%s merged weights): %s",
                v.max_abs_diff, v.relative, v.max_abs_logit,
                static_cast<long long>(v.worst_position), static_cast<long long>(v.worst_token),
                static_cast<long long>(v.tokens), v.adapter_effect, v.tolerance,
                std::string(dtype_name(v.merged_dtype)).c_str(), v.passed() ? "PASS" : "FAIL");
  return text;
}

}  // namespace ll
