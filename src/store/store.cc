#include "store/store.h"

#include <iterator>
#include <utility>

namespace artel {
namespace {

template <typename T>
void MoveAppend(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to = std::move(from);
  } else {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  }
  from.clear();
}

}  // namespace

bool WriteBatch::empty() const { return size() == 0; }

size_t WriteBatch::size() const {
  return tasks.size() + replicas.size() + workers.size() + jobs.size() + apps.size() +
         tokens.size() + datasets.size() + training_jobs.size();
}

void WriteBatch::Append(WriteBatch&& other) {
  MoveAppend(tasks, other.tasks);
  MoveAppend(replicas, other.replicas);
  MoveAppend(workers, other.workers);
  MoveAppend(jobs, other.jobs);
  MoveAppend(apps, other.apps);
  MoveAppend(tokens, other.tokens);
  MoveAppend(datasets, other.datasets);
  MoveAppend(training_jobs, other.training_jobs);
}

}  // namespace artel
