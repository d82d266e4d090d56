// `llama-lora train` end to end on the tiny model and 600 synthetic sql rows: a 20-step run
// (metrics lines, eval loss below the base model's, complete checkpoints, the final adapter),
// resuming with `latest`, SIGTERM saving a checkpoint, and every bad input giving one line on
// stderr while leaving what is already on disk untouched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

using test::shell_quote;

struct Fixture {
  test::TempDir dir;
  fs::path model;
  fs::path data;
};

const Fixture& fixture() {
  static Fixture* f = [] {
    auto* made = new Fixture;
    made->model = made->dir / "tiny";
    made->data = made->dir / "sql.jsonl";
    const auto init =
        test::run_llama_lora("init --preset tiny -o " + shell_quote(made->model.string()));
    if (init.exit_code != 0) throw std::runtime_error("init failed: " + init.err);
    const auto data = test::run_llama_lora("make-data --preset sql --rows 600 -o " +
                                           shell_quote(made->data.string()));
    if (data.exit_code != 0) throw std::runtime_error("make-data failed: " + data.err);
    return made;
  }();
  return *f;
}

// The small settings.
std::string train_args(const fs::path& output_dir, const std::string& extra = "") {
  return "train --model " + shell_quote(fixture().model.string()) + " --data " +
         shell_quote(fixture().data.string()) + " --output_dir " +
         shell_quote(output_dir.string()) +
         " --max_steps 20 --max_seq_length 128 --per_device_train_batch_size 4"
         " --learning_rate 3e-3 --eval_rows 50 --eval_steps 10 --logging_steps 5"
         " --save_steps 10 --target_modules all-linear --lora_r 8 --lora_alpha 16 " +
         extra;
}

std::vector<nlohmann::json> read_lines(const fs::path& path) {
  std::vector<nlohmann::json> lines;
  const std::string text = read_file(path);
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    lines.push_back(nlohmann::json::parse(text.substr(begin, end - begin)));  // throws if bad
    begin = end + 1;
  }
  return lines;
}

// Every file under `dir` with its contents, to show that a failed command changed nothing.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const std::string name = fs::relative(entry.path(), dir).string();
    files[name] = entry.is_regular_file() ? read_file(entry.path()) : "<dir>";
  }
  return files;
}

// A failed command: non-zero exit and exactly one line on stderr containing `expected`.
void expect_one_line_error(const test::CommandResult& result, const std::string& expected) {
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.err.rfind("llama-lora: error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << result.err;
}

class TrainCli : public ::testing::Test {
 protected:
  // One finished 20-step run, shared by the tests that read or resume it.
  static const fs::path& finished_run() {
    static const fs::path out = [] {
      const fs::path path = fixture().dir / "run20";
      const auto start = std::chrono::steady_clock::now();
      const auto result = test::run_llama_lora(train_args(path));
      seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      run_result_ = result;
      return path;
    }();
    return out;
  }
  static inline double seconds_ = 0;
  static inline test::CommandResult run_result_;
};

TEST_F(TrainCli, TwentyStepsLowerTheEvalLossAndWriteCompleteCheckpoints) {
  const fs::path& out = finished_run();
  ASSERT_EQ(run_result_.exit_code, 0) << run_result_.err;
  std::printf("  20 steps took %.1f s\n", seconds_);
  EXPECT_LT(seconds_, 60.0);  // a few seconds on 2 idle cores; generous for loaded machines
  EXPECT_NE(run_result_.out.find("train: 20 steps"), std::string::npos) << run_result_.out;
  // stderr is not a terminal here: plain log lines, no \r progress bar.
  EXPECT_EQ(run_result_.err.find('\r'), std::string::npos);
  EXPECT_NE(run_result_.err.find("[train] step 20/20"), std::string::npos) << run_result_.err;

  const auto lines = read_lines(out / "metrics.jsonl");
  std::vector<int64_t> log_steps, eval_steps;
  std::vector<double> eval_losses;
  for (const auto& line : lines) {
    if (line.contains("loss")) {
      log_steps.push_back(line["step"]);
      for (const char* key :
           {"epoch", "learning_rate", "grad_norm", "tokens_per_s", "peak_rss_bytes", "elapsed_s"}) {
        EXPECT_TRUE(line.contains(key) && line[key].is_number()) << key << " in " << line.dump();
      }
      EXPECT_TRUE(line.contains("mfu") && (line["mfu"].is_null() || line["mfu"].is_number()));
      EXPECT_GT(line["tokens_per_s"].get<double>(), 0);
      EXPECT_GT(line["peak_rss_bytes"].get<int64_t>(), 0);
    } else if (line.contains("eval_loss")) {
      eval_steps.push_back(line["step"]);
      eval_losses.push_back(line["eval_loss"]);
      EXPECT_NEAR(line["eval_perplexity"].get<double>(), std::exp(eval_losses.back()), 1e-9);
    }
  }
  EXPECT_EQ(log_steps, (std::vector<int64_t>{5, 10, 15, 20}));
  EXPECT_EQ(eval_steps, (std::vector<int64_t>{0, 10, 20}));  // the base model first
  ASSERT_EQ(eval_losses.size(), 3u);
  EXPECT_LT(eval_losses.back(), eval_losses.front() - 0.05)
      << "training should lower the eval loss below the base model's";
  EXPECT_TRUE(lines.back().contains("train_loss"));

  for (const char* checkpoint : {"checkpoint-10", "checkpoint-20"}) {
    for (const char* file : {"adapter_config.json", "adapter_model.safetensors",
                             "optimizer.safetensors", "trainer_state.json", "training_args.json"}) {
      EXPECT_TRUE(fs::is_regular_file(out / checkpoint / file)) << checkpoint << "/" << file;
    }
  }
  const auto state = nlohmann::json::parse(read_file(out / "checkpoint-20" / "trainer_state.json"));
  EXPECT_EQ(state["global_step"], 20);
  EXPECT_EQ(state["log_history"].size(), lines.size() - 1);  // all but the final summary
  const auto args = nlohmann::json::parse(read_file(out / "checkpoint-20" / "training_args.json"));
  EXPECT_EQ(args["lora_r"], 8);
  EXPECT_EQ(args["compute_precision"], "bf16 weights, fp32 compute");
  EXPECT_EQ(read_file(out / "adapter_model.safetensors"),
            read_file(out / "checkpoint-20" / "adapter_model.safetensors"));
  const auto adapter = nlohmann::json::parse(read_file(out / "adapter_config.json"));
  EXPECT_EQ(adapter["r"], 8);
  EXPECT_EQ(adapter["target_modules"].size(), 7u);
}

TEST_F(TrainCli, RefusesAnEarlierRunAndResumesWithLatest) {
  const fs::path& done = finished_run();
  ASSERT_EQ(run_result_.exit_code, 0) << run_result_.err;
  const fs::path out = fixture().dir / "resume";
  fs::copy(done, out, fs::copy_options::recursive);
  fs::remove_all(out / "checkpoint-20");
  const auto before = snapshot(out);

  expect_one_line_error(test::run_llama_lora(train_args(out)), "--overwrite_output_dir");
  EXPECT_EQ(snapshot(out), before);
  // A bad flag with --overwrite_output_dir still deletes nothing: checks come first.
  expect_one_line_error(
      test::run_llama_lora(train_args(out, "--overwrite_output_dir --target_modules q_proj,nope")),
      "nope");
  EXPECT_EQ(snapshot(out), before);

  const auto resumed = test::run_llama_lora(train_args(out, "--resume_from_checkpoint latest"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from"), std::string::npos) << resumed.err;
  // Steps 11..20 again from checkpoint-10: the same numbers as the uninterrupted run.
  const auto full = read_lines(done / "metrics.jsonl");
  const auto again = read_lines(out / "metrics.jsonl");
  ASSERT_EQ(full.size(), again.size());
  for (size_t i = 0; i + 1 < full.size(); ++i) {
    EXPECT_EQ(full[i].value("loss", nlohmann::json()), again[i].value("loss", nlohmann::json()));
    EXPECT_EQ(full[i].value("eval_loss", nlohmann::json()),
              again[i].value("eval_loss", nlohmann::json()));
  }
  EXPECT_EQ(read_file(done / "adapter_model.safetensors"),
            read_file(out / "adapter_model.safetensors"));

  const auto overwritten =
      test::run_llama_lora(train_args(out, "--overwrite_output_dir --max_steps 5 --save_steps 5"));
  ASSERT_EQ(overwritten.exit_code, 0) << overwritten.err;
  EXPECT_TRUE(fs::exists(out / "checkpoint-5"));
  EXPECT_FALSE(fs::exists(out / "checkpoint-10"));  // the earlier run is gone, not mixed in
}

TEST_F(TrainCli, BadInputsGiveOneLineAndWriteNothing) {
  const fs::path& done = finished_run();
  ASSERT_EQ(run_result_.exit_code, 0) << run_result_.err;
  test::TempDir tmp;
  const fs::path out = tmp / "out";

  expect_one_line_error(test::run_llama_lora(train_args(out, "--target_modules q_proj,bogus_proj")),
                        "bogus_proj");
  expect_one_line_error(test::run_llama_lora(train_args(out, "--lora_r 0")), "--lora_r");
  expect_one_line_error(test::run_llama_lora(train_args(out, "--max_seq_length 4096")),
                        "max_position_embeddings");
  // HF flags with values we cannot honour: one line naming the flag and what it takes.
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"--do_train False", "--do_train False: `llama-lora train` always trains"},
      {"--optim sgd", "--optim: sgd is not supported (supported: adamw_torch, adamw_torch_fused)"},
      {"--save_strategy best",
       "--save_strategy: best is not supported (supported: no, steps, epoch)"},
      {"--report_to wandb", "--report_to wandb is not supported"},
      {"--lr_scheduler_type constant --warmup_steps 2",
       "--lr_scheduler_type constant has no warm-up"},
  };
  for (const auto& [flags, error] : refused) {
    expect_one_line_error(test::run_llama_lora(train_args(out, flags)), error);
  }
  // A flag we do not have at all, and a value that is not a number: CLI11's words, our one line.
  const test::CommandResult unknown = test::run_llama_lora(train_args(out, "--fp16 True"));
  test::expect_cli_error(unknown, "The following arguments were not expected: True --fp16");
  EXPECT_NE(unknown.err.find("(llama-lora train --help lists the options)"), std::string::npos)
      << unknown.err;
  test::expect_cli_error(test::run_llama_lora(train_args(out, "--max_steps many")), "--max_steps");
  EXPECT_FALSE(fs::exists(out));

  // No usable rows: every row bad (skipped), or too few tokens for one sequence.
  const fs::path bad_rows = tmp / "bad.jsonl";
  test::write_text(bad_rows, "not json\n{\"question\": 1}\n[]\n");
  expect_one_line_error(
      test::run_llama_lora(train_args(
          out, "--skip_bad_rows --eval_rows 0 --data " + shell_quote(bad_rows.string()))),
      "no usable rows");
  const fs::path few_rows = tmp / "few.jsonl";
  test::write_text(few_rows,
                   "{\"question\": \"q\", \"context\": \"CREATE TABLE t (a INT)\", \"answer\": "
                   "\"SELECT a FROM t\"}\n");
  expect_one_line_error(
      test::run_llama_lora(train_args(
          out, "--eval_rows 0 --max_seq_length 2048 --data " + shell_quote(few_rows.string()))),
      "no usable rows");

  // Unwritable output folders.
  test::write_text(tmp / "a-file", "x");
  expect_one_line_error(test::run_llama_lora(train_args(tmp / "a-file" / "out")), "not a folder");
  if (::geteuid() != 0) {
    fs::create_directories(tmp / "ro");
    fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    expect_one_line_error(test::run_llama_lora(train_args(tmp / "ro" / "out")), "not writable");
    fs::permissions(tmp / "ro", fs::perms::owner_all);
  }

  // Resuming from a missing or a damaged checkpoint.
  expect_one_line_error(
      test::run_llama_lora(train_args(
          out, "--resume_from_checkpoint " + shell_quote((tmp / "checkpoint-7").string()))),
      "checkpoint-7");
  expect_one_line_error(test::run_llama_lora(train_args(out, "--resume_from_checkpoint latest")),
                        "no checkpoint-<step> folder");
  const fs::path damaged = tmp / "damaged" / "checkpoint-10";
  fs::create_directories(damaged.parent_path());
  fs::copy(done / "checkpoint-10", damaged, fs::copy_options::recursive);
  fs::resize_file(damaged / "adapter_model.safetensors",
                  fs::file_size(damaged / "adapter_model.safetensors") / 2);
  const auto damaged_before = snapshot(damaged.parent_path());
  expect_one_line_error(test::run_llama_lora(train_args(
                            out, "--resume_from_checkpoint " + shell_quote(damaged.string()))),
                        (damaged / "adapter_model.safetensors").string());
  EXPECT_EQ(snapshot(damaged.parent_path()), damaged_before);

  EXPECT_FALSE(fs::exists(out)) << "a failed run must not create the output folder";
}

TEST_F(TrainCli, SigtermSavesACheckpointAndExitsZero) {
  test::TempDir tmp;
  const fs::path out = tmp / "out";
  const fs::path rc = tmp / "rc";
  const fs::path stdout_path = tmp / "stdout";
  // Start a long run, wait for its first logged step, then SIGTERM it.
  const std::string command =
      "bash -c " +
      shell_quote(shell_quote(LL_BINARY) + " " +
                  train_args(out, "--max_steps 100000 --logging_steps 1 --save_steps 100000") +
                  " >" + shell_quote(stdout_path.string()) + " 2>/dev/null & pid=$!; " +
                  "for i in $(seq 600); do grep -qs '\"loss\"' " +
                  shell_quote((out / "metrics.jsonl").string()) +
                  " && break; sleep 0.1; done; kill -TERM $pid; wait $pid; echo $? >" +
                  shell_quote(rc.string()));
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(read_file(rc), "0\n");
  const std::string printed = read_file(stdout_path);
  EXPECT_NE(printed.find("stopped by SIGTERM"), std::string::npos) << printed;
  const auto checkpoints = [&] {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(out)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("checkpoint-", 0) == 0) names.push_back(name);
    }
    return names;
  }();
  ASSERT_EQ(checkpoints.size(), 1u);
  EXPECT_TRUE(fs::exists(out / checkpoints[0] / "trainer_state.json"));
  EXPECT_FALSE(fs::exists(out / "adapter_model.safetensors"));  // the run did not finish
  // A stopped run has its report too (its data: tests/tools/test_run_report.cpp).
  EXPECT_NE(printed.find("; report: " + (out / "report.html").string() + "\n"), std::string::npos)
      << printed;
  EXPECT_NE(read_file(out / "report.html").find("\"finished\":false"), std::string::npos);
}

TEST_F(TrainCli, NanLossStopsWithTheLastGoodCheckpoint) {
  test::TempDir tmp;
  const fs::path out = tmp / "out";
  const auto result = test::run_llama_lora(
      train_args(out, "--learning_rate 1e30 --save_steps 1 --logging_steps 1"));
  // The run's log lines come first; the error is the last line.
  EXPECT_NE(result.exit_code, 0);
  ASSERT_TRUE(result.err.ends_with("\n")) << result.err;
  const size_t last_line = result.err.rfind('\n', result.err.size() - 2) + 1;
  EXPECT_EQ(result.err.compare(last_line, 19, "llama-lora: error: "), 0) << result.err;
  EXPECT_NE(result.err.find("; last good checkpoint: ", last_line), std::string::npos)
      << result.err;
  EXPECT_TRUE(result.err.find("loss is nan") != std::string::npos ||
              result.err.find("grad norm is") != std::string::npos ||
              result.err.find("loss is inf") != std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find((out / "checkpoint-").string()), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(out / "adapter_model.safetensors"));
}

}  // namespace
}  // namespace ll

namespace ll {
namespace {

TEST(TrainCliArchitectures, SlidingWindowShorterThanMaxSeqLengthIsRefused) {
  // The Mistral fixture (tests/fixtures/arch) with its window cut to 8: --max_seq_length 16
  // would let tokens attend past the window, which llama-lora's full attention does not do.
  test::TempDir tmp;
  fs::create_directories(tmp / "model");
  for (const char* name : {"model.safetensors", "generation_config.json"}) {
    fs::copy_file(test::fixtures() / "arch" / "mistral" / "model" / name, tmp / "model" / name);
  }
  nlohmann::json config = nlohmann::json::parse(
      read_file(test::fixtures() / "arch" / "mistral" / "model" / "config.json"));
  config["sliding_window"] = 8;
  test::write_text(tmp / "model" / "config.json", config.dump());
  const std::string train = "train --model " + shell_quote((tmp / "model").string()) + " --data " +
                            shell_quote((tmp / "none.jsonl").string()) + " --output_dir " +
                            shell_quote((tmp / "out").string());
  expect_one_line_error(test::run_llama_lora(train + " --max_seq_length 16"),
                        "MistralForCausalLM sliding_window 8 is shorter than the 16 tokens of "
                        "--max_seq_length 16");
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

}  // namespace
}  // namespace ll
