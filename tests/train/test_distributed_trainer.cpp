// Distributed training in process: tp x dp ranks as threads over in-process communicators
// (parallel/communicator.h), each with its own Trainer, train the tiny model with the same
// global batch as one process and must give the same run: per-step losses and gradient norms,
// eval losses, and final adapter. Then the sharded checkpoints: their files, resuming them
// with the same topology (bit-identical continuation) and refusing another topology.
//
// Tolerance: 1e-5 relative for losses and gradient norms (the bound; fp32 sums in
// another order over ranks); final LoRA weights within 1e-5 absolute (after 10 AdamW steps of
// lr 3e-3 the rounding differences of the gradients move weights by far less).
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <thread>

#include "model/adapter_shards.h"
#include "model/tensor_parallel.h"
#include "parallel/communicator.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/tiny_run.h"
#include "train/trainer.h"

namespace ll {
namespace {

using test::tiny;

struct RankRun {
  TrainResult result;
  LoraAdapter adapter;  // the rank's share
  int64_t lora_parameters = 0;
  int tp_rank = 0;
  std::string error;
};

// Runs `args` on tp x dp thread ranks; returns each world rank's result.
std::vector<RankRun> train_distributed(const TrainingArgs& args, int tp, int dp) {
  const int world_size = tp * dp;
  std::vector<std::unique_ptr<Communicator>> worlds = thread_communicators(world_size);
  std::vector<RankRun> runs(static_cast<size_t>(world_size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      RankRun& run = runs[static_cast<size_t>(rank)];
      try {
        ParallelGroups groups = make_parallel_groups(*worlds[static_cast<size_t>(rank)], tp);
        TrainerOptions options;
        options.parallel = &groups;
        Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval,
                        std::move(options));
        run.result = trainer.train();
        run.adapter = trainer.adapter();
        run.lora_parameters = trainer.lora_parameter_count();
        run.tp_rank = groups.tp_rank();
      } catch (const std::exception& e) {
        run.error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return runs;
}

TrainResult train_single(const TrainingArgs& args, LoraAdapter* adapter = nullptr) {
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  TrainResult result = trainer.train();
  if (adapter) *adapter = trainer.adapter();
  return result;
}

// The global batch of small_args (4 sequences per step), without dropout so that the
// single-process run is the exact reference.
TrainingArgs base_args(const fs::path& out, int tp, int dp) {
  TrainingArgs args = test::small_args(out);
  args.lora_dropout = 0;
  args.eval_steps = 5;
  args.tensor_parallel_size = tp;
  args.gradient_accumulation_steps = dp == 4 ? 1 : 2;
  args.per_device_train_batch_size = 4 / (args.gradient_accumulation_steps * dp);
  return args;
}

void expect_relative(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-5 * std::fabs(want)) << what;
}

void check_same_run(int tp, int dp) {
  SCOPED_TRACE("tp=" + std::to_string(tp) + " dp=" + std::to_string(dp));
  test::TempDir single_dir, dist_dir;
  LoraAdapter reference;
  const TrainResult want = train_single(base_args(single_dir.path(), 1, 1), &reference);
  const std::vector<RankRun> runs = train_distributed(base_args(dist_dir.path(), tp, dp), tp, dp);
  ASSERT_EQ(want.steps.size(), 10u);
  for (size_t rank = 0; rank < runs.size(); ++rank) {
    const RankRun& run = runs[rank];
    ASSERT_EQ(run.error, "") << "rank " << rank;
    EXPECT_EQ(run.lora_parameters, reference.parameter_count()) << "rank " << rank;
    ASSERT_EQ(run.result.steps.size(), want.steps.size());
    for (size_t s = 0; s < want.steps.size(); ++s) {
      const std::string at = "rank " + std::to_string(rank) + " step " + std::to_string(s + 1);
      expect_relative(run.result.steps[s].loss, want.steps[s].loss, at + " loss");
      expect_relative(run.result.steps[s].grad_norm, want.steps[s].grad_norm, at + " grad norm");
    }
    ASSERT_EQ(run.result.evals.size(), want.evals.size());
    for (size_t e = 0; e < want.evals.size(); ++e) {
      expect_relative(run.result.evals[e].second, want.evals[e].second, "eval loss");
    }
    const LoraAdapter expected = slice_adapter_for_tp(reference, run.tp_rank, tp);
    for (size_t layer = 0; layer < expected.layers().size(); ++layer) {
      for (size_t t = 0; t < kLoraTargetCount; ++t) {
        const auto& w = expected.layers()[layer][t];
        const auto& g = run.adapter.layers()[layer][t];
        ASSERT_TRUE(w && g);
        ASSERT_EQ(g->a.size(), w->a.size());
        ASSERT_EQ(g->b.size(), w->b.size());
        for (size_t i = 0; i < w->a.size(); ++i) ASSERT_NEAR(g->a[i], w->a[i], 1e-5);
        for (size_t i = 0; i < w->b.size(); ++i) ASSERT_NEAR(g->b[i], w->b[i], 1e-5);
      }
    }
  }
}

TEST(DistributedTrainer, TwoByTwoEqualsOneProcess) {
  check_same_run(2, 2);
}

TEST(DistributedTrainer, DataParallelFourEqualsOneProcess) {
  check_same_run(1, 4);
}

TEST(DistributedTrainer, TensorParallelTwoWritesShardsThatResumeExactly) {
  test::TempDir dir;
  TrainingArgs args = base_args(dir.path(), 2, 2);
  args.lora_dropout = 0.1;  // masks are the same on every topology (DropoutWindow)
  const std::vector<RankRun> full = train_distributed(args, 2, 2);
  for (const RankRun& run : full) ASSERT_EQ(run.error, "");

  const fs::path ckpt = dir.path() / "checkpoint-5";
  for (const char* file :
       {"adapter_config.json", "adapter-tp0-of-2.safetensors", "adapter-tp1-of-2.safetensors",
        "optimizer-tp0.safetensors", "optimizer-tp1.safetensors", "trainer_state.json",
        "training_args.json"}) {
    EXPECT_TRUE(fs::is_regular_file(ckpt / file)) << file;
  }
  EXPECT_FALSE(fs::exists(ckpt / "adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(ckpt / "optimizer.safetensors"));
  // The final adapter in output_dir: the shards and their config, which consolidate joins.
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "adapter-tp1-of-2.safetensors"));
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "adapter_config.json"));
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().rfind(".tmp-", 0), std::string::npos)
        << "a staging folder was left behind: " << entry.path();
  }

  // Resume from step 5 on the same topology: steps 6..10 are bit-identical. Beside it lies
  // what a run killed while writing checkpoint 10 leaves: rank 0's staging folder with one
  // shard; "latest" must not take it.
  test::TempDir again;
  fs::copy(ckpt, again.path() / "checkpoint-5", fs::copy_options::recursive);
  const fs::path torn = again.path() / ".tmp-checkpoint-10-4242";
  fs::create_directories(torn);
  fs::copy(dir.path() / "checkpoint-10" / "adapter-tp0-of-2.safetensors", torn);
  EXPECT_EQ(resolve_resume_checkpoint("latest", again.path()), again.path() / "checkpoint-5");
  TrainingArgs resume = args;
  resume.output_dir = again.path().string();
  resume.resume_from_checkpoint = "latest";
  const std::vector<RankRun> resumed = train_distributed(resume, 2, 2);
  for (size_t rank = 0; rank < resumed.size(); ++rank) {
    const RankRun& run = resumed[rank];
    ASSERT_EQ(run.error, "") << "rank " << rank;
    ASSERT_EQ(run.result.steps.size(), 5u);
    for (size_t s = 0; s < 5; ++s) {
      EXPECT_EQ(run.result.steps[s].loss, full[rank].result.steps[s + 5].loss) << "step " << s + 6;
      EXPECT_EQ(run.result.steps[s].grad_norm, full[rank].result.steps[s + 5].grad_norm);
    }
  }

  // A checkpoint folder missing one rank's optimizer state is refused, naming the file.
  test::TempDir partial;
  fs::copy(ckpt, partial.path() / "checkpoint-5", fs::copy_options::recursive);
  fs::remove(partial.path() / "checkpoint-5" / "optimizer-tp1.safetensors");
  const std::string missing = test::error_of(
      [&] { load_checkpoint(partial.path() / "checkpoint-5", tiny().weights->config, 1, 2); });
  EXPECT_NE(missing.find("optimizer-tp1.safetensors: missing (not a complete checkpoint)"),
            std::string::npos)
      << missing;

  // Another tensor parallel size cannot load the shards.
  const std::string error =
      test::error_of([&] { load_checkpoint(ckpt, tiny().weights->config, 0, 1); });
  EXPECT_NE(error.find("written with --tensor_parallel_size 2, this run has 1"), std::string::npos)
      << error;
  // Another data-parallel size with the same tp size is refused by the trainer.
  test::TempDir other;
  fs::copy(ckpt, other.path() / "checkpoint-5", fs::copy_options::recursive);
  TrainingArgs dp1 = base_args(other.path(), 2, 1);
  dp1.lora_dropout = 0.1;
  dp1.resume_from_checkpoint = "latest";
  const std::vector<RankRun> refused = train_distributed(dp1, 2, 1);
  EXPECT_NE(refused[0].error.find("written by 2 tensor-parallel x 2 data-parallel ranks, this run "
                                  "has 2 x 1; resume with the same topology"),
            std::string::npos)
      << refused[0].error;
}

TEST(DistributedTrainer, ConsolidatedShardsEqualTheSingleProcessAdapter) {
  test::TempDir single_dir, dist_dir;
  LoraAdapter reference;
  train_single(base_args(single_dir.path(), 1, 1), &reference);
  const std::vector<RankRun> runs = train_distributed(base_args(dist_dir.path(), 2, 1), 2, 1);
  for (const RankRun& run : runs) ASSERT_EQ(run.error, "");
  const AdapterTpShards shards = AdapterTpShards::open(dist_dir.path() / "checkpoint-10");
  std::vector<std::byte> scratch;
  for (size_t i = 0; i < shards.tensors().size(); ++i) {
    const auto name = parse_lora_tensor_name(shards.tensors()[i].name);
    ASSERT_TRUE(name.has_value());
    const auto& m =
        reference.layers()[static_cast<size_t>(name->layer)][static_cast<size_t>(name->target)];
    const std::span<const float> want = name->part == LoraPart::A ? m->a : m->b;
    const auto bytes = shards.read(i, scratch);
    ASSERT_EQ(bytes.size(), want.size() * sizeof(float));
    const auto* got = reinterpret_cast<const float*>(bytes.data());
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_NEAR(got[k], want[k], 1e-5) << shards.tensors()[i].name << " element " << k;
    }
  }
}

TEST(DistributedTrainer, TensorParallelSizeMustMatchTheGroup) {
  test::TempDir dir;
  TrainingArgs args = base_args(dir.path(), 2, 1);
  args.tensor_parallel_size = 1;  // flags say 1, the launch made groups of 2
  const std::vector<RankRun> runs = train_distributed(args, 2, 1);
  EXPECT_NE(runs[0].error.find("--tensor_parallel_size 1 but the run's tensor-parallel group has "
                               "2 rank(s)"),
            std::string::npos)
      << runs[0].error;
}

}  // namespace
}  // namespace ll
