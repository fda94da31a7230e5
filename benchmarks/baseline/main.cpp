// pm-agent-baseline: the least server that speaks the e2e exchange of API.md, the yardstick
// pm-agent-server's throughput is reported against. POST /api/v1/tasks(/batch) queues tasks in a
// FIFO; /ws/agent registers agents, takes `ready` credit and pushes tasks round robin to agents
// with credit; `complete` is acknowledged and credits the slot back. No store beyond the deque,
// no auth, no limits, no leases, no metrics; one thread, one coroutine per connection, one
// writer per WebSocket, as a competent engineer would write it with Beast.
//
// Usage: pm-agent-baseline [--host 127.0.0.1] [--port 0]; logs `event=listening ... port=N`.
// --fault-drop-every N / --fault-duplicate-every N lose or double every Nth task, so that the
// bench's self-test (benchmarks/run.sh selftest) can prove it notices.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
constexpr auto k_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t k_body_limit = 1 << 20;
constexpr std::size_t k_batch_max = 1000;

/// co_spawn completion: a coroutine that throws is a bug; say so instead of dying silently.
void report(std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        std::cerr << "pm-agent-baseline: coroutine failed: " << ex.what() << "\n";
    }
}

struct task {
    std::string id;
    std::string type;
    std::string payload;  // serialized JSON
    std::string created_at;
};

/// RFC 3339 UTC with milliseconds, the format of the server's timestamps.
std::string rfc3339_now() {
    using namespace std::chrono;
    const auto now = time_point_cast<milliseconds>(system_clock::now());
    const auto day = floor<days>(now);
    const year_month_day ymd{day};
    const hh_mm_ss<milliseconds> tod{now - day};
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                  static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                  static_cast<unsigned>(ymd.day()), static_cast<long long>(tod.hours().count()),
                  static_cast<long long>(tod.minutes().count()),
                  static_cast<long long>(tod.seconds().count()),
                  static_cast<long long>(tod.subseconds().count()));
    return buf;
}

void append_quoted(std::string& out, std::string_view text) {
    out += json::serialize(json::string_view(text.data(), text.size()));
}

class agent_session;

/// Everything the server knows: the pending FIFO and the agents that have credit.
struct server_state {
    std::deque<task> pending;
    /// Agents with credit > 0, in round-robin order; an agent is in here at most once.
    std::deque<std::shared_ptr<agent_session>> ready;
    std::uint64_t next_task = 0;
    std::uint64_t next_agent = 0;
    /// Fault injection for pm-agent-bench's self-test (0 = off): answer every Nth task 202 and
    /// drop it, or queue every Nth task twice.
    std::uint64_t drop_every = 0;
    std::uint64_t duplicate_every = 0;

    void dispatch();
};

class agent_session : public std::enable_shared_from_this<agent_session> {
  public:
    agent_session(server_state& s, tcp::socket socket) : s_(s), ws_(std::move(socket)) {}

    asio::awaitable<void> run(http::request<http::string_body> upgrade) {
        auto self = shared_from_this();
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.auto_fragment(false);
        auto [accept_ec] = co_await ws_.async_accept(upgrade, k_tuple);
        if (accept_ec) {
            co_return;
        }
        beast::flat_buffer buffer;
        for (;;) {
            auto [ec, n] = co_await ws_.async_read(buffer, k_tuple);
            if (ec) {
                break;
            }
            const auto data = buffer.cdata();
            on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
            buffer.consume(buffer.size());
        }
        closed_ = true;  // the ready deque drops it lazily
    }

    bool closed() const { return closed_; }
    int credit() const { return credit_; }
    void set_queued(bool queued) { queued_ = queued; }

    /// Sends one task; the caller has checked the credit.
    void push(const task& t) {
        --credit_;
        ++running_;
        std::string frame;
        frame.reserve(384 + t.payload.size());
        frame += R"({"type":"task","task":{"id":)";
        append_quoted(frame, t.id);
        frame += R"(,"queue":"default","type":)";
        append_quoted(frame, t.type);
        frame += R"(,"payload":)";
        frame += t.payload;
        frame +=
            R"(,"priority":0,"status":"assigned","attempts":1,"max_attempts":3,)"
            R"("required_capabilities":[],"timeout_s":null,"idempotency_key":null,"agent_id":)";
        append_quoted(frame, agent_id_);
        frame += R"(,"result":null,"error":null,"run_at":null,"created_at":")";
        frame += t.created_at;
        frame += R"(","updated_at":")";
        frame += rfc3339_now();
        frame += R"(","progress":null}})";
        send(std::move(frame));
    }

  private:
    void on_message(std::string_view text) {
        boost::system::error_code ec;
        auto message = json::parse(text, ec);
        const auto* object = ec ? nullptr : message.if_object();
        const auto* type = object != nullptr ? object->if_contains("type") : nullptr;
        if (type == nullptr || !type->is_string()) {
            send_error("bad_request", "type: required string");
            return;
        }
        const auto& kind = type->get_string();
        if (kind == "register") {
            on_register(*object);
        } else if (agent_id_.empty()) {
            send_error("bad_request", "send register first");
        } else if (kind == "ready") {
            const auto* slots = object->if_contains("slots");
            if (slots == nullptr || !slots->is_int64() || slots->get_int64() < 0) {
                send_error("bad_request", "slots: required non-negative integer");
                return;
            }
            credit_ = static_cast<int>(
                std::min<std::int64_t>(credit_ + slots->get_int64(), max_concurrency_ - running_));
            offer();
        } else if (kind == "complete" || kind == "fail") {
            const auto* id = object->if_contains("task_id");
            if (id == nullptr || !id->is_string()) {
                send_error("bad_request", "task_id: required string");
                return;
            }
            if (running_ > 0) {
                --running_;
                ++credit_;
            }
            std::string ack = R"({"type":"ack","task_id":)";
            append_quoted(ack, id->get_string());
            ack += kind == "complete" ? R"(,"status":"succeeded"})" : R"(,"status":"dead"})";
            send(std::move(ack));
            offer();
        } else if (kind == "heartbeat") {
            std::string ack = R"({"type":"heartbeat_ack","server_time":")" + rfc3339_now() + "\"";
            if (const auto* seq = object->if_contains("seq")) {
                ack += R"(,"seq":)" + json::serialize(*seq);
            }
            ack += "}";
            send(std::move(ack));
        } else {
            send_error("bad_request", "type: unknown message type");
        }
    }

    void on_register(const json::object& message) {
        if (!agent_id_.empty()) {
            send_error("conflict", "already registered on this connection");
            return;
        }
        if (const auto* n = message.if_contains("max_concurrency"); n != nullptr) {
            if (!n->is_int64() || n->get_int64() < 1) {
                send_error("bad_request", "max_concurrency: must be a positive integer");
                return;
            }
            max_concurrency_ = static_cast<int>(n->get_int64());
        }
        agent_id_ = "a_" + std::to_string(++s_.next_agent);
        send(R"({"type":"registered","agent_id":")" + agent_id_ + R"(","token":"tok_)" + agent_id_ +
             R"(","heartbeat_interval_s":15,"heartbeat_timeout_s":45,"lease_timeout_s":60})");
    }

    /// Joins the round robin when it has credit, then lets the queue flow.
    void offer() {
        if (credit_ > 0 && !queued_) {
            queued_ = true;
            s_.ready.push_back(shared_from_this());
        }
        s_.dispatch();
    }

    void send_error(std::string_view code, std::string_view message) {
        std::string frame = R"({"type":"error","code":)";
        append_quoted(frame, code);
        frame += R"(,"message":)";
        append_quoted(frame, message);
        frame += "}";
        send(std::move(frame));
    }

    void send(std::string frame) {
        if (closed_) {
            return;
        }
        outbox_.push_back(std::move(frame));
        if (!writing_) {
            writing_ = true;
            asio::co_spawn(ws_.get_executor(), write_loop(shared_from_this()), report);
        }
    }

    asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<agent_session> self) {
        while (!outbox_.empty() && !closed_) {
            std::string frame = std::move(outbox_.front());
            outbox_.pop_front();
            auto [ec, n] = co_await ws_.async_write(asio::buffer(frame), k_tuple);
            if (ec) {
                closed_ = true;
                beast::error_code ignored;
                ws_.next_layer().close(ignored);
            }
        }
        writing_ = false;
    }

    server_state& s_;
    websocket::stream<tcp::socket> ws_;
    std::deque<std::string> outbox_;
    std::string agent_id_;
    int max_concurrency_ = 1;
    int running_ = 0;
    int credit_ = 0;
    bool queued_ = false;
    bool writing_ = false;
    bool closed_ = false;
};

void server_state::dispatch() {
    while (!pending.empty() && !ready.empty()) {
        auto agent = std::move(ready.front());
        ready.pop_front();
        if (agent->closed() || agent->credit() <= 0) {
            agent->set_queued(false);
            continue;
        }
        agent->push(pending.front());
        pending.pop_front();
        if (agent->credit() > 0) {
            ready.push_back(std::move(agent));
        } else {
            agent->set_queued(false);
        }
    }
}

/// Validates one task of a submit body and queues it; returns the error text, empty if queued.
std::string enqueue(server_state& s, const json::value& body, std::string& id_out) {
    const auto* object = body.if_object();
    const auto* type = object != nullptr ? object->if_contains("type") : nullptr;
    if (type == nullptr || !type->is_string() || type->get_string().empty()) {
        return "type: required non-empty string";
    }
    task t;
    t.id = "t_" + std::to_string(++s.next_task);
    t.type = std::string(type->get_string());
    const auto* payload = object->if_contains("payload");
    t.payload = payload != nullptr ? json::serialize(*payload) : "null";
    t.created_at = rfc3339_now();
    id_out = t.id;
    if (s.drop_every > 0 && s.next_task % s.drop_every == 0) {
        return {};
    }
    if (s.duplicate_every > 0 && s.next_task % s.duplicate_every == 0) {
        s.pending.push_back(t);
    }
    s.pending.push_back(std::move(t));
    return {};
}

http::response<http::string_body> answer(unsigned status, std::string body) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    return res;
}

http::response<http::string_body> error_answer(unsigned status, std::string_view code,
                                               std::string_view message) {
    std::string body = R"({"error":{"code":)";
    append_quoted(body, code);
    body += R"(,"message":)";
    append_quoted(body, message);
    body += "}}";
    return answer(status, std::move(body));
}

http::response<http::string_body> handle(server_state& s,
                                         const http::request<http::string_body>& req) {
    const auto target = req.target();
    if (target == "/health") {
        return answer(200, R"({"status":"ok"})");
    }
    const bool batch = target == "/api/v1/tasks/batch";
    if (target != "/api/v1/tasks" && !batch) {
        return error_answer(404, "not_found", "no such route");
    }
    if (req.method() != http::verb::post) {
        auto res = error_answer(405, "method_not_allowed", "POST only");
        res.set(http::field::allow, "POST");
        return res;
    }
    boost::system::error_code ec;
    auto body = json::parse(req.body(), ec);
    if (ec) {
        return error_answer(400, "bad_request", "malformed JSON");
    }
    std::string id;
    if (!batch) {
        if (auto bad = enqueue(s, body, id); !bad.empty()) {
            return error_answer(400, "bad_request", bad);
        }
        s.dispatch();
        return answer(202, R"({"task_id":")" + id + R"(","status":"pending"})");
    }
    const auto* object = body.if_object();
    const auto* tasks = object != nullptr ? object->if_contains("tasks") : nullptr;
    if (tasks == nullptr || !tasks->is_array() || tasks->get_array().size() > k_batch_max) {
        return error_answer(400, "bad_request", "tasks: required array of up to 1000 tasks");
    }
    // All or nothing: validate every task before queueing any.
    for (std::size_t i = 0; i < tasks->get_array().size(); ++i) {
        const auto& t = tasks->get_array()[i];
        const auto* type = t.is_object() ? t.get_object().if_contains("type") : nullptr;
        if (type == nullptr || !type->is_string() || type->get_string().empty()) {
            return error_answer(400, "bad_request",
                                "tasks[" + std::to_string(i) + "].type: required string");
        }
    }
    std::string out = R"({"task_ids":[)";
    for (const auto& t : tasks->get_array()) {
        enqueue(s, t, id);
        out += (out.back() == '[' ? "\"" : ",\"") + id + "\"";
    }
    out += "]}";
    s.dispatch();
    return answer(202, std::move(out));
}

asio::awaitable<void> http_session(server_state& s, tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(k_body_limit);
        auto [ec, n] = co_await http::async_read(socket, buffer, parser, k_tuple);
        if (ec) {
            break;
        }
        auto& req = parser.get();
        if (websocket::is_upgrade(req) && req.target() == "/ws/agent") {
            auto session = std::make_shared<agent_session>(s, std::move(socket));
            co_await session->run(parser.release());
            co_return;
        }
        auto res = handle(s, req);
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        auto [write_ec, written] = co_await http::async_write(socket, res, k_tuple);
        if (write_ec || !res.keep_alive()) {
            break;
        }
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_loop(server_state& s, tcp::acceptor& acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(k_tuple);
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                co_return;
            }
            continue;  // e.g. EMFILE: keep serving the connections we have
        }
        socket.set_option(tcp::no_delay(true), ec);
        asio::co_spawn(acceptor.get_executor(), http_session(s, std::move(socket)), report);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    server_state state;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view flag = argv[i];
        if (i + 1 == argc) {
            std::cerr << "pm-agent-baseline: " << flag << " needs a value\n";
            return 2;
        }
        if (flag == "--host") {
            host = argv[i + 1];
        } else if (flag == "--port") {
            port = static_cast<unsigned short>(std::stoi(argv[i + 1]));
        } else if (flag == "--fault-drop-every") {
            state.drop_every = std::stoull(argv[i + 1]);
        } else if (flag == "--fault-duplicate-every") {
            state.duplicate_every = std::stoull(argv[i + 1]);
        } else {
            std::cerr << "usage: pm-agent-baseline [--host H] [--port P] "
                         "[--fault-drop-every N] [--fault-duplicate-every N]\n";
            return 2;
        }
    }
    asio::io_context io(1);
    tcp::acceptor acceptor(io);
    const tcp::endpoint endpoint(asio::ip::make_address(host), port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    std::printf("event=listening host=%s port=%u store=fifo\n", host.c_str(),
                acceptor.local_endpoint().port());
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { io.stop(); });
    asio::co_spawn(io, accept_loop(state, acceptor), report);
    io.run();
    // Sessions die with their coroutines when `io` is destroyed; none may outlive it in `state`.
    state.ready.clear();
    return 0;
}
