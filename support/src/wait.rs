//! Waiting for something another process does: poll, with a deadline, and say what never
//! happened when the deadline passes. Tests wait for events this way rather than sleeping a
//! fixed time.

use std::time::{Duration, Instant};

/// How often [`try_wait_for`] polls.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What [`try_wait_for`] waited for did not happen in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}")]
pub struct TimedOut {
    /// What was waited for, as the caller named it.
    pub what: String,
    /// How long it was waited for.
    pub timeout: Duration,
}

/// Polls `done` every 50 ms until it returns something, giving up after `timeout`.
pub fn try_wait_for<T>(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = done() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls `done` every 50 ms until it returns something, failing the test after `timeout`
/// with a message that names `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, done: impl FnMut() -> Option<T>) -> T {
    try_wait_for(what, timeout, done).unwrap_or_else(|error| panic!("{error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_that_times_out_names_what_it_waited_for() {
        let error = try_wait_for("the moon", Duration::from_millis(10), || None::<()>).unwrap_err();
        assert!(error.to_string().contains("the moon"), "{error}");
        assert_eq!(
            try_wait_for("now", Duration::ZERO, || Some(7)).ok(),
            Some(7)
        );
    }
}
