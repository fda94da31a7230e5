#include "pm_agent/store/result.hpp"

namespace pm_agent::store {

std::string_view to_string(errc code) {
    switch (code) {
        case errc::bad_request:
            return "bad_request";
        case errc::unauthorized:
            return "unauthorized";
        case errc::forbidden:
            return "forbidden";
        case errc::not_found:
            return "not_found";
        case errc::conflict:
            return "conflict";
        case errc::queue_full:
            return "queue_full";
        case errc::rate_limited:
            return "rate_limited";
        case errc::unavailable:
            return "unavailable";
        case errc::internal:
            return "internal";
    }
    return "internal";
}

}  // namespace pm_agent::store
