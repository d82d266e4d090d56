// See tiny_run.h.
#include "train/tiny_run.h"

#include <stdexcept>

namespace ll::test {

const TinyRun& tiny() {
  static TinyRun* run = [] {
    auto* r = new TinyRun;
    r->model = r->dir / "tiny";
    r->data = r->dir / "sql.jsonl";
    const auto init = run_llama_lora("init --preset tiny -o " + shell_quote(r->model.string()));
    if (init.exit_code != 0) throw std::runtime_error("init failed: " + init.err);
    const auto data =
        run_llama_lora("make-data --preset sql --rows 600 -o " + shell_quote(r->data.string()));
    if (data.exit_code != 0) throw std::runtime_error("make-data failed: " + data.err);
    r->weights = std::make_unique<LlamaWeights>(load_llama_weights(r->model));
    const Tokenizer tokenizer = Tokenizer::load(r->model);
    const ChatTemplate chat_template = ChatTemplate::load(r->model);
    DataOptions options;
    options.split = {23, 20, 40};
    options.max_seq_length = 64;
    r->prepared = prepare_data(r->data, tokenizer, chat_template, options);
    return r;
  }();
  return *run;
}

TrainingArgs small_args(const fs::path& output_dir) {
  TrainingArgs args;
  args.model = tiny().model.string();
  args.data = tiny().data.string();
  args.output_dir = output_dir.string();
  args.max_seq_length = 64;
  args.per_device_train_batch_size = 2;
  args.per_device_eval_batch_size = 4;
  args.gradient_accumulation_steps = 2;
  args.max_steps = 10;
  args.learning_rate = 3e-3;
  args.warmup_steps = 2;
  args.weight_decay = 0.01;
  args.logging_steps = 1;
  args.save_steps = 5;
  args.eval_steps = 0;
  args.lora_r = 4;
  args.lora_alpha = 8;
  args.lora_dropout = 0.1;
  args.target_modules = "all-linear";
  args.seed = 7;
  return args;
}

}  // namespace ll::test
