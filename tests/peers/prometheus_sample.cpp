// Prints a /metrics body for tests/peers/prometheus_parse.py to read with the Prometheus
// project's own parser: the hub's ingest and index after known traffic, plus series whose
// label values and help need escaping.
#include "../index_helpers.hpp"

#include <kvbm/hub_ingest.hpp>
#include <kvbm/index.hpp>
#include <kvbm/msgpack.hpp>
#include <kvbm/prometheus.hpp>

#include <cstdio>
#include <exception>
#include <vector>

namespace {
struct AwkwardSource {
    template <class Visitor>
    void for_each_metric(Visitor&& visit) const {
        const kvbm::MetricLabel l1[] = {{"path", "C:\\dir\\"}, {"quote", "say \"hi\"\nbye"}};
        const kvbm::MetricLabel l2[] = {{"path", "plain"}, {"quote", ""}};
        const char* help = "Help with a \\ backslash\nand a newline.";
        visit(kvbm::Metric{"kvbm_test_awkward_total", help, kvbm::MetricKind::counter, l1, 12345678901.0});
        visit(kvbm::Metric{"kvbm_test_awkward_total", help, kvbm::MetricKind::counter, l2, 0.0});
        visit(kvbm::Metric{"kvbm_test_ratio", "A fraction.", kvbm::MetricKind::gauge, {}, 0.125});
    }
};
}  // namespace

static int run_main() {
    using namespace kvbm_test;
    kvbm::PositionalIndex<> index(4096, 16);
    kvbm::HubIngest<> ingest(index);
    (void)ingest.ingest(kvbm::kv_index_topic, kvbm::msgpack::encode(creates(3U, chain(1, 40))));
    (void)ingest.ingest(kvbm::kv_index_topic, kvbm::msgpack::encode(creates(4U, chain(1, 10))));
    (void)ingest.ingest(kvbm::kv_index_topic, std::vector<std::uint8_t>{0xc1});
    (void)ingest.ingest("other", std::vector<std::uint8_t>{0xc1});
    const std::string text = kvbm::prometheus::render(ingest, index, AwkwardSource{});
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

// Whatever escapes the program's body is reported on one line, with a non-zero exit.
int main() {
    try {
        return run_main();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "prometheus_sample: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "prometheus_sample: unknown error\n");
    }
    return 1;
}
