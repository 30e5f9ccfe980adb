//! The scenarios that break something and measure the recovery: catch-up (nodes that were
//! down come back and fetch what they missed) and partition (a cut between regions heals).

use super::*;

pub(super) async fn catch_up(
    world: &mut World,
    args: &SimulateArgs,
    setup: &Setup,
    mesh: Mesh,
) -> Result<CatchUp> {
    let mut random = Random::new(args.seed);
    let away = random.below(world.len());
    world.stop(away).await;
    eprintln!("  node {away} away; the others publish");
    let others: Vec<usize> = (0..world.len()).filter(|node| *node != away).collect();
    let mut ids = Vec::new();
    for number in 0..args.entries {
        if number > 0 {
            sleep(setup, args.interval_seconds).await;
        }
        let publisher = others[random.below(others.len())];
        ids.extend(publish(world, publisher, number, args.indicators).await?);
    }
    let (_, everywhere) = wait_held(world, setup, &others, &ids, DELIVERY_SECONDS).await;
    if !everywhere {
        eprintln!("warning: not every node still running holds every entry; the report lists them");
    }
    let others_missing = others
        .iter()
        .map(|node| (*node, lacking(world, *node, &ids)))
        .filter(|(_, lacks)| *lacks > 0)
        .collect();
    let lacked_at_restart = lacking(world, away, &ids);
    let start = gauge(world);
    eprintln!(
        "  node {away} back; waiting until it holds the {} entries",
        ids.len()
    );
    world.start(away)?;
    let (seconds, done) = wait_held(world, setup, &[away], &ids, DELIVERY_SECONDS * 5.0).await;
    let received = world
        .client(away)
        .map_or(0, |client| client.metrics().transport_bytes_received);
    let entry_bytes = ids
        .first()
        .and_then(|id| world.stores.get(away)?.entry(id).ok().flatten())
        .map_or(0, |entry| entry.payload().len() as u64);
    Ok(CatchUp {
        nodes: world.len(),
        mesh,
        away,
        away_country: setup
            .capital(away)
            .map_or_else(String::new, |capital| capital.country.clone()),
        entries: ids.len(),
        indicators_per_entry: args.indicators,
        seconds: done.then_some(seconds),
        missing: lacking(world, away, &ids),
        lacked_at_restart,
        bytes_received: received,
        entry_bytes,
        others_missing,
        keeping: keeping(world, setup, &start),
    })
}

pub(super) async fn partition(
    world: &World,
    args: &SimulateArgs,
    setup: &Setup,
    mesh: Mesh,
) -> Result<Partition> {
    let cut: HashSet<String> = args.cut.iter().map(|code| code.to_uppercase()).collect();
    let sides: Vec<u8> = (0..world.len())
        .map(|node| {
            u8::from(
                setup
                    .continent(node)
                    .is_some_and(|continent| cut.contains(continent.code())),
            )
        })
        .collect();
    let cut_side: Vec<usize> = (0..world.len()).filter(|node| sides[*node] == 1).collect();
    let other_side: Vec<usize> = (0..world.len()).filter(|node| sides[*node] == 0).collect();
    if cut_side.is_empty() || other_side.is_empty() {
        bail!(
            "--cut {}: no member is on one side of the cut ({} on the cut side, {} on the other)",
            args.cut.join(","),
            cut_side.len(),
            other_side.len()
        );
    }
    world.links.cut(sides);
    eprintln!(
        "  cut {} nodes off from {}; both sides publish",
        cut_side.len(),
        other_side.len()
    );
    let mut random = Random::new(args.seed);
    let mut ids = Vec::new();
    for number in 0..args.entries {
        if number > 0 {
            sleep(setup, args.interval_seconds).await;
        }
        // Both sides publish, in turn.
        let (side, far) = if number % 2 == 0 {
            (&cut_side, &other_side)
        } else {
            (&other_side, &cut_side)
        };
        let publisher = side[random.below(side.len())];
        let published = publish(world, publisher, number, args.indicators).await?;
        ids.extend(published.into_iter().map(|id| (id, far)));
    }
    // Let each side spread its own entries before healing.
    sleep(setup, args.settle_seconds as f64).await;
    let crossed_before_heal = ids
        .iter()
        .map(|(id, far)| {
            far.iter()
                .filter(|node| lacking(world, **node, &[*id]) == 0)
                .count()
        })
        .sum();
    let ids: Vec<Hash> = ids.into_iter().map(|(id, _)| id).collect();
    let start = gauge(world);
    eprintln!("  healed; waiting until every node holds every entry");
    world.links.heal();
    let all: Vec<usize> = (0..world.len()).collect();
    let (seconds, done) = wait_held(world, setup, &all, &ids, DELIVERY_SECONDS * 5.0).await;
    let missing = all
        .iter()
        .map(|node| (*node, lacking(world, *node, &ids)))
        .filter(|(_, lacks)| *lacks > 0)
        .collect();
    Ok(Partition {
        nodes: world.len(),
        mesh,
        cut: args.cut.clone(),
        sides: [cut_side.len(), other_side.len()],
        entries: ids.len(),
        heal_seconds: done.then_some(seconds),
        missing,
        crossed_before_heal,
        keeping: keeping(world, setup, &start),
    })
}
