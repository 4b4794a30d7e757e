//! Which failures of a request are worth another try, and how long to
//! wait before it: S3 asks clients to retry 5xx answers (500
//! InternalError, 503 SlowDown, …) with a growing back-off, and a
//! connection that breaks before any answer (reset, refused while a
//! server restarts) says nothing about the request. Every request here
//! can be sent again as it is (its body is in memory, its URL signed for
//! longer than the retries take), so each is retried a bounded number of
//! times before its failure reaches the caller.

use std::time::Duration;

use reqwest::StatusCode;

/// Tries of one request, the first included: with the delays below, a
/// request gives up after about 1.5 s of waiting at most.
pub(crate) const ATTEMPTS: u32 = 5;

/// The wait after the first failure; it doubles after each.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// No single wait is longer.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// An answer that a later try of the same request may not get: S3's
/// 5xx (the server's trouble, not the request's; 501 Not Implemented
/// aside, which will not change) and 429 (throttled).
pub(crate) fn transient_status(status: StatusCode) -> bool {
    (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The error codes S3 puts in a 200 answer's body (CompleteMultipartUpload
/// answers 200 before it is done) for the same trouble.
pub(crate) fn transient_code(code: &str) -> bool {
    matches!(code, "InternalError" | "SlowDown" | "ServiceUnavailable")
}

/// A request that failed before any answer came: no connection, or one
/// closed or reset on the way. Not a timeout: the server was there and
/// slow, and another try would wait as long again.
pub(crate) fn transient_transport(e: &reqwest::Error) -> bool {
    !e.is_timeout() && (e.is_connect() || e.is_request())
}

/// The wait before try `attempt + 1` (`attempt` ≥ 1): exponential, capped,
/// with jitter (between half and all of it) so clients that failed
/// together do not come back together.
pub(crate) fn delay(attempt: u32) -> Duration {
    let full = FIRST_DELAY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_DELAY);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    full.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_trouble_is_retried_a_refusal_is_not() {
        for s in [500, 502, 503, 504, 429] {
            assert!(transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 403, 404, 409, 416, 501] {
            assert!(!transient_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        assert!(transient_code("SlowDown") && !transient_code("NoSuchUpload"));
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let total: Duration = (1..ATTEMPTS).map(delay).sum();
        assert!(total <= Duration::from_millis(1500), "{total:?}");
        assert!(delay(1) >= Duration::from_millis(50));
        assert!(delay(30) <= MAX_DELAY);
    }
}
