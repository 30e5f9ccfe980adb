//! The console's frame (head, navigation, sign-out) and its read-only pages: sign-in,
//! Overview, Recent and Activity. Search and Publish, which take forms, have modules of
//! their own.
//!
//! Everything a member published reaches these templates as a Rust string and is escaped
//! by maud; the only unescaped output (`PreEscaped`) is the SVG of the charts, which
//! [`super::activity::line_chart`] writes from numbers and fixed words only.
//!
//! Here: the frame, sign-in and what every page shows the same way (times, sizes, TLP
//! badges). Each read-only page has its own file: `overview`, `recent`, `activity`
//! (the last drawn from the numbers `ui::activity` samples).

mod activity;
mod overview;
mod recent;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{DOCTYPE, Markup, html};
use threatmesh_protocol::Timestamp;
use threatmesh_protocol::bundle::Tlp;

use super::publish::Draft;
use super::{SignedIn, html as page};

pub(crate) use activity::activity;
pub(crate) use overview::overview;
pub(crate) use recent::{Summaries, recent};

/// Largest form body the console reads (the publish form's values included).
pub(crate) const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// Entries one page of Recent lists.
const RECENT_PAGE: usize = 25;

/// How long one page of Recent may spend reading entries it has not summarised yet
/// (each is decoded whole: an entry of 10,000 indicators takes a few milliseconds); past
/// it the page ends early, with a link to read on. At least one entry is read per page,
/// so paging always moves.
const RECENT_BUDGET: std::time::Duration = std::time::Duration::from_millis(60);

/// The pages of the navigation: path, id suffix, title.
const PAGES: [(&str, &str, &str); 5] = [
    ("/ui/overview", "overview", "Overview"),
    ("/ui/search", "search", "Search"),
    ("/ui/recent", "recent", "Recent"),
    ("/ui/publish", "publish", "Publish"),
    ("/ui/activity", "activity", "Activity"),
];

/// A whole page: `title`, the navigation with `current` marked, and `main`.
pub(crate) fn frame(
    title: &str,
    current: &str,
    signed_in: Option<&SignedIn>,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · threatmesh" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "threatmesh" }
                    @if let Some(signed_in) = signed_in {
                        nav id="nav" aria-label="Console" {
                            ul {
                                @for (path, id, name) in PAGES {
                                    li {
                                        a id={ "nav-" (id) } href=(path)
                                            aria-current=[(id == current).then_some("page")] { (name) }
                                    }
                                }
                            }
                        }
                        form id="signout" method="post" action="/ui/signout" {
                            input type="hidden" name="csrf" value=(signed_in.session.csrf);
                            @if !signed_in.may_write() { span.badge { "read-only" } }
                            button id="signout-submit" type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (main)
                }
            }
        }
    }
}

/// An error page: `message` and a way back.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        frame(
            status.canonical_reason().unwrap_or("Error"),
            "",
            None,
            html! {
                p id="error" role="alert" { (message) }
                p { a href="/ui/overview" { "Back to the console" } }
            },
        ),
    )
}

/// `GET /ui/signin`.
pub(crate) async fn signin_page(headers: HeaderMap) -> Response {
    signin(StatusCode::OK, None, None, super::served_over_tls(&headers))
}

/// The sign-in page, with `error` if the last try failed, carrying `draft` (a publish form
/// whose session ended) so it is not lost. Its form token is new each time, and also set
/// in a cookie only this page's post carries: a sign-in form posted from anywhere else
/// (signing the analyst in to someone else's session) does not match it.
pub(crate) fn signin(
    status: StatusCode,
    error: Option<&str>,
    draft: Option<&Draft>,
    secure: bool,
) -> Response {
    let Ok(form_token) = super::session::random_token() else {
        tracing::error!("console: no randomness for a sign-in form token");
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The node could not make a sign-in form.",
        );
    };
    let mut response = page(
        status,
        frame(
            "Sign in",
            "",
            None,
            html! {
                @if draft.is_some() {
                    p.notice role="status" {
                        "Your session ended. Sign in again: the indicators you were publishing are kept and will be shown again."
                    }
                }
                form id="signin" method="post" action="/ui/signin" {
                    input type="hidden" name="csrf" value=(form_token);
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" autocomplete="current-password"
                        required autofocus aria-describedby=[error.map(|_| "error")];
                    @if let Some(error) = error {
                        p id="error" role="alert" { (error) }
                    }
                    @if let Some(draft) = draft { (draft.carry()) }
                    button id="signin-submit" type="submit" { "Sign in" }
                }
                p.hint {
                    "The token is one of the node's API tokens (" code { "api.tokens" } " or "
                    code { "api.read_tokens" } " in threatmesh.toml). It is exchanged for a session cookie and not kept in the browser."
                }
            },
        ),
    );
    let cookie = format!(
        "{}={form_token}; Path=/ui/signin; Max-Age=3600; HttpOnly; SameSite=Strict{}",
        super::session::SIGNIN_COOKIE,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// A time as the console shows it: UTC, to the second.
pub(crate) fn when(time: Timestamp) -> String {
    crate::formats::rfc3339::format(time)
}

/// How long ago `time` was, before `now`, in words.
pub(crate) fn ago(time: Timestamp, now: Timestamp) -> String {
    let secs = now.0.saturating_sub(time.0) / 1000;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=172_799 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A TLP label as a badge the stylesheet colours.
pub(crate) fn tlp_badge(tlp: Tlp) -> Markup {
    let class = match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber-strict",
        Tlp::Red => "red",
    };
    html! { span class={ "tlp tlp-" (class) } { (tlp.label()) } }
}

/// Bytes in a few characters.
fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let bytes = bytes as f64;
    if bytes >= 1024.0 * MIB {
        format!("{:.1} GiB", bytes / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", bytes / MIB)
    }
}

/// A TLP level as the filter and the publish form name it.
pub(crate) fn tlp_value(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}
