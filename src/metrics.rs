//! Counters kept in memory for `/metrics`; queue depth and build outcomes are
//! read from the database when scraped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::model::BuildStatus;

/// Upper bounds (seconds) of the step-duration histogram buckets.
const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The daemon's own metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    busy_workers: AtomicUsize,
    steps: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// A worker started a build.
    pub fn worker_busy(&self) {
        self.busy_workers.fetch_add(1, Ordering::Relaxed);
    }

    /// A worker finished a build.
    pub fn worker_idle(&self) {
        self.busy_workers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records how long a step took.
    pub fn observe_step(&self, step: &str, seconds: f64) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let h = steps.entry(step.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Prometheus text exposition.
    pub fn render(&self, workers: usize, queue_depth: i64, builds: &[(BuildStatus, i64)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP wheelwright_queue_depth Jobs waiting for a worker.\n# TYPE wheelwright_queue_depth gauge\n",
        );
        out.push_str(&format!("wheelwright_queue_depth {queue_depth}\n"));
        out.push_str("# HELP wheelwright_builds Builds by status.\n# TYPE wheelwright_builds gauge\n");
        for status in BuildStatus::ALL {
            let n = builds.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            out.push_str(&format!("wheelwright_builds{{status=\"{status}\"}} {n}\n"));
        }
        let busy = self.busy_workers.load(Ordering::Relaxed);
        out.push_str("# HELP wheelwright_workers Worker tasks.\n# TYPE wheelwright_workers gauge\n");
        out.push_str(&format!("wheelwright_workers {workers}\n"));
        out.push_str(
            "# HELP wheelwright_workers_busy Workers running a build.\n# TYPE wheelwright_workers_busy gauge\n",
        );
        out.push_str(&format!("wheelwright_workers_busy {busy}\n"));
        out.push_str("# HELP wheelwright_worker_utilization Busy workers over all workers.\n");
        out.push_str("# TYPE wheelwright_worker_utilization gauge\n");
        out.push_str(&format!("wheelwright_worker_utilization {}\n", busy as f64 / workers.max(1) as f64));
        out.push_str("# HELP wheelwright_step_duration_seconds Build step durations.\n");
        out.push_str("# TYPE wheelwright_step_duration_seconds histogram\n");
        let steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        for (step, h) in steps.iter() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "wheelwright_step_duration_seconds_bucket{{step=\"{step}\",le=\"{bound}\"}} {}\n",
                    h.counts[i]
                ));
            }
            out.push_str(&format!(
                "wheelwright_step_duration_seconds_bucket{{step=\"{step}\",le=\"+Inf\"}} {}\n",
                h.count
            ));
            out.push_str(&format!("wheelwright_step_duration_seconds_sum{{step=\"{step}\"}} {}\n", h.sum));
            out.push_str(&format!("wheelwright_step_duration_seconds_count{{step=\"{step}\"}} {}\n", h.count));
        }
        out
    }
}
