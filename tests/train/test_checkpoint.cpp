// Checkpoints: a save/load round trip is exact (adapter, AdamW moments and step, trainer
// state), a damaged checkpoint gives one line naming the file, checkpoint folders are listed
// by step and rotated, and the output-folder rules (writable, no earlier run unless asked).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "small_model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/training_args.h"

namespace ll {
namespace {

LoraAdapter trained_adapter() {
  LoraConfig lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = 0.05;
  lora.targets = parse_lora_targets("q_proj,v_proj,down_proj");
  return lora_init(test::small_llama_config(), lora, 3);
}

// Random gradients and two AdamW steps, so weights and moments are all non-trivial.
void take_two_steps(LoraAdapter& adapter, LoraOptimizer& optimizer) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int step = 0; step < 2; ++step) {
    for (auto& layer : adapter.layers()) {
      for (auto& matrix : layer) {
        if (!matrix) continue;
        for (float& g : matrix->grad_a) g = normal(rng);
        for (float& g : matrix->grad_b) g = normal(rng);
      }
    }
    optimizer.clip_gradients();
    optimizer.step(1e-2);
  }
}

TrainerState sample_state() {
  TrainerState s;
  s.global_step = 2;
  s.total_steps = 10;
  s.steps_per_epoch = 4;
  s.data_epoch = 0;
  s.data_index = 16;
  s.seed = 42;
  s.shuffle_seed = 42;
  s.train_sequences = 30;
  s.per_device_train_batch_size = 4;
  s.gradient_accumulation_steps = 2;
  s.loss_sum_since_log = 1.0 / 3.0;
  s.steps_since_log = 1;
  s.loss_sum_total = 13.000000000000002;
  s.elapsed_s = 1.5;
  s.logging_steps = 1;
  s.log_history = nlohmann::json::array({{{"step", 1}, {"loss", 6.5}}});
  return s;
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

struct SavedCheckpoint {
  test::TempDir out;
  LoraAdapter adapter = trained_adapter();
  std::unique_ptr<LoraOptimizer> optimizer;
  fs::path dir;
  SavedCheckpoint() {
    optimizer = std::make_unique<LoraOptimizer>(adapter, OptimizerSettings{});
    take_two_steps(adapter, *optimizer);
    dir = save_checkpoint(out.path(), adapter, *optimizer, sample_state(),
                          nlohmann::json{{"learning_rate", 0.01}}, "base/model");
  }
};

TEST(Checkpoint, RoundTripIsExact) {
  SavedCheckpoint saved;
  EXPECT_EQ(saved.dir, saved.out.path() / "checkpoint-2");
  for (const char* file : {"adapter_config.json", "adapter_model.safetensors",
                           "optimizer.safetensors", "trainer_state.json", "training_args.json"}) {
    EXPECT_TRUE(fs::is_regular_file(saved.dir / file)) << file;
  }
  for (const auto& entry : fs::directory_iterator(saved.out.path())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp-", 0), std::string::npos)
        << "staging folder left behind: " << entry.path();
  }

  const LoadedCheckpoint loaded = load_checkpoint(saved.dir, test::small_llama_config());
  EXPECT_EQ(loaded.optimizer_steps, 2);
  ASSERT_EQ(loaded.adapter.layers().size(), saved.adapter.layers().size());
  for (size_t layer = 0; layer < saved.adapter.layers().size(); ++layer) {
    for (size_t t = 0; t < kLoraTargetCount; ++t) {
      const auto& want = saved.adapter.layers()[layer][t];
      const auto& got = loaded.adapter.layers()[layer][t];
      ASSERT_EQ(want.has_value(), got.has_value());
      if (!want) continue;
      EXPECT_EQ(test::values_of(want->a), test::values_of(got->a));
      EXPECT_EQ(test::values_of(want->b), test::values_of(got->b));
    }
  }
  EXPECT_EQ(loaded.adapter.config.dropout, 0.05);
  EXPECT_EQ(loaded.exp_avg, test::values_of(saved.optimizer->exp_avg()));
  EXPECT_EQ(loaded.exp_avg_sq, test::values_of(saved.optimizer->exp_avg_sq()));

  const TrainerState want = sample_state();
  const TrainerState& got = loaded.state;
  EXPECT_EQ(got.global_step, want.global_step);
  EXPECT_EQ(got.total_steps, want.total_steps);
  EXPECT_EQ(got.steps_per_epoch, want.steps_per_epoch);
  EXPECT_EQ(got.data_index, want.data_index);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.train_sequences, want.train_sequences);
  EXPECT_EQ(got.loss_sum_since_log, want.loss_sum_since_log);  // doubles survive exactly
  EXPECT_EQ(got.loss_sum_total, want.loss_sum_total);
  EXPECT_EQ(got.log_history, want.log_history);
  const auto state_json = nlohmann::json::parse(read_file(saved.dir / "trainer_state.json"));
  EXPECT_EQ(state_json["global_step"], 2);  // HF's names
  EXPECT_DOUBLE_EQ(state_json["epoch"].get<double>(), 0.5);
  EXPECT_EQ(state_json["max_steps"], 10);

  // The moments restore into a fresh optimizer, step count included.
  LoraAdapter fresh = loaded.adapter;
  LoraOptimizer optimizer(fresh, OptimizerSettings{});
  restore_optimizer(optimizer, loaded);
  EXPECT_EQ(optimizer.steps_taken(), 2);
  EXPECT_EQ(test::values_of(optimizer.exp_avg()), test::values_of(saved.optimizer->exp_avg()));
  EXPECT_EQ(test::values_of(optimizer.exp_avg_sq()),
            test::values_of(saved.optimizer->exp_avg_sq()));
}

TEST(Checkpoint, DamagedCheckpointsNameTheFile) {
  const auto one_line_naming = [](const std::string& message, const std::string& file) {
    EXPECT_NE(message.find(file), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  };
  {
    SavedCheckpoint saved;
    const fs::path file = saved.dir / "adapter_model.safetensors";
    fs::resize_file(file, fs::file_size(file) / 2);
    one_line_naming(error_of([&] { load_checkpoint(saved.dir, test::small_llama_config()); }),
                    file.string());
  }
  {
    SavedCheckpoint saved;
    const fs::path file = saved.dir / "optimizer.safetensors";
    fs::resize_file(file, 40);
    one_line_naming(error_of([&] { load_checkpoint(saved.dir, test::small_llama_config()); }),
                    file.string());
  }
  for (const char* name : {"optimizer.safetensors", "trainer_state.json", "training_args.json",
                           "adapter_config.json"}) {
    SavedCheckpoint saved;
    fs::remove(saved.dir / name);
    one_line_naming(error_of([&] { load_checkpoint(saved.dir, test::small_llama_config()); }),
                    (saved.dir / name).string());
  }
  {
    SavedCheckpoint saved;
    test::write_text(saved.dir / "trainer_state.json", "{\"global_step\": ");
    one_line_naming(error_of([&] { load_checkpoint(saved.dir, test::small_llama_config()); }),
                    "trainer_state.json");
  }
  {
    SavedCheckpoint saved;
    auto state = nlohmann::json::parse(read_file(saved.dir / "trainer_state.json"));
    state["global_step"] = 3;  // disagrees with the optimizer's step
    test::write_text(saved.dir / "trainer_state.json", state.dump());
    one_line_naming(error_of([&] { load_checkpoint(saved.dir, test::small_llama_config()); }),
                    "optimizer.safetensors");
  }
  test::TempDir empty;
  one_line_naming(
      error_of([&] { load_checkpoint(empty / "checkpoint-9", test::small_llama_config()); }),
      "checkpoint-9");
}

TEST(Checkpoint, ListedByStepRotatedAndResolved) {
  test::TempDir out;
  for (const char* name : {"checkpoint-5", "checkpoint-10", "checkpoint-9", "checkpoint-x",
                           "checkpoint-", "checkpoint-3a", "other"}) {
    fs::create_directories(out / name);
  }
  test::write_text(out / "checkpoint-11", "a file, not a checkpoint");
  auto list = list_checkpoints(out.path());
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].first, 5);
  EXPECT_EQ(list[1].first, 9);
  EXPECT_EQ(list[2].first, 10);  // by number, not by name
  EXPECT_EQ(resolve_resume_checkpoint("latest", out.path()), out / "checkpoint-10");
  EXPECT_EQ(resolve_resume_checkpoint((out / "checkpoint-5").string(), out.path()),
            out / "checkpoint-5");
  EXPECT_NE(error_of([&] {
              resolve_resume_checkpoint((out / "checkpoint-7").string(), out.path());
            }).find("no such checkpoint folder"),
            std::string::npos);

  remove_old_checkpoints(out.path(), 2);
  list = list_checkpoints(out.path());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].first, 9);
  EXPECT_TRUE(fs::exists(out / "other"));
  remove_old_checkpoints(out.path(), 0);  // 0: keep all
  EXPECT_EQ(list_checkpoints(out.path()).size(), 2u);

  test::TempDir empty;
  EXPECT_NE(error_of([&] {
              resolve_resume_checkpoint("latest", empty.path());
            }).find("no checkpoint-<step> folder"),
            std::string::npos);
}

TEST(Checkpoint, OutputFolderRules) {
  test::TempDir tmp;
  TrainingArgs args;
  args.output_dir = (tmp / "new" / "run").string();
  EXPECT_NO_THROW(check_output_dir(args));
  EXPECT_FALSE(fs::exists(tmp / "new"));  // checking creates nothing

  fs::create_directories(tmp / "run" / "checkpoint-10");
  test::write_text(tmp / "run" / "metrics.jsonl", "{}\n");
  args.output_dir = (tmp / "run").string();
  const std::string refused = error_of([&] { check_output_dir(args); });
  EXPECT_NE(refused.find("checkpoint-10"), std::string::npos) << refused;
  EXPECT_NE(refused.find("--overwrite_output_dir"), std::string::npos) << refused;
  EXPECT_NE(refused.find("--resume_from_checkpoint"), std::string::npos) << refused;
  args.overwrite_output_dir = true;
  EXPECT_NO_THROW(check_output_dir(args));
  args.overwrite_output_dir = false;
  args.resume_from_checkpoint = "latest";
  EXPECT_NO_THROW(check_output_dir(args));
  args.resume_from_checkpoint.clear();
  fs::create_directories(tmp / "other-files");
  test::write_text(tmp / "other-files" / "notes.txt", "x");
  args.output_dir = (tmp / "other-files").string();
  EXPECT_NO_THROW(check_output_dir(args));  // unrelated files are no earlier run

  test::write_text(tmp / "file", "x");
  args.output_dir = (tmp / "file" / "run").string();
  EXPECT_NE(error_of([&] { check_output_dir(args); }).find("is not a folder"), std::string::npos);
  args.output_dir = (tmp / "file").string();
  EXPECT_NE(error_of([&] { check_output_dir(args); }).find("exists and is not a folder"),
            std::string::npos);
}

TEST(Checkpoint, ReadOnlyParentIsNotWritable) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: permissions do not stop writes";
  test::TempDir tmp;
  TrainingArgs args;
  fs::create_directories(tmp / "ro");
  fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  args.output_dir = (tmp / "ro" / "run").string();
  const std::string message = error_of([&] { check_output_dir(args); });
  fs::permissions(tmp / "ro", fs::perms::owner_all);
  EXPECT_NE(message.find("not writable"), std::string::npos) << message;
}

}  // namespace
}  // namespace ll
