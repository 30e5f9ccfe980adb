//! The structural rules of a charter and its members: sizes that fit one gossip message,
//! unique keys, a majority threshold, certificates that belong to their member, and text
//! of bounded length.

use std::collections::BTreeSet;

use super::{
    CHARTER_FRAMING_BYTES, Charter, InvalidCharter, MAX_ADDRESSES_PER_MEMBER,
    MAX_CHARTER_TEXT_BYTES, MAX_MEMBERS, MAX_NODES_PER_MEMBER, MAX_STEWARDS, Member,
};
use crate::crypto::{Hash, PublicKey};
use crate::wire::{self, MAX_GOSSIP_BYTES};

impl Charter {
    /// Checks the structural rules: sizes (the whole charter, with a signature from every
    /// steward, must fit one gossip message), uniqueness, a majority threshold,
    /// certificates belong to their member. Signatures are checked by
    /// [`SignedCharter::verify_genesis`](super::SignedCharter::verify_genesis) and [`SignedCharter::verify_successor`](super::SignedCharter::verify_successor).
    pub fn validate(&self) -> Result<(), InvalidCharter> {
        let fail = |reason: String| Err(InvalidCharter(reason));
        check_text("name", &self.name)?;
        if self.version == 0 {
            return fail("version must start at 1".into());
        }
        if (self.version == 1) != (self.federation == Hash::default()) {
            return fail(if self.version == 1 {
                "the genesis charter's federation id must be zero: the federation's id is the \
                 genesis charter's own id"
                    .into()
            } else {
                "a later charter must name its federation".into()
            });
        }
        if (self.version == 1) != self.previous.is_none() {
            return fail(format!(
                "version {} {}",
                self.version,
                if self.version == 1 {
                    "must not name a previous version"
                } else {
                    "must name its previous version"
                }
            ));
        }
        if self.stewards.is_empty() || self.stewards.len() > MAX_STEWARDS {
            return fail(format!(
                "{} stewards, expected 1 to {MAX_STEWARDS}",
                self.stewards.len()
            ));
        }
        if !all_unique(self.stewards.iter()) {
            return fail("a steward is listed twice".into());
        }
        // A majority threshold makes any two authorising groups share a steward, so rival
        // versions need a steward to sign both.
        let stewards = self.stewards.len();
        if usize::from(self.threshold) * 2 <= stewards || usize::from(self.threshold) > stewards {
            return fail(format!(
                "threshold {} must be a majority of the {stewards} stewards and at most {stewards}",
                self.threshold,
            ));
        }
        if self.members.len() > MAX_MEMBERS {
            return fail(format!(
                "{} members, at most {MAX_MEMBERS}",
                self.members.len()
            ));
        }
        if !all_unique(self.members.iter().map(|member| &member.org)) {
            return fail("an organisation is listed twice".into());
        }
        let mut nodes = BTreeSet::new();
        for member in &self.members {
            member.validate()?;
            for cert in &member.nodes {
                if !nodes.insert(cert.node) {
                    return fail(format!("node {} is certified twice", cert.node));
                }
            }
        }
        let gossip_bytes = wire::encoded_len(self) + CHARTER_FRAMING_BYTES;
        if gossip_bytes > MAX_GOSSIP_BYTES {
            return fail(format!(
                "{gossip_bytes} bytes with every steward's signature, more than one gossip \
                 message ({MAX_GOSSIP_BYTES})"
            ));
        }
        Ok(())
    }
}

impl Member {
    fn validate(&self) -> Result<(), InvalidCharter> {
        let fail = |reason: String| Err(InvalidCharter(format!("member {}: {reason}", self.name)));
        check_text("member name", &self.name)?;
        let country_ok =
            self.country.len() == 2 && self.country.bytes().all(|byte| byte.is_ascii_uppercase());
        if !country_ok {
            return fail(format!(
                "country {:?} is not a two-letter upper-case code",
                self.country
            ));
        }
        if self.nodes.len() > MAX_NODES_PER_MEMBER {
            return fail(format!(
                "{} nodes, at most {MAX_NODES_PER_MEMBER}",
                self.nodes.len()
            ));
        }
        for cert in &self.nodes {
            if cert.org != self.org {
                return fail(format!(
                    "certificate of node {} is by another key",
                    cert.node
                ));
            }
            if cert.valid_until <= cert.valid_from {
                return fail(format!(
                    "certificate of node {} has an empty window",
                    cert.node
                ));
            }
        }
        if self.addresses.len() > MAX_ADDRESSES_PER_MEMBER {
            return fail(format!(
                "{} addresses, at most {MAX_ADDRESSES_PER_MEMBER}",
                self.addresses.len()
            ));
        }
        for address in &self.addresses {
            check_text("address", address)?;
        }
        if !all_unique(self.cutoffs.iter().map(|cutoff| &cutoff.node)) {
            return fail("a feed is cut off twice".into());
        }
        if let Some(cutoff) = self
            .cutoffs
            .iter()
            .find(|cutoff| (cutoff.last_seq == 0) != cutoff.last_id.is_none())
        {
            return fail(format!(
                "cutoff of {} must name the entry at its last seq (and none at seq 0)",
                cutoff.node
            ));
        }
        Ok(())
    }
}

fn check_text(what: &str, text: &str) -> Result<(), InvalidCharter> {
    if text.is_empty() || text.len() > MAX_CHARTER_TEXT_BYTES {
        return Err(InvalidCharter(format!(
            "{what} {:?} must be 1 to {MAX_CHARTER_TEXT_BYTES} bytes",
            text.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

fn all_unique<'a>(keys: impl Iterator<Item = &'a PublicKey>) -> bool {
    let mut seen = BTreeSet::new();
    keys.into_iter().all(|key| seen.insert(*key))
}
