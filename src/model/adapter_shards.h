// Tensor-parallel LoRA adapter shards (DESIGN.md "Tensor parallelism" and "On disk"): a
// checkpoint written with tensor parallel size n > 1 holds one adapter_config.json and, for
// every rank r in 0..n-1, `adapter-tp<r>-of-<n>.safetensors` with that rank's part of every
// LoRA tensor (peft's names, lora_tensor_name in model/lora.h):
//
//   column-parallel q, k, v, gate, up (W split by output rows):
//     lora_A [r, in]      replicated: every rank holds all of it
//     lora_B [out, r]     split by rows (dim 0): rank k holds rows [k·out/n, (k+1)·out/n)
//   row-parallel o, down (W split by input columns):
//     lora_A [r, in]      split by columns (dim 1): rank k holds columns [k·in/n, (k+1)·in/n)
//     lora_B [out, r]     replicated
//
// Metadata of each shard file (the safetensors "__metadata__" map; every value a string):
//   "format"            "pt" (as transformers / peft write it)
//   "tp_rank"           "<r>"   this file's rank, 0-based
//   "tp_size"           "<n>"   the tensor parallel size
//   "tp_split.<name>"   one per tensor in the file: "0" (split by rows), "1" (split by
//                       columns) or "none" (replicated)
// so a reader never has to guess a layout from names alone; the reader still checks that the
// stated split is the one above for that tensor (a mismatch means a foreign or corrupt file).
// Splits are even: a split dimension must divide by n.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "formats/safetensors.h"
#include "model/lora.h"

namespace ll {

// TpSplit and the split rule, lora_tp_split, are in model/lora.h.
std::string_view tp_split_text(TpSplit split);  // "none", "0", "1": the metadata spelling

// "adapter-tp<rank>-of-<size>.safetensors"
std::string adapter_tp_shard_name(int64_t rank, int64_t size);
// The rank and size of a shard file name, or nothing when `name` is not one.
std::optional<std::pair<int64_t, int64_t>> parse_adapter_tp_shard_name(std::string_view name);

// The parts of a peft LoRA tensor name
// ("base_model.model.model.layers.<layer>.<block>.<target>.lora_<A|B>.weight").
struct LoraTensorName {
  int64_t layer = 0;
  LoraTarget target = LoraTarget::Q;
  LoraPart part = LoraPart::A;
};
std::optional<LoraTensorName> parse_lora_tensor_name(std::string_view name);

// Writes `dir`/adapter-tp<rank>-of-<size>.safetensors (fp32, atomically) with rank `rank`'s
// part of every tensor of `adapter`. Every split dimension must divide by `size`; otherwise
// nothing is written and the error names the tensor, the dimension and the size. The
// checkpoint's adapter_config.json is written once, beside the shards, by the caller.
void save_adapter_tp_shard(const fs::path& dir, const LoraAdapter& adapter, int64_t rank,
                           int64_t size);

// The same file from rank `rank`'s part alone (slice_adapter_for_tp's shapes), as a
// tensor-parallel trainer holds it.
void write_adapter_tp_shard(const fs::path& dir, const LoraAdapter& part, int64_t rank,
                            int64_t size);

// The n shard files of a checkpoint folder, memory-mapped, and the whole tensors they make.
// open() checks everything that can be checked without reading tensor data: every rank's file
// present, file names and metadata agreeing on rank and size, the same tensors in every file,
// peft tensor names, each tensor's stated split equal to the layout above, 2-D shapes and
// dtypes equal across ranks. Replicated tensors are compared across ranks (bit for bit) when
// read. Errors name the folder, file, tensor and ranks.
class AdapterTpShards {
 public:
  struct Tensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // the whole tensor, after joining the ranks
    TpSplit split = TpSplit::Replicated;
  };

  static AdapterTpShards open(const fs::path& dir);
  // Optimum Neuron's layout (docs/FORMATS.md): `checkpoint`/adapter_shards/model/
  // dp_rank_00_tp_rank_<r>_pp_rank_00.pt, torch.save files of rank r's peft state dict (read
  // without running code), and adapter_shards/mp_metadata_pp_rank_0.pt, whose
  // sharded_metadata must state the split of the layout above for every tensor. The same
  // checks as open(); a missing rank, pipeline parallelism, xser references and GQA q/k/v
  // replacement are refused. (adapter_shards_neuron.cpp)
  static AdapterTpShards open_neuron(const fs::path& checkpoint);

  int64_t tp_size() const { return static_cast<int64_t>(files_.size()); }
  // In the order of rank 0's file.
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const TensorFile& file(int64_t rank) const { return *files_[static_cast<size_t>(rank)]; }

  // The bytes of tensors()[index], joined in rank order along its split dimension (into
  // `scratch`, which grows to the tensor's size), or rank 0's mapped bytes for a replicated
  // tensor after checking that every rank holds the same bits. Valid until the next call with
  // the same scratch.
  std::span<const std::byte> read(size_t index, std::vector<std::byte>& scratch) const;

 private:
  // Checks a tensor's split as rank `rank`'s file states it (`here` names file and tensor);
  // `split` is the layout's.
  using CheckStatedSplit =
      std::function<void(int64_t rank, const std::string& here, const TensorInfo& info,
                         const LoraTensorName& parsed, TpSplit split)>;
  // With files_ open: the same tensors, dtypes and shapes on every rank, peft names, and the
  // stated splits; fills tensors_.
  void index_tensors(const CheckStatedSplit& check_stated_split);

  fs::path dir_;
  std::vector<std::unique_ptr<TensorFile>> files_;  // by rank
  std::vector<Tensor> tensors_;
};

// Whether `checkpoint` has Optimum Neuron's adapter_shards/ folder.
bool is_neuron_checkpoint(const fs::path& checkpoint);

// The shard files present in `dir` (names that parse as adapter-tp<r>-of-<n>.safetensors).
std::vector<std::string> list_adapter_tp_shards(const fs::path& dir);

}  // namespace ll
