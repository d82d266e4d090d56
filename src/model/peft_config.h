// adapter_config.json as peft 0.21.2 reads and writes it (peft/tuners/lora/config.py LoraConfig),
// with nothing ignored: every field either reaches LoraConfig (r, lora_alpha, lora_dropout,
// use_rslora, target_modules, rank_pattern, alpha_pattern, layers_to_transform, layers_pattern,
// exclude_modules), has no effect on the adapted model (kPeftNoEffectFields below), or must hold
// its "off" value (null, false, empty, "none") and is refused otherwise with one line naming the
// file and field. A field peft 0.21.2 does not have is refused by name.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "model/lora.h"

namespace ll {

// Fields accepted with any value: they do not change what the adapter computes.
// (ensure_weight_tying only ties adapters of embeddings / modules_to_save, which we refuse;
// megatron_core and qalora_group_size only matter with megatron_config / use_qalora.)
inline constexpr std::array<std::string_view, 10> kPeftNoEffectFields = {
    "auto_mapping",       "base_model_name_or_path", "revision",
    "task_type",          "inference_mode",          "peft_version",
    "megatron_core",      "qalora_group_size",       "runtime_config",
    "ensure_weight_tying"};

// Fields that change the math and that we do not implement: each must be unset (null, false,
// an empty list/object, or bias "none"). init_lora_weights may be true, false or "gaussian"
// (they only choose A and B's start, which the file's tensors replace); the other methods
// (pissa, olora, corda, loftq, ...) change the base weights and are refused.
inline constexpr std::array<std::string_view, 20> kPeftRefusedFields = {"modules_to_save",
                                                                        "fan_in_fan_out",
                                                                        "use_dora",
                                                                        "bias",
                                                                        "lora_bias",
                                                                        "use_qalora",
                                                                        "layer_replication",
                                                                        "megatron_config",
                                                                        "loftq_config",
                                                                        "target_parameters",
                                                                        "trainable_token_indices",
                                                                        "alora_invocation_tokens",
                                                                        "arrow_config",
                                                                        "corda_config",
                                                                        "eva_config",
                                                                        "kasa_config",
                                                                        "lora_ga_config",
                                                                        "monteclora_config",
                                                                        "use_bdlora",
                                                                        "velora_config"};

// The LoraConfig of adapter_config.json's text; `origin` (the file) starts every error.
LoraConfig parse_peft_lora_config(const std::string& text, const std::string& origin);

// adapter_config.json's text for `lora`: the fields peft 0.21.2's save_pretrained writes, sorted
// as it sorts them, the patterns in `lora`'s order. `base_model` "" writes null.
std::string peft_lora_config_text(const LoraConfig& lora, const std::string& base_model);

}  // namespace ll
