// AdapterTpShards::open_neuron: Optimum Neuron's tensor-parallel adapter checkpoints (the
// layout optimum-neuron 0.0.25 writes through neuronx_distributed's save_checkpoint; see
// docs/FORMATS.md). The shards are torch.save files read by formats/torch_checkpoint (no code
// is run); which tensors are split, and along which dimension, comes from the
// mp_metadata_pp_rank_0.pt dict and must agree with the column/row layout of adapter_shards.h.
#include <charconv>
#include <cstdio>
#include <map>
#include <optional>

#include "core/error.h"
#include "formats/input_checks.h"
#include "formats/torch_checkpoint.h"
#include "model/adapter_shards.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "adapter-shards";

struct NeuronRanks {
  int64_t dp = 0;
  int64_t tp = 0;
  int64_t pp = 0;
};

// "dp_rank_<dp>_tp_rank_<tp>_pp_rank_<pp>.pt", or nothing.
std::optional<NeuronRanks> parse_neuron_shard_name(std::string_view name) {
  NeuronRanks ranks;
  const auto number = [&](std::string_view prefix, int64_t& out) {
    if (name.substr(0, prefix.size()) != prefix) return false;
    name.remove_prefix(prefix.size());
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), out);
    if (ec != std::errc() || end == name.data() || out < 0) return false;
    name.remove_prefix(static_cast<size_t>(end - name.data()));
    return true;
  };
  if (!number("dp_rank_", ranks.dp) || !number("_tp_rank_", ranks.tp) ||
      !number("_pp_rank_", ranks.pp) || name != ".pt") {
    return std::nullopt;
  }
  return ranks;
}

std::string neuron_shard_name(int64_t tp_rank) {
  char name[64];
  std::snprintf(name, sizeof name, "dp_rank_00_tp_rank_%02lld_pp_rank_00.pt",
                static_cast<long long>(tp_rank));
  return name;
}

// The split mp_metadata states for `name`: an entry {"kind": "tied"} or {"kind": "sharded",
// "partition_dim": d}; a tensor it does not list is tied, as optimum-neuron reads it.
TpSplit stated_split(const PickleValue& sharded, const std::string& name,
                     const std::string& where) {
  const PickleValue* entry = sharded.get(name);
  if (entry == nullptr) return TpSplit::Replicated;
  const std::string here = where + ": sharded_metadata entry " + quote_name(name);
  check(entry->kind == PickleKind::Dict, kOrigin, here + " is not a dict");
  const PickleValue* kind = entry->get("kind");
  check(kind != nullptr && kind->kind == PickleKind::String, kOrigin,
        here + " has no 'kind' string");
  if (kind->text == "tied") return TpSplit::Replicated;
  check(kind->text == "sharded", kOrigin,
        here + " has kind " + quote_name(kind->text) + " (tied or sharded expected)");
  const PickleValue* dim = entry->get("partition_dim");
  check(dim != nullptr && dim->kind == PickleKind::Int && (dim->integer == 0 || dim->integer == 1),
        kOrigin, here + " is sharded but its partition_dim is not 0 or 1");
  return dim->integer == 0 ? TpSplit::Rows : TpSplit::Columns;
}

std::string split_words(TpSplit split) {
  return split == TpSplit::Replicated ? "tied (replicated)"
                                      : "sharded along dim " + std::string(tp_split_text(split));
}

}  // namespace

bool is_neuron_checkpoint(const fs::path& checkpoint) {
  std::error_code ec;
  return fs::is_directory(checkpoint / "adapter_shards", ec);
}

AdapterTpShards AdapterTpShards::open_neuron(const fs::path& checkpoint) {
  const fs::path shards_dir = checkpoint / "adapter_shards";
  const fs::path model_dir = shards_dir / "model";
  const std::string where = shards_dir.string();
  std::error_code ec;
  check(fs::is_directory(model_dir, ec), kOrigin,
        where + ": has no model/ folder (Optimum Neuron writes the rank shards there)");
  std::map<int64_t, fs::path> by_rank;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    const std::string name = entry.path().filename().string();
    check(name.size() < 11 || name.substr(name.size() - 11) != ".pt.tensors", kOrigin,
          model_dir.string() + "/" + name +
              ": xser tensor references (save_xser) are not read yet; save without xser");
    const std::optional<NeuronRanks> ranks = parse_neuron_shard_name(name);
    if (!ranks) continue;
    check(ranks->pp == 0, kOrigin,
          model_dir.string() + "/" + name + ": pipeline-parallel checkpoints are not read yet");
    if (ranks->dp != 0) continue;  // only data-parallel rank 0 saves; others would be copies
    by_rank[ranks->tp] = entry.path();
  }
  check(!by_rank.empty(), kOrigin,
        model_dir.string() + ": no dp_rank_00_tp_rank_<r>_pp_rank_00.pt shards");
  const int64_t size = by_rank.rbegin()->first + 1;
  for (int64_t rank = 0; rank < size; ++rank) {
    check(by_rank.count(rank) == 1, kOrigin,
          model_dir.string() + ": " + neuron_shard_name(rank) + " is missing (found " +
              std::to_string(by_rank.size()) + " of the ranks 0.." + std::to_string(size - 1) +
              ")");
  }

  const fs::path metadata_path = shards_dir / "mp_metadata_pp_rank_0.pt";
  check(fs::is_regular_file(metadata_path, ec), kOrigin,
        metadata_path.string() + ": missing (it says which tensors are sharded)");
  const TorchCheckpoint metadata = TorchCheckpoint::open(metadata_path);
  const std::string meta_where = metadata_path.string();
  check(metadata.root().kind == PickleKind::Dict, kOrigin, meta_where + ": not a dict");
  const PickleValue* sharded = metadata.root().get("sharded_metadata");
  check(sharded != nullptr && sharded->kind == PickleKind::Dict, kOrigin,
        meta_where + ": has no 'sharded_metadata' dict");
  const PickleValue* gqa = metadata.root().get("gqa_qkv_metadata");
  if (gqa != nullptr && gqa->kind == PickleKind::Dict) {
    const PickleValue* replaced = gqa->get("original_names_to_gqa_qkv_names");
    check(replaced == nullptr || replaced->entries.empty(), kOrigin,
          meta_where +
              ": q/k/v were replaced by GQAQKVColumnParallelLinear (tensor parallel size above "
              "the key/value heads), which is not read yet");
  }

  AdapterTpShards shards;
  shards.dir_ = model_dir;
  for (int64_t rank = 0; rank < size; ++rank) {
    shards.files_.push_back(TorchStateDictFile::open(by_rank[rank]));
  }
  shards.index_tensors([&](int64_t rank, const std::string& here, const TensorInfo& info,
                           const LoraTensorName& parsed, TpSplit split) {
    if (rank != 0) return;  // one metadata file for all ranks
    const TpSplit stated = stated_split(*sharded, info.name, meta_where);
    check(stated == split, kOrigin,
          here + ": " + meta_where + " says " + split_words(stated) + " but a " +
              std::string(lora_target_name(parsed.target)) + " lora_" +
              lora_part_letter(parsed.part) + " is " + split_words(split));
  });
  return shards;
}

}  // namespace ll
