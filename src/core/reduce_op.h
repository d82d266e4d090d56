// How values from several places combine: collectives (parallel/communicator.h) and the
// backend's sharded ops (backend/ops.h VocabShard) take the same enum.
#pragma once

namespace ll {

enum class ReduceOp { Sum, Max };

}  // namespace ll
