// kvbm-bench [quick] [GROUP...]: runs every registered group (or those whose name starts
// with one of the GROUP words) and prints `name value unit` lines.
#include "bench.hpp"

#include <cstring>

int main(int argc, char** argv) {
    kvbm_bench::settings s;
    std::vector<std::string> filters;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "quick") == 0) {
            s.quick = true;
            s.runs = 3;
        } else {
            filters.emplace_back(argv[i]);
        }
    }
    for (const auto& [name, fn] : kvbm_bench::registry::all()) {
        const bool selected = filters.empty() || std::any_of(filters.begin(), filters.end(), [&](const std::string& f) {
                                  return name.compare(0, f.size(), f) == 0;
                              });
        if (selected) {
            fn(s);
        }
    }
    return 0;
}
