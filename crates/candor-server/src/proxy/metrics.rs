//! The proxy's counters in the Prometheus text format. Label values come from closed sets
//! (verdict labels, language tags, the catalogue's topics), so the series stay few.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    histograms: Mutex<BTreeMap<&'static str, Histogram>>,
    pub queue_depth: AtomicI64,
}

const HELP: [(&str, &str, &str); 7] = [
    (
        "candor_proxy_answers_total",
        "counter",
        "Judged answers by compliance, stance, language and topic.",
    ),
    (
        "candor_proxy_exchanges_total",
        "counter",
        "Exchanges passed through, by API and outcome.",
    ),
    (
        "candor_proxy_policy_actions_total",
        "counter",
        "Policy actions taken.",
    ),
    (
        "candor_proxy_record_dropped_total",
        "counter",
        "Exchanges not recorded, by reason (queue_full, store_error, sampled_out is not a drop).",
    ),
    (
        "candor_proxy_recorded_total",
        "counter",
        "Exchanges written to the store.",
    ),
    (
        "candor_proxy_upstream_latency_seconds",
        "histogram",
        "Time from forwarding a request to the upstream's last byte.",
    ),
    (
        "candor_proxy_overhead_seconds",
        "histogram",
        "Time the proxy added to an exchange: reading, judging, deciding, rewriting.",
    ),
];

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// `{a="x",b="y"}` from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    pub fn count(&self, name: &'static str, labels: String, by: u64) {
        let mut counters = self.counters.lock().expect("metrics lock");
        *counters.entry((name, labels)).or_default() += by;
    }

    pub fn observe(&self, name: &'static str, seconds: f64) {
        let mut histograms = self.histograms.lock().expect("metrics lock");
        let h = histograms.entry(name).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// A counter's value, for tests and the log.
    pub fn value(&self, name: &str, labels: &str) -> u64 {
        let counters = self.counters.lock().expect("metrics lock");
        counters
            .iter()
            .filter(|((n, l), _)| *n == name && l == labels)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let counters = self.counters.lock().expect("metrics lock");
        let histograms = self.histograms.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((series, labels), value) in counters.range((name, String::new())..) {
                if *series != name {
                    break;
                }
                let _ = writeln!(out, "{name}{labels} {value}");
            }
            if let Some(h) = histograms.get(name) {
                for (bound, count) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
                }
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum {}", h.sum);
                let _ = writeln!(out, "{name}_count {}", h.count);
            }
        }
        let _ = writeln!(
            out,
            "# HELP candor_proxy_queue_depth Exchanges waiting to be recorded.\n# TYPE candor_proxy_queue_depth gauge\ncandor_proxy_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_text_format_with_escaped_labels() {
        let m = Metrics::default();
        m.count(
            "candor_proxy_answers_total",
            labels(&[("compliance", "refused"), ("topic", "a\"b\\c\nd")]),
            2,
        );
        m.count("candor_proxy_recorded_total", String::new(), 1);
        m.observe("candor_proxy_overhead_seconds", 0.0007);
        let text = m.render();
        assert!(
            text.contains(
                "candor_proxy_answers_total{compliance=\"refused\",topic=\"a\\\"b\\\\c\\nd\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("candor_proxy_recorded_total 1\n"));
        assert!(text.contains("candor_proxy_overhead_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("candor_proxy_overhead_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("candor_proxy_overhead_seconds_count 1\n"));
        assert!(text.contains("# TYPE candor_proxy_queue_depth gauge\ncandor_proxy_queue_depth 0"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
