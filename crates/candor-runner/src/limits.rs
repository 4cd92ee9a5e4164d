//! Retry timing and rate limits: the arithmetic, kept pure so that it can be tested for every
//! input, and the small async wrapper that applies it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use candor_core::{Outcome, Request, Response};

/// When and how often to send a failed request again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Sends in all, the first included; 1 means never retry.
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A provider's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Transport failures, broken or malformed answers, rate limiting and server errors may
    /// succeed when sent again. Moderation outcomes and other client errors never.
    pub fn retryable(&self, response: &Response) -> bool {
        if response.outcome != Outcome::Error {
            return false;
        }
        match response.http_status {
            None => true,
            Some(s) => matches!(s, 408 | 409 | 425 | 429 | 500..=599) || (200..300).contains(&s),
        }
    }

    /// The wait before retry number `failures` (1 for the first retry). A provider's
    /// `Retry-After` wins, capped; else exponential backoff with "equal jitter": half the
    /// backoff fixed, half scaled by `jitter` in [0, 1), so that clients that failed together
    /// do not retry together.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_retry_after);
        }
        let doublings = failures.saturating_sub(1).min(30);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let half = backoff / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Requests and tokens per minute allowed to one target; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

impl RateLimits {
    pub(crate) fn limiter(&self) -> Limiter {
        Limiter {
            requests: self.rpm.map(|r| Mutex::new(Bucket::per_minute(r))),
            tokens: self.tpm.map(|t| Mutex::new(Bucket::per_minute(t))),
        }
    }
}

/// A token bucket that hands out reservations: a taker may overdraw, and waits until the
/// overdraft is refilled. Takers are served in the order they ask, and nobody spins.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// A bucket refilled at `per_minute`, holding at most one second's worth (at least one
    /// unit), so that a limit is never spent in one burst.
    pub fn per_minute(per_minute: u32) -> Bucket {
        let per_sec = f64::from(per_minute.max(1)) / 60.0;
        let capacity = per_sec.max(1.0);
        Bucket {
            per_sec,
            capacity,
            tokens: capacity,
            last: None,
        }
    }

    /// Takes `cost` at `now`; returns how long the taker must wait before using it.
    pub fn take(&mut self, cost: f64, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        }
        self.last = Some(now);
        // One request may cost more than the bucket holds; it then waits for the rest.
        self.tokens -= cost.max(0.0);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_sec)
        }
    }
}

pub(crate) struct Limiter {
    requests: Option<Mutex<Bucket>>,
    tokens: Option<Mutex<Bucket>>,
}

impl Limiter {
    pub async fn acquire(&self, tokens: f64) {
        // tokio's clock, so that tests with paused time see the refill.
        let now = tokio::time::Instant::now().into_std();
        let mut wait = Duration::ZERO;
        if let Some(b) = &self.requests {
            wait = wait.max(b.lock().unwrap().take(1.0, now));
        }
        if let Some(b) = &self.tokens {
            wait = wait.max(b.lock().unwrap().take(tokens, now));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A rough token count for a rate limit that must hold before the answer is known: about four
/// Latin characters or one CJK character a token for the prompt, plus the answer's limit (or
/// 512 where none is set).
pub fn estimate_tokens(request: &Request) -> f64 {
    let text = request
        .system
        .iter()
        .map(String::as_str)
        .chain([request.prompt.as_str()]);
    let prompt: f64 = text
        .flat_map(str::chars)
        .map(|c| if c.is_ascii() { 0.25 } else { 1.0 })
        .sum();
    prompt.ceil() + f64::from(request.params.max_tokens.unwrap_or(512))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn failed(status: Option<u16>, outcome: Outcome) -> Response {
        let mut r = Response::failed(outcome, "x", 0.0);
        r.http_status = status;
        r
    }

    #[test]
    fn only_what_may_succeed_again_is_retried() {
        let p = RetryPolicy::default();
        for s in [
            None,
            Some(429),
            Some(500),
            Some(503),
            Some(529),
            Some(408),
            Some(200),
        ] {
            assert!(p.retryable(&failed(s, Outcome::Error)), "{s:?}");
        }
        for s in [Some(400), Some(401), Some(403), Some(404), Some(422)] {
            assert!(!p.retryable(&failed(s, Outcome::Error)), "{s:?}");
        }
        for o in [
            Outcome::FilteredInput,
            Outcome::FilteredOutput,
            Outcome::Retracted,
            Outcome::Ok,
            Outcome::Truncated,
        ] {
            assert!(!p.retryable(&failed(Some(400), o)));
            assert!(!p.retryable(&failed(None, o)));
        }
    }

    #[test]
    fn estimates_count_cjk_as_one_token_a_character() {
        let mut r = Request {
            probe_id: "p".into(),
            lang: "zh-Hans".into(),
            sample: 0,
            system: None,
            prompt: "天安门abcd".into(),
            params: Default::default(),
        };
        r.params.max_tokens = Some(100);
        assert_eq!(estimate_tokens(&r), 104.0);
    }

    proptest! {
        #[test]
        fn backoff_stays_within_its_bounds(failures in 1u32..200, jitter in 0.0f64..1.0, base_ms in 1u64..5_000, max_ms in 1u64..120_000) {
            let p = RetryPolicy { base_delay: Duration::from_millis(base_ms), max_delay: Duration::from_millis(max_ms), ..RetryPolicy::default() };
            let d = p.delay(failures, None, jitter);
            let full = Duration::from_millis(base_ms).saturating_mul(1 << (failures - 1).min(30)).min(Duration::from_millis(max_ms));
            prop_assert!(d >= full / 2 && d <= full, "{d:?} not within {full:?}");
            // More failures never shorten the longest wait.
            let next_full = Duration::from_millis(base_ms).saturating_mul(1 << failures.min(30)).min(Duration::from_millis(max_ms));
            prop_assert!(next_full >= full);
        }

        #[test]
        fn retry_after_is_honoured_up_to_the_cap(secs in 0u64..1_000, failures in 1u32..10, jitter in 0.0f64..1.0) {
            let p = RetryPolicy::default();
            let d = p.delay(failures, Some(Duration::from_secs(secs)), jitter);
            prop_assert_eq!(d, Duration::from_secs(secs).min(p.max_retry_after));
        }

        /// Whatever the arrival times, the sends a bucket lets through in any window stay
        /// within its capacity plus the window's refill.
        #[test]
        fn a_bucket_never_lets_more_through_than_its_rate(per_minute in 1u32..10_000, gaps_ms in proptest::collection::vec(0u64..3_000, 1..200), cost in 0.5f64..50.0) {
            let mut bucket = Bucket::per_minute(per_minute);
            let start = Instant::now();
            let mut now = start;
            let mut sends: Vec<f64> = Vec::new();
            let mut free_at = start;
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                let wait = bucket.take(cost, now);
                // Reservations are served in order: a send never happens before the last one.
                let at = (now + wait).max(free_at);
                free_at = at;
                sends.push(at.duration_since(start).as_secs_f64());
            }
            let per_sec = f64::from(per_minute) / 60.0;
            let capacity = per_sec.max(1.0);
            for (i, &t0) in sends.iter().enumerate() {
                for (j, &t1) in sends.iter().enumerate().skip(i) {
                    let sent = (j - i + 1) as f64 * cost;
                    let allowed = capacity + (t1 - t0) * per_sec + cost;
                    prop_assert!(sent <= allowed + 1e-6, "{} sent in {}s, allowed {}", sent, t1 - t0, allowed);
                }
            }
        }
    }
}
