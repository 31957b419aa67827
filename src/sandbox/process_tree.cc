#include "sandbox/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace artel {
namespace {

struct TaskInfo {
  pid_t ppid = 0;
  int threads = 1;
};

// Parses ppid (field 4) and num_threads (field 20) of /proc/<pid>/stat.
bool ReadStat(const char* pid_name, TaskInfo& info) {
  char path[300];
  std::snprintf(path, sizeof(path), "/proc/%s/stat", pid_name);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // The command name (field 2) is in parentheses and may hold spaces.
  char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  ++p;  // now at " <state> <ppid> ..."; field 3 comes next.
  int field = 2;
  char* save = nullptr;
  for (char* tok = strtok_r(p, " ", &save); tok != nullptr; tok = strtok_r(nullptr, " ", &save)) {
    ++field;
    if (field == 4) info.ppid = static_cast<pid_t>(std::atoi(tok));
    if (field == 20) {
      info.threads = std::atoi(tok);
      return true;
    }
  }
  return false;
}

}  // namespace

int CountTasksInTree(pid_t root) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  std::unordered_map<pid_t, TaskInfo> tasks;
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    TaskInfo info;
    if (!ReadStat(entry->d_name, info)) continue;  // exited meanwhile
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    tasks[pid] = info;
    children[info.ppid].push_back(pid);
  }
  ::closedir(dir);
  if (tasks.find(root) == tasks.end()) return 0;
  int count = 0;
  std::vector<pid_t> stack{root};
  while (!stack.empty()) {
    pid_t pid = stack.back();
    stack.pop_back();
    count += tasks[pid].threads;
    auto it = children.find(pid);
    if (it != children.end()) stack.insert(stack.end(), it->second.begin(), it->second.end());
  }
  return count;
}

}  // namespace artel
