//! The filters of a GET on objects, the manifest, an object or its versions, read from
//! the query string, and the choice of versions they ask for (`match[version]`).

use threatmesh_protocol::Timestamp;

use super::cursor::Cursor;
use super::listed::Listed;
use super::{DEFAULT_PAGE, MAX_PAGE, TaxiiError};
use crate::formats::rfc3339;

/// Which versions of an object a request wants: TAXII ORs the values of
/// `match[version]` (`first,last` is both ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct VersionFilter {
    /// Every version.
    pub(super) all: bool,
    /// The oldest.
    pub(super) first: bool,
    /// The newest (the default).
    pub(super) last: bool,
    /// These `modified` times.
    pub(super) at: Vec<Timestamp>,
}

/// The filters of a GET on objects, manifest, an object or its versions.
#[derive(Debug, Clone)]
pub(super) struct Filters {
    pub(super) added_after: Option<Timestamp>,
    pub(super) limit: usize,
    pub(super) next: Option<Cursor>,
    pub(super) ids: Option<Vec<String>>,
    pub(super) types: Option<Vec<String>>,
    pub(super) versions: VersionFilter,
    /// False when `match[spec_version]` names no version this server has (2.1).
    pub(super) spec_version_ok: bool,
}

impl Filters {
    pub(super) fn parse(query: Option<&str>) -> Result<Filters, TaxiiError> {
        let mut filters = Filters {
            added_after: None,
            limit: DEFAULT_PAGE,
            next: None,
            ids: None,
            types: None,
            versions: VersionFilter::LAST,
            spec_version_ok: true,
        };
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*name {
                "added_after" => {
                    filters.added_after = Some(rfc3339::parse(&value).map_err(|error| {
                        TaxiiError::bad_request(format!("added_after: {error}"))
                    })?);
                }
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        TaxiiError::bad_request(format!(
                            "limit: {value:?} is not a positive integer"
                        ))
                    })?;
                    if limit == 0 {
                        return Err(TaxiiError::bad_request("limit: must be at least 1"));
                    }
                    filters.limit = limit.min(MAX_PAGE);
                }
                "next" => filters.next = Some(Cursor::parse(&value)?),
                "match[id]" => filters.ids = Some(list(&value)),
                "match[type]" => filters.types = Some(list(&value)),
                "match[version]" => filters.versions = VersionFilter::parse(&value)?,
                "match[spec_version]" => {
                    filters.spec_version_ok = list(&value).iter().any(|version| version == "2.1");
                }
                // Other parameters (and filters this server does not offer) are ignored,
                // as TAXII lets servers do.
                _ => {}
            }
        }
        Ok(filters)
    }

    /// Whether an object of `kind` with `id` passes the id and type filters.
    pub(super) fn admits(&self, kind: &str, id: &str) -> bool {
        self.spec_version_ok
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|wanted| wanted == kind))
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|wanted| wanted == id))
    }
}

impl VersionFilter {
    /// The default: the newest version only.
    pub(super) const LAST: VersionFilter = VersionFilter {
        all: false,
        first: false,
        last: true,
        at: Vec::new(),
    };
    /// Every version.
    pub(super) const ALL: VersionFilter = VersionFilter {
        all: true,
        first: false,
        last: false,
        at: Vec::new(),
    };

    /// Whether the version `modified`, among versions from `first` to `last`, is wanted.
    pub(super) fn wants(&self, modified: Timestamp, first: Timestamp, last: Timestamp) -> bool {
        self.all
            || (self.first && modified == first)
            || (self.last && modified == last)
            || self.at.contains(&modified)
    }

    pub(super) fn parse(value: &str) -> Result<VersionFilter, TaxiiError> {
        let mut filter = VersionFilter {
            all: false,
            first: false,
            last: false,
            at: Vec::new(),
        };
        for part in value.split(',').map(str::trim) {
            match part {
                "last" => filter.last = true,
                "first" => filter.first = true,
                "all" => filter.all = true,
                time => filter.at.push(rfc3339::parse(time).map_err(|error| {
                    TaxiiError::bad_request(format!(
                        "match[version]: expected last, first, all or timestamps: {error}"
                    ))
                })?),
            }
        }
        Ok(filter)
    }
}

/// The versions `filter` asks for among `found`, the versions of one id: sorted by
/// publishing organisation, then oldest first, without duplicates. First and last are
/// each organisation's own: two organisations' objects under one id are two objects, and
/// one never hides or replaces the other.
pub(super) fn choose(mut found: Vec<Listed>, filter: &VersionFilter) -> Vec<Listed> {
    found.sort_by_key(|listed| (listed.org, listed.modified));
    found.dedup_by_key(|listed| (listed.org, listed.modified));
    let mut chosen = Vec::with_capacity(found.len());
    for object in found.chunk_by(|one, other| one.org == other.org) {
        let (Some(first), Some(last)) = (object.first(), object.last()) else {
            continue;
        };
        let (first, last) = (first.modified, last.modified);
        chosen.extend(
            object
                .iter()
                .filter(|listed| filter.wants(listed.modified, first, last))
                .cloned(),
        );
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::taxii::MAX_PAGE;

    #[test]
    fn filters_are_read_and_bad_ones_refused() {
        let filters = Filters::parse(Some(
            "added_after=2026-01-01T00:00:00Z&limit=50000&match%5Btype%5D=indicator,sighting&match[version]=all",
        ))
        .ok();
        let filters = filters.as_ref();
        assert_eq!(filters.map(|f| f.limit), Some(MAX_PAGE));
        assert_eq!(
            filters.and_then(|f| f.types.clone()),
            Some(vec!["indicator".to_owned(), "sighting".to_owned()])
        );
        assert_eq!(
            filters.map(|f| f.versions.clone()),
            Some(VersionFilter::ALL)
        );
        let both = Filters::parse(Some("match[version]=first,last")).ok();
        let both = both.map(|f| f.versions);
        assert_eq!(
            both.map(|v| (v.first, v.last, v.all)),
            Some((true, true, false))
        );
        for bad in [
            "limit=0",
            "limit=ten",
            "added_after=yesterday",
            "match[version]=newest",
            "next=zzz",
        ] {
            assert!(Filters::parse(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
