// Every op of the Backend interface, run through a backend on awkward shapes (1 token, odd
// sizes, GQA, a vocabulary that is not a multiple of any tile) and compared with the CPU
// reference ops instantiated in double (dropout and the optimizer ops: the fp32 CPU ops).
// Every write-only output is poisoned with NaN and followed by guard elements (Output), so an
// op that skips an element or writes past its output fails; every Accumulate::Yes form adds
// into random values before a guard; the vocabulary-sharded cross-entropy runs as two ranks. Today
// the CPU backend is the only one: this checks that its fp32 ops agree with the double reference
// and that the interface's memory calls round-trip; a device backend joins by adding itself to
// kBackends.
//
// attention_decode (fp32 only) is compared with the double attention_forward on the equivalent
// full sequence.
//
// Tolerance: |got - ref| <= 2e-5 · (1 + |ref|). The fp32 ops accumulate at most a few hundred
// products of O(1) values (relative rounding ~ sqrt(k)·6e-8 ≈ 1e-6 for k = 300), so 2e-5 leaves
// 20x headroom while a wrong index or missing term is off by O(1).
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/adamw.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/bias.h"
#include "backend/cpu/cross_entropy.h"
#include "backend/cpu/dropout.h"
#include "backend/cpu/embedding.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/rmsnorm.h"
#include "backend/cpu/rope.h"
#include "backend/cpu/swiglu.h"
#include "core/dtype.h"
#include "gradcheck.h"
#include "test_util.h"

namespace ll {
namespace {

using test::random_values;

constexpr double kTol = 2e-5;

struct NamedBackend {
  const char* name;
  Backend& (*get)();
};
const NamedBackend kBackends[] = {{"cpu", &cpu_backend}};

class BackendConformance : public ::testing::TestWithParam<NamedBackend> {
 protected:
  Backend& be() { return GetParam().get(); }

  // Host fp32 values -> a backend buffer.
  Buffer to_device(const std::vector<double>& host) {
    std::vector<float> f(host.begin(), host.end());
    Buffer b(be(), static_cast<int64_t>(f.size()));
    be().upload(b.data(), f.data(), static_cast<int64_t>(f.size()));
    return b;
  }
  std::vector<float> to_host(const Buffer& b) {
    std::vector<float> f(static_cast<size_t>(b.size()));
    be().download(f.data(), b.data(), b.size());
    return f;
  }
  // The double reference reads the same fp32-rounded inputs the backend got.
  static std::vector<double> rounded(const std::vector<double>& v) {
    std::vector<double> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = static_cast<float>(v[i]);
    return r;
  }
  static std::vector<float> as_float(const std::vector<double>& v) {
    return std::vector<float>(v.begin(), v.end());
  }

  // An output of `count` elements in backend memory, poisoned with NaN (an element the op
  // forgets to write stays NaN and fails every comparison) and followed by kGuard sentinel
  // elements the op must leave alone (an op that writes past its output fails the guard).
  static constexpr int64_t kGuard = 16;
  static constexpr float kSentinel = 12345.5f;
  struct Output {
    Buffer buffer;
    int64_t count = 0;
    float* data() { return buffer.data(); }
  };
  Output output(int64_t count) {
    std::vector<float> init(static_cast<size_t>(count + kGuard), std::nanf(""));
    std::fill(init.begin() + count, init.end(), kSentinel);
    Output out{Buffer(be(), count + kGuard), count};
    be().upload(out.data(), init.data(), count + kGuard);
    return out;
  }
  // An output that an Accumulate::Yes op adds into: `initial` values, then the guard.
  Output accumulating(const std::vector<double>& initial) {
    const auto count = static_cast<int64_t>(initial.size());
    std::vector<float> init(initial.begin(), initial.end());
    init.resize(static_cast<size_t>(count + kGuard), kSentinel);
    Output out{Buffer(be(), count + kGuard), count};
    be().upload(out.data(), init.data(), count + kGuard);
    return out;
  }
  // The output's values, after checking its guard.
  std::vector<float> to_host(const Output& out) {
    std::vector<float> all = to_host(out.buffer);
    for (int64_t i = out.count; i < out.count + kGuard; ++i) {
      EXPECT_EQ(all[static_cast<size_t>(i)], kSentinel) << "written past the output, element " << i;
    }
    all.resize(static_cast<size_t>(out.count));
    return all;
  }
};

TEST_P(BackendConformance, MemoryRoundTrips) {
  const auto values = random_values(37, 1);
  Buffer a = to_device(values);
  Buffer b(be(), 37);
  be().copy(b.data(), a.data(), 37);
  test::expect_all_near("copy", to_host(b), as_float(values), 0, 0);
  Buffer empty(be(), 0);
  EXPECT_EQ(empty.size(), 0);
}

TEST_P(BackendConformance, LinearForwardAndInputGradient) {
  for (const auto [tokens, in, out] : {std::array<int64_t, 3>{1, 5, 3}, {7, 33, 19}}) {
    const auto x = rounded(random_values(static_cast<size_t>(tokens * in), 2));
    const auto w = as_float(random_values(static_cast<size_t>(out * in), 3));
    const auto dy = rounded(random_values(static_cast<size_t>(tokens * out), 4));
    Buffer dx_dev = to_device(x), dy_dev = to_device(dy);
    Output y = output(tokens * out), dx = output(tokens * in);
    be().linear_forward(y.data(), dx_dev.data(), cpu::weight_f32(w.data()), tokens, in, out,
                        Accumulate::No);
    be().linear_backward_input(dx.data(), dy_dev.data(), cpu::weight_f32(w.data()), tokens, in, out,
                               Accumulate::No);
    std::vector<double> y_ref(static_cast<size_t>(tokens * out)), dx_ref(x.size());
    cpu::linear_forward<double>(y_ref.data(), x.data(), cpu::weight_f32(w.data()), tokens, in, out,
                                Accumulate::No);
    cpu::linear_backward_input<double>(dx_ref.data(), dy.data(), cpu::weight_f32(w.data()), tokens,
                                       in, out, Accumulate::No);
    test::expect_all_near("linear_forward", to_host(y), y_ref, kTol, kTol);
    test::expect_all_near("linear_backward_input", to_host(dx), dx_ref, kTol, kTol);
  }
}

TEST_P(BackendConformance, Bf16WeightsLinearAndLmHead) {
  // Base weights stored as bf16 (as Llama checkpoints ship): the backend reads the same bf16
  // values as the double reference, so the tolerance is the fp32 ops' (summation order only).
  const int64_t tokens = 7, in = 33, out = 19;
  const auto x = rounded(random_values(static_cast<size_t>(tokens * in), 70));
  const auto dy = rounded(random_values(static_cast<size_t>(tokens * out), 71));
  const auto wf = random_values(static_cast<size_t>(out * in), 72);
  std::vector<uint16_t> w(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) w[i] = f32_to_bf16(static_cast<float>(wf[i]));
  const WeightView view = cpu::weight_bf16(w.data());
  Buffer bx = to_device(x), bdy = to_device(dy);
  Output y = output(tokens * out), dx = output(tokens * in);
  be().linear_forward(y.data(), bx.data(), view, tokens, in, out, Accumulate::No);
  be().linear_backward_input(dx.data(), bdy.data(), view, tokens, in, out, Accumulate::No);
  std::vector<double> y_ref(static_cast<size_t>(tokens * out)), dx_ref(x.size());
  cpu::linear_forward<double>(y_ref.data(), x.data(), view, tokens, in, out, Accumulate::No);
  cpu::linear_backward_input<double>(dx_ref.data(), dy.data(), view, tokens, in, out,
                                     Accumulate::No);
  test::expect_all_near("linear_forward (bf16 W)", to_host(y), y_ref, kTol, kTol);
  test::expect_all_near("linear_backward_input (bf16 W)", to_host(dx), dx_ref, kTol, kTol);

  // The LM head with a bf16 vocabulary of `out` rows: logits of two rows.
  const std::vector<int64_t> rows = {6, 1};
  Output logits = output(2 * out);
  be().lm_head_logits(logits.data(), bx.data(), view, rows.data(), 2, tokens, in, out);
  std::vector<double> logits_ref(static_cast<size_t>(2 * out));
  cpu::lm_head_logits<double>(logits_ref.data(), x.data(), view, rows.data(), 2, tokens, in, out);
  test::expect_all_near("lm_head_logits (bf16 W)", to_host(logits), logits_ref, kTol, kTol);
}

TEST_P(BackendConformance, BiasAddAddsTheBiasToEveryRow) {
  // f32 and bf16 biases (Qwen2 checkpoints ship bf16), one token and several; y starts with
  // random values (the op adds) and is followed by the guard.
  for (const auto [tokens, out] : {std::array<int64_t, 2>{1, 5}, {7, 19}}) {
    const auto y0 = rounded(random_values(static_cast<size_t>(tokens * out), 80));
    const auto bias = as_float(random_values(static_cast<size_t>(out), 81));
    std::vector<uint16_t> bias_bf16(bias.size());
    for (size_t i = 0; i < bias.size(); ++i) bias_bf16[i] = f32_to_bf16(bias[i]);
    for (const WeightView view :
         {cpu::weight_f32(bias.data()), cpu::weight_bf16(bias_bf16.data())}) {
      Output y = accumulating(y0);
      be().bias_add(y.data(), view, tokens, out);
      std::vector<double> y_ref = y0;
      cpu::bias_add<double>(y_ref.data(), view, tokens, out);
      test::expect_all_near("bias_add", to_host(y), y_ref, kTol, kTol);
    }
  }
}

TEST_P(BackendConformance, Gemm) {
  const int64_t m = 5, n = 7, k = 11;
  const auto a = rounded(random_values(static_cast<size_t>(k * m), 5));  // stored [k, m]
  const auto b = rounded(random_values(static_cast<size_t>(n * k), 6));  // stored [n, k]
  const auto c0 = rounded(random_values(static_cast<size_t>(m * n), 7));
  Buffer da = to_device(a), db = to_device(b), dc = to_device(c0);
  be().gemm(Transpose::Yes, Transpose::Yes, m, n, k, 0.5f, da.data(), m, db.data(), k, 1.0f,
            dc.data(), n);
  std::vector<double> ref = c0;
  cpu::gemm<double>(Transpose::Yes, Transpose::Yes, m, n, k, 0.5, a.data(), m, b.data(), k, 1.0,
                    ref.data(), n);
  test::expect_all_near("gemm", to_host(dc), ref, kTol, kTol);
}

TEST_P(BackendConformance, NormRopeSwigluEmbedding) {
  const int64_t tokens = 3, heads = 2, head_dim = 6, hidden = heads * head_dim;
  const auto x = rounded(random_values(static_cast<size_t>(tokens * hidden), 8));
  const auto weight = as_float(random_values(static_cast<size_t>(hidden), 9, 0.5, 1.5));
  Buffer dx_in = to_device(x);
  Output y = output(tokens * hidden), rstd = output(tokens);
  be().rmsnorm_forward(y.data(), rstd.data(), dx_in.data(), cpu::weight_f32(weight.data()), tokens,
                       hidden, 1e-5);
  std::vector<double> y_ref(x.size()), rstd_ref(static_cast<size_t>(tokens));
  cpu::rmsnorm_forward<double>(y_ref.data(), rstd_ref.data(), x.data(),
                               cpu::weight_f32(weight.data()), tokens, hidden, 1e-5);
  test::expect_all_near("rmsnorm_forward", to_host(y), y_ref, kTol, kTol);
  test::expect_all_near("rmsnorm_forward rstd", to_host(rstd), rstd_ref, kTol, kTol);

  const RopeTable table = cpu::rope_table_build(10000.0, head_dim, 16, std::nullopt);
  const std::vector<int32_t> positions = {0, 9, 4};
  Output roped = output(tokens * hidden);
  be().rope_forward(roped.data(), dx_in.data(), positions.data(), tokens, heads, table);
  std::vector<double> rope_ref(x.size());
  cpu::rope_forward<double>(rope_ref.data(), x.data(), positions.data(), tokens, heads, table);
  test::expect_all_near("rope_forward", to_host(roped), rope_ref, kTol, kTol);

  const auto up = rounded(random_values(x.size(), 10));
  Buffer dup = to_device(up);
  Output h = output(tokens * hidden);
  be().swiglu_forward(h.data(), dx_in.data(), dup.data(), tokens * hidden);
  std::vector<double> h_ref(x.size());
  cpu::swiglu_forward<double>(h_ref.data(), x.data(), up.data(), tokens * hidden);
  test::expect_all_near("swiglu_forward", to_host(h), h_ref, kTol, kTol);

  const auto table_values = as_float(random_values(static_cast<size_t>(13 * hidden), 11));
  const std::vector<int32_t> ids = {12, 0, 5};
  Output emb = output(tokens * hidden);
  be().embedding_forward(emb.data(), ids.data(), cpu::weight_f32(table_values.data()), tokens, 13,
                         hidden);
  std::vector<double> emb_ref(x.size());
  cpu::embedding_forward<double>(emb_ref.data(), ids.data(), cpu::weight_f32(table_values.data()),
                                 tokens, 13, hidden);
  test::expect_all_near("embedding_forward", to_host(emb), emb_ref, 0, 0);
}

TEST_P(BackendConformance, AttentionWithDocuments) {
  const AttentionShape shape{9, 4, 2, 8};  // GQA 4 q heads over 2 kv heads
  const std::vector<uint32_t> starts = {0, 4};
  const std::vector<int32_t> cu_seqlens = {0, 4, 9};  // the same documents, the backend's layout
  const int64_t q_size = shape.tokens * shape.num_attention_heads * shape.head_dim;
  const int64_t kv_size = shape.tokens * shape.num_key_value_heads * shape.head_dim;
  const auto q = rounded(random_values(static_cast<size_t>(q_size), 12));
  const auto k = rounded(random_values(static_cast<size_t>(kv_size), 13));
  const auto v = rounded(random_values(static_cast<size_t>(kv_size), 14));
  Buffer dq_in = to_device(q), dk_in = to_device(k), dv_in = to_device(v);
  Output out = output(q_size), lse = output(shape.num_attention_heads * shape.tokens);
  be().attention_forward(out.data(), lse.data(), dq_in.data(), dk_in.data(), dv_in.data(), shape,
                         cu_seqlens);
  std::vector<double> out_ref(q.size()), lse_ref(static_cast<size_t>(lse.count));
  cpu::attention_forward<double>(out_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(),
                                 shape, starts);
  test::expect_all_near("attention_forward", to_host(out), out_ref, kTol, kTol);
  test::expect_all_near("attention_forward lse", to_host(lse), lse_ref, kTol, kTol);
}

TEST_P(BackendConformance, AttentionRefusesMalformedCuSeqlens) {
  // The varlen layout's promises (first 0, strictly increasing, last = tokens) are checked
  // with a one-line error before anything is written.
  const AttentionShape shape{4, 1, 1, 2};
  Buffer q(be(), 8), k(be(), 8), v(be(), 8), out(be(), 8), lse(be(), 4);
  for (const std::vector<int32_t>& bad :
       {std::vector<int32_t>{0, 3}, std::vector<int32_t>{1, 4}, std::vector<int32_t>{0, 2, 2, 4},
        std::vector<int32_t>{4}}) {
    const std::string message = test::error_of([&] {
      be().attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), shape, bad);
    });
    EXPECT_NE(message.find("cu_seqlens"), std::string::npos) << message;
  }
}

// attention_decode has no double instantiation, so its reference is attention_forward<double>
// on the whole sequence of T = p0 + m tokens (one document): the decode output of the m new
// queries must be its last m rows. The caches hold T rows plus 3 rows of NaN past the end
// (capacity beyond the length, as a KV cache has), which a correct kernel never reads; a
// guard after `out` must stay untouched. Same tolerance kTol: at most 72 keys of head_dim 13.
TEST_P(BackendConformance, AttentionDecodeEqualsTheLastRowsOfTheFullSequence) {
  struct DecodeCase {
    int64_t past, new_tokens, heads, kv_heads, head_dim;
  };
  for (const DecodeCase c : {DecodeCase{0, 1, 2, 1, 4},       // first token from an empty cache
                             DecodeCase{0, 5, 2, 2, 3},       // a whole prompt
                             DecodeCase{9, 1, 4, 2, 8},       // a decode step, GQA 2
                             DecodeCase{6, 3, 3, 1, 5},       // a chunk after a prefix, GQA 3
                             DecodeCase{70, 2, 4, 4, 13}}) {  // crosses 64-key tiles
    const int64_t tokens = c.past + c.new_tokens;
    SCOPED_TRACE("p0=" + std::to_string(c.past) + " m=" + std::to_string(c.new_tokens));
    const int64_t q_width = c.heads * c.head_dim, kv_width = c.kv_heads * c.head_dim;
    const auto q = rounded(random_values(static_cast<size_t>(tokens * q_width), 30));
    const auto k = rounded(random_values(static_cast<size_t>(tokens * kv_width), 31));
    const auto v = rounded(random_values(static_cast<size_t>(tokens * kv_width), 32));
    constexpr int64_t kSpareRows = 3, kOutGuard = 8;
    auto k_cache = k, v_cache = v;  // [tokens + spare, kv_width]
    k_cache.resize(static_cast<size_t>((tokens + kSpareRows) * kv_width), std::nan(""));
    v_cache.resize(k_cache.size(), std::nan(""));
    const std::vector<double> q_new(q.begin() + c.past * q_width, q.end());  // [m, q_width]
    std::vector<double> out_init(static_cast<size_t>(c.new_tokens * q_width + kOutGuard), 7.5);
    Buffer bq = to_device(q_new), bk = to_device(k_cache), bv = to_device(v_cache);
    Buffer out = to_device(out_init);
    be().attention_decode(out.data(), bq.data(), bk.data(), bv.data(),
                          {c.new_tokens, c.past, c.heads, c.kv_heads, c.head_dim});

    std::vector<double> full(q.size()), lse(static_cast<size_t>(c.heads * tokens));
    cpu::attention_forward<double>(full.data(), lse.data(), q.data(), k.data(), v.data(),
                                   {tokens, c.heads, c.kv_heads, c.head_dim}, {});
    std::vector<double> expected(full.begin() + c.past * q_width, full.end());
    expected.resize(out_init.size(), 7.5);  // the guard
    test::expect_all_near("attention_decode", to_host(out), expected, kTol, kTol);
  }
}

TEST_P(BackendConformance, CrossEntropyAndLogits) {
  const int64_t tokens = 5, hidden = 7, vocab = 131;
  const auto h = rounded(random_values(static_cast<size_t>(tokens * hidden), 15));
  const auto w = as_float(random_values(static_cast<size_t>(vocab * hidden), 16));
  const std::vector<int32_t> labels = {3, cpu::kIgnoreLabel, 130, 0, 64};
  Buffer dh_in = to_device(h);
  Output dh = output(tokens * hidden), loss = output(tokens);
  const double got =
      be().cross_entropy_forward_backward(dh.data(), dh_in.data(), cpu::weight_f32(w.data()),
                                          labels.data(), tokens, hidden, vocab, 0.25, 2);
  std::vector<double> dh_ref(h.size());
  const double ref = cpu::cross_entropy_forward_backward<double>(
      dh_ref.data(), h.data(), cpu::weight_f32(w.data()), labels.data(), tokens, hidden, vocab,
      0.25, 2);
  EXPECT_NEAR(got, ref, kTol * (1 + std::abs(ref)));
  test::expect_all_near("cross_entropy dh", to_host(dh), dh_ref, kTol, kTol);
  be().cross_entropy_forward(loss.data(), dh_in.data(), cpu::weight_f32(w.data()), labels.data(),
                             tokens, hidden, vocab, 2);
  std::vector<double> loss_ref(static_cast<size_t>(tokens));
  cpu::cross_entropy_forward<double>(loss_ref.data(), h.data(), cpu::weight_f32(w.data()),
                                     labels.data(), tokens, hidden, vocab, 2);
  test::expect_all_near("cross_entropy_forward", to_host(loss), loss_ref, kTol, kTol);

  const std::vector<int64_t> rows = {4, 0};
  Output logits = output(2 * vocab);
  be().lm_head_logits(logits.data(), dh_in.data(), cpu::weight_f32(w.data()), rows.data(), 2,
                      tokens, hidden, vocab);
  std::vector<double> logits_ref(static_cast<size_t>(2 * vocab));
  cpu::lm_head_logits<double>(logits_ref.data(), h.data(), cpu::weight_f32(w.data()), rows.data(),
                              2, tokens, hidden, vocab);
  test::expect_all_near("lm_head_logits", to_host(logits), logits_ref, kTol, kTol);
}

TEST_P(BackendConformance, Backwards) {
  const AttentionShape shape{6, 2, 1, 4};  // GQA: 2 q heads share 1 kv head
  const int64_t tokens = shape.tokens, q_size = tokens * 2 * 4, kv_size = tokens * 4;
  const std::vector<uint32_t> starts = {0, 2};
  const std::vector<int32_t> cu_seqlens = {0, 2, 6};  // the same documents, the backend's layout
  const auto q = rounded(random_values(static_cast<size_t>(q_size), 20));
  const auto k = rounded(random_values(static_cast<size_t>(kv_size), 21));
  const auto v = rounded(random_values(static_cast<size_t>(kv_size), 22));
  const auto d_out = rounded(random_values(static_cast<size_t>(q_size), 23));
  std::vector<double> out_ref(q.size()), lse_ref(static_cast<size_t>(2 * tokens));
  cpu::attention_forward<double>(out_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(),
                                 shape, starts);
  const auto out_r = rounded(out_ref), lse_r = rounded(lse_ref);
  Buffer bq = to_device(q), bk = to_device(k), bv = to_device(v), bdo = to_device(d_out);
  Buffer bo = to_device(out_r), bl = to_device(lse_r);
  Output dq = output(q_size), dk = output(kv_size), dv = output(kv_size);
  be().attention_backward(dq.data(), dk.data(), dv.data(), bdo.data(), bq.data(), bk.data(),
                          bv.data(), bo.data(), bl.data(), shape, cu_seqlens);
  std::vector<double> dq_ref(q.size()), dk_ref(k.size()), dv_ref(v.size());
  cpu::attention_backward<double>(dq_ref.data(), dk_ref.data(), dv_ref.data(), d_out.data(),
                                  q.data(), k.data(), v.data(), out_r.data(), lse_r.data(), shape,
                                  starts);
  test::expect_all_near("attention_backward dq", to_host(dq), dq_ref, kTol, kTol);
  test::expect_all_near("attention_backward dk", to_host(dk), dk_ref, kTol, kTol);
  test::expect_all_near("attention_backward dv", to_host(dv), dv_ref, kTol, kTol);

  // RMSNorm (accumulating into dx), RoPE and SwiGLU backwards on [tokens, 8].
  const int64_t hidden = 8;
  const auto x = rounded(random_values(static_cast<size_t>(tokens * hidden), 24));
  const auto dy = rounded(random_values(x.size(), 25));
  const auto dx0 = rounded(random_values(x.size(), 26));
  const auto weight = as_float(random_values(static_cast<size_t>(hidden), 27, 0.5, 1.5));
  std::vector<double> y_ref(x.size()), rstd_ref(static_cast<size_t>(tokens));
  cpu::rmsnorm_forward<double>(y_ref.data(), rstd_ref.data(), x.data(),
                               cpu::weight_f32(weight.data()), tokens, hidden, 1e-5);
  const auto rstd_r = rounded(rstd_ref);
  Buffer bx = to_device(x), bdy = to_device(dy), bdx = to_device(dx0), brstd = to_device(rstd_r);
  be().rmsnorm_backward(bdx.data(), bdy.data(), bx.data(), brstd.data(),
                        cpu::weight_f32(weight.data()), tokens, hidden, Accumulate::Yes);
  std::vector<double> dx_ref = dx0;
  cpu::rmsnorm_backward<double>(dx_ref.data(), dy.data(), x.data(), rstd_r.data(),
                                cpu::weight_f32(weight.data()), tokens, hidden, Accumulate::Yes);
  test::expect_all_near("rmsnorm_backward", to_host(bdx), dx_ref, kTol, kTol);

  const RopeTable table = cpu::rope_table_build(500000.0, 4, 8, std::nullopt);
  const std::vector<int32_t> positions = {0, 1, 0, 1, 2, 7};
  Output d_in = output(tokens * hidden);
  be().rope_backward(d_in.data(), bdy.data(), positions.data(), tokens, 2, table);
  std::vector<double> d_in_ref(x.size());
  cpu::rope_backward<double>(d_in_ref.data(), dy.data(), positions.data(), tokens, 2, table);
  test::expect_all_near("rope_backward", to_host(d_in), d_in_ref, kTol, kTol);

  Output d_gate = output(tokens * hidden), d_up = output(tokens * hidden);
  be().swiglu_backward(d_gate.data(), d_up.data(), bdy.data(), bx.data(), bdx.data(),
                       tokens * hidden);
  std::vector<double> d_gate_ref(x.size()), d_up_ref(x.size());
  const auto up_host = to_host(bdx);  // what the backend read as `up`
  const std::vector<double> up_r(up_host.begin(), up_host.end());
  cpu::swiglu_backward<double>(d_gate_ref.data(), d_up_ref.data(), dy.data(), x.data(), up_r.data(),
                               tokens * hidden);
  test::expect_all_near("swiglu_backward gate", to_host(d_gate), d_gate_ref, kTol, kTol);
  test::expect_all_near("swiglu_backward up", to_host(d_up), d_up_ref, kTol, kTol);
}

TEST_P(BackendConformance, DropoutDropsTheCpuMaskExactly) {
  // A device run must drop the same elements as a CPU run (the counter-based mask of
  // cpu/dropout.h): the kept/dropped pattern is compared exactly, the kept values within kTol.
  const int64_t n = 1000;
  const auto x = rounded(random_values(static_cast<size_t>(n), 40));
  const DropoutWindow window{10, 40, 20};  // a rank's 10 columns of a [.., 40] activation
  Buffer bx = to_device(x);
  Output out = output(n);
  be().dropout_forward(out.data(), bx.data(), n, 0.3, 99, window);
  std::vector<float> ref(static_cast<size_t>(n));
  const std::vector<float> xf = as_float(x);
  cpu::dropout_forward(ref.data(), xf.data(), n, 0.3, 99, window);
  const std::vector<float> got = to_host(out);
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto at = static_cast<size_t>(i);
    ASSERT_EQ(got[at] == 0.0f, ref[at] == 0.0f) << "element " << i;
    dropped += ref[at] == 0.0f;
  }
  EXPECT_GT(dropped, 200);  // p = 0.3 of 1000
  EXPECT_LT(dropped, 400);
  test::expect_all_near("dropout_forward", got, std::vector<double>(ref.begin(), ref.end()), kTol,
                        kTol);

  Output dx = output(n);
  be().dropout_backward(dx.data(), bx.data(), n, 0.3, 99, Accumulate::No, window);
  std::vector<float> dx_ref(static_cast<size_t>(n));
  cpu::dropout_backward(dx_ref.data(), xf.data(), n, 0.3, 99, Accumulate::No, window);
  test::expect_all_near("dropout_backward", to_host(dx),
                        std::vector<double>(dx_ref.begin(), dx_ref.end()), kTol, kTol);
}

TEST_P(BackendConformance, OptimizerOpsAndRopeTable) {
  // AdamW against the CPU reference step (torch.optim.AdamW's update, test_adamw pins it to
  // torch), the squared norm against a double sum, scale and zero exactly.
  const int64_t n = 37;
  const auto p0 = rounded(random_values(static_cast<size_t>(n), 41));
  const auto g = rounded(random_values(static_cast<size_t>(n), 42));
  const auto m0 = rounded(random_values(static_cast<size_t>(n), 43));
  auto v0 = rounded(random_values(static_cast<size_t>(n), 44));
  for (double& value : v0) value = value * value;  // second moments are >= 0
  Buffer bp = to_device(p0), bg = to_device(g), bm = to_device(m0), bv = to_device(v0);
  const AdamWConfig config{1e-2, 0.9, 0.999, 1e-8, 0.01};
  be().adamw_update(bp.data(), bg.data(), bm.data(), bv.data(), n, config, 3);
  std::vector<float> p = as_float(p0), m = as_float(m0), v = as_float(v0);
  const std::vector<float> gf = as_float(g);
  cpu::adamw_update(p.data(), gf.data(), m.data(), v.data(), n, config, 3);
  const auto as_double = [](const std::vector<float>& f) {
    return std::vector<double>(f.begin(), f.end());
  };
  test::expect_all_near("adamw param", to_host(bp), as_double(p), kTol, kTol);
  test::expect_all_near("adamw exp_avg", to_host(bm), as_double(m), kTol, kTol);
  test::expect_all_near("adamw exp_avg_sq", to_host(bv), as_double(v), kTol, kTol);

  double squares = 0;
  for (double value : g) squares += value * value;
  EXPECT_NEAR(be().sum_of_squares(bg.data(), n), squares, kTol * squares);
  be().scale(bg.data(), n, 0.5f);
  std::vector<double> halved(g.size());
  for (size_t i = 0; i < g.size(); ++i) halved[i] = 0.5 * g[i];
  test::expect_all_near("scale", to_host(bg), halved, 0, 0);
  be().zero(bg.data(), n);
  test::expect_all_near("zero", to_host(bg), std::vector<double>(g.size(), 0.0), 0, 0);

  RopeSpec spec;
  spec.theta = 500000.0;
  spec.head_dim = 8;
  spec.max_positions = 32;
  spec.scaling = RopeLlama3Scaling{};
  const RopeTable table = be().build_rope_table(spec);
  const RopeTable ref = cpu::rope_table_build(500000.0, 8, 32, RopeLlama3Scaling{});
  EXPECT_EQ(table.max_positions, 32);
  EXPECT_EQ(table.cos, ref.cos);
  EXPECT_EQ(table.sin, ref.sin);
}

TEST_P(BackendConformance, AccumulatingOpsAddIntoTheirOutputAndStayInside) {
  // Every Accumulate::Yes form: out = initial + op, the guard after the output untouched.
  const int64_t tokens = 7, in = 33, out = 19;
  const auto x = rounded(random_values(static_cast<size_t>(tokens * in), 50));
  const auto w = as_float(random_values(static_cast<size_t>(out * in), 51));
  const auto dy = rounded(random_values(static_cast<size_t>(tokens * out), 52));
  const auto y0 = rounded(random_values(static_cast<size_t>(tokens * out), 53));
  const auto dx0 = rounded(random_values(static_cast<size_t>(tokens * in), 54));
  Buffer bx = to_device(x), bdy = to_device(dy);
  Output y = accumulating(y0), dx = accumulating(dx0);
  be().linear_forward(y.data(), bx.data(), cpu::weight_f32(w.data()), tokens, in, out,
                      Accumulate::Yes);
  be().linear_backward_input(dx.data(), bdy.data(), cpu::weight_f32(w.data()), tokens, in, out,
                             Accumulate::Yes);
  std::vector<double> y_ref = y0, dx_ref = dx0;
  cpu::linear_forward<double>(y_ref.data(), x.data(), cpu::weight_f32(w.data()), tokens, in, out,
                              Accumulate::Yes);
  cpu::linear_backward_input<double>(dx_ref.data(), dy.data(), cpu::weight_f32(w.data()), tokens,
                                     in, out, Accumulate::Yes);
  test::expect_all_near("linear_forward (accumulate)", to_host(y), y_ref, kTol, kTol);
  test::expect_all_near("linear_backward_input (accumulate)", to_host(dx), dx_ref, kTol, kTol);

  const int64_t hidden = 8;
  const auto xn = rounded(random_values(static_cast<size_t>(tokens * hidden), 55));
  const auto dyn = rounded(random_values(xn.size(), 56));
  const auto dxn0 = rounded(random_values(xn.size(), 57));
  const auto weight = as_float(random_values(static_cast<size_t>(hidden), 58, 0.5, 1.5));
  std::vector<double> yn(xn.size()), rstd(static_cast<size_t>(tokens));
  cpu::rmsnorm_forward<double>(yn.data(), rstd.data(), xn.data(), cpu::weight_f32(weight.data()),
                               tokens, hidden, 1e-5);
  const auto rstd_r = rounded(rstd);
  Buffer bxn = to_device(xn), bdyn = to_device(dyn), brstd = to_device(rstd_r);
  Output dxn = accumulating(dxn0);
  be().rmsnorm_backward(dxn.data(), bdyn.data(), bxn.data(), brstd.data(),
                        cpu::weight_f32(weight.data()), tokens, hidden, Accumulate::Yes);
  std::vector<double> dxn_ref = dxn0;
  cpu::rmsnorm_backward<double>(dxn_ref.data(), dyn.data(), xn.data(), rstd_r.data(),
                                cpu::weight_f32(weight.data()), tokens, hidden, Accumulate::Yes);
  test::expect_all_near("rmsnorm_backward (accumulate)", to_host(dxn), dxn_ref, kTol, kTol);

  const int64_t n = 300;
  const auto d = rounded(random_values(static_cast<size_t>(n), 59));
  const auto d0 = rounded(random_values(static_cast<size_t>(n), 60));
  Buffer bd = to_device(d);
  Output dd = accumulating(d0);
  be().dropout_backward(dd.data(), bd.data(), n, 0.25, 7, Accumulate::Yes, DropoutWindow{});
  std::vector<float> dd_ref = as_float(d0);
  const std::vector<float> df = as_float(d);
  cpu::dropout_backward(dd_ref.data(), df.data(), n, 0.25, 7, Accumulate::Yes, DropoutWindow{});
  test::expect_all_near("dropout_backward (accumulate)", to_host(dd),
                        std::vector<double>(dd_ref.begin(), dd_ref.end()), kTol, kTol);
}

TEST_P(BackendConformance, VocabShardedCrossEntropyCombinesToTheWholeVocabulary) {
  // Two "ranks" (threads) each hold half of W_lm's rows and run the backend's sharded
  // cross-entropy; their reductions meet at a barrier (host memory: the CPU backend's; a
  // device backend passes its communicator's reduce). Each rank's loss must be the whole
  // vocabulary's and the ranks' dh shares must sum to the whole dh.
  const int64_t tokens = 5, hidden = 7, vocab = 130, rows = vocab / 2;
  const auto h = rounded(random_values(static_cast<size_t>(tokens * hidden), 61));
  const auto w = as_float(random_values(static_cast<size_t>(vocab * hidden), 62));
  const std::vector<int32_t> labels = {3, cpu::kIgnoreLabel, 129, 0, 64};
  std::vector<double> dh_ref(h.size()), loss_ref(static_cast<size_t>(tokens));
  const double ref = cpu::cross_entropy_forward_backward<double>(
      dh_ref.data(), h.data(), cpu::weight_f32(w.data()), labels.data(), tokens, hidden, vocab,
      0.25, 2);
  cpu::cross_entropy_forward<double>(loss_ref.data(), h.data(), cpu::weight_f32(w.data()),
                                     labels.data(), tokens, hidden, vocab, 2);

  constexpr int kRanks = 2;
  Buffer bh = to_device(h);
  std::vector<Output> dh, loss;
  for (int rank = 0; rank < kRanks; ++rank) {
    dh.push_back(output(tokens * hidden));
    loss.push_back(output(tokens));
  }
  std::barrier sync(kRanks);
  std::vector<std::vector<float>> slots(kRanks);
  std::vector<double> got(kRanks);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < kRanks; ++rank) {
    threads.emplace_back([&, rank] {
      VocabShard shard;
      shard.first = rank * rows;
      shard.full_vocab = vocab;
      shard.reduce = [&, rank](float* values, int64_t count, ReduceOp op) {
        slots[static_cast<size_t>(rank)].assign(values, values + count);
        sync.arrive_and_wait();
        for (int64_t i = 0; i < count; ++i) {
          const float a = slots[0][static_cast<size_t>(i)], b = slots[1][static_cast<size_t>(i)];
          values[i] = op == ReduceOp::Max ? std::max(a, b) : a + b;
        }
        sync.arrive_and_wait();
      };
      const WeightView part = cpu::weight_f32(w.data() + shard.first * hidden);
      const auto r = static_cast<size_t>(rank);
      got[r] = be().cross_entropy_forward_backward(dh[r].data(), bh.data(), part, labels.data(),
                                                   tokens, hidden, rows, 0.25, 2, &shard);
      be().cross_entropy_forward(loss[r].data(), bh.data(), part, labels.data(), tokens, hidden,
                                 rows, 2, &shard);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> dh_sum(h.size(), 0.0);
  for (int rank = 0; rank < kRanks; ++rank) {
    const auto r = static_cast<size_t>(rank);
    EXPECT_NEAR(got[r], ref, kTol * (1 + std::abs(ref))) << "rank " << rank;
    test::expect_all_near("sharded cross_entropy_forward", to_host(loss[r]), loss_ref, kTol, kTol);
    const std::vector<float> share = to_host(dh[r]);
    for (size_t i = 0; i < share.size(); ++i) dh_sum[i] += share[i];
  }
  test::expect_all_near("sharded cross_entropy dh (sum of shares)", dh_sum, dh_ref, kTol, kTol);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendConformance, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<NamedBackend>& param_info) {
                           return std::string(param_info.param.name);
                         });

}  // namespace
}  // namespace ll
