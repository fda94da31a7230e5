#include "pm_agent/api/codec.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pm_agent/api/query.hpp"

namespace pm_agent::api {
namespace {

using namespace std::chrono;

boost::json::object obj(std::string_view text) {
    return boost::json::parse(text).as_object();
}

TEST(rfc3339, formats_utc_with_milliseconds) {
    const auto t =
        sys_days{2026y / 11 / 24} + hours(1) + minutes(2) + seconds(3) + milliseconds(45);
    EXPECT_EQ(format_rfc3339(time_point_cast<store::clock::duration>(t)),
              "2026-11-24T01:02:03.045Z");
}

TEST(rfc3339, parses_zulu_offsets_and_fractions) {
    const auto base = sys_days{2030y / 1 / 1};
    EXPECT_EQ(parse_rfc3339("2030-01-01T00:00:00Z"), base);
    EXPECT_EQ(parse_rfc3339("2030-01-01T02:00:00+02:00"), base);
    EXPECT_EQ(parse_rfc3339("2029-12-31T23:30:00-00:30"), base);
    EXPECT_EQ(parse_rfc3339("2030-01-01T00:00:00.25Z"), base + milliseconds(250));
}

// Past 2262 the nanosecond clock wraps: 9999-12-31 became a time in 1816.
TEST(rfc3339, rejects_years_the_clock_cannot_hold) {
    EXPECT_FALSE(parse_rfc3339("9999-12-31T23:59:59Z"));
    EXPECT_FALSE(parse_rfc3339("1600-01-01T00:00:00Z"));
    EXPECT_TRUE(parse_rfc3339("2200-12-31T23:59:59Z"));
    EXPECT_TRUE(parse_rfc3339("1970-01-01T00:00:00Z"));
}

TEST(rfc3339, rejects_malformed_times) {
    for (auto text : {"", "2030-01-01", "2030-01-01T00:00:00", "2030-13-01T00:00:00Z",
                      "2030-02-30T00:00:00Z", "2030-01-01T24:00:00Z", "2030-01-01T00:00:00.Z",
                      "2030-01-01T00:00:00Zjunk", "yesterday"}) {
        EXPECT_FALSE(parse_rfc3339(text)) << text;
    }
}

TEST(decode_task, applies_fields_and_header_key) {
    auto body = obj(R"({"type":"t","payload":{"a":1},"queue":"q","priority":5,
                        "required_capabilities":["gpu"],"max_attempts":2,"timeout_s":30,"delay_s":1.5})");
    auto spec = decode_task_spec(body, "key-1", "");
    ASSERT_TRUE(spec) << spec.err().message;
    EXPECT_EQ(spec->type, "t");
    EXPECT_EQ(spec->queue, "q");
    EXPECT_EQ(spec->priority, 5);
    EXPECT_EQ(spec->required_capabilities, std::vector<std::string>{"gpu"});
    EXPECT_EQ(spec->max_attempts, 2);
    EXPECT_EQ(spec->timeout_s, 30);
    EXPECT_EQ(spec->delay_s, 1.5);
    EXPECT_EQ(spec->idempotency_key, "key-1");
    EXPECT_EQ(boost::json::serialize(spec->payload), R"({"a":1})");
}

TEST(decode_task, errors_name_the_field) {
    struct case_t {
        const char* body;
        const char* field;
    };
    for (auto c : {case_t{R"({})", "type"}, case_t{R"({"type":""})", "type"},
                   case_t{R"({"type":"t","priority":"high"})", "priority"},
                   case_t{R"({"type":"t","priority":1.5})", "priority"},
                   case_t{R"({"type":"t","status":"succeeded"})", "status"},
                   case_t{R"({"type":"t","attempts":0})", "attempts"},
                   case_t{R"({"type":"t","agent_id":"a_1"})", "agent_id"},
                   case_t{R"({"type":"t","required_capabilities":"gpu"})", "required_capabilities"},
                   case_t{R"({"type":"t","run_at":"soon"})", "run_at"},
                   case_t{R"({"type":"t","delay_s":1,"run_at":"2030-01-01T00:00:00Z"})", "delay_s"},
                   case_t{R"({"type":"t","colour":"red"})", "colour"}}) {
        auto body = obj(c.body);
        auto spec = decode_task_spec(body, "", "");
        ASSERT_FALSE(spec) << c.body;
        EXPECT_EQ(spec.err().code, store::errc::bad_request);
        EXPECT_TRUE(spec.err().message.starts_with(c.field)) << spec.err().message;
    }
}

TEST(decode_task, header_and_field_keys_must_agree) {
    auto body = obj(R"({"type":"t","idempotency_key":"a"})");
    EXPECT_FALSE(decode_task_spec(body, "b", ""));
    auto same = obj(R"({"type":"t","idempotency_key":"a"})");
    EXPECT_TRUE(decode_task_spec(same, "a", ""));
}

// PostgreSQL's text cannot hold U+0000: every stored string refuses it, on every store.
TEST(decode_task, strings_with_nul_are_refused_naming_the_field) {
    for (auto [text, field] : std::initializer_list<std::pair<const char*, const char*>>{
             {R"({"type":"a\u0000b"})", "type"},
             {R"({"type":"t","queue":"q\u0000"})", "queue"},
             {R"({"type":"t","idempotency_key":"\u0000"})", "idempotency_key"},
             {R"({"type":"t","required_capabilities":["gpu","\u0000x"]})",
              "required_capabilities"}}) {
        auto body = obj(text);
        auto spec = decode_task_spec(body, "", "");
        ASSERT_FALSE(spec) << text;
        EXPECT_EQ(spec.err().message, std::string(field) + ": must not contain U+0000");
    }
    auto payload = obj(R"({"type":"t","payload":{"k\u0000":"v\u0000"}})");
    EXPECT_TRUE(decode_task_spec(payload, "", ""));  // JSON is stored as JSON text: escaped
    auto plain = obj(R"({"type":"t"})");
    auto header = decode_task_spec(plain, std::string_view("k\xff", 2), "");
    ASSERT_FALSE(header);
    EXPECT_TRUE(header.err().message.starts_with("Idempotency-Key")) << header.err().message;
    auto batch = obj(R"({"tasks":[{"type":"a"},{"type":"b\u0000"}]})");
    auto specs = decode_task_batch(batch);
    ASSERT_FALSE(specs);
    EXPECT_EQ(specs.err().message, "tasks[1].type: must not contain U+0000");
}

TEST(decode_agent, strings_with_nul_are_refused_naming_the_field) {
    for (auto [text, field] : std::initializer_list<std::pair<const char*, const char*>>{
             {R"({"name":"a\u0000"})", "name"},
             {R"({"name":"a","queues":["\u0000"]})", "queues"},
             {R"({"name":"a","capabilities":["x\u0000"]})", "capabilities"},
             {R"({"name":"a","labels":{"zone":"eu\u0000"}})", "labels"},
             {R"({"name":"a","labels":{"z\u0000":"eu"}})", "labels"}}) {
        auto body = obj(text);
        auto spec = decode_agent_spec(body, false);
        ASSERT_FALSE(spec) << text;
        EXPECT_EQ(spec.err().message, std::string(field) + ": must not contain U+0000");
    }
}

TEST(decode_batch, names_the_index_of_a_bad_entry) {
    auto body = obj(R"({"tasks":[{"type":"a"},{"type":"b","priority":"x"}]})");
    auto specs = decode_task_batch(body);
    ASSERT_FALSE(specs);
    EXPECT_TRUE(specs.err().message.starts_with("tasks[1].priority")) << specs.err().message;
    auto too_many = boost::json::object{
        {"tasks", boost::json::array(1001, boost::json::object{{"type", "a"}})}};
    EXPECT_FALSE(decode_task_batch(too_many));
    auto empty = obj(R"({"tasks":[]})");
    EXPECT_FALSE(decode_task_batch(empty));
}

// JSON has no infinity: 1e400 parses as one and would go out as `Infinity`.
TEST(parse_object, refuses_numbers_out_of_range) {
    for (auto body :
         {R"({"type":"t","payload":1e400})", R"({"type":"t","payload":{"a":[-1e999]}})"}) {
        auto parsed = parse_object(body, false);
        ASSERT_FALSE(parsed) << body;
        EXPECT_EQ(parsed.err().code, store::errc::bad_request);
    }
    EXPECT_TRUE(
        parse_object(R"({"type":"t","payload":{"a":[1e300, -2.5, 12345678901234567890]}})", false));
    EXPECT_TRUE(std::holds_alternative<ws_decode_error>(
        decode_ws_message(R"({"type":"heartbeat","seq":1e400})")));
}

TEST(parse_object, refuses_non_objects_and_bad_json) {
    EXPECT_FALSE(parse_object("[1]", false));
    EXPECT_FALSE(parse_object("{", false));
    EXPECT_FALSE(parse_object("", false));
    EXPECT_TRUE(parse_object("", true));
}

TEST(task_json, is_valid_json_with_every_api_field) {
    store::task t;
    t.id = "t_1";
    t.queue = "q\"x";
    t.type = "ty";
    t.payload = boost::json::parse(R"({"k":[1,2]})");
    t.required_capabilities = {"gpu"};
    t.idempotency_key = "k";
    const auto v = boost::json::parse(task_json(t)).as_object();
    for (auto field : {"id", "queue", "type", "payload", "priority", "status", "attempts",
                       "max_attempts", "required_capabilities", "timeout_s", "idempotency_key",
                       "agent_id", "result", "error", "run_at", "created_at", "updated_at"}) {
        EXPECT_TRUE(v.contains(field)) << field;
    }
    EXPECT_EQ(v.at("queue").as_string(), "q\"x");
    EXPECT_EQ(v.at("status").as_string(), "pending");
    EXPECT_TRUE(v.at("agent_id").is_null());
}

TEST(json_string, escapes_control_characters) {
    std::string out;
    append_json_string(out, std::string_view("a\"b\\c\n\x01", 7));
    EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
}

TEST(ws_decode, recognises_every_message) {
    EXPECT_TRUE(std::holds_alternative<ws_message>(
        decode_ws_message(R"({"type":"register","name":"n","token":"t"})")));
    EXPECT_TRUE(
        std::holds_alternative<ws_message>(decode_ws_message(R"({"type":"heartbeat","seq":3})")));
    auto ready = decode_ws_message(R"({"type":"ready","slots":4})");
    ASSERT_TRUE(std::holds_alternative<ws_message>(ready));
    EXPECT_EQ(std::get<ws_in::ready_msg>(std::get<ws_message>(ready)).slots, 4u);
    auto fail =
        decode_ws_message(R"({"type":"fail","task_id":"t_1","error":"boom","retryable":false})");
    ASSERT_TRUE(std::holds_alternative<ws_message>(fail));
    EXPECT_FALSE(std::get<ws_in::fail_msg>(std::get<ws_message>(fail)).retryable);
}

TEST(ws_decode, bad_messages_are_errors_with_the_task_id) {
    for (auto text :
         {"not json", "[]", R"({"no":"type"})", R"({"type":"dance"})", R"({"type":"ready"})",
          R"({"type":"ready","slots":-1})", R"({"type":"complete"})", R"({"type":"register"})"}) {
        EXPECT_TRUE(std::holds_alternative<ws_decode_error>(decode_ws_message(text))) << text;
    }
    auto progress = decode_ws_message(R"({"type":"progress","task_id":"t_9","progress":2})");
    ASSERT_TRUE(std::holds_alternative<ws_decode_error>(progress));
    EXPECT_EQ(std::get<ws_decode_error>(progress).task_id, "t_9");
}

TEST(ws_decode, strings_with_nul_are_errors) {
    for (auto text : {R"({"type":"fail","task_id":"t_1","error":"a\u0000"})",
                      R"({"type":"progress","task_id":"t_1","progress":0.5,"message":"\u0000"})",
                      R"({"type":"complete","task_id":"t_1\u0000x"})",
                      R"({"type":"register","name":"\u0000"})"}) {
        EXPECT_TRUE(std::holds_alternative<ws_decode_error>(decode_ws_message(text))) << text;
    }
    auto fail = decode_ws_message(R"({"type":"fail","task_id":"t_1","error":"a\u0000"})");
    EXPECT_EQ(std::get<ws_decode_error>(fail).task_id, "t_1");
}

TEST(ws_encode, heartbeat_ack_echoes_seq) {
    const auto ack =
        boost::json::parse(ws_heartbeat_ack(store::time_point{}, boost::json::value(7)));
    EXPECT_EQ(ack.at("type").as_string(), "heartbeat_ack");
    EXPECT_EQ(ack.at("seq").as_int64(), 7);
    EXPECT_FALSE(boost::json::parse(ws_heartbeat_ack(store::time_point{}, std::nullopt))
                     .as_object()
                     .contains("seq"));
}

TEST(query, decodes_pairs) {
    auto q = parse_query("status=pending&queue=a%20b&x=1+2&flag&&cursor=");
    ASSERT_TRUE(q);
    ASSERT_EQ(q->size(), 5u);
    EXPECT_EQ((*q)[1].second, "a b");
    EXPECT_EQ((*q)[2].second, "1 2");
    EXPECT_EQ((*q)[3].first, "flag");
    EXPECT_FALSE(parse_query("a=%zz"));
    EXPECT_FALSE(parse_query("a=%4"));
    // Decoded text is compared with stored text: UTF-8 without U+0000, names and values.
    EXPECT_FALSE(parse_query("type=a%00b"));
    EXPECT_FALSE(parse_query("type=%ff"));
    EXPECT_FALSE(parse_query("%c3=1"));
    EXPECT_TRUE(parse_query("type=%c3%a9"));
}

}  // namespace
}  // namespace pm_agent::api
