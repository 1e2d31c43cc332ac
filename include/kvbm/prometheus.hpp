/// @file kvbm/prometheus.hpp
/// Renders metric sources (anything with `for_each_metric`, see <kvbm/metrics.hpp>) as the
/// Prometheus text exposition format 0.0.4, the body of a `/metrics` answer
/// (Content-Type: `text/plain; version=0.0.4; charset=utf-8`). No dependency.
///
///     std::string body = kvbm::prometheus::render(ingest, index, publisher);
///
/// Families are grouped: `# HELP` and `# TYPE` appear once per metric name, followed by all
/// its series, even when several sources (or several calls of one source) report series of
/// the same family; families keep the order in which they first appear. Label values are
/// escaped (`\\`, `\"`, `\n`), help text too (`\\`, `\n`); integral values print as
/// integers (no exponent), others with enough digits to round-trip, NaN and infinities as
/// Prometheus spells them.
#pragma once

#include <kvbm/config.hpp>
#include <kvbm/metrics.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

KVBM_NAMESPACE_BEGIN
namespace prometheus {

/// The Content-Type of the text format.
inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

inline void append_escaped(std::string& out, std::string_view text, bool quote) {
    for (const char c : text) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '"':
                out += quote ? "\\\"" : "\"";
                break;
            default:
                out += c;
        }
    }
}

inline void append_value(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[32];
    std::to_chars_result r{};
    // Counters are integers: print 12345678901 rather than 1.2345678901e+10 (exact up to
    // 2^53, the doubles that hold every integer).
    if (v == std::floor(v) && std::fabs(v) <= 9007199254740992.0) {
        r = std::to_chars(buf, buf + sizeof(buf), static_cast<std::int64_t>(v));
    } else {
        r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest round-trip form
    }
    out.append(buf, r.ptr);
}

/// One family being collected: its header and its series lines, in arrival order.
struct Family {
    std::string name;
    std::string header;
    std::string series;
};

class Collector {
public:
    void operator()(const Metric& m) {
        Family& f = family(m);
        std::string& s = f.series;
        s += m.name;
        if (!m.labels.empty()) {
            s += '{';
            bool first = true;
            for (const MetricLabel& l : m.labels) {
                if (!first) {
                    s += ',';
                }
                first = false;
                s += l.name;
                s += "=\"";
                append_escaped(s, l.value, true);
                s += '"';
            }
            s += '}';
        }
        s += ' ';
        append_value(s, m.value);
        s += '\n';
    }

    [[nodiscard]] std::string text() const {
        std::size_t n = 0;
        for (const Family& f : m_families) {
            n += f.header.size() + f.series.size();
        }
        std::string out;
        out.reserve(n);
        for (const Family& f : m_families) {
            out += f.header;
            out += f.series;
        }
        return out;
    }

private:
    Family& family(const Metric& m) {
        // A handful of families: a linear search beats a map, and keeps the first-seen order.
        for (Family& f : m_families) {
            if (f.name == m.name) {
                return f;
            }
        }
        Family& f = m_families.emplace_back();
        f.name = m.name;
        f.header += "# HELP ";
        f.header += m.name;
        f.header += ' ';
        append_escaped(f.header, m.help, false);
        f.header += "\n# TYPE ";
        f.header += m.name;
        f.header += m.kind == MetricKind::counter ? " counter\n" : " gauge\n";
        return f;
    }

    std::vector<Family> m_families;
};

}  // namespace detail

/// The text exposition (format 0.0.4) of every metric of `sources`, families merged across
/// sources. Throws std::bad_alloc only. Each source is read once, as its for_each_metric
/// reads it (so a source's thread-safety rules apply).
template <MetricSource... Sources>
[[nodiscard]] std::string render(const Sources&... sources) {
    detail::Collector collect;
    (sources.for_each_metric(collect), ...);
    return collect.text();
}

}  // namespace prometheus
KVBM_NAMESPACE_END
