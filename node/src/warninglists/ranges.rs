//! The networks of every `cidr` list as one sorted table per address family.
//!
//! The lists' networks overlap (RFC 5735 contains the loopback network, providers' ranges
//! nest), so they are cut into disjoint segments, each carrying the lists that cover all
//! of it. Finding the lists of an address is then one binary search. For each list in a
//! segment the table also keeps where that list's coverage runs on to without a gap, so
//! "is this whole network inside the list?" is the same single search.

/// One family's table.
#[derive(Debug, Default)]
pub(crate) struct Ranges {
    /// Where each segment starts, ascending; a segment ends where the next starts.
    starts: Vec<u128>,
    /// `members[offsets[i]..offsets[i + 1]]` are segment i's lists.
    offsets: Vec<u32>,
    /// A list covering the segment, and the last address its coverage reaches from there.
    members: Vec<(u16, u128)>,
}

impl Ranges {
    /// Builds the table from `(list, first, last)` networks, in any order.
    pub(crate) fn build(mut networks: Vec<(u16, u128, u128)>) -> Ranges {
        if networks.is_empty() {
            return Ranges::default();
        }
        // Per list, merge overlapping and touching networks, so each list covers one
        // segment boundary at a time and the sweep below stays simple.
        networks.sort_unstable();
        let mut merged: Vec<(u16, u128, u128)> = Vec::with_capacity(networks.len());
        for (list, first, last) in networks {
            match merged.last_mut() {
                Some((l, _, end)) if *l == list && first <= end.saturating_add(1) => {
                    *end = (*end).max(last);
                }
                _ => merged.push((list, first, last)),
            }
        }
        // Sweep: at each boundary, lists enter (a network starts) or leave (one ended
        // just before). `None` as the leave point: the network runs to the top address.
        let mut events: Vec<(u128, bool, u16)> = Vec::with_capacity(merged.len() * 2);
        for &(list, first, last) in &merged {
            events.push((first, true, list));
            if let Some(after) = last.checked_add(1) {
                events.push((after, false, list));
            }
        }
        events.sort_unstable();
        let mut active: Vec<u16> = Vec::new();
        let mut segments: Vec<(u128, Vec<u16>)> = Vec::new();
        let mut index = 0;
        while index < events.len() {
            let point = events[index].0;
            while index < events.len() && events[index].0 == point {
                let (_, enters, list) = events[index];
                if enters {
                    active.push(list);
                } else {
                    active.retain(|l| *l != list);
                }
                index += 1;
            }
            let mut lists = active.clone();
            lists.sort_unstable();
            match segments.last() {
                Some((_, previous)) if *previous == lists => {}
                _ => segments.push((point, lists)),
            }
        }
        // Back to front: a list's coverage from segment i runs to the end of i, or on to
        // where it runs from i + 1 if the list covers that too.
        let mut ranges = Ranges {
            starts: Vec::with_capacity(segments.len()),
            offsets: Vec::with_capacity(segments.len() + 1),
            members: Vec::new(),
        };
        let mut runs: Vec<Vec<(u16, u128)>> = vec![Vec::new(); segments.len()];
        for i in (0..segments.len()).rev() {
            let end = match segments.get(i + 1) {
                Some((next, _)) => next - 1,
                None => u128::MAX,
            };
            let run = segments[i]
                .1
                .iter()
                .map(|&list| {
                    let reach = runs
                        .get(i + 1)
                        .and_then(|next| next.iter().find(|(l, _)| *l == list))
                        .map_or(end, |&(_, reach)| reach);
                    (list, reach)
                })
                .collect();
            runs[i] = run;
        }
        for ((start, _), run) in segments.into_iter().zip(runs) {
            ranges.starts.push(start);
            ranges.offsets.push(saturating_u32(ranges.members.len()));
            ranges.members.extend(run);
        }
        ranges.offsets.push(saturating_u32(ranges.members.len()));
        ranges
    }

    /// The lists covering `first..=last` whole, each passed to `found`.
    pub(crate) fn covering(&self, first: u128, last: u128, mut found: impl FnMut(u16)) {
        // The last segment starting at or before `first`.
        let position = self.starts.partition_point(|start| *start <= first);
        let Some(segment) = position.checked_sub(1) else {
            return;
        };
        let (from, to) = (self.offsets[segment], self.offsets[segment + 1]);
        for &(list, reach) in &self.members[from as usize..to as usize] {
            if reach >= last {
                found(list);
            }
        }
    }

    /// How many segments the table holds (for tests and sizing).
    #[cfg(test)]
    pub(crate) fn segments(&self) -> usize {
        self.starts.len()
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
