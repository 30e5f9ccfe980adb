use std::path::Path;

use threatmesh_protocol::indicator::{Kind, Value};

use super::*;

fn list(id: &str, list_type: &str, attributes: &[&str], entries: &[&str]) -> List {
    let json = serde_json::json!({
        "name": format!("test list {id}"),
        "version": 1,
        "description": "for tests",
        "type": list_type,
        "matching_attributes": attributes,
        "list": entries,
    });
    List::parse(
        &Path::new("lists").join(id).join("list.json"),
        &json.to_string(),
    )
    .expect("test list parses")
}

fn ids(lists: &Warninglists, kind: Kind, text: &str) -> Vec<String> {
    let value = Value::parse(kind, text).expect("valid test value");
    lists.ids(&value).into_iter().map(str::to_owned).collect()
}

fn parse_error(text: &str) -> ListError {
    List::parse(Path::new("lists/x/list.json"), text).expect_err("malformed list refused")
}

const IP: &[&str] = &["ip-src", "ip-dst"];
const DOMAIN: &[&str] = &["domain", "hostname", "url"];

#[test]
fn each_type_parses_and_the_id_is_the_folder() {
    for (list_type, entry) in [
        ("string", "Example.COM"),
        ("substring", "mobiseclab"),
        ("hostname", "*.example.org."),
        ("cidr", "10.0.0.0/8"),
        ("regex", "/^abuse@/i"),
    ] {
        let parsed = list("x", list_type, &[], &[entry]);
        assert_eq!(parsed.id, "x");
        assert_eq!(parsed.list_type.as_str(), list_type);
        assert_eq!(parsed.entries.len(), 1);
    }
    assert_eq!(
        list("x", "string", &[], &["Example.COM"]).entries,
        ["example.com"]
    );
    assert_eq!(
        list("x", "hostname", &[], &["*.Example.org."]).entries,
        ["example.org"]
    );
    assert_eq!(
        list("x", "regex", &[], &["/^abuse@/ig"]).entries,
        ["(?i)^abuse@"]
    );
    let flat = List::parse(
        Path::new("mine/corp.json"),
        r#"{"name":"n","version":2,"description":"d","type":"string","list":["a"]}"#,
    )
    .expect("parses");
    assert_eq!(flat.id, "corp");
    assert!(flat.matching_attributes.is_empty());
}

#[test]
fn malformed_lists_name_the_path_and_the_field() {
    let cases = [
        ("not json", "file", "not valid JSON"),
        ("[1, 2]", "file", "expected a JSON object"),
        (
            r#"{"version":1,"type":"string","list":[]}"#,
            "name",
            "missing",
        ),
        (
            r#"{"name":3,"version":1,"type":"string","list":[]}"#,
            "name",
            "expected a string",
        ),
        (
            r#"{"name":"n","type":"string","list":[]}"#,
            "version",
            "missing",
        ),
        (
            r#"{"name":"n","version":"1","type":"string","list":[]}"#,
            "version",
            "whole number",
        ),
        (r#"{"name":"n","version":1,"list":[]}"#, "type", "missing"),
        (
            r#"{"name":"n","version":1,"type":"foo","list":[]}"#,
            "type",
            "unknown type \"foo\"",
        ),
        (
            r#"{"name":"n","version":1,"type":"string"}"#,
            "list",
            "missing",
        ),
        (
            r#"{"name":"n","version":1,"type":"string","list":"a"}"#,
            "list",
            "array of strings",
        ),
        (
            r#"{"name":"n","version":1,"type":"string","list":["a",7]}"#,
            "list[1]",
            "expected a string",
        ),
        (
            r#"{"name":"n","version":1,"type":"string","list":["a",""]}"#,
            "list[1]",
            "empty entry",
        ),
        (
            r#"{"name":"n","version":1,"type":"cidr","list":["10.0.0.0/8","10.0.0.0/33"]}"#,
            "list[1]",
            "prefix length",
        ),
        (
            r#"{"name":"n","version":1,"type":"cidr","list":["nope"]}"#,
            "list[0]",
            "not an IP",
        ),
        (
            r#"{"name":"n","version":1,"type":"regex","list":["/(unclosed/"]}"#,
            "list[0]",
            "not a valid regex",
        ),
        (
            r#"{"name":"n","version":1,"type":"regex","list":["/a/q"]}"#,
            "list[0]",
            "flag 'q'",
        ),
        (
            r#"{"name":"n","version":1,"type":"hostname","list":["*."]}"#,
            "list[0]",
            "names no host",
        ),
        (
            r#"{"name":"n","version":1,"type":"string","matching_attributes":[1],"list":[]}"#,
            "matching_attributes[0]",
            "expected a string",
        ),
    ];
    for (text, field, reason) in cases {
        let error = parse_error(text);
        assert_eq!(error.field, field, "{text}: {error}");
        assert!(error.reason.contains(reason), "{text}: {error}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!("lists/x/list.json: `{field}`: ")),
            "{shown}"
        );
    }
    assert_eq!(
        parse_error(r#"{"name":"n","version":1,"type":"foo","list":[]}"#).to_string(),
        "lists/x/list.json: `type`: unknown type \"foo\": expected string, substring, \
         hostname, cidr or regex"
    );
}

#[test]
fn string_lists_match_whole_values_of_the_kinds_they_name() {
    let lists = Warninglists::compile(&[
        list(
            "hashes",
            "string",
            &["md5", "sha256"],
            &["D41D8CD98F00B204E9800998ECF8427E"],
        ),
        list("any", "string", &[], &["198.51.100.7"]),
    ])
    .expect("compiles");
    assert_eq!(
        ids(&lists, Kind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
        ["hashes"]
    );
    assert!(ids(&lists, Kind::Md5, "d41d8cd98f00b204e9800998ecf8427f").is_empty());
    // No matching_attributes: every kind.
    assert_eq!(ids(&lists, Kind::Ipv4, "198.51.100.7"), ["any"]);
}

#[test]
fn matching_attributes_limit_the_kinds() {
    let lists =
        Warninglists::compile(&[list("ips", "string", IP, &["example.net"])]).expect("compiles");
    assert!(ids(&lists, Kind::Domain, "example.net").is_empty());
    let lists = Warninglists::compile(&[list("doms", "string", &["domain"], &["example.net"])])
        .expect("compiles");
    assert_eq!(ids(&lists, Kind::Domain, "example.net"), ["doms"]);
    assert!(lists.lists()[0].applies_to(Kind::Domain));
    assert!(!lists.lists()[0].applies_to(Kind::Url));
}

#[test]
fn hostname_lists_match_the_name_and_its_subdomains_only() {
    let lists = Warninglists::compile(&[list("top", "hostname", DOMAIN, &["google.com"])])
        .expect("compiles");
    assert_eq!(ids(&lists, Kind::Domain, "google.com"), ["top"]);
    assert_eq!(ids(&lists, Kind::Domain, "mail.google.com"), ["top"]);
    assert_eq!(ids(&lists, Kind::Domain, "a.b.mail.google.com"), ["top"]);
    assert!(ids(&lists, Kind::Domain, "notgoogle.com").is_empty());
    assert!(ids(&lists, Kind::Domain, "google.com.evil.net").is_empty());
    // A URL's host, for lists naming `url`.
    assert_eq!(
        ids(&lists, Kind::Url, "https://docs.google.com/x?y=1"),
        ["top"]
    );
    assert_eq!(
        ids(&lists, Kind::Url, "http://user@google.com:8080/"),
        ["top"]
    );
    assert!(ids(&lists, Kind::Url, "https://notgoogle.com/google.com").is_empty());
}

#[test]
fn string_lists_for_urls_compare_the_host_too() {
    let lists = Warninglists::compile(&[
        list("top", "string", DOMAIN, &["example.org"]),
        list("domains-only", "string", &["domain"], &["example.net"]),
    ])
    .expect("compiles");
    assert_eq!(ids(&lists, Kind::Url, "https://example.org/path"), ["top"]);
    assert!(ids(&lists, Kind::Url, "https://www.example.org/path").is_empty());
    // The list does not name URLs.
    assert!(ids(&lists, Kind::Url, "https://example.net/path").is_empty());
}

#[test]
fn cidr_lists_match_addresses_inside_and_not_at_the_edges_outside() {
    let lists = Warninglists::compile(&[
        list("private", "cidr", IP, &["10.0.0.0/8", "192.168.0.0/16"]),
        list(
            "resolvers",
            "cidr",
            IP,
            &["8.8.8.8", "2001:4860:4860::8888", "10.1.0.0/16"],
        ),
        list("doc6", "cidr", IP, &["2001:db8::/32"]),
        list("everything6", "cidr", IP, &["::/0"]),
    ])
    .expect("compiles");
    assert_eq!(ids(&lists, Kind::Ipv4, "10.0.0.0"), ["private"]);
    assert_eq!(ids(&lists, Kind::Ipv4, "10.255.255.255"), ["private"]);
    assert!(ids(&lists, Kind::Ipv4, "9.255.255.255").is_empty());
    assert!(ids(&lists, Kind::Ipv4, "11.0.0.0").is_empty());
    assert_eq!(
        ids(&lists, Kind::Ipv4, "10.1.2.3"),
        ["private", "resolvers"]
    );
    assert_eq!(ids(&lists, Kind::Ipv4, "8.8.8.8"), ["resolvers"]);
    assert!(ids(&lists, Kind::Ipv4, "8.8.8.9").is_empty());
    assert!(ids(&lists, Kind::Ipv4, "8.8.8.7").is_empty());
    assert_eq!(
        ids(&lists, Kind::Ipv6, "2001:db8::1"),
        ["doc6", "everything6"]
    );
    assert_eq!(
        ids(&lists, Kind::Ipv6, "2001:4860:4860::8888"),
        ["resolvers", "everything6"]
    );
    assert_eq!(
        ids(
            &lists,
            Kind::Ipv6,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        ),
        ["everything6"]
    );
    // A network matches a list that holds all of it.
    assert_eq!(ids(&lists, Kind::Cidr, "10.2.0.0/16"), ["private"]);
    assert_eq!(
        ids(&lists, Kind::Cidr, "10.1.0.0/16"),
        ["private", "resolvers"]
    );
    assert_eq!(ids(&lists, Kind::Cidr, "10.0.0.0/15"), ["private"]);
    assert!(ids(&lists, Kind::Cidr, "10.0.0.0/7").is_empty());
    assert!(ids(&lists, Kind::Cidr, "192.0.0.0/8").is_empty());
    // A URL to an address on a cidr list for destinations.
    assert_eq!(
        ids(&lists, Kind::Url, "http://192.168.1.1/admin"),
        ["private"]
    );
    assert_eq!(
        ids(&lists, Kind::Url, "http://[2001:db8::5]:8080/"),
        ["doc6", "everything6"]
    );
    assert!(ids(&lists, Kind::Url, "http://11.0.0.1/").is_empty());
}

#[test]
fn ranges_merge_touching_networks_of_one_list_and_follow_coverage_across_lists() {
    let lists = Warninglists::compile(&[
        list(
            "a",
            "cidr",
            IP,
            &["10.0.0.0/9", "10.128.0.0/9", "10.0.0.0/24"],
        ),
        list("b", "cidr", IP, &["10.64.0.0/10"]),
    ])
    .expect("compiles");
    // /9 + /9 touch: list a covers the /8 whole, though b's range cuts segments in it.
    assert_eq!(ids(&lists, Kind::Cidr, "10.0.0.0/8"), ["a"]);
    assert_eq!(ids(&lists, Kind::Cidr, "10.64.0.0/10"), ["a", "b"]);
    assert!(lists.v4.segments() >= 3);
}

#[test]
fn substring_and_regex_lists_match_inside_values() {
    let lists = Warninglists::compile(&[
        list(
            "sandboxes",
            "substring",
            &["domain", "url"],
            &["any.run", "Intezer"],
        ),
        list(
            "contacts",
            "regex",
            &["email-src"],
            &["/^(abuse|noc)@.*$/i"],
        ),
    ])
    .expect("compiles");
    assert_eq!(ids(&lists, Kind::Domain, "app.any.run"), ["sandboxes"]);
    assert_eq!(
        ids(&lists, Kind::Url, "https://analyze.intezer.com/x"),
        ["sandboxes"]
    );
    assert!(ids(&lists, Kind::Domain, "anyrun.example").is_empty());
    assert_eq!(ids(&lists, Kind::Email, "Abuse@corp.example"), ["contacts"]);
    assert!(ids(&lists, Kind::Email, "ceo@corp.example").is_empty());
    // The regex list names emails only.
    assert!(ids(&lists, Kind::Domain, "abuse.example").is_empty());
}

#[test]
fn default_set_loads_and_catches_what_a_cert_expects() {
    let lists = Warninglists::builtin();
    assert_eq!(lists.lists().len(), builtin::FILES.len());
    let loaded = load(&Sources {
        builtin: true,
        ..Sources::default()
    })
    .expect("default set loads");
    assert!(loaded.skipped.is_empty());
    for (kind, value, list) in [
        (Kind::Ipv4, "8.8.8.8", "public-dns-v4"),
        (Kind::Ipv6, "2001:4860:4860::8888", "public-dns-v6"),
        (Kind::Ipv4, "192.168.10.20", "rfc1918"),
        (Kind::Ipv4, "127.0.0.1", "rfc5735"),
        (Kind::Ipv6, "2001:db8::1", "rfc3849"),
        (Kind::Ipv4, "100.64.1.1", "rfc6598"),
        (Kind::Ipv4, "224.0.0.251", "multicast"),
        (Kind::Ipv6, "fe80::1", "ipv6-linklocal"),
        (
            Kind::Md5,
            "d41d8cd98f00b204e9800998ecf8427e",
            "empty-hashes",
        ),
        (
            Kind::Sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "empty-hashes",
        ),
        (Kind::Domain, "example.com", "rfc6761"),
        (Kind::Domain, "google.com", "cisco_top10k"),
        (Kind::Ipv4, "104.16.0.1", "cloudflare"),
    ] {
        let found = ids(&lists, kind, value);
        assert!(
            found.iter().any(|f| f == list),
            "{value}: {found:?}, expected {list}"
        );
    }
    // Plausible indicators are on none.
    for (kind, value) in [
        (Kind::Domain, "c2.badness-4821.xyz"),
        (Kind::Ipv4, "45.155.205.233"),
        (Kind::Md5, "44d88612fea8a8f36de82e1278abb02f"),
        (Kind::Url, "http://c2.badness-4821.xyz/gate.php"),
    ] {
        assert!(ids(&lists, kind, value).is_empty(), "{value}");
    }
}

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const GOOD: &str = r#"{"name":"Our partners","version":1,"description":"d","type":"string","matching_attributes":["domain"],"list":["partner.example"]}"#;
const BAD: &str = r#"{"name":"Broken","version":1,"description":"d","type":"strnig","list":["x"]}"#;

#[test]
fn an_operators_folder_adds_lists_and_disabled_turns_any_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "partners/list.json", GOOD);
    write(
        dir.path(),
        "flat.json",
        &GOOD.replace("partner.example", "flat.example"),
    );
    write(dir.path(), "notes.txt", "not a list");
    let loaded = load(&Sources {
        builtin: true,
        dir: Some(dir.path().to_path_buf()),
        disabled: vec!["rfc1918".into()],
        skip_invalid: false,
    })
    .expect("loads");
    let lists = loaded.lists;
    assert_eq!(ids(&lists, Kind::Domain, "partner.example"), ["partners"]);
    assert_eq!(ids(&lists, Kind::Domain, "flat.example"), ["flat"]);
    // 192.168.0.0/16 is in RFC 5735 too: only that list is left for it.
    assert_eq!(ids(&lists, Kind::Ipv4, "192.168.1.1"), ["rfc5735"]);
    assert_eq!(lists.lists().len(), builtin::FILES.len() - 1 + 2);
}

#[test]
fn an_unknown_disabled_name_is_an_error_naming_it() {
    let error = load(&Sources {
        builtin: true,
        disabled: vec!["rfc1919".into()],
        ..Sources::default()
    })
    .expect_err("unknown name refused");
    let shown = error.to_string();
    assert!(shown.contains("\"rfc1919\""), "{shown}");
    assert!(shown.contains("rfc1918"), "{shown}");
}

#[test]
fn a_malformed_file_stops_loading_unless_skip_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "partners/list.json", GOOD);
    write(dir.path(), "broken/list.json", BAD);
    let mut sources = Sources {
        builtin: false,
        dir: Some(dir.path().to_path_buf()),
        ..Sources::default()
    };
    let error = load(&sources).expect_err("malformed file refused");
    let shown = error.to_string();
    let path = dir.path().join("broken/list.json");
    assert!(
        shown.starts_with(&format!(
            "{}: `type`: unknown type \"strnig\"",
            path.display()
        )),
        "{shown}"
    );
    sources.skip_invalid = true;
    let loaded = load(&sources).expect("loads without the broken file");
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].path, path);
    assert_eq!(loaded.skipped[0].field, "type");
    assert_eq!(
        ids(&loaded.lists, Kind::Domain, "partner.example"),
        ["partners"]
    );
    assert_eq!(loaded.lists.lists().len(), 1);
}

#[test]
fn a_missing_folder_is_an_error_naming_it() {
    let error = load(&Sources {
        dir: Some("/nonexistent/warninglists".into()),
        ..Sources::default()
    })
    .expect_err("missing folder refused");
    assert!(
        error
            .to_string()
            .starts_with("warninglists.dir /nonexistent/warninglists: "),
        "{error}"
    );
}

#[test]
fn counts_add_up_per_list() {
    let lists = Arc::new(
        Warninglists::compile(&[list("private", "cidr", IP, &["10.0.0.0/8"])]).expect("compiles"),
    );
    let counts = Counts::new(lists);
    for text in ["10.0.0.1", "10.9.9.9", "11.0.0.1"] {
        counts.count(&Value::parse(Kind::Ipv4, text).expect("valid"));
    }
    assert_eq!(counts.snapshot(), [("private".to_owned(), 2)]);
}
