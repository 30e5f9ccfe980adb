//! Warninglists: values that are almost certainly false positives if shared as indicators
//! (a public DNS resolver, an RFC 1918 address, the hash of an empty file, a top domain).
//!
//! Lists are read in MISP's warninglist format (`list.rs`) from the default set compiled
//! into the binary (`builtin.rs`) and from an operator's own folder, then compiled once
//! into a [`Warninglists`]: `string` lists into one hash map, `hostname` lists into
//! another that a value's parent domains are looked up in, `cidr` lists into sorted
//! disjoint ranges per address family searched by bisection (`ranges.rs`), `substring`
//! lists into one Aho-Corasick automaton and `regex` lists into one `RegexSet`. A lookup
//! returns the lists a value is on, as indexes into [`Warninglists::lists`].
//!
//! Which lists apply to a value follows MISP: a list names the MISP attribute types it is
//! for (`matching_attributes`; none named: every type), and each threatmesh kind stands
//! for a few MISP types ([`misp_types`]). A URL is compared whole with `string`,
//! `substring` and `regex` lists for URLs, and its host with `string` and `hostname` lists
//! for URLs; when the host is an IP address it is also looked up in the `cidr` lists for
//! destination addresses (`ip-dst`), since a URL to a private or resolver address is as
//! much a false positive as the address (MISP's `cidr` lists name no URL types, so this
//! is our choice).
//!
//! Publishing and importing hold listed values back, lookups and exports mark them, and
//! ingest from peers counts them ([`Counts`]); those live with their callers.

mod builtin;
mod list;
mod ranges;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aho_corasick::AhoCorasick;
use regex::RegexSet;
use rustc_hash::FxHashMap;
use threatmesh_protocol::indicator::{Kind, Value};

use list::Network;
pub use list::{List, ListError, ListType};
use ranges::Ranges;

/// The MISP attribute types a threatmesh kind stands for, when deciding whether a list
/// applies to it (its `matching_attributes`).
pub fn misp_types(kind: Kind) -> &'static [&'static str] {
    const IP: &[&str] = &[
        "ip-src",
        "ip-dst",
        "ip-src|port",
        "ip-dst|port",
        "domain|ip",
    ];
    match kind {
        Kind::Ipv4 | Kind::Ipv6 | Kind::Cidr => IP,
        Kind::Domain => &["domain", "hostname", "domain|ip"],
        Kind::Url => &["url", "link", "uri"],
        Kind::Email => &[
            "email",
            "email-src",
            "email-dst",
            "target-email",
            "whois-registrant-email",
            "dns-soa-email",
        ],
        Kind::Md5 => &["md5", "filename|md5"],
        Kind::Sha1 => &["sha1", "filename|sha1"],
        Kind::Sha256 => &["sha256", "filename|sha256"],
        Kind::Sha512 => &["sha512", "filename|sha512"],
        Kind::Asn => &["AS"],
        Kind::Cve => &["vulnerability"],
        Kind::StixPattern => &["stix2-pattern"],
    }
}

/// A compiled list's description: what reports and marks name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    /// The list's id (`rfc1918`), as in configuration and marks.
    pub id: String,
    /// Its `name`, a sentence for people.
    pub name: String,
    /// Its `type`.
    pub list_type: ListType,
    /// How many entries it has.
    pub entries: usize,
    /// Kinds it applies to, one bit per place in [`Kind::ALL`].
    applies: u16,
}

impl ListInfo {
    /// Whether the list applies to values of `kind`.
    pub fn applies_to(&self, kind: Kind) -> bool {
        self.applies & bit(kind) != 0
    }
}

fn bit(kind: Kind) -> u16 {
    let place = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    1 << place
}

/// Every enabled list, compiled for lookups. Built once at start; cheap to share in an
/// `Arc`.
#[derive(Debug, Default)]
pub struct Warninglists {
    lists: Vec<ListInfo>,
    strings: FxHashMap<Box<str>, Vec<u16>>,
    hostnames: FxHashMap<Box<str>, Vec<u16>>,
    v4: Ranges,
    v6: Ranges,
    substrings: Option<(AhoCorasick, Vec<u16>)>,
    regexes: Option<(RegexSet, Vec<u16>)>,
    /// Per kind: which of the structures any list applies through, so a value of a kind
    /// no list cares about costs nothing.
    uses: [Uses; Kind::ALL.len()],
}

#[derive(Debug, Default, Clone, Copy)]
struct Uses {
    string: bool,
    hostname: bool,
    cidr: bool,
    substring: bool,
    regex: bool,
}

/// Why the lists could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A list file is malformed.
    #[error(transparent)]
    List(#[from] ListError),
    /// `disabled` names a list that none of the loaded files is.
    #[error("warninglists.disabled: no list is called {name:?}; lists: {known}")]
    UnknownDisabled {
        /// The name given.
        name: String,
        /// The ids there are, comma-separated.
        known: String,
    },
    /// The operator's folder could not be read.
    #[error("warninglists.dir {}: {source}", path.display())]
    Dir {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Too many lists for the compiled form's list numbers.
    #[error("warninglists: {0} lists, at most {max}", max = u16::MAX)]
    TooMany(usize),
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The enabled lists, compiled.
    pub lists: Warninglists,
    /// Malformed files left out because `skip_invalid` was set.
    pub skipped: Vec<ListError>,
}

/// Where lists come from and which are on: the `[warninglists]` configuration.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Whether to load the default set.
    pub builtin: bool,
    /// An operator's folder of lists: `NAME/list.json` (MISP's layout) or `NAME.json`.
    /// A list with a default list's id replaces it.
    pub dir: Option<PathBuf>,
    /// Ids of lists to leave off.
    pub disabled: Vec<String>,
    /// Leave out a malformed file (reported in [`Loaded::skipped`]) instead of failing.
    pub skip_invalid: bool,
}

/// Reads and compiles the lists `sources` name.
pub fn load(sources: &Sources) -> Result<Loaded, LoadError> {
    let mut lists: Vec<List> = Vec::new();
    let mut skipped = Vec::new();
    let mut take = |parsed: Result<List, ListError>, lists: &mut Vec<List>| match parsed {
        Ok(list) => {
            lists.retain(|l| l.id != list.id);
            lists.push(list);
            Ok(())
        }
        Err(error) if sources.skip_invalid => {
            skipped.push(error);
            Ok(())
        }
        Err(error) => Err(error),
    };
    if sources.builtin {
        for (path, text) in builtin::FILES {
            take(List::parse(Path::new(path), text), &mut lists)?;
        }
    }
    if let Some(dir) = &sources.dir {
        for path in list_files(dir)? {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Dir {
                path: path.clone(),
                source,
            });
            let parsed = match text {
                Ok(text) => List::parse(&path, &text),
                Err(LoadError::Dir { path, source }) => Err(ListError {
                    path,
                    field: "file".into(),
                    reason: format!("cannot be read: {source}"),
                }),
                Err(other) => return Err(other),
            };
            take(parsed, &mut lists)?;
        }
    }
    for name in &sources.disabled {
        if !lists.iter().any(|list| &list.id == name) {
            let mut known: Vec<&str> = lists.iter().map(|list| list.id.as_str()).collect();
            known.sort_unstable();
            return Err(LoadError::UnknownDisabled {
                name: name.clone(),
                known: known.join(", "),
            });
        }
    }
    lists.retain(|list| !sources.disabled.contains(&list.id));
    Ok(Loaded {
        lists: Warninglists::compile(&lists)?,
        skipped,
    })
}

/// The list files in `dir`, in name order: `*/list.json` and `*.json`.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Dir { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error(dir))? {
        let path = entry.map_err(error(dir))?.path();
        if path.is_dir() {
            let file = path.join("list.json");
            if file.is_file() {
                files.push(file);
            }
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl Warninglists {
    /// The default set with every list on, compiled once per process and shared.
    pub fn builtin() -> Arc<Warninglists> {
        static BUILTIN: OnceLock<Arc<Warninglists>> = OnceLock::new();
        Arc::clone(BUILTIN.get_or_init(|| {
            let sources = Sources {
                builtin: true,
                ..Sources::default()
            };
            // The embedded files are checked by the tests (`default_set_loads`), so this
            // fails only on a build whose embedded lists were edited untested: say so
            // loudly rather than stop a node that may have its own lists too.
            match load(&sources) {
                Ok(loaded) => Arc::new(loaded.lists),
                Err(error) => {
                    tracing::error!(%error, "the built-in warninglists do not load; none in force");
                    Arc::new(Warninglists::default())
                }
            }
        }))
    }

    /// No lists at all: nothing matches.
    pub fn none() -> Arc<Warninglists> {
        Arc::new(Warninglists::default())
    }

    /// Compiles `lists`.
    pub fn compile(lists: &[List]) -> Result<Warninglists, LoadError> {
        if lists.len() > usize::from(u16::MAX) {
            return Err(LoadError::TooMany(lists.len()));
        }
        let mut compiled = Warninglists::default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut patterns: Vec<&str> = Vec::new();
        let mut pattern_lists = Vec::new();
        let mut regexes: Vec<&str> = Vec::new();
        let mut regex_lists = Vec::new();
        for (index, list) in lists.iter().enumerate() {
            let number = u16::try_from(index).unwrap_or(u16::MAX);
            let mut applies = 0u16;
            for kind in Kind::ALL {
                let types = misp_types(kind);
                if list.matching_attributes.is_empty()
                    || list
                        .matching_attributes
                        .iter()
                        .any(|t| types.contains(&t.as_str()))
                {
                    applies |= bit(kind);
                }
            }
            for (place, kind) in Kind::ALL.into_iter().enumerate() {
                if applies & bit(kind) == 0 {
                    continue;
                }
                let uses = &mut compiled.uses[place];
                match list.list_type {
                    ListType::String => uses.string = true,
                    ListType::Hostname => uses.hostname = true,
                    ListType::Cidr => uses.cidr = true,
                    ListType::Substring => uses.substring = true,
                    ListType::Regex => uses.regex = true,
                }
            }
            for entry in &list.entries {
                match list.list_type {
                    ListType::String => add(&mut compiled.strings, entry, number),
                    ListType::Hostname => add(&mut compiled.hostnames, entry, number),
                    ListType::Cidr => {
                        // Checked when the list was read.
                        if let Ok(network) = Network::parse(entry) {
                            let table = if network.is_v6 { &mut v6 } else { &mut v4 };
                            table.push((number, network.first, network.last));
                        }
                    }
                    ListType::Substring => {
                        patterns.push(entry);
                        pattern_lists.push(number);
                    }
                    ListType::Regex => {
                        regexes.push(entry);
                        regex_lists.push(number);
                    }
                }
            }
            compiled.lists.push(ListInfo {
                id: list.id.clone(),
                name: list.name.clone(),
                list_type: list.list_type,
                entries: list.entries.len(),
                applies,
            });
        }
        // A URL's IP host goes to the cidr lists for addresses.
        let url = place(Kind::Url);
        compiled.uses[url].cidr |= compiled.uses[place(Kind::Ipv4)].cidr;
        compiled.v4 = Ranges::build(v4);
        compiled.v6 = Ranges::build(v6);
        if !patterns.is_empty() {
            let automaton = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&patterns)
                .map_err(|error| {
                    LoadError::List(ListError {
                        path: PathBuf::from("(substring lists)"),
                        field: "list".into(),
                        reason: error.to_string(),
                    })
                })?;
            compiled.substrings = Some((automaton, pattern_lists));
        }
        if !regexes.is_empty() {
            let set = RegexSet::new(&regexes).map_err(|error| {
                LoadError::List(ListError {
                    path: PathBuf::from("(regex lists)"),
                    field: "list".into(),
                    reason: error.to_string(),
                })
            })?;
            compiled.regexes = Some((set, regex_lists));
        }
        Ok(compiled)
    }

    /// The enabled lists; [`Warninglists::matches`] answers with indexes into this.
    pub fn lists(&self) -> &[ListInfo] {
        &self.lists
    }

    /// Whether no list is enabled.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The lists `value` is on, in list order, each once.
    pub fn matches(&self, value: &Value) -> Vec<u16> {
        self.matches_text(value.kind(), value.as_str())
    }

    /// The ids of the lists `value` is on.
    pub fn ids(&self, value: &Value) -> Vec<&str> {
        self.matches(value)
            .into_iter()
            .filter_map(|list| self.lists.get(usize::from(list)))
            .map(|list| list.id.as_str())
            .collect()
    }

    /// The lists a normalised value of `kind` is on (see [`Warninglists::matches`]).
    pub fn matches_text(&self, kind: Kind, value: &str) -> Vec<u16> {
        let mut found: Vec<u16> = Vec::new();
        let uses = self.uses[place(kind)];
        let mask = bit(kind);
        let mut add = |list: u16, mask: u16| {
            let applies = self
                .lists
                .get(usize::from(list))
                .is_some_and(|info| info.applies & mask != 0);
            if applies && !found.contains(&list) {
                found.push(list);
            }
        };
        let lowered = lower(value);
        let value = lowered.as_ref();
        if uses.string {
            for &list in self.strings.get(value).into_iter().flatten() {
                add(list, mask);
            }
        }
        match kind {
            Kind::Ipv4 | Kind::Ipv6 if uses.cidr => {
                if let Ok(address) = value.parse::<IpAddr>() {
                    self.addresses(address, |list| add(list, mask));
                }
            }
            Kind::Cidr if uses.cidr => {
                if let Ok(network) = Network::parse(value) {
                    let table = if network.is_v6 { &self.v6 } else { &self.v4 };
                    table.covering(network.first, network.last, |list| add(list, mask));
                }
            }
            Kind::Domain if uses.hostname => {
                self.hostnames(value, |list| add(list, mask));
            }
            Kind::Url => {
                if let Some(host) = url_host(value) {
                    if uses.string {
                        for &list in self.strings.get(host).into_iter().flatten() {
                            add(list, mask);
                        }
                    }
                    if uses.hostname {
                        self.hostnames(host, |list| add(list, mask));
                    }
                    if uses.cidr {
                        let bare = host.trim_start_matches('[').trim_end_matches(']');
                        if let Ok(address) = bare.parse::<IpAddr>() {
                            self.addresses(address, |list| add(list, bit(Kind::Ipv4)));
                        }
                    }
                }
            }
            _ => {}
        }
        if uses.substring
            && let Some((automaton, lists)) = &self.substrings
        {
            for hit in automaton.find_overlapping_iter(value) {
                if let Some(&list) = lists.get(hit.pattern().as_usize()) {
                    add(list, mask);
                }
            }
        }
        if uses.regex
            && let Some((set, lists)) = &self.regexes
        {
            for index in set.matches(value).iter() {
                if let Some(&list) = lists.get(index) {
                    add(list, mask);
                }
            }
        }
        found.sort_unstable();
        found
    }

    fn addresses(&self, address: IpAddr, found: impl FnMut(u16)) {
        match address {
            IpAddr::V4(v4) => {
                let number = u128::from(u32::from(v4));
                self.v4.covering(number, number, found);
            }
            IpAddr::V6(v6) => {
                // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address.
                if let Some(v4) = v6.to_ipv4_mapped() {
                    let number = u128::from(u32::from(v4));
                    self.v4.covering(number, number, found);
                } else {
                    let number = u128::from(v6);
                    self.v6.covering(number, number, found);
                }
            }
        }
    }

    /// Looks `host` and each of its parent domains up in the hostname lists.
    fn hostnames(&self, host: &str, mut found: impl FnMut(u16)) {
        let host = host.trim_end_matches('.');
        let mut rest = host;
        loop {
            for &list in self.hostnames.get(rest).into_iter().flatten() {
                found(list);
            }
            match rest.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => rest = parent,
                _ => break,
            }
        }
    }
}

fn add(map: &mut FxHashMap<Box<str>, Vec<u16>>, entry: &str, list: u16) {
    let lists = map.entry(entry.into()).or_default();
    if !lists.contains(&list) {
        lists.push(list);
    }
}

fn place(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// `text` in lower case, copied only when it has upper-case letters.
fn lower(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_uppercase) {
        Cow::Owned(text.to_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// The host of a URL (`scheme://user@host:port/path`), without user or port; IPv6 hosts
/// keep their brackets.
fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port
            .split_once(']')
            .map(|(h, _)| &host_port[..=h.len()])?
    } else {
        host_port.split_once(':').map_or(host_port, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

/// Matches counted per list, for `/metrics`: one node's count of values received from
/// peers that are on each list.
#[derive(Debug)]
pub struct Counts {
    lists: Arc<Warninglists>,
    counts: Vec<AtomicU64>,
}

impl Counts {
    /// Zero counts for each of `lists`.
    pub fn new(lists: Arc<Warninglists>) -> Counts {
        let counts = lists.lists().iter().map(|_| AtomicU64::new(0)).collect();
        Counts { lists, counts }
    }

    /// The lists counted.
    pub fn lists(&self) -> &Arc<Warninglists> {
        &self.lists
    }

    /// Checks `value` and counts each list it is on.
    pub fn count(&self, value: &Value) {
        for list in self.lists.matches(value) {
            if let Some(count) = self.counts.get(usize::from(list)) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// `(list id, matches counted)` for every list.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.lists
            .lists()
            .iter()
            .zip(&self.counts)
            .map(|(list, count)| (list.id.clone(), count.load(Ordering::Relaxed)))
            .collect()
    }
}
