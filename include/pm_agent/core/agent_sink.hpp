#pragma once
/// How the engine talks to a WebSocket-connected agent; implemented by the transport's session.

#include <string_view>

#include "pm_agent/store/types.hpp"

namespace pm_agent::core {

/// One connected agent's outbound side. The engine calls these on the loop thread, often from
/// inside one of its own operations, so an implementation should only queue frames. The one
/// call back into the engine allowed before returning is detach()/detach_too_slow() of this
/// sink (its queue overflowed); the engine then stops using it at once. A `task` reference is
/// valid only during the call (serialize it there).
class agent_sink {
  public:
    virtual ~agent_sink() = default;
    /// An assignment (`{"type":"task"}`): it used one slot of credit.
    virtual void push_task(const store::task& task) = 0;
    /// The agent must stop the task (`{"type":"cancel"}`): cancelled, timed out, or its lease
    /// ended. Its slot has been credited back already.
    virtual void push_cancel(std::string_view task_id) = 0;
    /// The agent was deregistered (by itself over REST or by an admin) and is detached: close
    /// the connection (policy close).
    virtual void deregistered() = 0;
    /// A newer connection of the same agent attached, here or on another worker: this one is
    /// stale (the agent lost it, or two processes share an id) and is detached already. Close
    /// the connection, saying so (4001).
    virtual void replaced() = 0;
};

}  // namespace pm_agent::core
