// See checkpoint.h.
#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/error.h"
#include "formats/input_checks.h"
#include "formats/safetensors.h"
#include "model/adapter_shards.h"
#include "model/peft_adapter.h"
#include "model/tensor_parallel.h"
#include "train/training_args.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr const char* kOrigin = "train";

std::optional<int64_t> parse_checkpoint_step(const std::string& name) {
  constexpr std::string_view kPrefix = "checkpoint-";
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) {
    return std::nullopt;
  }
  int64_t step = 0;
  const char* begin = name.data() + kPrefix.size();
  const char* end = name.data() + name.size();
  const auto [ptr, ec] = std::from_chars(begin, end, step);
  if (ec != std::errc() || ptr != end || step < 0) return std::nullopt;
  return step;
}

// The closest folder at or above `path` that exists ("." for a relative path's root).
fs::path nearest_existing(fs::path path) {
  std::error_code ec;
  while (!path.empty() && !fs::exists(path, ec)) path = path.parent_path();
  return path.empty() ? fs::path(".") : path;
}

}  // namespace

double TrainerState::epoch() const {
  return steps_per_epoch > 0
             ? static_cast<double>(global_step) / static_cast<double>(steps_per_epoch)
             : 0.0;
}

json trainer_state_to_json(const TrainerState& s) {
  json ours = {{"total_steps", s.total_steps},
               {"steps_per_epoch", s.steps_per_epoch},
               {"data_epoch", s.data_epoch},
               {"data_index", s.data_index},
               {"seed", s.seed},
               {"shuffle_seed", s.shuffle_seed},
               {"shuffle", "numpy default_rng(shuffle_seed + epoch).permutation(sequences)"},
               {"dropout_seed", "splitmix64(seed, step, micro_batch)"},
               {"train_sequences", s.train_sequences},
               {"per_device_train_batch_size", s.per_device_train_batch_size},
               {"gradient_accumulation_steps", s.gradient_accumulation_steps},
               {"tensor_parallel_size", s.tensor_parallel_size},
               {"data_parallel_size", s.data_parallel_size},
               {"loss_sum_since_log", s.loss_sum_since_log},
               {"steps_since_log", s.steps_since_log},
               {"loss_sum_total", s.loss_sum_total},
               {"elapsed_s", s.elapsed_s},
               {"trained_tokens", s.trained_tokens},
               {"logging_dir", s.logging_dir}};
  // HF Trainer's TrainerState field names, so that tools reading those find them.
  return {{"global_step", s.global_step},
          {"epoch", s.epoch()},
          {"max_steps", s.total_steps},
          {"num_train_epochs",
           s.steps_per_epoch > 0 ? (s.total_steps + s.steps_per_epoch - 1) / s.steps_per_epoch : 0},
          {"logging_steps", s.logging_steps},
          {"eval_steps", s.eval_steps},
          {"save_steps", s.save_steps},
          {"train_batch_size", s.per_device_train_batch_size},
          {"log_history", s.log_history},
          {"best_metric", nullptr},
          {"best_model_checkpoint", nullptr},
          {"llama_lora", ours}};
}

TrainerState trainer_state_from_json(const json& j, const std::string& origin) {
  TrainerState s;
  try {
    check(j.is_object() && j.contains("llama_lora") && j["llama_lora"].is_object(), kOrigin,
          origin + ": not a llama-lora trainer state (no \"llama_lora\" object)");
    const json& o = j.at("llama_lora");
    s.global_step = j.at("global_step").get<int64_t>();
    s.log_history = j.at("log_history");
    check(s.log_history.is_array(), kOrigin, origin + ": log_history is not an array");
    s.logging_steps = j.value("logging_steps", int64_t{0});
    s.eval_steps = j.value("eval_steps", int64_t{0});
    s.save_steps = j.value("save_steps", int64_t{0});
    s.total_steps = o.at("total_steps").get<int64_t>();
    s.steps_per_epoch = o.at("steps_per_epoch").get<int64_t>();
    s.data_epoch = o.at("data_epoch").get<int64_t>();
    s.data_index = o.at("data_index").get<uint64_t>();
    s.seed = o.at("seed").get<uint64_t>();
    s.shuffle_seed = o.at("shuffle_seed").get<uint64_t>();
    s.train_sequences = o.at("train_sequences").get<uint64_t>();
    s.per_device_train_batch_size = o.at("per_device_train_batch_size").get<int64_t>();
    s.gradient_accumulation_steps = o.at("gradient_accumulation_steps").get<int64_t>();
    s.tensor_parallel_size = o.value("tensor_parallel_size", int64_t{1});
    s.data_parallel_size = o.value("data_parallel_size", int64_t{1});
    s.loss_sum_since_log = o.at("loss_sum_since_log").get<double>();
    s.steps_since_log = o.at("steps_since_log").get<int64_t>();
    s.loss_sum_total = o.at("loss_sum_total").get<double>();
    s.elapsed_s = o.at("elapsed_s").get<double>();
    s.trained_tokens = o.value("trained_tokens", int64_t{0});  // absent before the run report
    s.logging_dir = o.value("logging_dir", std::string());
  } catch (const json::exception& error) {
    fail(kOrigin, origin + ": missing or mistyped field (" + std::string(error.what()) + ")");
  }
  check(s.global_step >= 0 && s.steps_per_epoch > 0 && s.per_device_train_batch_size > 0 &&
            s.gradient_accumulation_steps > 0 && s.tensor_parallel_size > 0 &&
            s.data_parallel_size > 0,
        kOrigin, origin + ": inconsistent step counts or batch geometry");
  return s;
}

std::string optimizer_file_name(int64_t tp_rank, int64_t tp_size) {
  return tp_size == 1 ? "optimizer.safetensors"
                      : "optimizer-tp" + std::to_string(tp_rank) + ".safetensors";
}

std::string adapter_file_name(int64_t tp_rank, int64_t tp_size) {
  return tp_size == 1 ? "adapter_model.safetensors" : adapter_tp_shard_name(tp_rank, tp_size);
}

namespace {

void write_optimizer_state(const fs::path& path, LoraOptimizer& optimizer, int64_t tp_rank,
                           int64_t tp_size) {
  const LoraAdapter& adapter = optimizer.adapter();
  const auto to_host = [&](std::span<const float> block) {
    std::vector<float> host(block.size());
    if (!host.empty()) {
      adapter.backend().download(host.data(), block.data(), static_cast<int64_t>(block.size()));
    }
    return host;
  };
  const std::vector<float> exp_avg = to_host(optimizer.exp_avg());
  const std::vector<float> exp_avg_sq = to_host(optimizer.exp_avg_sq());
  std::vector<TensorToWrite> tensors;
  for (const LoraTensor& tensor : adapter.tensors()) {
    const auto bytes = [&](const std::vector<float>& block) {
      return std::as_bytes(std::span(block).subspan(static_cast<size_t>(tensor.offset),
                                                    static_cast<size_t>(tensor.count())));
    };
    const std::vector<int64_t> shape = {tensor.rows, tensor.cols};
    tensors.push_back({tensor.name() + ".exp_avg", DType::F32, shape, bytes(exp_avg)});
    tensors.push_back({tensor.name() + ".exp_avg_sq", DType::F32, shape, bytes(exp_avg_sq)});
  }
  Metadata metadata = {
      {"format", "pt"}, {"optimizer", "AdamW"}, {"step", std::to_string(optimizer.steps_taken())}};
  if (tp_size > 1) {
    metadata["tp_rank"] = std::to_string(tp_rank);
    metadata["tp_size"] = std::to_string(tp_size);
  }
  write_safetensors(path, tensors, metadata);
}

// `text` of rank `root` on every rank of `comm`.
void broadcast_text(Communicator& comm, std::string& text, int root) {
  int64_t size = static_cast<int64_t>(text.size());
  comm.broadcast(&size, sizeof size, root);
  text.resize(static_cast<size_t>(size));
  comm.broadcast(text.data(), size, root);
}

}  // namespace

fs::path save_checkpoint(const fs::path& output_dir, const LoraAdapter& adapter,
                         LoraOptimizer& optimizer, const TrainerState& state,
                         const json& training_args, const std::string& base_model,
                         const ParallelGroups* parallel) {
  const fs::path final_path = output_dir / ("checkpoint-" + std::to_string(state.global_step));
  Communicator* world = parallel ? parallel->world : nullptr;
  const bool main_rank = world == nullptr || world->rank() == 0;
  const int64_t tp_rank = parallel ? parallel->tp_rank() : 0;
  const int64_t tp_size = parallel ? parallel->tp_size() : 1;
  const bool writes_shard = parallel == nullptr || parallel->dp_rank() == 0;

  // Rank 0 stages the folder; every rank writes its files into it; rank 0 renames it into
  // place only after all of them finished (a barrier), so a checkpoint named
  // checkpoint-<step> is always whole, and one interrupted on any rank stays a ".tmp-" folder.
  std::optional<StagedDir> staged;
  std::string staging;
  if (main_rank) {
    staged.emplace(final_path, StagedDir::Existing::Replace);
    staging = staged->path().string();
  }
  if (world) broadcast_text(*world, staging, 0);
  const fs::path dir = staging;
  if (writes_shard) {
    if (tp_size == 1) {
      save_peft_adapter(dir, adapter, base_model);
    } else {
      write_adapter_tp_shard(dir, adapter, tp_rank, tp_size);
      if (tp_rank == 0) save_peft_adapter_config(dir, adapter.config, base_model);
    }
    check(&optimizer.adapter() == &adapter, kOrigin,
          "save_checkpoint: the optimizer steps another adapter");
    write_optimizer_state(dir / optimizer_file_name(tp_rank, tp_size), optimizer, tp_rank, tp_size);
  }
  if (main_rank) {
    write_file_atomic(dir / "trainer_state.json", trainer_state_to_json(state).dump(2) + "\n");
    write_file_atomic(dir / "training_args.json", training_args.dump(2) + "\n");
  }
  if (world) world->barrier();
  if (main_rank) staged->commit();
  if (world) world->barrier();  // every rank may now name the checkpoint
  return final_path;
}

LoadedCheckpoint load_checkpoint(const fs::path& dir, const LlamaConfig& model, int64_t tp_rank,
                                 int64_t tp_size) {
  std::error_code ec;
  check(fs::is_directory(dir, ec), kOrigin, dir.string() + ": checkpoint folder not found");
  const std::string adapter_file = adapter_file_name(tp_rank, tp_size);
  const std::string optimizer_file = optimizer_file_name(tp_rank, tp_size);
  for (const std::string& file :
       {std::string("adapter_config.json"), std::string("trainer_state.json"),
        std::string("training_args.json")}) {
    check(fs::is_regular_file(dir / file, ec), kOrigin,
          (dir / file).string() + ": missing (not a complete checkpoint)");
  }
  LoadedCheckpoint out;
  out.dir = dir;
  const fs::path state_path = dir / "trainer_state.json";
  out.state = trainer_state_from_json(
      parse_json_text(read_file(state_path), kOrigin, state_path.string()), state_path.string());
  check(out.state.tensor_parallel_size == tp_size, kOrigin,
        dir.string() + ": written with --tensor_parallel_size " +
            std::to_string(out.state.tensor_parallel_size) + ", this run has " +
            std::to_string(tp_size) +
            "; resume with the same tensor parallel size (or `llama-lora consolidate` it into "
            "one adapter)");
  for (const std::string& file : {adapter_file, optimizer_file}) {
    check(fs::is_regular_file(dir / file, ec), kOrigin,
          (dir / file).string() + ": missing (not a complete checkpoint)");
  }
  const fs::path args_path = dir / "training_args.json";
  parse_json_text(read_file(args_path), kOrigin, args_path.string());  // must at least parse
  out.adapter = load_peft_adapter(
      dir, tp_size == 1 ? model : tensor_parallel_config(model, tp_size), adapter_file);

  const fs::path optimizer_path = dir / optimizer_file;
  const SafetensorsFile file = SafetensorsFile::open(optimizer_path);
  const auto step = file.metadata().find("step");
  check(step != file.metadata().end(), kOrigin,
        optimizer_path.string() + ": metadata has no \"step\"");
  const auto [ptr, parse_ec] = std::from_chars(
      step->second.data(), step->second.data() + step->second.size(), out.optimizer_steps);
  check(parse_ec == std::errc() && ptr == step->second.data() + step->second.size() &&
            out.optimizer_steps >= 0,
        kOrigin, optimizer_path.string() + ": metadata \"step\" is not a step count");
  out.moment_layout = out.adapter.tensors();
  out.exp_avg.resize(static_cast<size_t>(out.adapter.parameter_count()));
  out.exp_avg_sq.resize(out.exp_avg.size());
  const auto read = [&](const std::string& name, const LoraTensor& tensor,
                        std::vector<float>& block) {
    const std::vector<int64_t> shape = {tensor.rows, tensor.cols};
    const TensorInfo* info = file.find(name);
    check(info != nullptr, kOrigin, optimizer_path.string() + ": tensor '" + name + "' is missing");
    check(info->dtype == DType::F32 && info->shape == shape, kOrigin,
          optimizer_path.string() + ": tensor '" + name + "' should be F32 " + shape_text(shape));
    const auto bytes = file.data(*info);
    std::memcpy(block.data() + tensor.offset, bytes.data(),
                static_cast<size_t>(tensor.count()) * sizeof(float));
  };
  for (const LoraTensor& tensor : out.adapter.tensors()) {
    read(tensor.name() + ".exp_avg", tensor, out.exp_avg);
    read(tensor.name() + ".exp_avg_sq", tensor, out.exp_avg_sq);
  }
  check(out.optimizer_steps == out.state.global_step, kOrigin,
        optimizer_path.string() + ": step " + std::to_string(out.optimizer_steps) +
            " disagrees with trainer_state.json's global_step " +
            std::to_string(out.state.global_step));
  return out;
}

void restore_optimizer(LoraOptimizer& optimizer, const LoadedCheckpoint& checkpoint) {
  const LoraAdapter& adapter = optimizer.adapter();
  const bool same_layout =
      adapter.tensors().size() == checkpoint.moment_layout.size() &&
      std::equal(adapter.tensors().begin(), adapter.tensors().end(),
                 checkpoint.moment_layout.begin(), [](const LoraTensor& a, const LoraTensor& b) {
                   return a.layer == b.layer && a.target == b.target && a.part == b.part &&
                          a.rows == b.rows && a.cols == b.cols && a.offset == b.offset;
                 });
  check(same_layout && checkpoint.exp_avg.size() == optimizer.exp_avg().size() &&
            checkpoint.exp_avg_sq.size() == optimizer.exp_avg_sq().size(),
        kOrigin, checkpoint.dir.string() + ": the optimizer state does not match the adapter");
  const auto count = static_cast<int64_t>(checkpoint.exp_avg.size());
  if (count > 0) {
    adapter.backend().upload(optimizer.exp_avg().data(), checkpoint.exp_avg.data(), count);
    adapter.backend().upload(optimizer.exp_avg_sq().data(), checkpoint.exp_avg_sq.data(), count);
  }
  optimizer.set_steps_taken(checkpoint.optimizer_steps);
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(output_dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    if (const auto step = parse_checkpoint_step(entry.path().filename().string())) {
      out.emplace_back(*step, entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path resolve_resume_checkpoint(const std::string& value, const fs::path& output_dir) {
  if (value == "latest") {
    const auto checkpoints = list_checkpoints(output_dir);
    check(!checkpoints.empty(), kOrigin,
          "--resume_from_checkpoint latest: no checkpoint-<step> folder in " + output_dir.string());
    return checkpoints.back().second;
  }
  std::error_code ec;
  check(fs::is_directory(value, ec), kOrigin,
        "--resume_from_checkpoint " + value + ": no such checkpoint folder");
  return value;
}

void remove_old_checkpoints(const fs::path& output_dir, int64_t keep) {
  if (keep <= 0) return;
  auto checkpoints = list_checkpoints(output_dir);
  const auto excess = static_cast<int64_t>(checkpoints.size()) - keep;
  for (int64_t i = 0; i < excess; ++i) {
    std::error_code ec;
    fs::remove_all(checkpoints[static_cast<size_t>(i)].second, ec);
    check(!ec, kOrigin,
          checkpoints[static_cast<size_t>(i)].second.string() + ": cannot remove: " + ec.message());
  }
}

void check_output_dir(const TrainingArgs& args) {
  check(!args.output_dir.empty(), kOrigin, "--output_dir is required");
  const fs::path out = args.output_dir;
  std::error_code ec;
  if (fs::exists(out, ec)) {
    check(fs::is_directory(out, ec), kOrigin,
          "--output_dir " + out.string() + ": exists and is not a folder");
    check(::access(out.c_str(), W_OK | X_OK) == 0, kOrigin,
          "--output_dir " + out.string() + ": not writable (" + std::strerror(errno) + ")");
    if (args.resume_from_checkpoint.empty() && !args.overwrite_output_dir) {
      std::string found;
      for (const auto& [step, path] : list_checkpoints(out)) {
        found += (found.empty() ? "" : ", ") + path.filename().string();
      }
      for (const char* file : {"adapter_model.safetensors", "metrics.jsonl"}) {
        if (fs::exists(out / file, ec)) found += (found.empty() ? "" : ", ") + std::string(file);
      }
      check(found.empty(), kOrigin,
            "--output_dir " + out.string() + " already holds a training run (" + found +
                "); pass --resume_from_checkpoint latest to continue it or "
                "--overwrite_output_dir to start over");
    }
    return;
  }
  const fs::path ancestor = nearest_existing(out.parent_path());
  check(fs::is_directory(ancestor, ec), kOrigin,
        "--output_dir " + out.string() + ": cannot be created: " + ancestor.string() +
            " is not a folder");
  check(::access(ancestor.c_str(), W_OK | X_OK) == 0, kOrigin,
        "--output_dir " + out.string() + ": cannot be created: " + ancestor.string() +
            " is not writable (" + std::strerror(errno) + ")");
}

}  // namespace ll
