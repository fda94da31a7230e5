#pragma once
// The supervisor's log lines, in the workers' format (text key=value or JSON lines, UTC
// timestamp, level, pid) but written with one write(2) each: the supervisor has no logger
// thread, so that fork() stays safe.

#include <string>
#include <string_view>

namespace pm_agent::process {

enum class line_level { info, warn, error };

class supervisor_log {
  public:
    supervisor_log(std::string_view min_level, bool json);

    /// `message` is `event=... key=value ...`; it is prefixed with `supervisor `.
    void write(line_level level, std::string_view message) const;

  private:
    int min_rank_;
    bool json_;
};

}  // namespace pm_agent::process
