// The training loop in process on the tiny model (`llama-lora init --preset tiny`, synthetic
// sql rows from `make-data`): batches (targets, positions, documents), the step loss as the
// mean over the whole step's label tokens, exact resumption (the steps after a resume give
// bit-identical losses, gradient norms and final weights), stop requests, non-finite losses,
// and evaluation without dropout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "data/dataset.h"
#include "data/numpy_random.h"
#include "forwarding_backend.h"
#include "model/llama_model.h"
#include "test_util.h"
#include "train/batches.h"
#include "train/tiny_run.h"
#include "train/trainer.h"

namespace ll {
namespace {

using test::small_args;
using test::tiny;

TrainResult train_with(const TrainingArgs& args, TrainerOptions options = {}) {
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval,
                  std::move(options));
  return trainer.train();
}

std::vector<nlohmann::json> read_lines(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  const std::string text = read_file(path);
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    lines.push_back(nlohmann::json::parse(text.substr(begin, end - begin)));
    begin = end + 1;
  }
  return lines;
}

TokenSequences hand_made_sequences() {
  TokenSequences s;
  s.seq_length = 8;
  // Sequence 0: documents at 0, 3 and 6; token 2 is not a target (e.g. a prompt token).
  // Sequence 1: the middle of a longer document (its start lies in sequence 0).
  for (int32_t i = 0; i < 16; ++i) s.ids.push_back(10 + i);
  s.labels = {1, 1, 0, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 1, 1, 1};
  s.valid_tokens = {8, 8};
  s.document_starts = {0, 3, 6, /**/ 0};
  s.document_offsets = {0, 3, 4};
  return s;
}

TEST(Batches, TargetsArePredictionsInsideOneDocument) {
  const TokenSequences s = hand_made_sequences();
  const std::vector<uint64_t> rows = {0, 1};
  const TokenBatch batch = make_token_batch(s, rows);
  ASSERT_EQ(batch.rows, 2);
  ASSERT_EQ(batch.seq_len, 8);
  const std::vector<int32_t> expected_targets = {
      11, -100, -100, 14, 15, -100, 17, -100,   // t1: token 2 is no target; t2, t5: next document
      19, 20,   21,   22, 23, 24,   25, -100};  // the last position has nothing to predict
  EXPECT_EQ(batch.targets, expected_targets);
  const std::vector<int32_t> expected_positions = {0, 1, 2, 0, 1, 2, 0, 1,
                                                   0, 1, 2, 3, 4, 5, 6, 7};  // restart at 0
  EXPECT_EQ(batch.positions, expected_positions);
  EXPECT_EQ(batch.document_starts[0], (std::vector<uint32_t>{0, 3, 6}));
  EXPECT_EQ(batch.document_starts[1], (std::vector<uint32_t>{0}));
  EXPECT_EQ(batch.target_count(), 11);
  EXPECT_NO_THROW(batch.check(100));

  const std::vector<uint64_t> reversed = {1, 0};
  const TokenBatch swapped = make_token_batch(s, reversed);
  EXPECT_EQ(swapped.input_ids[0], 18);
  EXPECT_EQ(swapped.document_starts[1], (std::vector<uint32_t>{0, 3, 6}));
  const std::vector<uint64_t> bad = {2};
  EXPECT_THROW(make_token_batch(s, bad), Error);
}

TEST(Batches, EpochOrderIsNumpysPermutationOfSeedPlusEpoch) {
  EXPECT_EQ(epoch_order(50, 42, 0), numpy_permutation(50, 42));
  EXPECT_EQ(epoch_order(50, 42, 3), numpy_permutation(50, 45));
  EXPECT_NE(epoch_order(50, 42, 0), epoch_order(50, 42, 1));
  std::set<uint64_t> seeds;
  for (int64_t step = 0; step < 20; ++step) {
    for (int64_t micro = 0; micro < 8; ++micro) {
      seeds.insert(micro_batch_dropout_seed(42, step, micro));
    }
  }
  EXPECT_EQ(seeds.size(), 160u);  // a different mask for every micro-batch
  EXPECT_EQ(micro_batch_dropout_seed(42, 3, 1), micro_batch_dropout_seed(42, 3, 1));
  EXPECT_NE(micro_batch_dropout_seed(42, 3, 1), micro_batch_dropout_seed(43, 3, 1));
}

TEST(Trainer, StepLossIsTheMeanOverTheWholeStepsLabelTokens) {
  // Assistant-only labels make the micro-batches' label counts differ, so a mean of
  // micro-batch means would differ from the step mean.
  const Tokenizer tokenizer = Tokenizer::load(tiny().model);
  const ChatTemplate chat_template = ChatTemplate::load(tiny().model);
  DataOptions options;
  options.split = {23, 40, 0};
  options.max_seq_length = 64;
  options.loss_mask = LossMask::AssistantOnly;
  const PreparedData data = prepare_data(tiny().data, tokenizer, chat_template, options);

  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.max_steps = 1;
  args.lora_dropout = 0;
  args.completion_only_loss = true;
  Trainer trainer(args, *tiny().weights, data.train, data.eval, TrainerOptions{});
  const TrainResult result = trainer.train();
  ASSERT_EQ(result.steps.size(), 1u);

  // B starts at zero, so the first step's loss is the base model's on the step's rows.
  LlamaLoraModel base(*tiny().weights, nullptr, ModelOptions{});
  const std::vector<uint64_t> order = epoch_order(data.train.size(), args.seed, 0);
  double loss_sum = 0, mean_of_means = 0;
  int64_t labels = 0;
  std::set<int64_t> label_counts;
  for (int m = 0; m < 2; ++m) {
    const TokenBatch batch = make_token_batch(data.train, std::span(order.data() + 2 * m, 2));
    const double sum = base.forward_loss_sum(batch);
    loss_sum += sum;
    labels += batch.target_count();
    label_counts.insert(batch.target_count());
    mean_of_means += sum / static_cast<double>(batch.target_count()) / 2;
  }
  ASSERT_EQ(label_counts.size(), 2u) << "the test needs micro-batches of different label counts";
  const double expected = loss_sum / static_cast<double>(labels);
  EXPECT_NEAR(result.steps[0].loss, expected, 1e-6 * expected);
  EXPECT_GT(std::fabs(expected - mean_of_means), 1e-4 * expected);
}

TEST(Trainer, ResumingFromACheckpointIsBitIdentical) {
  test::TempDir out;
  // 10 steps of 4 sequences cross an epoch boundary (the train split has about 20), so the
  // resumed run must also reshuffle the same way; dropout 0.1 checks the masks.
  const TrainingArgs args = small_args(out / "full");
  const TrainResult full = train_with(args);
  ASSERT_EQ(full.steps.size(), 10u);
  ASSERT_LT(tiny().prepared.train.size(), 40u) << "the split should span several epochs";
  ASSERT_TRUE(fs::is_directory(out / "full" / "checkpoint-5"));

  TrainingArgs resumed_args = small_args(out / "resumed");
  resumed_args.resume_from_checkpoint = (out / "full" / "checkpoint-5").string();
  const TrainResult resumed = train_with(resumed_args);
  ASSERT_EQ(resumed.steps.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    SCOPED_TRACE("step " + std::to_string(resumed.steps[i].step));
    EXPECT_EQ(resumed.steps[i].step, full.steps[5 + i].step);
    EXPECT_EQ(resumed.steps[i].loss, full.steps[5 + i].loss);  // bit-identical
    EXPECT_EQ(resumed.steps[i].grad_norm, full.steps[5 + i].grad_norm);
    EXPECT_EQ(resumed.steps[i].learning_rate, full.steps[5 + i].learning_rate);
  }
  EXPECT_EQ(resumed.train_loss, full.train_loss);
  for (const char* file : {"adapter_model.safetensors", "checkpoint-10/optimizer.safetensors",
                           "checkpoint-10/adapter_model.safetensors"}) {
    EXPECT_EQ(read_file(out / "full" / file), read_file(out / "resumed" / file)) << file;
  }
  // metrics.jsonl: the resumed run starts from the checkpoint's history and logs the same.
  const auto full_lines = read_lines(out / "full" / "metrics.jsonl");
  const auto resumed_lines = read_lines(out / "resumed" / "metrics.jsonl");
  ASSERT_EQ(full_lines.size(), resumed_lines.size());
  for (size_t i = 0; i < full_lines.size(); ++i) {
    for (const char* key :
         {"step", "loss", "grad_norm", "learning_rate", "eval_loss", "train_loss"}) {
      EXPECT_EQ(full_lines[i].value(key, nlohmann::json()),
                resumed_lines[i].value(key, nlohmann::json()))
          << "line " << i << " " << key;
    }
  }
}

TEST(Trainer, StopRequestSavesACheckpointAndResumeFinishes) {
  test::TempDir out;
  const TrainingArgs args = small_args(out / "run");
  int polls = 0;
  TrainerOptions options;
  options.stop_requested = [&polls] { return ++polls > 3; };  // after three steps
  const TrainResult stopped = train_with(args, std::move(options));
  EXPECT_EQ(stopped.outcome, TrainResult::Outcome::Stopped);
  EXPECT_EQ(stopped.global_step, 3);
  ASSERT_TRUE(stopped.last_checkpoint.has_value());
  EXPECT_EQ(stopped.last_checkpoint->filename(), "checkpoint-3");
  EXPECT_TRUE(fs::exists(out / "run" / "checkpoint-3" / "trainer_state.json"));
  EXPECT_FALSE(fs::exists(out / "run" / "adapter_model.safetensors"));  // not finished

  TrainingArgs resume = args;
  resume.resume_from_checkpoint = "latest";
  const TrainResult finished = train_with(resume);
  EXPECT_EQ(finished.outcome, TrainResult::Outcome::Finished);
  EXPECT_EQ(finished.steps.front().step, 4);
  EXPECT_EQ(finished.global_step, 10);
  EXPECT_TRUE(fs::exists(out / "run" / "adapter_model.safetensors"));
}

TEST(Trainer, NonFiniteLossStopsWithoutSavingTheBadState) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.learning_rate = 1e30;  // the first update blows the adapter up
  args.save_steps = 1;
  std::string message;
  try {
    train_with(args);
  } catch (const Error& error) {
    message = error.what();
  }
  // "[train] step N: loss is nan; last good checkpoint: PATH" (or "grad norm is inf", ...).
  // Parsed by hand: <regex> trips a GCC 12 -Wmaybe-uninitialized false positive in the asan
  // build.
  const std::string prefix = "[train] step ";
  const std::string marker = "; last good checkpoint: ";
  ASSERT_EQ(message.rfind(prefix, 0), 0u) << message;
  const size_t colon = message.find(':', prefix.size());
  const size_t marker_at = message.find(marker);
  ASSERT_NE(colon, std::string::npos) << message;
  ASSERT_NE(marker_at, std::string::npos) << message;
  const std::string what = message.substr(colon + 2, marker_at - colon - 2);
  EXPECT_TRUE(what == "loss is nan" || what == "loss is inf" || what == "loss is -inf" ||
              what == "grad norm is nan" || what == "grad norm is inf")
      << message;
  const int step = std::stoi(message.substr(prefix.size(), colon - prefix.size()));
  const std::string checkpoint = message.substr(marker_at + marker.size());
  ASSERT_GE(step, 2);
  EXPECT_EQ(checkpoint, (out / "run" / ("checkpoint-" + std::to_string(step - 1))).string());
  EXPECT_FALSE(fs::exists(out / "run" / ("checkpoint-" + std::to_string(step))));
  EXPECT_FALSE(fs::exists(out / "run" / "adapter_model.safetensors"));
}

TEST(Trainer, EvaluationRunsWithoutDropout) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.max_steps = 3;
  args.lora_dropout = 0.3;
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  const TrainResult result = trainer.train();
  ASSERT_EQ(result.evals.size(), 2u);  // before the first step and at the end
  EXPECT_EQ(result.evals.front().first, 0);
  EXPECT_EQ(result.evals.back().first, 3);

  const auto eval_in = [&](ForwardMode mode) {
    LoraAdapter copy = trainer.adapter();  // dropout 0.3
    LlamaLoraModel model(*tiny().weights, &copy, ModelOptions{});
    const TokenSequences& eval = tiny().prepared.eval;
    double sum = 0;
    int64_t labels = 0;
    for (uint64_t begin = 0; begin < eval.size(); begin += 4) {
      std::vector<uint64_t> rows;
      for (uint64_t i = begin; i < std::min<uint64_t>(eval.size(), begin + 4); ++i)
        rows.push_back(i);
      const TokenBatch batch = make_token_batch(eval, rows);
      sum += model.forward_loss_sum(batch, mode);
      labels += batch.target_count();
    }
    return sum / static_cast<double>(labels);
  };
  const std::optional<double> ours = trainer.evaluate();
  ASSERT_TRUE(ours.has_value());
  EXPECT_EQ(*ours, eval_in(ForwardMode::Eval));
  EXPECT_NE(*ours, eval_in(ForwardMode::Train));
  EXPECT_EQ(result.evals.back().second, *ours);
  EXPECT_EQ(trainer.adapter().config.dropout, 0.3);  // evaluation leaves the config alone
}

// Counts the Backend allocations of a training run (every op forwards to the CPU backend).
class AllocationCounter final : public test::ForwardingBackend {
 public:
  int64_t allocations = 0;
  float* allocate(int64_t count) override {
    ++allocations;
    return ForwardingBackend::allocate(count);
  }
};

TEST(Trainer, StepsAfterTheFirstAllocateNothingOnTheBackend) {
  // The model's activations and backward scratch are sized by the first step and reused
  // (micro-batches of one shape), so a 6-step run allocates exactly what a 1-step run does.
  // Without evaluation (eval batches may be shaped otherwise) and with gradient accumulation,
  // with and without checkpointing (its recompute path too).
  for (const bool checkpointing : {false, true}) {
    SCOPED_TRACE(checkpointing ? "checkpointing" : "stored activations");
    std::vector<int64_t> counts;
    for (const int64_t steps : {1, 6}) {
      test::TempDir out;
      TrainingArgs args = small_args(out / "run");
      args.max_steps = steps;
      args.gradient_accumulation_steps = 2;
      args.gradient_checkpointing = checkpointing;
      args.lora_dropout = 0.1;
      AllocationCounter counter;
      TrainerOptions options;
      options.backend = &counter;
      const TokenSequences no_eval;
      Trainer trainer(args, *tiny().weights, tiny().prepared.train, no_eval, std::move(options));
      ASSERT_EQ(trainer.train().steps.size(), static_cast<size_t>(steps));
      counts.push_back(counter.allocations);
    }
    EXPECT_GT(counts[0], 0);  // the counter sees the model's memory at all
    EXPECT_EQ(counts[1], counts[0]) << "steps 2..6 allocated on the backend";
  }
}

TEST(Trainer, ProfileTimesTheSteadyStateStepsWithoutChangingThem) {
  // --profile wraps the backend: the same losses and gradient norms bit for bit, and the
  // summary line of metrics.jsonl carries the op times of every step but the first.
  test::TempDir out;
  TrainingArgs args = small_args(out / "plain");
  args.max_steps = 4;
  args.gradient_checkpointing = true;  // the recompute phase too
  const TrainResult plain = train_with(args);
  args.output_dir = (out / "profiled").string();
  args.profile = true;
  const TrainResult profiled = train_with(args);
  ASSERT_EQ(profiled.steps.size(), plain.steps.size());
  for (size_t i = 0; i < plain.steps.size(); ++i) {
    EXPECT_EQ(profiled.steps[i].loss, plain.steps[i].loss) << "step " << i + 1;
    EXPECT_EQ(profiled.steps[i].grad_norm, plain.steps[i].grad_norm) << "step " << i + 1;
  }

  const auto lines = read_lines(out / "profiled" / "metrics.jsonl");
  ASSERT_FALSE(lines.empty());
  const nlohmann::json& summary = lines.back();
  ASSERT_TRUE(summary.contains("profile")) << summary.dump();
  const nlohmann::json& profile = summary["profile"];
  EXPECT_EQ(profile["steps"], 3);
  for (const char* phase : {"forward", "lm_head", "backward", "recompute", "optimizer"}) {
    ASSERT_TRUE(profile["phases"].contains(phase)) << phase;
    EXPECT_GT(profile["phases"][phase].get<double>(), 0.0) << phase;
  }
  bool q_proj_forward = false;
  double in_ops = 0;
  for (const nlohmann::json& op : profile["ops"]) {
    in_ops += op["s_per_step"].get<double>();
    if (op["phase"] == "forward" && op["module"] == "q_proj" && op["op"] == "linear_forward") {
      q_proj_forward = true;
      // Once per layer per accumulated micro-batch.
      EXPECT_EQ(op["calls_per_step"].get<double>(),
                static_cast<double>(tiny().weights->config.num_hidden_layers *
                                    args.gradient_accumulation_steps));
    }
  }
  EXPECT_TRUE(q_proj_forward);
  EXPECT_LE(in_ops, profile["step_s"].get<double>());  // ops run inside the step's wall time
  EXPECT_FALSE(lines.front().contains("profile"));     // only the summary has it
}

TEST(Trainer, SaveTotalLimitKeepsTheNewestCheckpoints) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.max_steps = 4;
  args.save_steps = 1;
  args.save_total_limit = 2;
  const TrainResult result = train_with(args);
  std::vector<std::string> names;
  for (const auto& [step, path] : list_checkpoints(out / "run")) {
    names.push_back(path.filename().string());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint-3", "checkpoint-4"}));
  EXPECT_EQ(result.last_checkpoint, out / "run" / "checkpoint-4");
  const auto lines = read_lines(out / "run" / "metrics.jsonl");
  EXPECT_EQ(lines.front()["step"], 0);  // the base model's evaluation
  EXPECT_TRUE(lines.front().contains("eval_loss"));
}

TEST(Trainer, ScheduleFollowsEpochsAndDropLast) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  const auto sequences = static_cast<int64_t>(tiny().prepared.train.size());
  args.max_steps = -1;
  args.num_train_epochs = 2;
  {
    Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
    EXPECT_EQ(trainer.state().steps_per_epoch, (sequences + 3) / 4);
    EXPECT_EQ(trainer.state().total_steps, 2 * ((sequences + 3) / 4));
  }
  args.dataloader_drop_last = true;
  args.num_train_epochs = 1.5;
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  EXPECT_EQ(trainer.state().steps_per_epoch, sequences / 4);
  EXPECT_EQ(trainer.state().total_steps,
            static_cast<int64_t>(std::ceil(1.5 * static_cast<double>(sequences / 4))));
  EXPECT_FALSE(fs::exists(out / "run"));  // constructing a trainer writes nothing
}

// --logging_strategy / --eval_strategy / --save_strategy epoch and no, end to end: what lands in
// metrics.jsonl and which checkpoints exist.
TEST(Trainer, StrategiesDecideWhenToLogEvaluateAndSave) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "epoch");
  args.max_steps = -1;
  args.num_train_epochs = 2;
  args.logging_strategy = "epoch";
  args.eval_strategy = "epoch";
  args.save_strategy = "epoch";
  const TrainResult result = train_with(args);
  const int64_t per_epoch = result.total_steps / 2;
  ASSERT_EQ(result.total_steps, 2 * per_epoch);
  std::vector<int64_t> logged, evaluated, saved;
  for (const auto& line : read_lines(out / "epoch" / "metrics.jsonl")) {
    if (line.contains("loss")) logged.push_back(line["step"]);
    if (line.contains("eval_loss")) evaluated.push_back(line["step"]);
  }
  for (const auto& [step, path] : list_checkpoints(out / "epoch")) saved.push_back(step);
  EXPECT_EQ(logged, (std::vector<int64_t>{per_epoch, 2 * per_epoch}));
  EXPECT_EQ(evaluated, (std::vector<int64_t>{0, per_epoch, 2 * per_epoch}));
  EXPECT_EQ(saved, (std::vector<int64_t>{per_epoch, 2 * per_epoch}));

  args = small_args(out / "no");
  args.max_steps = 3;
  args.logging_strategy = "no";
  args.eval_strategy = "no";
  args.save_strategy = "no";
  const TrainResult quiet = train_with(args);
  EXPECT_EQ(quiet.global_step, 3);
  EXPECT_TRUE(quiet.evals.empty());
  EXPECT_FALSE(quiet.last_checkpoint.has_value());
  EXPECT_TRUE(list_checkpoints(out / "no").empty());
  const auto lines = read_lines(out / "no" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);  // the summary only
  EXPECT_TRUE(lines[0].contains("train_loss"));
  EXPECT_TRUE(fs::exists(out / "no" / "adapter_model.safetensors"));  // the final adapter
}

TEST(Trainer, RejectsSettingsThatCannotTrain) {
  test::TempDir out;
  const auto error_of = [&](const TrainingArgs& args, const TokenSequences& train) {
    try {
      Trainer trainer(args, *tiny().weights, train, tiny().prepared.eval, {});
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  };
  TrainingArgs args = small_args(out / "run");
  args.max_seq_length = 4096;
  EXPECT_NE(error_of(args, tiny().prepared.train).find("max_position_embeddings (2048)"),
            std::string::npos);
  args = small_args(out / "run");
  EXPECT_NE(error_of(args, TokenSequences{}).find("no usable rows"), std::string::npos);
  args.target_modules = "q_proj,nope";
  EXPECT_NE(error_of(args, tiny().prepared.train).find("--target_modules"), std::string::npos);
  args = small_args(out / "run");
  args.lora_r = 0;
  EXPECT_NE(error_of(args, tiny().prepared.train).find("--lora_r"), std::string::npos);
  args = small_args(out / "run");
  args.resume_from_checkpoint = (out / "missing").string();
  EXPECT_NE(error_of(args, tiny().prepared.train).find("no such checkpoint folder"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(out / "run"));
}

}  // namespace
}  // namespace ll
