// See llama_model.h. Buffers are fp32, row-major, [tokens, features] with tokens = rows *
// seq_len; attention runs per row on its slice.
#include "model/llama_model.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/error.h"
#include "model/llama_block.h"

namespace ll {

struct LlamaLoraModel::Activations : BlockActivations {};

// The scratch memory of the backward and the loss, owned by the model and reused by every
// call: a Buffer only reallocates when it must grow, so once the first training step has
// sized them (micro-batches of one shape) the step loop allocates nothing on the backend.
struct LlamaLoraModel::Workspace {
  Buffer lora_du;   // [N, r]
  Buffer d_mid;     // [N, hidden] the residual passes dy through
  Buffer dh;        // [N, intermediate]
  Buffer d_gate;    // [N, intermediate]
  Buffer d_up;      // [N, intermediate]
  Buffer d_xn;      // [N, hidden]
  Buffer d_attn;    // [N, heads*head_dim]
  Buffer dq;        // [N, heads*head_dim]
  Buffer dk;        // [N, kv_heads*head_dim]
  Buffer dv;        // [N, kv_heads*head_dim]
  Buffer d_hidden;  // [N, hidden] after the LM head
  Buffer d_x;       // [N, hidden] gradient of the residual stream
  Buffer d_prev;    // [N, hidden]
  Buffer discard;   // [N, hidden] a recomputed layer's output
  Buffer losses;    // [N]
  Buffer logits;    // [N, this rank's vocabulary rows]
};

int64_t TokenBatch::target_count() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
}

void TokenBatch::check(int64_t vocab_size) const {
  const auto n = static_cast<size_t>(tokens());
  check_that(rows > 0 && seq_len > 0, "empty batch");
  check_that(input_ids.size() == n && targets.size() == n && positions.size() == n,
             "input_ids, targets and positions must each hold rows * seq_len entries");
  check_that(document_starts.size() == static_cast<size_t>(rows),
             "document_starts must have one list per row");
  for (const std::vector<uint32_t>& starts : document_starts) {
    for (size_t i = 0; i < starts.size(); ++i) {
      check_that(
          starts[i] < static_cast<uint64_t>(seq_len) && (i == 0 || starts[i] > starts[i - 1]),
          "document_starts must ascend strictly inside the row");
    }
  }
  check_that(n <= static_cast<size_t>(INT32_MAX), "more tokens than int32 offsets can hold");
  for (size_t i = 0; i < n; ++i) {
    if (input_ids[i] < 0 || input_ids[i] >= vocab_size) {
      fail("batch", "token id " + std::to_string(input_ids[i]) + " at position " +
                        std::to_string(i) + " is outside the vocabulary (" +
                        std::to_string(vocab_size) + ")");
    }
    if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= vocab_size)) {
      fail("batch", "target " + std::to_string(targets[i]) + " at position " + std::to_string(i) +
                        " is outside the vocabulary");
    }
    check_that(positions[i] >= 0, "negative position");
  }
}

void TokenBatch::check_that(bool ok, const char* what) {
  if (!ok) fail("batch", what);
}

LlamaLoraModel::LlamaLoraModel(const LlamaWeights& base, LoraAdapter* adapter, ModelOptions options)
    : base_(base),
      adapter_(adapter),
      options_(options),
      backend_(options.backend ? *options.backend : cpu_backend()) {
  const LlamaConfig& c = base_.config;
  if (adapter_ && adapter_->layers().size() != static_cast<size_t>(c.num_hidden_layers)) {
    fail("model", "adapter has " + std::to_string(adapter_->layers().size()) +
                      " layers but the model has " + std::to_string(c.num_hidden_layers));
  }
  if (adapter_ && adapter_->backend().memory_space() != backend_.memory_space()) {
    fail("model", std::string("the adapter's memory is not backend ") + backend_.name() +
                      "'s: move it with LoraAdapter::on_backend");
  }

  const size_t copies =
      options_.checkpointing == Checkpointing::Off ? static_cast<size_t>(c.num_hidden_layers) : 1;
  for (size_t i = 0; i < copies; ++i) layer_acts_.push_back(std::make_unique<Activations>());
  work_ = std::make_unique<Workspace>();
  weights_ = std::make_unique<BoundLlamaWeights>(backend_, base_);
  layer_inputs_.resize(static_cast<size_t>(c.num_hidden_layers + 1));
  if (options_.checkpointing == Checkpointing::Selective) {
    kept_attention_.resize(static_cast<size_t>(c.num_hidden_layers));
    kept_lse_.resize(static_cast<size_t>(c.num_hidden_layers));
  }
}

LlamaLoraModel::~LlamaLoraModel() = default;

void LlamaLoraModel::ensure_rope(const TokenBatch& batch) {
  const int32_t max_position = *std::max_element(batch.positions.begin(), batch.positions.end());
  ensure_rope_table(backend_, rope_, base_.config, max_position);
}

namespace {

// The feature sizes every layer's buffers use, derived once from the config.
struct LayerSizes {
  int64_t hidden;  // hidden_size
  int64_t q_out;   // num_attention_heads * head_dim
  int64_t kv_out;  // num_key_value_heads * head_dim
  int64_t inter;   // intermediate_size

  static LayerSizes of(const LlamaConfig& c) {
    return {c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim,
            c.intermediate_size};
  }
};

AttentionShape attention_shape(const LlamaConfig& c, int64_t seq_len) {
  return {seq_len, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
}

}  // namespace

bool LlamaLoraModel::tensor_parallel() const {
  return options_.tensor_parallel != nullptr && options_.tensor_parallel->size() > 1;
}

void LlamaLoraModel::tp_sum(float* data, int64_t count) {
  if (tensor_parallel()) options_.tensor_parallel->all_reduce(data, count, ReduceOp::Sum);
}

int64_t lm_head_chunk_tokens(int64_t vocab_rows) {
  constexpr int64_t kBudgetBytes = int64_t{128} << 20;
  const int64_t fit =
      kBudgetBytes / (static_cast<int64_t>(sizeof(float)) * std::max<int64_t>(vocab_rows, 1));
  return std::clamp<int64_t>(fit / 64 * 64, 64, 512);
}

int64_t LlamaLoraModel::loss_chunk_tokens() const {
  return options_.loss_chunk_tokens > 0 ? options_.loss_chunk_tokens
                                        : lm_head_chunk_tokens(base_.config.vocab_size);
}

int64_t LlamaLoraModel::lm_head_rows() const {
  return base_.lm_head_rows > 0 ? base_.lm_head_rows : base_.config.vocab_size;
}

const VocabShard* LlamaLoraModel::vocab_shard() {
  if (!tensor_parallel() || lm_head_rows() == base_.config.vocab_size) return nullptr;
  if (!vocab_shard_.reduce) {
    Communicator* tp = options_.tensor_parallel;
    vocab_shard_.first = base_.lm_head_first;
    vocab_shard_.full_vocab = base_.config.vocab_size;
    vocab_shard_.reduce = [tp](float* values, int64_t count, ReduceOp op) {
      tp->all_reduce(values, count, op);
    };
  }
  return &vocab_shard_;
}

DropoutMask LlamaLoraModel::dropout_mask(int64_t layer, LoraTarget target, int64_t in) const {
  DropoutMask mask;
  mask.key = dropout_seed_ * 0x100000001b3ull ^ (static_cast<uint64_t>(layer) << 40) ^
             (static_cast<uint64_t>(target) << 32);
  // A row-parallel projection's input (A split by columns) is this rank's columns of the
  // whole activation.
  if (tensor_parallel() && lora_tp_split(target, LoraPart::A) == TpSplit::Columns) {
    const Communicator& tp = *options_.tensor_parallel;
    mask.window = {in, in * tp.size(), in * tp.rank()};
  }
  return mask;
}

namespace {

// Training's attention: one variable-length call for the whole packed micro-batch, keeping
// the log-sum-exp for the backward.
class PackedAttention final : public BlockAttention {
 public:
  PackedAttention(Backend& backend, const LlamaConfig& config, int64_t tokens,
                  std::span<const int32_t> cu_seqlens)
      : backend_(backend), config_(config), tokens_(tokens), cu_seqlens_(cu_seqlens) {}
  void attend(int64_t, const float* q, const float* k, const float* v, float* out,
              Buffer& lse) override {
    lse.resize(backend_, config_.num_attention_heads * tokens_);
    backend_.attention_forward(out, lse.data(), q, k, v, attention_shape(config_, tokens_),
                               cu_seqlens_);
  }

 private:
  Backend& backend_;
  const LlamaConfig& config_;
  int64_t tokens_;
  std::span<const int32_t> cu_seqlens_;
};

// Selective checkpointing's two halves: the forward computes the attention and keeps a copy
// of its output and log-sum-exp; the recompute copies them back instead of attending again.
class KeepingAttention final : public BlockAttention {
 public:
  KeepingAttention(Backend& backend, PackedAttention& attention, int64_t out_count, Buffer& out,
                   Buffer& lse)
      : backend_(backend), attention_(attention), out_count_(out_count), out_(out), lse_(lse) {}
  void attend(int64_t layer, const float* q, const float* k, const float* v, float* out,
              Buffer& lse) override {
    attention_.attend(layer, q, k, v, out, lse);
    out_.resize(backend_, out_count_);
    lse_.resize(backend_, lse.size());
    backend_.copy(out_.data(), out, out_count_);
    backend_.copy(lse_.data(), lse.data(), lse.size());
  }

 private:
  Backend& backend_;
  PackedAttention& attention_;
  int64_t out_count_;
  Buffer& out_;
  Buffer& lse_;
};

class KeptAttention final : public BlockAttention {
 public:
  KeptAttention(Backend& backend, const Buffer& out, const Buffer& lse)
      : backend_(backend), out_(out), lse_(lse) {}
  void attend(int64_t, const float*, const float*, const float*, float* out, Buffer& lse) override {
    backend_.copy(out, out_.data(), out_.size());
    lse.resize(backend_, lse_.size());
    backend_.copy(lse.data(), lse_.data(), lse_.size());
  }

 private:
  Backend& backend_;
  const Buffer& out_;
  const Buffer& lse_;
};

}  // namespace

void LlamaLoraModel::layer_forward(int64_t layer, const TokenBatch& batch, const float* x,
                                   float* x_out, Activations& a, AttentionSource source) {
  const BlockContext context{
      backend_,
      base_.config,
      adapter_,
      lora_dropout(),
      [this](int64_t l, LoraTarget target, int64_t in) { return dropout_mask(l, target, in); },
      options_.tensor_parallel,
      batch.tokens(),
      batch.positions.data(),
      &rope_};
  const LlamaLayerWeights& w = weights_->layers[static_cast<size_t>(layer)];
  PackedAttention attention(backend_, base_.config, batch.tokens(), cu_seqlens_);
  switch (source) {
    case AttentionSource::Compute:
      return llama_block_forward(context, layer, w, x, x_out, a, attention);
    case AttentionSource::ComputeAndKeep: {
      const LayerSizes sizes = LayerSizes::of(base_.config);
      KeepingAttention keeping(backend_, attention, batch.tokens() * sizes.q_out,
                               kept_attention_[static_cast<size_t>(layer)],
                               kept_lse_[static_cast<size_t>(layer)]);
      return llama_block_forward(context, layer, w, x, x_out, a, keeping);
    }
    case AttentionSource::Kept: {
      KeptAttention kept(backend_, kept_attention_[static_cast<size_t>(layer)],
                         kept_lse_[static_cast<size_t>(layer)]);
      return llama_block_forward(context, layer, w, x, x_out, a, kept);
    }
  }
}

void LlamaLoraModel::layer_backward(int64_t layer, const TokenBatch& batch, const float* d_out,
                                    float* d_x, Activations& a) {
  const LlamaConfig& c = base_.config;
  const LlamaLayerWeights& w = weights_->layers[static_cast<size_t>(layer)];
  const int64_t n = batch.tokens();
  const auto [hidden, q_out, kv_out, inter] = LayerSizes::of(c);
  auto* lora = adapter_ ? &adapter_->layers()[static_cast<size_t>(layer)] : nullptr;
  const float* x = layer_inputs_[static_cast<size_t>(layer)].data();
  Backend& be = backend_;
  Workspace& ws = *work_;

  // dx_in [N, in] (+)= dy·W (+ the LoRA path, whose weights also get their gradients).
  const auto project_back = [&](LoraTarget target, WeightView weight, const float* in,
                                int64_t in_features, const float* dy, int64_t out_features,
                                float* dx_in, Accumulate accumulate) {
    const BackendRegion region(be, lora_target_name(target).data());  // a string literal
    be.linear_backward_input(dx_in, dy, weight, n, in_features, out_features, accumulate);
    const size_t t = static_cast<size_t>(target);
    if (lora && (*lora)[t]) {
      lora_backward(be, *(*lora)[t], lora_dropout(), in, dy, dx_in, n, a.lora_u[t], ws.lora_du,
                    dropout_mask(layer, target, (*lora)[t]->in));
    }
  };

  // MLP: x_out = x_mid + h·W_downᵀ.
  Buffer& d_mid = ws.d_mid;
  d_mid.resize(be, n * hidden);
  be.copy(d_mid.data(), d_out, n * hidden);
  Buffer& dh = ws.dh;
  dh.resize(be, n * inter);
  project_back(LoraTarget::Down, w.down_proj, a.h.data(), inter, d_out, hidden, dh.data(),
               Accumulate::No);
  Buffer& d_gate = ws.d_gate;
  Buffer& d_up = ws.d_up;
  d_gate.resize(be, n * inter);
  d_up.resize(be, n * inter);
  be.swiglu_backward(d_gate.data(), d_up.data(), dh.data(), a.gate.data(), a.up.data(), n * inter);
  Buffer& d_xn = ws.d_xn;
  d_xn.resize(be, n * hidden);
  project_back(LoraTarget::Gate, w.gate_proj, a.xn2.data(), hidden, d_gate.data(), inter,
               d_xn.data(), Accumulate::No);
  project_back(LoraTarget::Up, w.up_proj, a.xn2.data(), hidden, d_up.data(), inter, d_xn.data(),
               Accumulate::Yes);
  tp_sum(d_xn.data(), n * hidden);  // each rank holds its MLP columns' part
  be.rmsnorm_backward(d_mid.data(), d_xn.data(), a.x_mid.data(), a.rstd2.data(),
                      w.post_attention_layernorm, n, hidden, Accumulate::Yes);

  // Attention: x_mid = x + attn·W_oᵀ.
  be.copy(d_x, d_mid.data(), n * hidden);
  Buffer& d_attn = ws.d_attn;
  d_attn.resize(be, n * q_out);
  project_back(LoraTarget::O, w.o_proj, a.attn.data(), q_out, d_mid.data(), hidden, d_attn.data(),
               Accumulate::No);
  Buffer& dq = ws.dq;
  Buffer& dk = ws.dk;
  Buffer& dv = ws.dv;
  dq.resize(be, n * q_out);
  dk.resize(be, n * kv_out);
  dv.resize(be, n * kv_out);
  be.attention_backward(dq.data(), dk.data(), dv.data(), d_attn.data(), a.q.data(), a.k.data(),
                        a.v.data(), a.attn.data(), a.lse.data(), attention_shape(c, n),
                        cu_seqlens_);
  be.rope_backward(dq.data(), dq.data(), batch.positions.data(), n, c.num_attention_heads, rope_);
  be.rope_backward(dk.data(), dk.data(), batch.positions.data(), n, c.num_key_value_heads, rope_);
  project_back(LoraTarget::Q, w.q_proj, a.xn1.data(), hidden, dq.data(), q_out, d_xn.data(),
               Accumulate::No);
  project_back(LoraTarget::K, w.k_proj, a.xn1.data(), hidden, dk.data(), kv_out, d_xn.data(),
               Accumulate::Yes);
  project_back(LoraTarget::V, w.v_proj, a.xn1.data(), hidden, dv.data(), kv_out, d_xn.data(),
               Accumulate::Yes);
  tp_sum(d_xn.data(), n * hidden);  // each rank holds its heads' part
  be.rmsnorm_backward(d_x, d_xn.data(), x, a.rstd1.data(), w.input_layernorm, n, hidden,
                      Accumulate::Yes);
}

double LlamaLoraModel::lora_dropout() const {
  return mode_ == ForwardMode::Train && adapter_ ? adapter_->config.dropout : 0.0;
}

void LlamaLoraModel::forward_layers(const TokenBatch& batch, ForwardMode mode,
                                    AttentionSource source) {
  const LlamaConfig& c = base_.config;
  batch.check(c.vocab_size);
  mode_ = mode;
  // The documents of the whole micro-batch as cu_seqlens: each row's document starts, offset
  // by the row, then the total.
  cu_seqlens_.clear();
  for (int64_t row = 0; row < batch.rows; ++row) {
    cu_seqlens_.push_back(static_cast<int32_t>(row * batch.seq_len));  // a row starts a document
    for (uint32_t start : batch.document_starts[static_cast<size_t>(row)]) {
      if (start > 0) cu_seqlens_.push_back(static_cast<int32_t>(row * batch.seq_len + start));
    }
  }
  cu_seqlens_.push_back(static_cast<int32_t>(batch.tokens()));
  int32_t longest = 0;  // attention stays inside a document: only its length meets the window
  for (size_t d = 1; d < cu_seqlens_.size(); ++d) {
    longest = std::max(longest, cu_seqlens_[d] - cu_seqlens_[d - 1]);
  }
  check_attention_window(c, longest, "a document of the batch");
  ensure_rope(batch);
  const int64_t n = batch.tokens();
  for (auto& input : layer_inputs_) input.resize(backend_, n * c.hidden_size);
  backend_.embedding_forward(layer_inputs_[0].data(), batch.input_ids.data(),
                             weights_->embed_tokens, n, c.vocab_size, c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Activations& acts = *layer_acts_[layer_acts_.size() == 1 ? 0 : static_cast<size_t>(i)];
    layer_forward(i, batch, layer_inputs_[static_cast<size_t>(i)].data(),
                  layer_inputs_[static_cast<size_t>(i + 1)].data(), acts, source);
  }
  final_norm(batch);
}

void LlamaLoraModel::final_norm(const TokenBatch& batch) {
  const LlamaConfig& c = base_.config;
  const int64_t n = batch.tokens();
  final_hidden_.resize(backend_, n * c.hidden_size);
  final_rstd_.resize(backend_, n);
  backend_.rmsnorm_forward(final_hidden_.data(), final_rstd_.data(), layer_inputs_.back().data(),
                           weights_->norm, n, c.hidden_size, c.rms_norm_eps);
}

double LlamaLoraModel::forward_backward(const TokenBatch& batch, double loss_scale) {
  const LlamaConfig& c = base_.config;
  {
    const BackendRegion region(backend_, "forward");
    forward_layers(batch, ForwardMode::Train,
                   options_.checkpointing == Checkpointing::Selective
                       ? AttentionSource::ComputeAndKeep
                       : AttentionSource::Compute);
  }
  const int64_t n = batch.tokens();
  Buffer& d_hidden = work_->d_hidden;
  d_hidden.resize(backend_, n * c.hidden_size);
  const VocabShard* shard = vocab_shard();
  double loss = 0;
  {
    const BackendRegion region(backend_, "lm_head");
    loss = backend_.cross_entropy_forward_backward(
        d_hidden.data(), final_hidden_.data(), weights_->lm_head, batch.targets.data(), n,
        c.hidden_size, lm_head_rows(), loss_scale, loss_chunk_tokens(), shard);
    if (shard) tp_sum(d_hidden.data(), n * c.hidden_size);  // each rank's vocabulary rows' part
  }
  const BackendRegion backward(backend_, "backward");
  Buffer& d_x = work_->d_x;
  d_x.resize(backend_, n * c.hidden_size);
  backend_.rmsnorm_backward(d_x.data(), d_hidden.data(), layer_inputs_.back().data(),
                            final_rstd_.data(), weights_->norm, n, c.hidden_size, Accumulate::No);
  Buffer& d_prev = work_->d_prev;
  Buffer& discard = work_->discard;
  d_prev.resize(backend_, n * c.hidden_size);
  for (int64_t i = c.num_hidden_layers - 1; i >= 0; --i) {
    Activations& acts = *layer_acts_[layer_acts_.size() == 1 ? 0 : static_cast<size_t>(i)];
    if (options_.checkpointing != Checkpointing::Off) {
      // Recompute this layer's activations from its saved input (same dropout masks: they
      // are a pure function of seed, layer and element), its attention too unless kept.
      discard.resize(backend_, n * c.hidden_size);
      const BackendRegion region(backend_, "recompute");
      layer_forward(i, batch, layer_inputs_[static_cast<size_t>(i)].data(), discard.data(), acts,
                    options_.checkpointing == Checkpointing::Selective ? AttentionSource::Kept
                                                                       : AttentionSource::Compute);
    }
    layer_backward(i, batch, d_x.data(), d_prev.data(), acts);
    d_x.swap(d_prev);
  }
  return loss;
}

double LlamaLoraModel::forward_loss_sum(const TokenBatch& batch, ForwardMode mode) {
  const LlamaConfig& c = base_.config;
  forward_layers(batch, mode);
  const int64_t n = batch.tokens();
  Buffer& losses = work_->losses;
  losses.resize(backend_, n);
  backend_.cross_entropy_forward(losses.data(), final_hidden_.data(), weights_->lm_head,
                                 batch.targets.data(), n, c.hidden_size, lm_head_rows(),
                                 loss_chunk_tokens(), vocab_shard());
  std::vector<float> host(static_cast<size_t>(n));
  backend_.download(host.data(), losses.data(), n);
  double sum = 0;
  for (float value : host) sum += value;
  return sum;
}

std::vector<float> LlamaLoraModel::forward_logits(const TokenBatch& batch, ForwardMode mode) {
  const LlamaConfig& c = base_.config;
  forward_layers(batch, mode);
  const int64_t n = batch.tokens();
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  const int64_t here = lm_head_rows();
  Buffer& logits = work_->logits;
  logits.resize(backend_, n * here);
  backend_.lm_head_logits(logits.data(), final_hidden_.data(), weights_->lm_head, rows.data(), n, n,
                          c.hidden_size, here);
  std::vector<float> host(static_cast<size_t>(n * here));
  backend_.download(host.data(), logits.data(), n * here);
  if (here == c.vocab_size) return host;
  // Split LM head: gather every rank's columns, [rank][N, here] -> [N, vocab].
  Communicator& tp = *options_.tensor_parallel;
  std::vector<float> parts(static_cast<size_t>(n * c.vocab_size));
  tp.all_gather(host.data(), n * here, parts.data());
  std::vector<float> whole(parts.size());
  for (int64_t rank = 0; rank < tp.size(); ++rank) {
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(parts.data() + (rank * n + t) * here, here,
                  whole.data() + t * c.vocab_size + rank * here);
    }
  }
  return whole;
}

}  // namespace ll
