//! `[api]`: the local HTTP API's address, tokens and limits.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigError, MIN_TOKEN_CHARS, check_seconds, invalid};

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Bearer tokens the API accepts for everything.
    pub tokens: Vec<String>,
    /// Bearer tokens the API accepts for reading only (dashboards, the web console): every
    /// route that writes refuses them, 403. None unless listed.
    pub read_tokens: Vec<String>,
    /// Requests served at once; more are answered 503 at once, not queued.
    pub max_concurrent_requests: usize,
    /// Wrong tokens one client address may present within `auth_failure_window_secs`;
    /// after that it gets 429 until the window ends, even with a right token. Requests
    /// with no credentials are counted in metrics but not here.
    pub max_auth_failures: u32,
    /// The window failed authentications are counted in, in seconds.
    pub auth_failure_window_secs: u64,
    /// Keep the TAXII object index up with the store in the background (when no entry
    /// arrived for 2 s, and at least every 30 s), so a TAXII read never waits for a large
    /// backlog to be indexed. Off, each TAXII read indexes what arrived since the last
    /// one before it answers; nothing is indexed on a node no TAXII client reads.
    pub taxii_background_index: bool,
    /// Tokens that read the MISP feed (`/misp/feed/`) only, each up to a TLP ceiling:
    /// `feed_tokens = [{ token = "...", tlp = "green" }]`.
    pub feed_tokens: Vec<FeedTokenSection>,
}

/// One of `api.feed_tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedTokenSection {
    /// The token, as the MISP instance sends it in `Authorization`.
    pub token: String,
    /// The strictest marking it reads: `clear` (or `white`), `green`, `amber`,
    /// `amber+strict` or `red`.
    pub tlp: String,
}

impl Default for ApiSection {
    fn default() -> ApiSection {
        let limits = crate::api::ApiLimits::default();
        ApiSection {
            listen: "127.0.0.1:8080".into(),
            tokens: Vec::new(),
            read_tokens: Vec::new(),
            max_concurrent_requests: limits.max_concurrent_requests,
            max_auth_failures: limits.max_auth_failures,
            auth_failure_window_secs: limits.auth_failure_window.as_secs(),
            taxii_background_index: true,
            feed_tokens: Vec::new(),
        }
    }
}

/// `[api]`, checked: what the node's start needs of it beyond the tokens as listed.
#[derive(Debug)]
pub(super) struct Checked {
    /// Where the API listens.
    pub(super) listen: SocketAddr,
    /// The API's limits.
    pub(super) limits: crate::api::ApiLimits,
    /// Tokens that read the MISP feed only, up to their TLP ceilings.
    pub(super) feed_tokens: Vec<crate::api::FeedToken>,
}

impl ApiSection {
    /// Checks the section: the address, the tokens (at least one full token, none
    /// shorter than [`MIN_TOKEN_CHARS`], none in two lists) and the limits.
    pub(super) fn validate(&self) -> Result<Checked, ConfigError> {
        let auth_failure_window = check_seconds(
            "api.auth_failure_window_secs",
            self.auth_failure_window_secs,
        )?;
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|error| invalid("api.listen", format!("{:?}: {error}", self.listen)))?;
        if self.tokens.is_empty() {
            return Err(invalid("api.tokens", "at least one token is needed".into()));
        }
        for (setting, tokens) in [
            ("api.tokens", &self.tokens),
            ("api.read_tokens", &self.read_tokens),
        ] {
            if let Some(short) = tokens.iter().find(|t| t.chars().count() < MIN_TOKEN_CHARS) {
                return Err(invalid(
                    setting,
                    format!(
                        "a token of {} characters; at least {MIN_TOKEN_CHARS}",
                        short.chars().count()
                    ),
                ));
            }
        }
        // A token in both would leave what it may do to the order of a check; the error
        // names the token's place, not the token, which would end up in logs.
        if let Some(index) = self
            .read_tokens
            .iter()
            .position(|token| self.tokens.contains(token))
        {
            return Err(invalid(
                "api.read_tokens",
                format!(
                    "read token {} (counting from 1) is also in api.tokens: a token either \
                     writes or reads only; make a new one for reading",
                    index + 1
                ),
            ));
        }
        let feed_tokens = self.validate_feed_tokens()?;
        if self.max_concurrent_requests == 0 {
            return Err(invalid(
                "api.max_concurrent_requests",
                "must be at least 1".into(),
            ));
        }
        if self.max_auth_failures == 0 {
            return Err(invalid(
                "api.max_auth_failures",
                "must be at least 1".into(),
            ));
        }
        Ok(Checked {
            listen,
            limits: crate::api::ApiLimits {
                max_concurrent_requests: self.max_concurrent_requests,
                max_auth_failures: self.max_auth_failures,
                auth_failure_window,
            },
            feed_tokens,
        })
    }

    /// `api.feed_tokens`, checked: each at least [`MIN_TOKEN_CHARS`] long, in no other
    /// list and listed once, with a TLP level. Errors name the token by its place, not
    /// by its text, which would end up in logs.
    fn validate_feed_tokens(&self) -> Result<Vec<crate::api::FeedToken>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            setting: "api.feed_tokens",
            reason,
        };
        let mut tokens: Vec<crate::api::FeedToken> = Vec::new();
        for (index, entry) in self.feed_tokens.iter().enumerate() {
            let place = index + 1;
            let length = entry.token.chars().count();
            if length < MIN_TOKEN_CHARS {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) has {length} characters; at least \
                     {MIN_TOKEN_CHARS}"
                )));
            }
            if self.tokens.contains(&entry.token) || self.read_tokens.contains(&entry.token) {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) is also in api.tokens or \
                     api.read_tokens: a feed token reads the feed only; make a new one"
                )));
            }
            if tokens.iter().any(|token| token.token == entry.token) {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) is listed twice"
                )));
            }
            let tlp = entry.tlp.parse().map_err(|error| {
                invalid(format!(
                    "feed token {place} (counting from 1): tlp: {error}"
                ))
            })?;
            tokens.push(crate::api::FeedToken {
                token: entry.token.clone(),
                tlp,
            });
        }
        Ok(tokens)
    }
}
