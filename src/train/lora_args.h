// The LoRA settings of `train` (peft.LoraConfig's names): --lora_r, --lora_alpha, --lora_dropout,
// --use_rslora, --target_modules and the per-module ones,
//   --lora_rank_pattern JSON     peft's rank_pattern, e.g. '{"q_proj": 4, "layers.0.mlp.down_proj":
//   16}'
//   --lora_alpha_pattern JSON    peft's alpha_pattern, e.g. '{"v_proj": 32}'
//   --layers_to_transform LIST   peft's layers_to_transform, e.g. "0,1,5" (empty: every layer)
// matched on module names by peft's rules (model/peft_match.h) and written to adapter_config.json.
// The patterns keep the order given (the first key that matches a module wins, as in peft).
#pragma once

#include "model/lora.h"
#include "train/training_args.h"

namespace ll {

// The LoRA settings of `args`, checked; errors ("[train] --flag ...") name the flag.
LoraConfig lora_config_from_args(const TrainingArgs& args);

}  // namespace ll
