//! What stands in front of the API's handlers: a cap on requests served at once, and a
//! per-client limit on failed authentications.
//!
//! Requests over the concurrency cap are answered 503 at once rather than queued, so a
//! burst cannot pile up unbounded work (each request may hold a blocking store thread).
//! A client address that fails authentication `max_failures` times within `window` gets
//! 429, with `Retry-After`, for everything it asks until that window ends, even with a
//! right token: guessing tokens then costs a window per `max_failures` guesses. Windows
//! are kept for at most [`MAX_CLIENTS`] addresses; ended windows go first, then the oldest.
//!
//! Browsers are kept out of it: a hostile page can make a browser send requests to the
//! API (with basic credentials it cached for `/taxii2/`), but a browser always names the
//! page's origin in `Origin` on such requests, and a form can only send a few media types.
//! So a request whose `Origin` is not the API's own is refused 403 ([`foreign_origin`]),
//! and every write must say it carries what its route reads ([`refused_media_type`]),
//! 415 otherwise. Tools that are not browsers (curl, the CLI, TAXII clients) send no
//! `Origin` and are not affected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use tokio::time::Instant;

/// Most client addresses with a failure window at once.
pub(crate) const MAX_CLIENTS: usize = 4_096;

/// The API's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests served at once; beyond it, 503.
    pub max_concurrent_requests: usize,
    /// Wrong tokens one client address may present within `auth_failure_window` before
    /// it gets 429 until the window ends. Requests with no credentials are not counted.
    pub max_auth_failures: u32,
    /// The window failed authentications are counted in.
    pub auth_failure_window: Duration,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            // The API serves the organisation's own tools: a few at once.
            max_concurrent_requests: 64,
            // A mistyped token a few times passes; a guessing loop stops at once.
            max_auth_failures: 10,
            auth_failure_window: Duration::from_secs(60),
        }
    }
}

/// Failed authentications of one client in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The per-client failure windows and the API's counters.
#[derive(Debug)]
pub(crate) struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, Window>>,
    missing: AtomicU64,
    wrong: AtomicU64,
    throttled: AtomicU64,
    overloaded: AtomicU64,
    foreign_origin: AtomicU64,
    media_type: AtomicU64,
    read_only: AtomicU64,
}

/// The API's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ApiCounters {
    /// Requests without credentials.
    pub(crate) auth_missing: u64,
    /// Requests with a wrong token.
    pub(crate) auth_wrong: u64,
    /// Requests refused 429 because their client failed too often.
    pub(crate) auth_throttled: u64,
    /// Requests refused 503 because too many were being served.
    pub(crate) overloaded: u64,
    /// Requests refused 403 because they came from another origin's page.
    pub(crate) foreign_origin: u64,
    /// Writes refused 415 because of their media type.
    pub(crate) media_type: u64,
    /// Writes refused 403 because their token may read only.
    pub(crate) read_only_refused: u64,
}

/// Why an authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No credentials at all.
    Missing,
    /// A token no configured one matches.
    Wrong,
}

impl AuthLimiter {
    pub(crate) fn new(limits: &ApiLimits) -> AuthLimiter {
        AuthLimiter {
            max_failures: limits.max_auth_failures.max(1),
            window: limits.auth_failure_window,
            clients: Mutex::new(HashMap::new()),
            missing: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            foreign_origin: AtomicU64::new(0),
            media_type: AtomicU64::new(0),
            read_only: AtomicU64::new(0),
        }
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        // The map holds counts only: whatever a panicking holder left is still usable.
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(wait)` if `client` has failed too often and must wait `wait` (counted);
    /// `Ok` if it may try.
    pub(crate) fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut clients = self.clients();
        let Some(window) = clients.get(&client).copied() else {
            return Ok(());
        };
        let ends = window.started + self.window;
        if now >= ends {
            clients.remove(&client);
            return Ok(());
        }
        if window.failures >= self.max_failures {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(ends - now);
        }
        Ok(())
    }

    /// Records a failed authentication by `client`. Only a wrong token counts towards
    /// its limit: a request with no credentials guesses nothing, and any web page can make
    /// a browser send such requests to 127.0.0.1 (an image, a form), so counting them
    /// would let the page lock the organisation's own tools out.
    pub(crate) fn failed(&self, client: IpAddr, failure: Failure, now: Instant) {
        match failure {
            Failure::Missing => {
                self.missing.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Failure::Wrong => self.wrong.fetch_add(1, Ordering::Relaxed),
        };
        let mut clients = self.clients();
        if !clients.contains_key(&client) && clients.len() >= MAX_CLIENTS {
            let period = self.window;
            clients.retain(|_, window| now < window.started + period);
            if clients.len() >= MAX_CLIENTS
                && let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, window)| window.started)
                    .map(|(ip, _)| *ip)
            {
                clients.remove(&oldest);
            }
        }
        let window = clients.entry(client).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= window.started + self.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Counts a request refused because too many were being served.
    pub(crate) fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused for its `Origin`.
    pub(crate) fn foreign_origin(&self) {
        self.foreign_origin.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write refused for its media type.
    pub(crate) fn refused_media_type(&self) {
        self.media_type.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a write refused because its token may read only.
    pub(crate) fn refused_read_only(&self) {
        self.read_only.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn counters(&self) -> ApiCounters {
        ApiCounters {
            auth_missing: self.missing.load(Ordering::Relaxed),
            auth_wrong: self.wrong.load(Ordering::Relaxed),
            auth_throttled: self.throttled.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
            foreign_origin: self.foreign_origin.load(Ordering::Relaxed),
            media_type: self.media_type.load(Ordering::Relaxed),
            read_only_refused: self.read_only.load(Ordering::Relaxed),
        }
    }

    /// Client addresses with a window now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.clients().len()
    }
}

/// The `Origin` of a request from another site's page, if it is one: an `Origin` header
/// that is not `http://` or `https://` followed by the request's own `Host`. `null` (a
/// sandboxed or local page) is foreign too. Requests without `Origin` are not browsers'
/// cross-site requests: modern browsers send it on every cross-origin request and every
/// POST, PUT and DELETE.
pub(crate) fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some(String::from_utf8_lossy(origin.as_bytes()).into_owned());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    let own = !host.is_empty()
        && ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
    (!own).then(|| origin.to_owned())
}

/// The media types a write to `path` may carry, or `None` when `path` takes no body this
/// check knows of (TAXII negotiates its own).
fn accepted_media_types(path: &str) -> Option<&'static [&'static str]> {
    match path.strip_prefix("/api/v1/import/") {
        Some("stix") => Some(&["application/stix+json", "application/json"]),
        Some("misp") => Some(&["application/json"]),
        Some("csv") => Some(&["text/csv"]),
        // Any other spelling, percent-encoded (`%63sv`, which the router decodes to `csv`)
        // or unknown (answered 404 after this): still one of the import types, none of
        // which a form can send without the browser asking first.
        Some(_) => Some(&["application/stix+json", "application/json", "text/csv"]),
        None if path == "/api/v1/archive" => {
            Some(&[super::archive::MEDIA_TYPE, "application/octet-stream"])
        }
        None if path.starts_with("/api/v1/") => Some(&["application/json"]),
        None => None,
    }
}

/// Why a write to `path` with `headers` is refused for its media type, if it is: the
/// `Content-Type` (its parameters aside) must be one the route reads. A missing one is
/// refused too, since a browser may send a body without one without asking first.
pub(crate) fn refused_media_type(path: &str, headers: &HeaderMap) -> Option<String> {
    let accepted = accepted_media_types(path)?;
    let sent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = sent.split(';').next().unwrap_or_default().trim();
    if accepted
        .iter()
        .any(|media_type| essence.eq_ignore_ascii_case(media_type))
    {
        return None;
    }
    let shown = if sent.is_empty() {
        "no Content-Type".to_owned()
    } else {
        format!("Content-Type {sent:?}")
    };
    Some(format!(
        "{path} takes {}, not {shown}",
        accepted.join(" or ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use super::*;

    fn limiter(max_auth_failures: u32, window_secs: u64) -> AuthLimiter {
        AuthLimiter::new(&ApiLimits {
            max_concurrent_requests: 1,
            max_auth_failures,
            auth_failure_window: Duration::from_secs(window_secs),
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn a_client_that_fails_too_often_waits_for_the_window_and_others_do_not() {
        let limiter = limiter(3, 60);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip(1), start), Ok(()));
            limiter.failed(ip(1), Failure::Wrong, start);
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(limiter.check(ip(1), later), Err(Duration::from_secs(40)));
        // Another address is not affected.
        assert_eq!(limiter.check(ip(2), later), Ok(()));
        // The window ends: the client may try again, from zero.
        let after = start + Duration::from_secs(60);
        assert_eq!(limiter.check(ip(1), after), Ok(()));
        // Requests without credentials guess nothing and never lock a client out.
        for _ in 0..10 {
            limiter.failed(ip(1), Failure::Missing, after);
        }
        assert_eq!(limiter.check(ip(1), after), Ok(()));
        let counters = limiter.counters();
        assert_eq!(
            (
                counters.auth_wrong,
                counters.auth_missing,
                counters.auth_throttled
            ),
            (3, 10, 1)
        );
    }

    #[test]
    fn failures_in_an_ended_window_start_a_new_one() {
        let limiter = limiter(2, 10);
        let start = Instant::now();
        limiter.failed(ip(1), Failure::Wrong, start);
        let later = start + Duration::from_secs(11);
        limiter.failed(ip(1), Failure::Wrong, later);
        assert_eq!(
            limiter.check(ip(1), later),
            Ok(()),
            "one failure per window"
        );
    }

    #[test]
    fn windows_stay_bounded() {
        let limiter = limiter(2, 60);
        let start = Instant::now();
        for n in 0..(2 * MAX_CLIENTS as u32) {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            limiter.failed(
                client,
                Failure::Wrong,
                start + Duration::from_millis(u64::from(n)),
            );
            assert!(limiter.tracked() <= MAX_CLIENTS);
        }
    }

    #[test]
    fn an_import_path_spelt_another_way_still_needs_an_import_media_type() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        for path in [
            "/api/v1/import/%63sv",
            "/api/v1/import/CSV",
            "/api/v1/import/x",
        ] {
            assert!(refused_media_type(path, &headers).is_some(), "{path}");
        }
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/csv"),
        );
        assert_eq!(refused_media_type("/api/v1/import/%63sv", &headers), None);
    }
}
