#include <fmt/format.h>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <algorithm>

#include "config/schema.hpp"
#include "config/value_codecs.hpp"
#include "pm_agent/config/load.hpp"

namespace pm_agent::config {
namespace {

constexpr std::string_view k_mask = "***";

bool is_scalar(const boost::json::value& v) {
    return !v.is_object() && !v.is_array();
}

void write_scalar(const boost::json::value& v, std::string& out) {
    if (v.is_double()) {
        // Shortest text that reads back the same ("1000", "0.5"); Boost.JSON would write "1E3".
        out += fmt::format("{}", v.get_double());
        return;
    }
    out += boost::json::serialize(v);
}

// Boost.JSON 1.81 only writes compact JSON; check-config output is read by people.
void write_pretty(const boost::json::value& v, int indent, std::string& out) {
    const std::string inner(static_cast<std::size_t>(indent + 2), ' ');
    if (v.is_object()) {
        const auto& object = v.get_object();
        if (object.empty()) {
            out += "{}";
            return;
        }
        out += "{\n";
        bool first = true;
        for (const auto& [key, member] : object) {
            out += first ? "" : ",\n";
            first = false;
            out += inner + boost::json::serialize(boost::json::string(key)) + ": ";
            write_pretty(member, indent + 2, out);
        }
        out += "\n" + std::string(static_cast<std::size_t>(indent), ' ') + "}";
        return;
    }
    if (v.is_array()) {
        const auto& array = v.get_array();
        // Lists of scalars (tokens, CIDRs) stay on one line.
        const bool flat = std::all_of(array.begin(), array.end(), is_scalar);
        out += "[";
        bool first = true;
        for (const auto& element : array) {
            out += first ? "" : ",";
            out += flat ? (first ? "" : " ") : "\n" + inner;
            first = false;
            write_pretty(element, indent + 2, out);
        }
        if (!flat && !array.empty()) {
            out += "\n" + std::string(static_cast<std::size_t>(indent), ' ');
        }
        out += "]";
        return;
    }
    write_scalar(v, out);
}

boost::json::value masked(const detail::field& f, boost::json::value v) {
    switch (f.secret) {
        case detail::secret_kind::none:
            return v;
        case detail::secret_kind::tokens: {
            boost::json::array stars;
            for (std::size_t i = 0; i < v.get_array().size(); ++i) {
                stars.emplace_back(boost::json::string(k_mask));
            }
            return stars;
        }
        case detail::secret_kind::url:
            if (v.is_string()) {
                return boost::json::string(mask_url(v.get_string()));
            }
            return v;
    }
    return v;
}

// "?sslmode=require&password=x" -> "?sslmode=require&password=***" (libpq accepts both forms).
std::string mask_query(std::string_view query) {
    std::string out;
    while (true) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        const auto equals = param.find('=');
        if (equals != std::string_view::npos &&
            detail::iequals(param.substr(0, equals), "password")) {
            out += std::string(param.substr(0, equals + 1)) + std::string(k_mask);
        } else {
            out += param;
        }
        if (amp == std::string_view::npos) {
            return out;
        }
        out += '&';
        query.remove_prefix(amp + 1);
    }
}

}  // namespace

std::string mask_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        // Not a URL (perhaps a "key=value" conninfo): no way to tell where a password is.
        return std::string(k_mask);
    }
    const auto authority_begin = scheme_end + 3;
    const auto authority_end = std::min(url.find_first_of("/?#", authority_begin), url.size());
    const auto authority = url.substr(authority_begin, authority_end - authority_begin);
    std::string out(url.substr(0, authority_begin));
    // The last '@' ends the userinfo: a password may itself contain an unescaped '@'.
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        const auto userinfo = authority.substr(0, at);
        const auto colon = userinfo.find(':');
        if (colon != std::string_view::npos && colon + 1 < userinfo.size()) {
            out += std::string(userinfo.substr(0, colon + 1)) + std::string(k_mask);
        } else {
            out += userinfo;
        }
        out += authority.substr(at);
    } else {
        out += authority;
    }
    const auto rest = url.substr(authority_end);
    const auto question = rest.find('?');
    if (question == std::string_view::npos) {
        return out + std::string(rest);
    }
    const auto fragment = std::min(rest.find('#', question), rest.size());
    out += rest.substr(0, question + 1);
    out += mask_query(rest.substr(question + 1, fragment - question - 1));
    out += rest.substr(fragment);
    return out;
}

std::string render_masked(const config& effective) {
    boost::json::object root;
    for (const auto section : detail::section_names()) {
        root[section] = boost::json::object();
    }
    for (const auto& f : detail::make_fields()) {
        root[f.section()].as_object()[f.name()] = masked(f, f.to_json(effective));
    }
    std::string out;
    write_pretty(root, 0, out);
    return out + "\n";
}

}  // namespace pm_agent::config
