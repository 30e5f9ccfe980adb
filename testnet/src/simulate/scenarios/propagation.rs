//! The propagation scenario: entries published from random members, timed to every node
//! from the nodes' own added-time index and relay log, with the path each copy took and
//! the duplicates each node received.

use super::*;

/// An entry's creation time and, per node that stored it, when (ms since the epoch).
pub(super) type Stored = (u64, Vec<(usize, u64)>);

/// When each node stored each entry added from `after` on.
pub(super) fn stored_times(world: &World, after: Timestamp) -> Result<HashMap<Hash, Stored>> {
    let mut times: HashMap<Hash, Stored> = HashMap::new();
    for (index, store) in world.stores.iter().enumerate() {
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let start = cursor
                .as_deref()
                .map_or(AddedStart::After(after), AddedStart::Following);
            let rows = store
                .added_rows(start, 64)
                .with_context(|| format!("reading node {index}'s added index"))?;
            for row in &rows {
                let slot = times
                    .entry(row.entry.id())
                    .or_insert_with(|| (row.entry.entry().created.0, Vec::new()));
                slot.1.push((index, row.added.0));
            }
            match rows.last() {
                Some(last) if rows.len() == 64 => cursor = Some(last.key.clone()),
                _ => break,
            }
        }
    }
    Ok(times)
}

/// Hops of each node's first gossip delivery of each entry, from the relay log; the
/// publisher is 0. Also when each node verified it.
pub(super) struct Paths {
    /// entry -> node -> (hops, verified at ms, the model's one-way latencies summed along
    /// the path in µs), for nodes whose path is known.
    by_entry: HashMap<String, HashMap<usize, (u32, u64, u64)>>,
    /// entry -> nodes that verified it from gossip (path known or not).
    relayed: HashMap<String, usize>,
}

pub(super) fn paths(
    world: &World,
    setup: &Setup,
    relays: Vec<observe::Relay>,
    publishers: &HashMap<Hash, usize>,
) -> Paths {
    let key_index: HashMap<String, usize> = world
        .by_key
        .iter()
        .map(|(key, index)| (key.to_string(), *index))
        .collect();
    let peer_index: HashMap<String, usize> = world
        .by_peer
        .iter()
        .map(|(peer, index)| (peer.to_string(), *index))
        .collect();
    // entry -> node -> (from, at)
    let mut firsts: HashMap<String, HashMap<usize, (usize, u64)>> = HashMap::new();
    for relay in relays {
        let (Some(node), Some(from)) = (key_index.get(&relay.node), peer_index.get(&relay.from))
        else {
            continue;
        };
        firsts
            .entry(relay.entry)
            .or_default()
            .entry(*node)
            .or_insert((*from, relay.at_ms));
    }
    let publisher_of: HashMap<String, usize> = publishers
        .iter()
        .map(|(id, node)| (id.to_string(), *node))
        .collect();
    let mut by_entry = HashMap::new();
    let relayed = firsts
        .iter()
        .map(|(entry, first)| (entry.clone(), first.len()))
        .collect();
    for (entry, first) in firsts {
        let Some(publisher) = publisher_of.get(&entry).copied() else {
            continue;
        };
        let mut hops: HashMap<usize, (u32, u64, u64)> = HashMap::new();
        for (node, (_, at)) in &first {
            // Walk back to the publisher; a broken chain (a hop that came by sync) has no
            // hop count.
            let (mut current, mut count, mut micros) = (*node, 0u32, 0u64);
            let mut seen = HashSet::new();
            let found = loop {
                if current == publisher {
                    break true;
                }
                if !seen.insert(current) {
                    break false;
                }
                match first.get(&current) {
                    Some((from, _)) => {
                        micros += setup.one_way(*from, current).as_micros() as u64;
                        current = *from;
                        count += 1;
                    }
                    None => break false,
                }
            };
            if found {
                hops.insert(*node, (count, *at, micros));
            }
        }
        by_entry.insert(entry, hops);
    }
    Paths { by_entry, relayed }
}

/// Per node, the copies of `ids` gossipsub dropped as duplicates, averaged over `ids`.
pub(super) fn duplicates(nodes: usize, observed: &observe::Observed, ids: &[Hash]) -> Vec<f64> {
    let ids: HashSet<String> = ids.iter().map(ToString::to_string).collect();
    let mut per_node = vec![0u64; nodes];
    for ((node, id), count) in &observed.duplicates {
        if ids.contains(id)
            && let Some(total) = per_node.get_mut(*node)
        {
            *total += u64::from(*count);
        }
    }
    per_node
        .into_iter()
        .map(|total| total as f64 / ids.len().max(1) as f64)
        .collect()
}

pub(super) async fn propagation(
    world: &World,
    args: &SimulateArgs,
    setup: &Setup,
    mesh: Mesh,
) -> Result<Propagation> {
    let mut random = Random::new(args.seed);
    let all: Vec<usize> = (0..world.len()).collect();
    let since_ms = Timestamp(now_ms().saturating_sub(1));
    let (before, start) = (traffic(world), gauge(world));
    let wall = start.wall;
    let _ = observe::take();
    let mut publishers: HashMap<Hash, usize> = HashMap::new();
    let bar = crate::bench::report::progress(args.entries as u64, "entries published");
    for number in 0..args.entries {
        if number > 0 {
            sleep(setup, args.interval_seconds).await;
        }
        let publisher = random.below(world.len());
        for id in publish(world, publisher, number, args.indicators).await? {
            publishers.insert(id, publisher);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ids: Vec<Hash> = publishers.keys().copied().collect();
    eprintln!("  published; waiting until every node holds every entry");
    let (_, everywhere) = wait_held(world, setup, &all, &ids, DELIVERY_SECONDS).await;
    if !everywhere {
        eprintln!("warning: some nodes still lack entries; the report lists them");
    }
    let seconds = since(setup, wall);
    let keeping = keeping(world, setup, &start);
    let after = traffic(world);
    let entry_bytes = ids
        .first()
        .and_then(|id| world.stores.first()?.entry(id).ok().flatten())
        .map_or(0, |entry| entry.payload().len() as u64);
    let observed = observe::take();
    let duplicates_measured = !observed.duplicates.is_empty();
    let duplicates_per_entry = duplicates(world.len(), &observed, &ids);
    let paths = paths(world, setup, observed.relays, &publishers);
    let stored = stored_times(world, since_ms)?;
    let scale = setup.scale;
    let scaled = |ms: u64| (ms as f64 / scale).round() as u64;
    let mut spreads = Vec::new();
    // Per node: the sum and count of its arrival times, for its mean.
    let mut arrivals = vec![(0u64, 0u64); world.len()];
    for (id, publisher) in &publishers {
        let (created, added) = stored.get(id).cloned().unwrap_or((0, Vec::new()));
        for (node, at) in &added {
            if node != publisher
                && let Some((sum, count)) = arrivals.get_mut(*node)
            {
                *sum += scaled(at.saturating_sub(created));
                *count += 1;
            }
        }
        let held: HashSet<usize> = added.iter().map(|(node, _)| *node).collect();
        let missing: Vec<usize> = all
            .iter()
            .copied()
            .filter(|node| !held.contains(node))
            .collect();
        let to_each: Vec<u64> = added
            .iter()
            .filter(|(node, _)| node != publisher)
            .map(|(_, at)| scaled(at.saturating_sub(created)))
            .collect();
        let hops = paths.by_entry.get(&id.to_string());
        let relayed = paths.relayed.get(&id.to_string()).copied().unwrap_or(0);
        let (bound, physical) = setup.bounds(*publisher);
        spreads.push(Spread {
            entry: id.to_string(),
            publisher: *publisher,
            to_every_ms: missing
                .is_empty()
                .then(|| to_each.iter().copied().max().unwrap_or(0)),
            verified_every_ms: hops.and_then(|hops| {
                hops.values()
                    .map(|(_, at, _)| scaled(at.saturating_sub(created)))
                    .max()
            }),
            path_every: hops
                .filter(|hops| hops.len() + 1 == world.len())
                .map(|hops| {
                    hops.values()
                        .fold((0, 0), |(ms, most), (count, _, micros)| {
                            (ms.max(micros / 1000), most.max(*count))
                        })
                }),
            bound_ms: bound.as_millis() as u64,
            physical_ms: physical.as_millis() as u64,
            by_sync: held.len().saturating_sub(1).saturating_sub(relayed),
            path_unknown: relayed.saturating_sub(hops.map_or(0, HashMap::len)),
            missing,
            hops: hops
                .map(|hops| hops.values().map(|(count, _, _)| *count).collect())
                .unwrap_or_default(),
            to_each_ms: to_each,
        });
    }
    spreads.sort_by_key(|spread| std::cmp::Reverse(spread.to_every_ms.unwrap_or(u64::MAX)));
    let per_sec = |pick: fn(&(u64, u64, u64)) -> u64| -> Vec<f64> {
        before
            .iter()
            .zip(&after)
            .map(|(start, end)| pick(end).saturating_sub(pick(start)) as f64 / seconds)
            .collect()
    };
    let copies_per_entry = before
        .iter()
        .zip(&after)
        .map(|(start, end)| {
            let gossip = end
                .0
                .saturating_sub(start.0)
                .saturating_sub(end.2.saturating_sub(start.2));
            gossip as f64 / (entry_bytes.max(1) * ids.len().max(1) as u64) as f64
        })
        .collect();
    Ok(Propagation {
        nodes: world.len(),
        mesh,
        indicators_per_entry: args.indicators,
        entry_bytes,
        interval_seconds: args.interval_seconds,
        mean_arrival_ms: arrivals
            .iter()
            .map(|(sum, count)| (*count > 0).then(|| *sum as f64 / *count as f64))
            .collect(),
        spreads,
        seconds,
        received_per_sec: per_sec(|reading| reading.0),
        sent_per_sec: per_sec(|reading| reading.1),
        copies_per_entry,
        duplicates_per_entry,
        duplicates_measured,
        keeping,
        resident_mib: resident_mib(),
    })
}
