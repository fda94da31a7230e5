// The supervisor of N worker processes: one single-threaded poll() loop over a signalfd
// (SIGTERM, SIGINT, SIGCHLD) and a pipe on which workers report that they listen.

#include "pm_agent/process/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "process/port_reservation.hpp"
#include "process/supervisor_log.hpp"

namespace pm_agent::process {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Upper bound on one poll() wait, so a lost wake-up can only delay the loop, never stall it.
constexpr auto k_max_wait = milliseconds(1000);

/// One worker slot; a restarted worker takes its predecessor's slot.
struct slot {
    int index = 0;
    pid_t pid = 0;  ///< 0: not running
    clock::time_point started;
    std::optional<clock::time_point> restart_at;
    bool listened = false;
    restart_policy policy;
};

class supervisor {
  public:
    supervisor(const supervisor_options& options, const worker_main& worker)
        : options_(options), worker_(worker), log_(options.log_level, options.log_json) {}

    int run() {
        if (auto error = reserve_port(options_.host, options_.port, reserved_, port_)) {
            say(line_level::error, "event=bind_failed host=" + options_.host + " port=" +
                                       std::to_string(options_.port) + " error=\"" + *error + "\"");
            return 1;
        }
        if (auto error = open_channels()) {
            say(line_level::error, "event=start_failed error=\"" + *error + "\"");
            return 1;
        }
        say(line_level::info,
            "event=supervisor_started workers=" + std::to_string(options_.workers) +
                " port=" + std::to_string(port_));
        slots_.resize(static_cast<std::size_t>(options_.workers));
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            slots_[i].index = static_cast<int>(i);
            slots_[i].policy = restart_policy(options_.restart);
            start(slots_[i]);
        }
        // The signals stay blocked until the process exits: a late SIGTERM must not turn the
        // exit code into a death by signal.
        loop();
        say(line_level::info, "event=stopped exit_code=" + std::to_string(exit_code_));
        return exit_code_;
    }

  private:
    std::optional<std::string> open_channels() {
        sigset_t handled;
        sigemptyset(&handled);
        sigaddset(&handled, SIGTERM);
        sigaddset(&handled, SIGINT);
        sigaddset(&handled, SIGCHLD);
        if (::sigprocmask(SIG_BLOCK, &handled, &original_mask_) != 0) {
            return errno_text("sigprocmask");
        }
        signals_.reset(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
        if (signals_.get() < 0) {
            return errno_text("signalfd");
        }
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0) {
            return errno_text("pipe2");
        }
        ready_read_.reset(ends[0]);
        ready_write_.reset(ends[1]);
        ::fcntl(ready_read_.get(), F_SETFL, O_NONBLOCK);
        // A closed stderr must not kill the supervisor; workers get the old disposition back.
        original_sigpipe_ = ::signal(SIGPIPE, SIG_IGN);
        return std::nullopt;
    }

    void loop() {
        for (;;) {
            reap();
            const auto now = clock::now();
            if (!shutting_down_) {
                for (auto& s : slots_) {
                    if (s.pid == 0 && s.restart_at && *s.restart_at <= now) {
                        start(s);
                    }
                }
            }
            if (shutting_down_ && !killed_ && now >= kill_at_) {
                kill_remaining();
            }
            if (finished()) {
                return;
            }
            wait_for_events(next_wakeup(now) - now);
        }
    }

    bool finished() const {
        for (const auto& s : slots_) {
            if (s.pid != 0 || (!shutting_down_ && s.restart_at)) {
                return false;
            }
        }
        return true;
    }

    clock::time_point next_wakeup(clock::time_point now) const {
        auto at = now + k_max_wait;
        if (shutting_down_ && !killed_) {
            at = std::min(at, kill_at_);
        }
        for (const auto& s : slots_) {
            if (!shutting_down_ && s.pid == 0 && s.restart_at) {
                at = std::min(at, *s.restart_at);
            }
        }
        return at;
    }

    void wait_for_events(clock::duration timeout) {
        const auto ms = std::chrono::ceil<milliseconds>(std::max(timeout, clock::duration::zero()));
        pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {ready_read_.get(), POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(ms.count())) <= 0) {
            return;
        }
        if (fds[0].revents & POLLIN) {
            read_signals();
        }
        if (fds[1].revents & POLLIN) {
            read_ready();
        }
    }

    void read_signals() {
        signalfd_siginfo info{};
        while (::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
            const int sig = static_cast<int>(info.ssi_signo);
            if (sig == SIGTERM || sig == SIGINT) {
                say(line_level::info, "event=drain_started signal=" + std::to_string(sig));
                begin_shutdown(sig);
            }
            // SIGCHLD: reaped at the top of the loop.
        }
    }

    /// Workers write their pid once they listen (one write of sizeof(pid_t) bytes is atomic).
    void read_ready() {
        pid_t pids[64];
        const auto n = ::read(ready_read_.get(), pids, sizeof(pids));
        for (ssize_t i = 0; n > 0 && i < n / static_cast<ssize_t>(sizeof(pid_t)); ++i) {
            for (auto& s : slots_) {
                if (s.pid == pids[i]) {
                    s.listened = true;
                }
            }
        }
        if (announced_) {
            return;
        }
        for (const auto& s : slots_) {
            if (!s.listened) {
                return;
            }
        }
        announced_ = true;
        say(line_level::info, "event=listening host=" + options_.host +
                                  " port=" + std::to_string(port_) +
                                  " workers=" + std::to_string(options_.workers));
    }

    void start(slot& s) {
        s.restart_at.reset();
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid < 0) {
            say(line_level::error, "event=fork_failed index=" + std::to_string(s.index) +
                                       " error=\"" + std::strerror(errno) + "\"");
            if (!schedule_restart(s, clock::now(), clock::now())) {
                give_up(s, 1);
            }
            return;
        }
        if (pid == 0) {
            ::_exit(run_worker(s.index, parent));
        }
        s.pid = pid;
        s.started = clock::now();
        say(line_level::info, "event=worker_started index=" + std::to_string(s.index) +
                                  " worker_pid=" + std::to_string(pid));
    }

    /// In the child, right after fork(): no thread exists yet, so the worker may start its own.
    int run_worker(int index, pid_t parent) {
        // A worker whose supervisor died drains and exits instead of lingering; the getppid()
        // check covers a supervisor that died before prctl() took effect.
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) {
            return 0;
        }
        signals_.reset();
        ready_read_.reset();
        reserved_.reset();
        ::signal(SIGPIPE, original_sigpipe_);
        ::sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
        const int ready_fd = ready_write_.get();
        worker_context context;
        context.index = index;
        context.port = port_;
        context.listening = [ready_fd] {
            const pid_t self = ::getpid();
            [[maybe_unused]] auto ignored = ::write(ready_fd, &self, sizeof(self));
        };
        int code = 1;
        try {
            code = worker_(context);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "pm-agent-server: worker %d failed: %s\n", index, e.what());
        }
        std::fflush(nullptr);
        return code;
    }

    void reap() {
        int status = 0;
        pid_t pid = 0;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            for (auto& s : slots_) {
                if (s.pid == pid) {
                    on_exit(s, exit_status::from_wait_status(status));
                }
            }
        }
    }

    void on_exit(slot& s, exit_status status) {
        const auto now = clock::now();
        const auto ran = std::chrono::duration_cast<milliseconds>(now - s.started);
        const auto head = "event=worker_exited index=" + std::to_string(s.index) +
                          " worker_pid=" + std::to_string(s.pid) + " status=" + status.describe() +
                          " ran_ms=" + std::to_string(ran.count());
        s.pid = 0;
        if (shutting_down_) {
            const bool drained =
                status.clean() || (status.by_signal && status.code == forwarded_signal_);
            if (!drained && exit_code_ == 0) {
                exit_code_ = 1;
            }
            say(drained ? line_level::info : line_level::warn, head);
            return;
        }
        if (status.clean()) {
            say(line_level::info, head + " restart=no");
            return;
        }
        if (schedule_restart(s, s.started, now)) {
            say(line_level::warn,
                head + " restart_in_ms=" +
                    std::to_string(
                        std::chrono::duration_cast<milliseconds>(*s.restart_at - now).count()));
            return;
        }
        say(line_level::error, head);
        give_up(s, status.by_signal ? 1 : status.code);
    }

    /// A worker that cannot start would only crash-loop: stop everything and say why.
    void give_up(const slot& s, int exit_code) {
        say(line_level::error,
            "event=giving_up index=" + std::to_string(s.index) +
                " fast_failures=" + std::to_string(s.policy.fast_failures()) +
                " detail=\"the worker keeps failing at start-up (see its lines above); stopping "
                "the others\"");
        exit_code_ = exit_code == 0 ? 1 : exit_code;
        begin_shutdown(SIGTERM);
    }

    /// Returns false when the policy gives up on the slot.
    bool schedule_restart(slot& s, clock::time_point started, clock::time_point now) {
        const auto decision = s.policy.on_failure(started, now);
        if (decision.give_up) {
            return false;
        }
        s.restart_at = now + decision.delay;
        return true;
    }

    void begin_shutdown(int sig) {
        if (!shutting_down_) {
            shutting_down_ = true;
            forwarded_signal_ = sig;
            kill_at_ = clock::now() + options_.shutdown_timeout + options_.kill_grace;
        }
        for (auto& s : slots_) {
            s.restart_at.reset();
            if (s.pid != 0) {
                ::kill(s.pid, sig);
            }
        }
    }

    void kill_remaining() {
        killed_ = true;
        for (const auto& s : slots_) {
            if (s.pid != 0) {
                say(line_level::error, "event=worker_killed index=" + std::to_string(s.index) +
                                           " worker_pid=" + std::to_string(s.pid) +
                                           " detail=\"still running past "
                                           "server.shutdown_timeout_s + " +
                                           std::to_string(options_.kill_grace.count()) + " s\"");
                ::kill(s.pid, SIGKILL);
            }
        }
        exit_code_ = exit_code_ == 0 ? 1 : exit_code_;
    }

    void say(line_level level, const std::string& message) const { log_.write(level, message); }

    const supervisor_options& options_;
    const worker_main& worker_;
    supervisor_log log_;
    unique_fd reserved_;
    std::uint16_t port_ = 0;
    unique_fd signals_;
    unique_fd ready_read_;
    unique_fd ready_write_;
    sigset_t original_mask_{};
    sighandler_t original_sigpipe_ = SIG_DFL;
    std::vector<slot> slots_;
    bool shutting_down_ = false;
    bool killed_ = false;
    bool announced_ = false;
    int forwarded_signal_ = SIGTERM;
    clock::time_point kill_at_;
    int exit_code_ = 0;
};

}  // namespace

int run_supervised(const supervisor_options& options, const worker_main& worker) {
    return supervisor(options, worker).run();
}

}  // namespace pm_agent::process
