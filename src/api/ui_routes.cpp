// GET /ui: the built-in dashboard (DESIGN.md §9). Its files live in src/ui and are compiled in
// as string literals (CMakeLists.txt generates ui_files.cpp), so the binary needs nothing
// beside it. The page reads the admin JSON API with the token the operator enters; the
// Content-Security-Policy lets it load and call nothing but this server.

#include "api/service_state.hpp"

namespace pm_agent::api {

namespace ui_files {
extern const std::string_view index_html;
extern const std::string_view app_js;
extern const std::string_view app_css;
}  // namespace ui_files

http_response ui_file(std::string_view name) {
    std::string_view body;
    std::string_view type;
    if (name.empty() || name == "index.html") {
        body = ui_files::index_html;
        type = "text/html; charset=utf-8";
    } else if (name == "app.js") {
        body = ui_files::app_js;
        type = "text/javascript; charset=utf-8";
    } else if (name == "app.css") {
        body = ui_files::app_css;
        type = "text/css; charset=utf-8";
    } else {
        return error_response(404, "not_found", "no such dashboard file");
    }
    http_response response;
    response.body = std::string(body);
    response.content_type = std::string(type);
    response.headers.emplace_back("Content-Security-Policy",
                                  "default-src 'self'; base-uri 'none'; form-action 'self'; "
                                  "frame-ancestors 'none'");
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    response.headers.emplace_back("Cache-Control", "no-cache");
    return response;
}

}  // namespace pm_agent::api
