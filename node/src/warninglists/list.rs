//! One warninglist file in the MISP format, read and checked.
//!
//! A file is a JSON object with `name`, `version`, `description`, `type` (`string`,
//! `substring`, `hostname`, `cidr` or `regex`), `matching_attributes` (the MISP attribute
//! types it applies to; empty or absent: every type) and `list` (the entries). Every error
//! names the file and the field at fault, so an operator can fix it from the message alone.
//! Entries are checked here, once, so compiling a set of lists cannot fail on them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// How a list's entries are compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListType {
    /// The whole value equals an entry (case-insensitive).
    String,
    /// An entry occurs somewhere in the value (case-insensitive).
    Substring,
    /// The value's host is an entry or a subdomain of one.
    Hostname,
    /// The address (or the whole network) lies inside an entry's network.
    Cidr,
    /// A regular expression of the entry matches the value.
    Regex,
}

impl ListType {
    /// The name used in the `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ListType::String => "string",
            ListType::Substring => "substring",
            ListType::Hostname => "hostname",
            ListType::Cidr => "cidr",
            ListType::Regex => "regex",
        }
    }
}

/// A network of a `cidr` list: first and last address, with v4 kept apart from v6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Network {
    pub(crate) is_v6: bool,
    pub(crate) first: u128,
    pub(crate) last: u128,
}

impl Network {
    /// Reads `10.0.0.0/8`, `2001:db8::/32` or a bare address (a single host). Host bits
    /// set below the prefix are cleared, as MISP does: lists copied from providers have them.
    pub(crate) fn parse(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let (is_v6, bits, number) = match address {
            IpAddr::V4(v4) => (false, 32u32, u128::from(u32::from(v4))),
            IpAddr::V6(v6) => (true, 128u32, u128::from(v6)),
        };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("{text:?}: prefix length must be 0 to {bits}"))?,
        };
        let host_bits = bits - prefix;
        let host_mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        Ok(Network {
            is_v6,
            first: number & !host_mask,
            last: number | host_mask,
        })
    }
}

/// A warninglist as read from its file, entries checked and normalised for its type.
#[derive(Debug, Clone)]
pub struct List {
    /// What the list is called in configuration, reports and marks: the folder of a
    /// MISP-layout file (`lists/rfc1918/list.json` is `rfc1918`), or the file's stem.
    pub id: String,
    /// The `name` field: a sentence for people.
    pub name: String,
    /// The `version` field.
    pub version: u64,
    /// The `description` field.
    pub description: String,
    /// The `type` field.
    pub list_type: ListType,
    /// The MISP attribute types it applies to; empty means every type.
    pub matching_attributes: Vec<String>,
    /// The entries, normalised: lower case for string, substring and hostname lists,
    /// hostnames without a leading `*.` or `.` and without a trailing dot.
    pub entries: Vec<String>,
}

/// A list file that cannot be used: which file, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: `{field}`: {reason}", path.display())]
pub struct ListError {
    /// The file.
    pub path: PathBuf,
    /// The field at fault (`type`, `list[3]`, ...), or `file` when it is not JSON at all.
    pub field: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl List {
    /// Reads the list in `text`, found at `path` (for errors and the id).
    pub fn parse(path: &Path, text: &str) -> Result<List, ListError> {
        let error = |field: &str, reason: String| ListError {
            path: path.to_path_buf(),
            field: field.to_owned(),
            reason,
        };
        let json: Json = serde_json::from_str(text)
            .map_err(|e| error("file", format!("not valid JSON: {e}")))?;
        let Json::Object(object) = json else {
            return Err(error("file", "expected a JSON object".into()));
        };
        let string = |field: &str| -> Result<String, ListError> {
            match object.get(field) {
                Some(Json::String(text)) => Ok(text.clone()),
                Some(_) => Err(error(field, "expected a string".into())),
                None => Err(error(field, "missing".into())),
            }
        };
        let name = string("name")?;
        if name.trim().is_empty() {
            return Err(error("name", "empty".into()));
        }
        let description = match object.get("description") {
            None => String::new(),
            Some(Json::String(text)) => text.clone(),
            Some(_) => return Err(error("description", "expected a string".into())),
        };
        let version = match object.get("version") {
            Some(Json::Number(number)) => number
                .as_u64()
                .ok_or_else(|| error("version", format!("{number} is not a whole number")))?,
            Some(_) => return Err(error("version", "expected a whole number".into())),
            None => return Err(error("version", "missing".into())),
        };
        let list_type = match string("type")?.as_str() {
            "string" => ListType::String,
            "substring" => ListType::Substring,
            "hostname" => ListType::Hostname,
            "cidr" => ListType::Cidr,
            "regex" => ListType::Regex,
            other => {
                return Err(error(
                    "type",
                    format!(
                        "unknown type {other:?}: expected string, substring, hostname, cidr \
                         or regex"
                    ),
                ));
            }
        };
        let strings = |field: &str| -> Result<Vec<String>, ListError> {
            match object.get(field) {
                None | Some(Json::Null) => Ok(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        Json::String(text) => Ok(text.clone()),
                        _ => Err(error(
                            &format!("{field}[{index}]"),
                            "expected a string".into(),
                        )),
                    })
                    .collect(),
                Some(_) => Err(error(field, "expected an array of strings".into())),
            }
        };
        let matching_attributes = strings("matching_attributes")?;
        if object.get("list").is_none() {
            return Err(error("list", "missing".into()));
        }
        let mut entries = Vec::new();
        for (index, entry) in strings("list")?.into_iter().enumerate() {
            let field = || format!("list[{index}]");
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(error(&field(), "empty entry".into()));
            }
            let normalised = match list_type {
                ListType::String | ListType::Substring => entry.to_lowercase(),
                ListType::Hostname => {
                    let host = entry
                        .trim_start_matches("*.")
                        .trim_start_matches('.')
                        .trim_end_matches('.')
                        .to_lowercase();
                    if host.is_empty() {
                        return Err(error(&field(), format!("{entry:?} names no host")));
                    }
                    host
                }
                ListType::Cidr => {
                    Network::parse(entry).map_err(|reason| error(&field(), reason))?;
                    entry.to_owned()
                }
                ListType::Regex => {
                    let pattern = regex_pattern(entry).map_err(|reason| error(&field(), reason))?;
                    regex::Regex::new(&pattern)
                        .map_err(|e| error(&field(), format!("not a valid regex: {e}")))?;
                    pattern
                }
            };
            entries.push(normalised);
        }
        Ok(List {
            id: list_id(path),
            name,
            version,
            description,
            list_type,
            matching_attributes,
            entries,
        })
    }
}

/// The id of the list at `path`: the folder of a `list.json` (MISP's layout), else the
/// file's stem.
pub(crate) fn list_id(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if stem.as_deref() == Some("list")
        && let Some(folder) = path.parent().and_then(Path::file_name)
    {
        return folder.to_string_lossy().into_owned();
    }
    stem.unwrap_or_default()
}

/// MISP writes regex entries as PCRE literals, `/pattern/flags`; a bare pattern is taken
/// as it is. Flags `i`, `m`, `s` and `x` carry over; `g` and `u` mean nothing for a
/// yes/no match; anything else is refused rather than silently ignored.
fn regex_pattern(entry: &str) -> Result<String, String> {
    let Some(body) = entry.strip_prefix('/') else {
        return Ok(entry.to_owned());
    };
    let Some(end) = body.rfind('/') else {
        return Err(format!("{entry:?} opens with / but has no closing /"));
    };
    let (pattern, flags) = (&body[..end], &body[end + 1..]);
    let mut inline = String::new();
    for flag in flags.chars() {
        match flag {
            'i' | 'm' | 's' | 'x' => inline.push(flag),
            'g' | 'u' => {}
            other => return Err(format!("regex flag {other:?} is not supported")),
        }
    }
    Ok(if inline.is_empty() {
        pattern.to_owned()
    } else {
        format!("(?{inline}){pattern}")
    })
}
