// `verify`: is a merged model folder the same model as base + adapter? Runs fixed token-id
// prompts (no tokenizer needed) through base + adapter (LoRA applied, ForwardMode::Eval: no
// dropout, whatever adapter_config.json says) and through the merged folder, and compares
// every logit of every position:
//
//   relative = max |logit(merged) - logit(base + adapter)| / max |logit(base + adapter)|
//
// It passes when `relative` <= the tolerance. The default depends on the merged folder's
// projection dtype, because a merge rounds W + scale·B·A once to that dtype (tools/merge.h)
// while the reference keeps the LoRA path in fp32:
//   fp32  1e-4  (unit roundoff 6e-8; what remains is fp32 summation order: measured 5.2e-7
//               on the gqa_tied golden fixture, test_verify)
//   f16   5e-3  (unit roundoff 2^-11 = 4.9e-4 per merged weight, 4x finer than bf16)
//   bf16  2e-2  (unit roundoff 2^-9 = 2.0e-3 per merged weight; measured 4.9e-3 on the
//               llama3_rope_headdim_bf16 fixture, whose adapter moves logits by as much as
//               the largest logit; a merge that loses one projection's delta measures above)
// The adapter's own effect, max |logit(base + adapter) - logit(base)|, is measured too: a
// merge error small against the tolerance but comparable to that effect means the delta
// was lost, and the report prints both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "core/file.h"

namespace ll {

struct VerifyOptions {
  std::optional<double> tolerance;  // relative; unset: verify_default_tolerance(merged dtype)
};

struct Verification {
  double max_abs_diff = 0;          // max |merged - (base + adapter)| over every logit
  double max_abs_logit = 0;         // max |base + adapter logit|, for scale
  double relative = 0;              // max_abs_diff / max_abs_logit
  double adapter_effect = 0;        // max |(base + adapter) - base|
  double tolerance = 0;             // what `relative` was held to
  DType merged_dtype = DType::F32;  // the merged projections' (lowest precision) dtype
  int64_t tokens = 0;               // positions compared
  int64_t worst_position = 0;       // where max_abs_diff is: position (row-major) and vocab id
  int64_t worst_token = 0;

  bool passed() const { return relative <= tolerance; }
};

double verify_default_tolerance(DType merged_dtype);

// ll::Error unless the tolerance, when given, is finite and >= 0 (checked before any work).
void check_verify_options(const VerifyOptions& options);

// Loads the three folders and compares. Throws ll::Error when a folder cannot be read, the
// shapes differ, or a logit difference is not finite; a difference above the tolerance is
// not an exception (see passed()).
Verification verify_merged_model(const fs::path& base, const fs::path& adapter,
                                 const fs::path& merged, const VerifyOptions& options = {});

// The one-line summary `verify` and `merge --verify` print ("... PASS" or "... FAIL").
std::string verification_summary(const Verification& v);

}  // namespace ll
