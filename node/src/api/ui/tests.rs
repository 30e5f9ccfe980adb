//! The console through the node's router, as a browser would drive it: sign-in, the
//! form tokens, members' text shown as text, read-only sessions, a publish form that
//! survives its session's end, and an import confirmed after its dry run. (The same in a
//! real browser, two nodes apart, is `testnet/tests/console.rs`.)

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{Request as HttpRequest, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::session::COOKIE;
use crate::api::tests::{PUBLISH, TOKEN, call, node_state, own_org};
use crate::api::{ApiState, router};

/// An answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |value| value.to_str().unwrap())
    }

    /// The value of the hidden `csrf` field of the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        self.body[at..at + 64].to_owned()
    }
}

async fn send(router: &Router, request: HttpRequest<HttpBody>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(router: &Router, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = HttpRequest::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, format!("{COOKIE}={cookie}"));
    }
    send(router, request.body(HttpBody::empty()).unwrap()).await
}

async fn post_form(
    router: &Router,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Answer {
    post_with_cookies(
        router,
        path,
        cookie.map(|cookie| format!("{COOKIE}={cookie}")),
        fields,
    )
    .await
}

/// A form post from the console's own pages, with `cookies` as the `Cookie` header.
async fn post_with_cookies(
    router: &Router,
    path: &str,
    cookies: Option<String>,
    fields: &[(&str, &str)],
) -> Answer {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    let mut request = HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://127.0.0.1:8080");
    if let Some(cookies) = cookies {
        request = request.header(header::COOKIE, cookies);
    }
    send(router, request.body(HttpBody::from(body.finish())).unwrap()).await
}

/// The form token of a sign-in page and the cookie that page set for it.
fn signin_form(page: &Answer) -> (String, String) {
    let cookie = page
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|value| value.starts_with(super::session::SIGNIN_COOKIE))
        .expect("a sign-in form cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (page.csrf(), cookie)
}

/// Posts the sign-in form of a fresh sign-in page with `token` and `more` fields.
async fn post_signin(router: &Router, token: &str, more: &[(&str, &str)]) -> Answer {
    let page = get(router, "/ui/signin", None).await;
    let (csrf, cookie) = signin_form(&page);
    let mut fields = vec![("token", token), ("csrf", csrf.as_str())];
    fields.extend_from_slice(more);
    post_with_cookies(router, "/ui/signin", Some(cookie), &fields).await
}

/// Whether `answer` opened no session.
fn no_session(answer: &Answer) -> bool {
    !answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.to_str().unwrap().starts_with(COOKIE))
}

/// Signs in with `token`; the session cookie's value.
async fn sign_in(router: &Router, token: &str) -> String {
    let answer = post_signin(router, token, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/ui/overview");
    let cookie = answer.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the token never goes to the browser: {cookie}"
    );
    let value = cookie
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    value.to_owned()
}

async fn console() -> (Router, ApiState, crate::store::Store, tempfile::TempDir) {
    let (state, store, dir) = node_state().await;
    (router(state.clone()), state, store, dir)
}

#[tokio::test]
async fn signing_in_opens_every_page_and_signing_out_closes_them() {
    let (router, _state, _store, _dir) = console().await;
    for path in [
        "/ui/",
        "/ui/overview",
        "/ui/search",
        "/ui/recent",
        "/ui/publish",
        "/ui/activity",
    ] {
        let answer = get(&router, path, None).await;
        assert!(answer.status.is_redirection(), "{path}: {}", answer.status);
        let expected = if path == "/ui/" {
            "/ui/overview"
        } else {
            "/ui/signin"
        };
        assert_eq!(answer.location(), expected, "{path}");
    }
    let cookie = sign_in(&router, TOKEN).await;
    let mut csrf = String::new();
    for (path, marker) in [
        ("/ui/overview", "id=\"members\""),
        ("/ui/search", "id=\"search\""),
        ("/ui/recent", "id=\"recent\""),
        ("/ui/publish", "id=\"publish\""),
        ("/ui/activity", "id=\"propagation-chart\""),
    ] {
        let answer = get(&router, path, Some(&cookie)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert!(answer.body.contains(marker), "{path}: {}", answer.body);
        // Every page reaches every other in one click.
        for id in [
            "nav-overview",
            "nav-search",
            "nav-recent",
            "nav-publish",
            "nav-activity",
        ] {
            assert!(
                answer.body.contains(&format!("id=\"{id}\"")),
                "{path} lacks {id}"
            );
        }
        let policy = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        csrf = answer.csrf();
    }
    let answer = post_form(&router, "/ui/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(answer.location(), "/ui/signin");
    let answer = get(&router, "/ui/overview", Some(&cookie)).await;
    assert_eq!(answer.location(), "/ui/signin", "the session is over");
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_throttled_like_the_apis() {
    let (state, _store, _dir) = node_state().await;
    let router = router(state.with_limits(crate::api::ApiLimits {
        max_auth_failures: 2,
        ..crate::api::ApiLimits::default()
    }));
    // A sign-in form that its page did not set the cookie for (posted from elsewhere) is
    // refused before the token is looked at.
    let answer = post_form(
        &router,
        "/ui/signin",
        None,
        &[("token", TOKEN), ("csrf", "x")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(no_session(&answer));
    for _ in 0..2 {
        let answer = post_signin(&router, "not-the-token", &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.body.contains("id=\"error\""), "{}", answer.body);
        assert!(no_session(&answer));
    }
    // Even the right token now waits: a guessing loop learns nothing.
    let answer = post_signin(&router, TOKEN, &[]).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert!(no_session(&answer));
    // The API shares the limit.
    let (status, _) = call(&router, "GET", "/api/v1/status", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn forms_without_the_sessions_token_or_from_another_site_are_refused() {
    let (router, _state, store, _dir) = console().await;
    let cookie = sign_in(&router, TOKEN).await;
    let fields = [("values", "198.51.100.77"), ("tlp", "green")];
    // No form token: what another site's form would send, had the browser sent the cookie.
    let answer = post_form(&router, "/ui/publish", Some(&cookie), &fields).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    let mut with_wrong = fields.to_vec();
    with_wrong.push(("csrf", "0000"));
    let answer = post_form(&router, "/ui/publish", Some(&cookie), &with_wrong).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // Another site's page: refused on its Origin before anything else.
    let page = get(&router, "/ui/publish", Some(&cookie)).await;
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.append_pair("values", "198.51.100.78")
        .append_pair("tlp", "green")
        .append_pair("csrf", &page.csrf());
    let request = HttpRequest::post("/ui/publish")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://attacker.example")
        .header(header::COOKIE, format!("{COOKIE}={cookie}"))
        .body(HttpBody::from(body.finish()))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(store.stats().unwrap().entries, 0, "nothing published");
}

#[tokio::test]
async fn publishing_through_the_form_reaches_the_store_and_errors_stay_by_their_field() {
    let (router, _state, store, _dir) = console().await;
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/publish", Some(&cookie)).await.csrf();
    let answer = post_form(
        &router,
        "/ui/publish",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("values", "198.51.100.7\nnot a value"),
            ("tlp", "green"),
            ("confidence", "70"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.body.contains("id=\"error-values\""),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("line 2"), "{}", answer.body);
    // What was typed is still there.
    assert!(
        answer.body.contains("198.51.100.7\nnot a value"),
        "{}",
        answer.body
    );
    assert_eq!(store.stats().unwrap().entries, 0);
    let answer = post_form(
        &router,
        "/ui/publish",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("values", "198.51.100.7\nhxxp://evil[.]example/x"),
            ("tlp", "green"),
            ("confidence", "70"),
            ("expires_days", "30"),
            ("labels", "c2, phishing"),
            ("description", "seen in a campaign"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body.contains("id=\"published\""), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 1);
    // TLP:RED needs recipients.
    let answer = post_form(
        &router,
        "/ui/publish",
        Some(&cookie),
        &[("csrf", &csrf), ("values", "198.51.100.9"), ("tlp", "red")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.body.contains("id=\"error-recipients\""),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn members_text_is_shown_as_text_never_as_markup() {
    let (router, _state, _store, _dir) = console().await;
    let hostile = r#"{"tlp": "green", "items": [
        {"type": "indicator", "kind": "domain", "value": "xss.example", "valid_from": 1700000000000,
         "labels": ["<img src=x onerror=alert(1)>"],
         "context": {"description": "<script>window.__xss=1</script>",
                     "threat": "\"><svg onload=alert(1)>",
                     "external_references": [{"source": "x", "url": "javascript:window.__xss=1"}]}}
    ]}"#;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), hostile).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/search", Some(&cookie)).await.csrf();
    let answer = post_form(
        &router,
        "/ui/search",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("values", "xss.example\nnot-known.example"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let page = &answer.body;
    assert!(
        page.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    for raw in [
        "<script>window",
        "<img src=x",
        "<svg onload",
        "href=\"javascript:",
    ] {
        assert!(!page.contains(raw), "{raw} reached the page as markup");
    }
    assert!(page.contains("data-value=\"xss.example\""), "{page}");
    assert!(page.contains("id=\"not-found\""), "{page}");
    assert!(page.contains("not-known.example"), "{page}");
    // Recent shows it as text too.
    let recent = get(&router, "/ui/recent", Some(&cookie)).await;
    assert!(!recent.body.contains("<script>window"), "{}", recent.body);
}

#[tokio::test]
async fn search_shows_each_organisations_assertion_and_exports_it() {
    let (router, _state, _store, _dir) = console().await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/search", Some(&cookie)).await.csrf();
    let answer = post_form(
        &router,
        "/ui/search",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("values", "C2 at 198.51.100[.]23 and evil.example."),
        ],
    )
    .await;
    let page = &answer.body;
    assert_eq!(page.matches("class=\"result\"").count(), 2, "{page}");
    assert!(page.contains("data-org=\"CERT-XX\""), "{page}");
    assert!(page.contains("QakBot"), "{page}");
    let csv = get(&router, "/ui/search/export?format=csv", Some(&cookie)).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.body.starts_with("value,kind,organisation"),
        "{}",
        csv.body
    );
    assert!(
        csv.body
            .contains("198.51.100.23,ipv4,CERT-XX,indicator,active"),
        "{}",
        csv.body
    );
    let stix = get(&router, "/ui/search/export?format=stix", Some(&cookie)).await;
    let bundle: serde_json::Value = serde_json::from_str(&stix.body).unwrap();
    assert_eq!(bundle["type"], "bundle");
    let patterns: Vec<&str> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|object| object["pattern"].as_str())
        .collect();
    assert_eq!(patterns.len(), 2, "{bundle}");
}

#[tokio::test]
async fn a_read_only_session_sees_everything_but_cannot_publish() {
    const READ_TOKEN: &str = "read-only-token-0123456789";
    let (state, store, _dir) = node_state().await;
    let router = router(state.with_read_tokens(vec![READ_TOKEN.into()]));
    let id = sign_in(&router, READ_TOKEN).await;
    let csrf = get(&router, "/ui/overview", Some(&id)).await.csrf();
    for path in ["/ui/overview", "/ui/search", "/ui/recent", "/ui/activity"] {
        let answer = get(&router, path, Some(&id)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert!(answer.body.contains("read-only"), "{path}");
    }
    let answer = get(&router, "/ui/publish", Some(&id)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = post_form(
        &router,
        "/ui/publish",
        Some(&id),
        &[
            ("csrf", &csrf),
            ("values", "198.51.100.7"),
            ("tlp", "green"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn a_publish_form_sent_after_its_session_ended_comes_back_after_sign_in() {
    let (router, _state, store, _dir) = console().await;
    let typed = [
        ("csrf", "stale"),
        ("values", "198.51.100.44\n198.51.100.45"),
        ("tlp", "green"),
        ("labels", "c2"),
        ("description", "typed before the session ended"),
    ];
    // No session at all (it ended, or the node restarted).
    let answer = post_form(&router, "/ui/publish", Some("gone"), &typed).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.contains("id=\"signin\""), "{}", answer.body);
    assert!(
        answer.body.contains("name=\"carry_values\""),
        "{}",
        answer.body
    );
    // Signing in again (the browser posts the hidden fields back) shows the form filled.
    let (csrf, signin_cookie) = signin_form(&answer);
    let mut fields: Vec<(&str, &str)> =
        vec![("token", TOKEN), ("csrf", &csrf), ("carry", "publish")];
    let carried: Vec<(String, &str)> = typed[1..]
        .iter()
        .map(|(name, value)| (format!("carry_{name}"), *value))
        .collect();
    fields.extend(carried.iter().map(|(name, value)| (name.as_str(), *value)));
    let answer = post_with_cookies(&router, "/ui/signin", Some(signin_cookie), &fields).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/ui/publish");
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie
        .strip_prefix(&format!("{COOKIE}="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = get(&router, "/ui/publish", Some(&cookie)).await;
    assert!(
        page.body.contains("198.51.100.44\n198.51.100.45"),
        "{}",
        page.body
    );
    assert!(page.body.contains("typed before the session ended"));
    assert_eq!(store.stats().unwrap().entries, 0, "nothing published yet");
    // Shown once: the next visit is a fresh form.
    let page = get(&router, "/ui/publish", Some(&cookie)).await;
    assert!(!page.body.contains("typed before the session ended"));
}

/// A multipart upload of `file` as `format`.
fn upload(cookie: &str, csrf: &str, format: &str, file: &[u8]) -> HttpRequest<HttpBody> {
    let boundary = "----threatmesh-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf), ("format", format), ("tlp", "green")] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"list.csv\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    HttpRequest::post("/ui/import")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(header::COOKIE, format!("{COOKIE}={cookie}"))
        .body(HttpBody::from(body))
        .unwrap()
}

#[tokio::test]
async fn an_upload_is_reported_first_and_published_only_once_confirmed() {
    let (router, _state, store, _dir) = console().await;
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/publish", Some(&cookie)).await.csrf();
    let answer = send(
        &router,
        upload(
            &cookie,
            &csrf,
            "csv",
            b"198.51.100.61\n198.51.100.62\nnot an indicator\n",
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("id=\"dry-run\""), "{}", answer.body);
    assert!(answer.body.contains("2 indicator(s)"), "{}", answer.body);
    assert_eq!(
        store.stats().unwrap().entries,
        0,
        "a dry run publishes nothing"
    );
    let at = answer.body.find("name=\"import\" value=\"").unwrap() + 21;
    let import = answer.body[at..at + 64].to_owned();
    // Another session's form token cannot confirm it.
    let answer = post_form(
        &router,
        "/ui/import/confirm",
        Some(&cookie),
        &[("csrf", "wrong"), ("import", &import)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = post_form(
        &router,
        "/ui/import/confirm",
        Some(&cookie),
        &[("csrf", &csrf), ("import", &import)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("id=\"imported\""), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 1);
    // Once only.
    let answer = post_form(
        &router,
        "/ui/import/confirm",
        Some(&cookie),
        &[("csrf", &csrf), ("import", &import)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(store.stats().unwrap().entries, 1);
    // A broken file gets a clear error.
    let answer = send(&router, upload(&cookie, &csrf, "stix", b"{ not json")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.body.contains("could not be imported as stix"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn overview_and_recent_show_the_federation_and_its_entries() {
    let (router, _state, _store, _dir) = console().await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cookie = sign_in(&router, TOKEN).await;
    let overview = get(&router, "/ui/overview", Some(&cookie)).await.body;
    assert!(
        overview.contains("id=\"federation-name\">API test<"),
        "{overview}"
    );
    assert!(overview.contains("id=\"charter-version\">1<"), "{overview}");
    assert!(overview.contains("data-org=\"CERT-XX\""), "{overview}");
    assert!(overview.contains("No member is connected."), "{overview}");
    let recent = get(&router, "/ui/recent", Some(&cookie)).await.body;
    assert_eq!(recent.matches("class=\"entry\"").count(), 1, "{recent}");
    assert!(recent.contains("198.51.100.23"), "{recent}");
    // Filters: by organisation, by TLP, by kind.
    let filtered = get(
        &router,
        &format!("/ui/recent?org={}&tlp=red", own_org()),
        Some(&cookie),
    )
    .await
    .body;
    assert!(filtered.contains("id=\"recent-empty\""), "{filtered}");
    let filtered = get(&router, "/ui/recent?kind=domain&tlp=green", Some(&cookie))
        .await
        .body;
    assert_eq!(filtered.matches("class=\"entry\"").count(), 1, "{filtered}");
    let bad = get(&router, "/ui/recent?tlp=purple", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_upload_over_the_import_limit_is_refused_naming_the_limit() {
    let (router, _state, store, _dir) = console().await;
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/publish", Some(&cookie)).await.csrf();
    let line = b"198.51.100.1\n";
    let file: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(crate::api::MAX_BODY_BYTES + line.len())
        .collect();
    let answer = send(&router, upload(&cookie, &csrf, "csv", &file)).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("import limit of 32 MiB"),
        "{}",
        answer.body
    );
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn bad_cursors_and_oversized_forms_get_clear_answers() {
    let (router, _state, store, _dir) = console().await;
    let cookie = sign_in(&router, TOKEN).await;
    // A cursor that is no key of the added-time index names no position: an empty page,
    // not a storage error.
    let cursor = format!("63{}", "ff".repeat(16));
    let answer = get(
        &router,
        &format!("/ui/recent?before={cursor}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body.contains("id=\"recent-empty\""),
        "{}",
        answer.body
    );
    // A form over the form limit is refused before it is read whole.
    let csrf = get(&router, "/ui/search", Some(&cookie)).await.csrf();
    let values = "198.51.100.1\n".repeat(super::pages::MAX_FORM_BYTES / 13 + 1);
    let answer = post_form(
        &router,
        "/ui/search",
        Some(&cookie),
        &[("csrf", &csrf), ("values", &values)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A large publish form posted without a session is not echoed back through sign-in.
    let values = "198.51.100.1\n".repeat(30_000);
    let answer = post_form(&router, "/ui/publish", None, &[("values", &values)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!answer.body.contains("carry_values"), "echoed a large form");
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn behind_a_tls_proxy_both_cookies_are_secure() {
    let (router, _state, _store, _dir) = console().await;
    let request = HttpRequest::get("/ui/signin")
        .header("x-forwarded-proto", "https")
        .body(HttpBody::empty())
        .unwrap();
    let page = send(&router, request).await;
    let (csrf, form_cookie) = signin_form(&page);
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.ends_with("; Secure"), "{set}");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", TOKEN)
        .append_pair("csrf", &csrf)
        .finish();
    let request = HttpRequest::post("/ui/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .header(header::COOKIE, form_cookie)
        .body(HttpBody::from(body))
        .unwrap();
    let answer = send(&router, request).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let session = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        session.starts_with(COOKIE) && session.ends_with("; Secure"),
        "{session}"
    );
    // Over plain HTTP (loopback), neither is: a browser would not send it back.
    let page = get(&router, "/ui/signin", None).await;
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains("Secure"), "{set}");
}

/// [`console`] checking values against the default warninglists.
async fn console_listing() -> (Router, crate::store::Store, tempfile::TempDir) {
    let lists = crate::warninglists::Warninglists::builtin();
    let (state, store, dir, event_loop) = crate::api::tests::node_parts_listing(lists);
    tokio::spawn(event_loop.run());
    (router(state), store, dir)
}

#[tokio::test]
async fn the_publish_form_holds_listed_values_back_unless_ticked_and_search_marks_them() {
    let (router, store, _dir) = console_listing().await;
    let cookie = sign_in(&router, TOKEN).await;
    let page = get(&router, "/ui/publish", Some(&cookie)).await;
    assert!(
        page.body.contains("name=\"ignore_warninglists\""),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let publish = |values: &'static str, ticked: bool| {
        let (router, cookie, csrf) = (router.clone(), cookie.clone(), csrf.clone());
        async move {
            let mut fields = vec![
                ("csrf", csrf.as_str()),
                ("values", values),
                ("tlp", "green"),
            ];
            if ticked {
                fields.push(("ignore_warninglists", "on"));
            }
            post_form(&router, "/ui/publish", Some(&cookie), &fields).await
        }
    };
    let answer = publish("8.8.8.8\n45.155.205.233", false).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body.contains("id=\"held-back\""), "{}", answer.body);
    assert!(answer.body.contains("public-dns-v4"), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 1);
    // Only listed values: nothing published, and the page says why.
    let answer = publish("8.8.8.8", false).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains("held back"), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 1);
    // Ticked: published.
    let answer = publish("8.8.8.8", true).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(!answer.body.contains("id=\"held-back\""), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 2);
    // Search marks it, and so does its CSV export.
    let csrf = get(&router, "/ui/search", Some(&cookie)).await.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("values", "8.8.8.8\n45.155.205.233"),
    ];
    let answer = post_form(&router, "/ui/search", Some(&cookie), &fields).await;
    assert_eq!(
        answer.body.matches("On a warninglist").count(),
        1,
        "{}",
        answer.body
    );
    assert!(answer.body.contains("public-dns-v4"), "{}", answer.body);
    let csv = get(&router, "/ui/search/export?format=csv", Some(&cookie)).await;
    assert!(
        csv.body.lines().next().unwrap().ends_with(",warninglists"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("public-dns-v4"), "{}", csv.body);
}

#[tokio::test]
async fn an_upload_names_the_listed_values_and_confirming_holds_them_back_unless_ticked() {
    let (router, store, _dir) = console_listing().await;
    let cookie = sign_in(&router, TOKEN).await;
    let csrf = get(&router, "/ui/publish", Some(&cookie)).await.csrf();
    let file = b"8.8.8.8\n45.155.205.233\n";
    let dry_run = |csrf: String| {
        let (router, cookie) = (router.clone(), cookie.clone());
        async move {
            let answer = send(&router, upload(&cookie, &csrf, "csv", file)).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            assert!(answer.body.contains("id=\"held-back\""), "{}", answer.body);
            assert!(
                answer.body.contains("name=\"ignore_warninglists\""),
                "{}",
                answer.body
            );
            let at = answer.body.find("name=\"import\" value=\"").unwrap() + 21;
            answer.body[at..at + 64].to_owned()
        }
    };
    let import = dry_run(csrf.clone()).await;
    let fields = [("csrf", csrf.as_str()), ("import", import.as_str())];
    let answer = post_form(&router, "/ui/import/confirm", Some(&cookie), &fields).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body.contains("1 indicator(s) held back"),
        "{}",
        answer.body
    );
    assert_eq!(store.stats().unwrap().entries, 1);
    let import = dry_run(csrf.clone()).await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("import", import.as_str()),
        ("ignore_warninglists", "on"),
    ];
    let answer = post_form(&router, "/ui/import/confirm", Some(&cookie), &fields).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(!answer.body.contains("held back"), "{}", answer.body);
    assert_eq!(store.stats().unwrap().entries, 2);
}
