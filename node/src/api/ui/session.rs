//! Console sessions: an API token, presented once on the sign-in form, is exchanged for a
//! random session id the browser keeps in a cookie (`HttpOnly`, `SameSite=Strict`), so
//! the token itself never sits in the browser. Each session carries its own form token
//! (`csrf`), which every form posts back, and what the analyst is in the middle of: the
//! values of the last search (for its export links) and an import waiting to be
//! confirmed.
//!
//! Sessions live in memory only: a node restart signs everyone out. They end after
//! [`IDLE`] without a request or [`LIFETIME`] in all, and at most [`MAX_SESSIONS`] are
//! kept (the least recently used goes first), so a client signing in again and again
//! cannot grow the node's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use subtle::ConstantTimeEq;
use threatmesh_protocol::Value;
use tokio::time::Instant;

use crate::api::Access;
use crate::formats::Import;

/// The cookie that carries the session id.
pub(crate) const COOKIE: &str = "threatmesh_session";

/// The cookie that carries the sign-in form's token until the form is posted.
pub(crate) const SIGNIN_COOKIE: &str = "threatmesh_signin";

/// A session unused this long is over.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);

/// A session is over this long after sign-in, however busy.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 1_024;

/// Imports waiting for confirmation, across all sessions: each may hold a file's worth
/// of items, so few are kept (the oldest goes first).
pub(crate) const MAX_PENDING_IMPORTS: usize = 8;

/// An import read and reported, waiting for the analyst to confirm it.
#[derive(Debug, Clone)]
pub(crate) struct PendingImport {
    /// Names the import in the confirmation form, so a stale form cannot confirm another.
    pub(crate) id: String,
    /// The file's name as uploaded, for the page.
    pub(crate) file_name: String,
    /// What the importer made of it.
    pub(crate) import: Import,
    /// The marking of items the file left unmarked.
    pub(crate) default_tlp: threatmesh_protocol::bundle::Tlp,
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token every form of this session posts back.
    pub(crate) csrf: String,
    /// What the token it was opened with may do.
    pub(crate) access: Access,
    /// The values of the last search, for its export links.
    pub(crate) last_search: Arc<Vec<Value>>,
    /// The import waiting for confirmation, if any.
    pub(crate) pending: Option<Arc<PendingImport>>,
    /// A publish form carried through sign-in, shown once on the next Publish page.
    pub(crate) draft: Option<Arc<super::publish::Draft>>,
    opened: Instant,
    used: Instant,
}

impl Session {
    /// Whether `presented` is this session's form token (compared in constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    fn is_over(&self, now: Instant) -> bool {
        now.duration_since(self.used) >= IDLE || now.duration_since(self.opened) >= LIFETIME
    }
}

/// The sessions of one node's console.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn open(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // The map holds plain data: whatever a panicking holder left is still usable.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for a token with `access`; returns its id (for the cookie) and the
    /// session. Fails only if the system has no randomness to give.
    pub(crate) fn start(
        &self,
        access: Access,
        now: Instant,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            csrf: random_token()?,
            access,
            last_search: Arc::new(Vec::new()),
            pending: None,
            draft: None,
            opened: now,
            used: now,
        };
        let mut open = self.open();
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, session| !session.is_over(now));
        }
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, session)| session.used)
                .map(|(id, _)| id.clone())
        {
            open.remove(&oldest);
        }
        open.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session `id` names, if it is still open; using it keeps it open longer.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut open = self.open();
        let session = open.get_mut(id)?;
        if session.is_over(now) {
            open.remove(id);
            return None;
        }
        session.used = now;
        Some(session.clone())
    }

    /// Changes the session `id` (if still open) with `change`.
    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        if let Some(session) = self.open().get_mut(id) {
            change(session);
        }
    }

    /// Keeps `pending` as the import of session `id`, replacing any earlier one; beyond
    /// [`MAX_PENDING_IMPORTS`] across all sessions, the oldest others are dropped.
    pub(crate) fn keep_import(&self, id: &str, pending: PendingImport) {
        let mut open = self.open();
        let mut holding: Vec<(Instant, String)> = open
            .iter()
            .filter(|(other, session)| other.as_str() != id && session.pending.is_some())
            .map(|(other, session)| (session.used, other.clone()))
            .collect();
        holding.sort();
        let excess = (holding.len() + 1).saturating_sub(MAX_PENDING_IMPORTS);
        for (_, other) in holding.into_iter().take(excess) {
            if let Some(session) = open.get_mut(&other) {
                session.pending = None;
            }
        }
        if let Some(session) = open.get_mut(id) {
            session.pending = Some(Arc::new(pending));
        }
    }

    /// Takes the import of session `id` if it is the one named `wanted`, so that it can be
    /// published once only.
    pub(crate) fn take_import(&self, id: &str, wanted: &str) -> Option<Arc<PendingImport>> {
        let mut open = self.open();
        let session = open.get_mut(id)?;
        let matches = session
            .pending
            .as_ref()
            .is_some_and(|pending| bool::from(pending.id.as_bytes().ct_eq(wanted.as_bytes())));
        if matches {
            session.pending.take()
        } else {
            None
        }
    }

    /// Ends the session `id`.
    pub(crate) fn end(&self, id: &str) {
        self.open().remove(id);
    }

    /// Sessions open now (some may be over and not yet dropped).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open().len()
    }
}

/// 32 random bytes in hex: a session id or a form token.
pub(crate) fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(threatmesh_protocol::crypto::hex_encode(&bytes))
}

/// The session id a request's `Cookie` headers carry, if any.
pub(crate) fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    named_cookie(headers, COOKIE)
}

/// The value of cookie `name` in a request's `Cookie` headers, if set and not empty.
pub(crate) fn named_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (found, value) = pair.trim().split_once('=')?;
            (found == name && !value.is_empty()).then(|| value.to_owned())
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_session_ends_when_idle_or_too_old_and_their_number_is_bounded() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let (id, session) = sessions.start(Access::Write, start).unwrap();
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(id, session.csrf);
        assert!(sessions.get(&id, start + IDLE / 2).is_some());
        // Used at IDLE / 2, so still open a little after IDLE from the start.
        assert!(sessions.get(&id, start + IDLE).is_some());
        assert!(sessions.get(&id, start + IDLE * 2 + IDLE / 2).is_none());
        assert!(sessions.get(&id, start).is_none(), "dropped once over");
        // However busy, a session ends after its lifetime.
        let (busy, _) = sessions.start(Access::Read, start).unwrap();
        let mut now = start;
        while now < start + LIFETIME - IDLE {
            now += IDLE / 2;
            assert!(sessions.get(&busy, now).is_some());
        }
        assert!(sessions.get(&busy, start + LIFETIME).is_none());
        for _ in 0..MAX_SESSIONS + 10 {
            sessions.start(Access::Read, start).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }

    #[test]
    fn pending_imports_are_bounded_across_sessions() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let ids: Vec<String> = (0..MAX_PENDING_IMPORTS + 3)
            .map(|_| sessions.start(Access::Write, now).unwrap().0)
            .collect();
        for id in &ids {
            sessions.keep_import(
                id,
                PendingImport {
                    id: random_token().unwrap(),
                    file_name: "f".into(),
                    import: Import::default(),
                    default_tlp: threatmesh_protocol::bundle::Tlp::Amber,
                },
            );
        }
        let holding = ids
            .iter()
            .filter(|id| sessions.get(id, now).unwrap().pending.is_some())
            .count();
        assert_eq!(holding, MAX_PENDING_IMPORTS);
        let last = ids.last().unwrap();
        assert!(sessions.get(last, now).unwrap().pending.is_some());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append(
            axum::http::header::COOKIE,
            "a=1; threatmesh_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers).as_deref(), Some("abc"));
        let mut headers = axum::http::HeaderMap::new();
        headers.append(axum::http::header::COOKIE, "x=y".parse().unwrap());
        assert_eq!(cookie_of(&headers), None);
    }
}
