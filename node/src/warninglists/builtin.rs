//! The default set, compiled into the binary: MISP warninglists chosen for what a CERT
//! expects to be warned of (see `node/warninglists/PROVENANCE.md` for where each came
//! from and why it was chosen). Each file is embedded as published upstream.

/// One embedded file: its path under `node/warninglists/` and its text.
macro_rules! builtin {
    ($id:literal) => {
        (
            concat!("lists/", $id, "/list.json"),
            include_str!(concat!("../../warninglists/lists/", $id, "/list.json")),
        )
    };
}

/// Every default list, by path.
pub(super) const FILES: &[(&str, &str)] = &[
    builtin!("akamai"),
    builtin!("amazon-aws"),
    builtin!("cisco_top10k"),
    builtin!("cloudflare"),
    builtin!("empty-hashes"),
    builtin!("fastly"),
    builtin!("google-gcp"),
    builtin!("ipv6-linklocal"),
    builtin!("microsoft-azure"),
    builtin!("multicast"),
    builtin!("public-dns-v4"),
    builtin!("public-dns-v6"),
    builtin!("rfc1918"),
    builtin!("rfc3849"),
    builtin!("rfc5735"),
    builtin!("rfc6598"),
    builtin!("rfc6761"),
];
