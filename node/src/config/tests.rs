//! The configuration's tests: the template, errors that name the setting, tokens and
//! warninglists.

use super::*;

fn parse(text: &str) -> Result<Config, toml::de::Error> {
    toml::from_str(text)
}

#[test]
fn template_parses_and_needs_only_the_federation() {
    let config = parse(&template(
        &"t".repeat(32),
        "127.0.0.1:8080",
        "/ip4/0.0.0.0/tcp/4001",
    ))
    .unwrap();
    let error = config.validate(Path::new("/x")).unwrap_err();
    assert!(error.to_string().contains("node.federation"), "{error}");
    let mut config = config;
    config.node.federation = Some(Hash::of(b"f").to_string());
    let valid = config.validate(Path::new("/x")).unwrap();
    assert_eq!(valid.data_dir, PathBuf::from("/x/data"));
    assert_eq!(
        valid.encryption_key_file,
        Some(PathBuf::from("/x/encryption.key"))
    );
    assert_eq!(valid.network.sync_interval, Duration::from_secs(10));
    // The template writes the defaults of the rate limits out.
    let defaults = crate::network::Config::default();
    let limits = |config: &crate::network::Config| {
        (
            config.author_limit.messages_per_sec,
            config.author_limit.message_burst,
            config.author_limit.bytes_per_sec,
            config.author_limit.byte_burst,
            config.peer_limit.bytes_per_sec,
            config.peer_limit.byte_burst,
        )
    };
    assert_eq!(limits(&valid.network), limits(&defaults));
    // The template's values are the defaults.
    let defaults = crate::network::Config::default();
    assert_eq!(valid.network.ip_max_pending, defaults.ip_max_pending);
    assert_eq!(
        valid.network.ip_connections_per_sec,
        defaults.ip_connections_per_sec
    );
    assert_eq!(
        valid.network.ip_connection_burst,
        defaults.ip_connection_burst
    );
    assert_eq!(valid.network.handshake_timeout, defaults.handshake_timeout);
    assert_eq!(valid.api_limits, crate::api::ApiLimits::default());
    assert!(valid.taxii_background_index);
}

#[test]
fn errors_name_the_setting() {
    let error = parse("[api]\nlisten = 8080\n").unwrap_err().to_string();
    assert!(error.contains("listen"), "{error}");
    let error = parse("[network]\nlisten_on = []\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("listen_on"), "{error}");
    let mut config = Config::default();
    config.node.federation = Some(Hash::of(b"f").to_string());
    config.api.tokens = vec!["short".into()];
    let error = config.validate(Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("api.tokens"), "{error}");
    config.api.tokens = vec!["x".repeat(20)];
    config.network.listen = vec!["not an address".into()];
    let error = config.validate(Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("network.listen"), "{error}");
}

#[test]
fn read_tokens_are_checked_as_tokens_are_and_none_may_be_a_full_token() {
    let mut config = Config::default();
    config.node.federation = Some(Hash::of(b"f").to_string());
    let (full, read) = ("f".repeat(20), "r".repeat(20));
    config.api.tokens = vec![full.clone()];
    let valid = config.validate(Path::new(".")).unwrap();
    assert!(valid.read_tokens.is_empty(), "none unless listed");
    config.api.read_tokens = vec![read.clone()];
    let valid = config.validate(Path::new(".")).unwrap();
    assert_eq!(
        (valid.tokens, valid.read_tokens),
        (vec![full.clone()], vec![read.clone()])
    );
    config.api.read_tokens = vec![read.clone(), "short".into()];
    let error = config.validate(Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("api.read_tokens"), "{error}");
    assert!(error.contains("5 characters"), "{error}");
    config.api.read_tokens = vec![read.clone(), full.clone()];
    let error = config.validate(Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("api.read_tokens"), "{error}");
    assert!(error.contains("read token 2"), "{error}");
    assert!(error.contains("also in api.tokens"), "{error}");
    assert!(!error.contains(&full), "the error shows the token: {error}");
    // Read tokens alone are not enough: something must be able to publish.
    config.api.tokens.clear();
    config.api.read_tokens = vec![read];
    let error = config.validate(Path::new(".")).unwrap_err().to_string();
    assert!(error.contains("api.tokens: at least one"), "{error}");
}

#[test]
fn the_templates_read_token_line_works_once_uncommented() {
    let template = template(&"t".repeat(32), "127.0.0.1:8080", "/ip4/0.0.0.0/tcp/4001");
    let line = "# read_tokens = [\"...\"]";
    assert!(template.contains(line), "{template}");
    let read = "r".repeat(48);
    let mut config =
        parse(&template.replace(line, &format!("read_tokens = [\"{read}\"]"))).unwrap();
    config.node.federation = Some(Hash::of(b"f").to_string());
    let valid = config.validate(Path::new("/x")).unwrap();
    assert_eq!(valid.read_tokens, [read]);
}

#[test]
fn warninglists_are_on_by_default_and_configured_by_name_and_folder() {
    let template = template(&"t".repeat(32), "127.0.0.1:8080", "/ip4/0.0.0.0/tcp/4001");
    let mut config = parse(&template).unwrap();
    config.node.federation = Some(Hash::of(b"f").to_string());
    let lists = |config: &Config| {
        let valid = config.validate(Path::new("/x")).unwrap();
        let ids: Vec<String> = valid
            .network
            .warninglists
            .lists()
            .iter()
            .map(|l| l.id.clone())
            .collect();
        (ids, valid.warninglists_skipped)
    };
    let (ids, _) = lists(&config);
    assert!(ids.contains(&"rfc1918".to_owned()), "{ids:?}");
    // Turned off by name; a name that is no list is refused, naming it.
    config.warninglists.disabled = vec!["rfc1918".into()];
    assert!(!lists(&config).0.contains(&"rfc1918".to_owned()));
    config.warninglists.disabled = vec!["rfc1819".into()];
    let error = config.validate(Path::new("/x")).unwrap_err().to_string();
    assert!(
        error.contains("warninglists.disabled: no list is called \"rfc1819\""),
        "{error}"
    );
    config.warninglists.disabled.clear();
    // A folder relative to the file, with one good and one malformed list.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lists/ours")).unwrap();
    std::fs::write(
        dir.path().join("lists/ours/list.json"),
        r#"{"name":"Ours","version":1,"description":"","type":"string","list":["partner.example"]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("lists/bad.json"),
        r#"{"name":"Bad","version":1,"type":"cidr","list":["300.0.0.0/8"]}"#,
    )
    .unwrap();
    config.warninglists.dir = Some(PathBuf::from("lists"));
    let error = config.validate(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("lists/bad.json: `list[0]`: \"300.0.0.0/8\" is not an IP"),
        "{error}"
    );
    config.warninglists.skip_invalid = true;
    let valid = config.validate(dir.path()).unwrap();
    assert_eq!(valid.warninglists_skipped.len(), 1);
    assert!(
        valid
            .network
            .warninglists
            .lists()
            .iter()
            .any(|l| l.id == "ours")
    );
    // Off altogether.
    let config: Config = parse(&template.replace("enabled = true", "enabled = false"))
        .map(|mut c| {
            c.node.federation = Some(Hash::of(b"f").to_string());
            c
        })
        .unwrap();
    assert!(lists(&config).0.is_empty());
}

/// Each `[network]` key of the table lands in its own field of `network::Config`: every
/// key is set to a value no default has, and every field is read back.
#[test]
fn every_network_key_sets_its_own_field() {
    let text = "[node]\nfederation = \"FED\"\n[api]\ntokens = [\"TOKEN\"]\n[network]\n\
        handshake_timeout_secs = 11\nsync_interval_secs = 12\nsync_peers = 13\n\
        target_peers = 14\nmdns = true\nmax_connections = 15\nclock_skew_secs = 0\n\
        peer_messages_per_sec = 16\npeer_message_burst = 17\npeer_bytes_per_sec = 18\n\
        peer_byte_burst = 19\nauthor_messages_per_sec = 20\nauthor_message_burst = 21\n\
        author_bytes_per_sec = 22\nauthor_byte_burst = 23\nip_max_pending = 24\n\
        ip_connections_per_sec = 25\nip_connection_burst = 26\n"
        .replace("FED", &Hash::of(b"f").to_string())
        .replace("TOKEN", &"t".repeat(20));
    let network = parse(&text)
        .unwrap()
        .validate(Path::new("."))
        .unwrap()
        .network;
    let seconds = Duration::from_secs;
    assert_eq!(
        (
            network.handshake_timeout,
            network.sync_interval,
            network.clock_skew
        ),
        (seconds(11), seconds(12), seconds(0))
    );
    assert_eq!(
        (network.sync_peers, network.target_peers, network.mdns),
        (13, 14, true)
    );
    assert_eq!(network.max_connections, 15);
    let limit = |limit: &crate::network::RateLimit| {
        (
            limit.messages_per_sec,
            limit.message_burst,
            limit.bytes_per_sec,
            limit.byte_burst,
        )
    };
    assert_eq!(limit(&network.peer_limit), (16, 17, 18, 19));
    assert_eq!(limit(&network.author_limit), (20, 21, 22, 23));
    assert_eq!(
        (
            network.ip_max_pending,
            network.ip_connections_per_sec,
            network.ip_connection_burst
        ),
        (24, 25, 26)
    );
    // The checked periods still refuse 0, naming the key.
    let zero = text.replace("sync_interval_secs = 12", "sync_interval_secs = 0");
    let error = parse(&zero)
        .unwrap()
        .validate(Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(error.contains("network.sync_interval_secs"), "{error}");
}
