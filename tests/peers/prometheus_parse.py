#!/usr/bin/python3
"""Reads kvbm's Prometheus text with the Prometheus project's parser (Debian's
python3-prometheus-client) and checks families, types, labels and values.

usage: prometheus_parse.py PROMETHEUS_SAMPLE
"""
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    text = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    families = {}
    for family in text_string_to_metric_families(text):
        check(family.name not in families, f"family {family.name} appears twice")
        families[family.name] = family
    samples = {}
    for family in families.values():
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            check(key not in samples, f"series {key} appears twice")
            samples[key] = s.value

    def value(name, **labels):
        return samples[(name, tuple(sorted(labels.items())))]

    # The client strips "_total" from a counter family's name; its samples keep it.
    check(families["kvbm_hub_frames_rejected"].type == "counter", "rejected is a counter")
    check(families["kvbm_hub_index_entries"].type == "gauge", "entries is a gauge")
    check(value("kvbm_hub_messages_total") == 4, "messages")
    check(value("kvbm_hub_batches_applied_total") == 2, "batches applied")
    check(value("kvbm_hub_events_applied_total") == 50, "events applied")
    check(value("kvbm_hub_frames_rejected_total", reason="undecodable") == 1, "undecodable")
    check(value("kvbm_hub_frames_rejected_total", reason="unknown_topic") == 1, "unknown topic")
    reasons = {dict(k[1])["reason"] for k in samples if k[0] == "kvbm_hub_frames_rejected_total"}
    check(reasons == {"untopiced", "unknown_topic", "empty", "oversized", "malformed", "undecodable",
                      "unauthorized", "apply_failed"}, f"reasons {reasons}")
    check(value("kvbm_hub_index_entries") == 40, "entries (chain 1 shared by both instances)")
    check(value("kvbm_hub_index_holdings") == 50, "holdings")
    check(value("kvbm_hub_index_instances") == 2, "instances")
    check(value("kvbm_hub_index_events_total", kind="create", result="added") == 50, "creates added")
    check(value("kvbm_test_awkward_total", path="C:\\dir\\", quote='say "hi"\nbye') == 12345678901,
          "escaped labels round-trip, integer without exponent")
    check(value("kvbm_test_awkward_total", path="plain", quote="") == 0, "empty label value")
    check(families["kvbm_test_awkward"].documentation == "Help with a \\ backslash\nand a newline.", "help")
    check(value("kvbm_test_ratio") == 0.125, "fraction")
    check("e+" not in text, "no exponent in integer values")
    print(f"ok: {len(families)} families, {len(samples)} series parsed by prometheus_client")


if __name__ == "__main__":
    main()
