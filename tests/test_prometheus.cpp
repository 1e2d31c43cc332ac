// The Prometheus text renderer: HELP/TYPE once per family across sources, label escaping,
// integers without exponent, and the real sources (ingest, index) rendered together.
#include "index_helpers.hpp"

#include <kvbm/hub_ingest.hpp>
#include <kvbm/index.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/prometheus.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

using kvbm::Metric;
using kvbm::MetricKind;
using kvbm::MetricLabel;
using namespace kvbm_test;

namespace {
/// A source reporting whatever series it is given.
struct FixedSource {
    struct Series {
        std::string name;
        std::string help;
        MetricKind kind;
        std::vector<MetricLabel> labels;
        double value;
    };
    std::vector<Series> series;

    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        for (const auto& s : series) {
            visit(Metric{s.name, s.help, s.kind, s.labels, s.value});
        }
    }
};
static_assert(kvbm::MetricSource<FixedSource>);

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
        ++n;
    }
    return n;
}
}  // namespace

TEST_CASE("one HELP/TYPE per family, series grouped under it across sources", "[prometheus]") {
    const FixedSource a{{{"kvbm_x_total", "Xs.", MetricKind::counter, {{"reason", "a"}}, 1},
                         {"kvbm_y", "Y now.", MetricKind::gauge, {}, 2},
                         {"kvbm_x_total", "Xs.", MetricKind::counter, {{"reason", "b"}}, 3}}};
    const FixedSource b{{{"kvbm_x_total", "Xs.", MetricKind::counter, {{"reason", "c"}}, 4}}};
    const std::string text = kvbm::prometheus::render(a, b);
    CHECK(text ==
          "# HELP kvbm_x_total Xs.\n"
          "# TYPE kvbm_x_total counter\n"
          "kvbm_x_total{reason=\"a\"} 1\n"
          "kvbm_x_total{reason=\"b\"} 3\n"
          "kvbm_x_total{reason=\"c\"} 4\n"
          "# HELP kvbm_y Y now.\n"
          "# TYPE kvbm_y gauge\n"
          "kvbm_y 2\n");
}

TEST_CASE("label values and help are escaped", "[prometheus]") {
    const FixedSource s{{{"kvbm_z",
                          "back\\slash \"quoted\"\nnext",
                          MetricKind::gauge,
                          {{"path", "C:\\dir"}, {"q", "say \"hi\""}, {"nl", "a\nb"}},
                          0}}};
    CHECK(kvbm::prometheus::render(s) ==
          "# HELP kvbm_z back\\\\slash \"quoted\"\\nnext\n"
          "# TYPE kvbm_z gauge\n"
          "kvbm_z{path=\"C:\\\\dir\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 0\n");
}

TEST_CASE("values: integers exactly, fractions round-trip, specials spelled out", "[prometheus]") {
    const auto render_one = [](double v) {
        const FixedSource s{{{"m", "h", MetricKind::gauge, {}, v}}};
        const std::string text = kvbm::prometheus::render(s);
        const auto line = text.substr(text.rfind("\nm ") + 3);
        return line.substr(0, line.size() - 1);
    };
    CHECK(render_one(0) == "0");
    CHECK(render_one(12345678901.0) == "12345678901");
    CHECK(render_one(9007199254740992.0) == "9007199254740992");  // 2^53
    CHECK(render_one(-42) == "-42");
    CHECK(render_one(0.25) == "0.25");
    CHECK(std::stod(render_one(0.1)) == 0.1);
    CHECK(render_one(1e300).find('e') != std::string::npos);  // beyond 2^53: exponent form is fine
    CHECK(render_one(std::numeric_limits<double>::quiet_NaN()) == "NaN");
    CHECK(render_one(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(render_one(-std::numeric_limits<double>::infinity()) == "-Inf");
}

TEST_CASE("the hub's sources render together", "[prometheus]") {
    kvbm::PositionalIndex<> index(4096, 16);
    kvbm::HubIngest<> ingest(index);
    (void)ingest.ingest(kvbm::kv_index_topic, kvbm::msgpack::encode(creates(3U, chain(1, 40))));
    (void)ingest.ingest(kvbm::kv_index_topic, std::vector<std::uint8_t>{0xc1});
    const std::string text = kvbm::prometheus::render(ingest, index);
    CHECK(count(text, "# TYPE kvbm_hub_frames_rejected_total counter\n") == 1);
    CHECK(count(text, "# HELP ") == count(text, "# TYPE "));
    CHECK(text.find("kvbm_hub_batches_applied_total 1\n") != std::string::npos);
    CHECK(text.find("kvbm_hub_events_applied_total 40\n") != std::string::npos);
    CHECK(text.find("kvbm_hub_frames_rejected_total{reason=\"undecodable\"} 1\n") != std::string::npos);
    CHECK(text.find("# TYPE kvbm_hub_index_entries gauge\nkvbm_hub_index_entries 40\n") != std::string::npos);
    CHECK(text.find("kvbm_hub_index_events_total{kind=\"create\",result=\"added\"} 40\n") != std::string::npos);
    CHECK(text.find("kvbm_hub_index_positions 256\n") != std::string::npos);
}
