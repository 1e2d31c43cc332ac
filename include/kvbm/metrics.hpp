/// @file kvbm/metrics.hpp
/// One shape for every counter kvbm keeps. A component that counts exposes
///
///     template <class Visitor> void for_each_metric(Visitor&& visit) const;
///
/// calling `visit(const kvbm::Metric&)` once per series. Exporters (Prometheus text in
/// `<kvbm/prometheus.hpp>`, a log line, a test) only ever see `Metric`.
#pragma once

#include <kvbm/config.hpp>

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

KVBM_NAMESPACE_BEGIN

/// Prometheus' two kinds that kvbm uses: a counter only grows (name ends in `_total`), a
/// gauge goes up and down.
enum class MetricKind : std::uint8_t { counter, gauge };

/// One label of a series, e.g. `{"reason", "undecodable"}`.
struct MetricLabel {
    std::string_view name;
    std::string_view value;
};

/// One series: its family name (`kvbm_<component>_<what>[_total]`), help text, kind, labels
/// and current value. The views are valid only during the visitor's call.
struct Metric {
    std::string_view name;
    std::string_view help;
    MetricKind kind = MetricKind::counter;
    std::span<const MetricLabel> labels = {};
    double value = 0;
};

/// Anything that can be visited for its metrics.
template <class T>
concept MetricSource = requires(const T& t) {
    t.for_each_metric([](const Metric&) {});
};

namespace detail {
/// Visits one unlabelled series; a helper for `for_each_metric` implementations.
template <class Visitor>
void visit_metric(Visitor& visit, std::string_view name, std::string_view help, MetricKind kind, double value) {
    visit(Metric{name, help, kind, {}, value});
}

/// Visits one series with labels.
template <class Visitor>
void visit_metric(Visitor& visit, std::string_view name, std::string_view help, MetricKind kind,
                  std::initializer_list<MetricLabel> labels, double value) {
    visit(Metric{name, help, kind, std::span<const MetricLabel>(labels.begin(), labels.size()), value});
}
}  // namespace detail

KVBM_NAMESPACE_END
