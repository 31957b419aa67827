// The coordinator's metrics computed at scrape time: tasks and workers by
// state, replica counters, blob traffic and training jobs.
#pragma once

#include "blob/blob_service.h"
#include "coordinator/coordinator.h"
#include "metrics/metrics.h"

namespace artel {

// Adds a collector to `registry`; `coordinator` and `blobs` must outlive it.
void AddCoordinatorCollector(metrics::Registry& registry, const Coordinator& coordinator,
                             const BlobServiceImpl& blobs);

}  // namespace artel
