//! Health and Prometheus-style metrics, for operators.
//!
//! Served at [`HEALTH_PATH`] and [`METRICS_PATH`]: under `/.well-known/`
//! (RFC 8615), which no API path can be (those end in `git-annex/...`)
//! and no repository served under a prefix is named.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Answers 200 `ok` while the server accepts requests.
pub const HEALTH_PATH: &str = "/.well-known/annexproxy/health";
/// The counters below in Prometheus' text format.
pub const METRICS_PATH: &str = "/.well-known/annexproxy/metrics";

/// Counters shared by every request.
#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by op and status.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Content bytes received in puts.
    pub bytes_in: AtomicU64,
    /// Content bytes sent by gets.
    pub bytes_out: AtomicU64,
    /// Puts and gets whose body is streaming.
    pub active_transfers: AtomicI64,
    /// Requests to a proxied node or cluster that failed on the server's
    /// side (5xx).
    pub node_failures: AtomicU64,
}

impl Metrics {
    pub fn count(&self, op: &'static str, status: u16) {
        let mut r = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *r.entry((op, status)).or_default() += 1;
    }

    /// A transfer's body starts streaming; it ends when the guard drops.
    pub fn transfer(self: &std::sync::Arc<Self>) -> Transfer {
        self.active_transfers.fetch_add(1, Ordering::Relaxed);
        Transfer(std::sync::Arc::clone(self))
    }

    /// The text a Prometheus scrape reads; `pooled` is the sessions kept
    /// open between requests right now.
    pub fn render(&self, pooled: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP annexproxy_http_requests_total Requests answered, by op and status.\n",
        );
        out.push_str("# TYPE annexproxy_http_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for ((op, status), n) in requests {
            let _ = writeln!(
                out,
                "annexproxy_http_requests_total{{op=\"{op}\",status=\"{status}\"}} {n}"
            );
        }
        let mut one = |name: &str, kind: &str, help: &str, v: i128| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let get = |a: &AtomicU64| i128::from(a.load(Ordering::Relaxed));
        one(
            "annexproxy_http_received_bytes_total",
            "counter",
            "Content bytes received by puts.",
            get(&self.bytes_in),
        );
        one(
            "annexproxy_http_sent_bytes_total",
            "counter",
            "Content bytes sent by gets.",
            get(&self.bytes_out),
        );
        one(
            "annexproxy_http_active_transfers",
            "gauge",
            "Puts and gets whose body is streaming.",
            i128::from(self.active_transfers.load(Ordering::Relaxed)),
        );
        one(
            "annexproxy_http_node_failures_total",
            "counter",
            "Requests to a proxied node or cluster that failed on the server side.",
            get(&self.node_failures),
        );
        one(
            "annexproxy_http_pooled_sessions",
            "gauge",
            "Sessions kept open between requests.",
            i128::try_from(pooled).unwrap_or(i128::MAX),
        );
        out
    }
}

/// One streaming transfer, counted while it lives.
pub struct Transfer(std::sync::Arc<Metrics>);

impl Drop for Transfer {
    fn drop(&mut self) {
        self.0.active_transfers.fetch_sub(1, Ordering::Relaxed);
    }
}
