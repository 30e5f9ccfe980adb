//! Tests of the capitals and members files, placement and the latency model.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use super::*;

const HEADER: &str = "code,country,capital,latitude,longitude,continent\n";

fn capital<'a>(capitals: &'a [Capital], code: &str) -> &'a Capital {
    capitals.iter().find(|c| c.code == code).unwrap()
}

fn capitals_error(body: &str) -> String {
    parse_capitals(&format!("{HEADER}{body}"), "capitals.csv")
        .unwrap_err()
        .to_string()
}

fn members_error(text: &str) -> String {
    parse_members(text, "members.txt", &bundled())
        .unwrap_err()
        .to_string()
}

fn assert_within_percent(actual: f64, expected: f64, percent: f64) {
    let off = (actual - expected).abs() / expected * 100.0;
    assert!(
        off <= percent,
        "{actual} is {off:.3} % from {expected}, more than {percent} %"
    );
}

#[test]
fn bundled_dataset_has_every_country_once() {
    let capitals = bundled();
    assert!(capitals.len() >= 190, "only {} capitals", capitals.len());
    let codes: HashSet<&str> = capitals.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), capitals.len());
    let continents: HashSet<Continent> = capitals.iter().map(|c| c.continent).collect();
    for continent in Continent::ALL {
        assert!(continents.contains(&continent), "no capital in {continent}");
    }
    let paris = capital(&capitals, "FR");
    assert_eq!(
        (paris.capital.as_str(), paris.continent),
        ("Paris", Continent::Europe)
    );
}

#[test]
fn bundled_file_is_sorted_by_code() {
    let codes: Vec<String> = bundled().into_iter().map(|c| c.code).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted);
}

#[test]
fn continent_codes_round_trip() {
    for continent in Continent::ALL {
        assert_eq!(Continent::from_code(continent.code()), Some(continent));
        assert_eq!(continent.code().parse::<Continent>().unwrap(), continent);
    }
    assert_eq!(Continent::NorthAmerica.name(), "North America");
    assert_eq!(Continent::from_code("eu"), None);
    assert!("XX".parse::<Continent>().is_err());
}

#[test]
fn known_distances_match_the_ellipsoid_within_one_percent() {
    // Expected values from GeographicLib's geodesic on the WGS84 ellipsoid (a different
    // method and Earth model), between the same GeoNames coordinates.
    let capitals = bundled();
    let paris = capital(&capitals, "FR");
    assert_within_percent(
        distance_km(paris, capital(&capitals, "AU")),
        16_916.874,
        1.0,
    );
    assert_within_percent(distance_km(paris, capital(&capitals, "BR")), 8_706.751, 1.0);
    assert_eq!(distance_km(paris, paris), 0.0);
}

#[test]
fn distance_matches_the_spherical_law_of_cosines() {
    // The same sphere by another formula (computed in Python): the haversine is right
    // to far better than the 1 % above.
    let capitals = bundled();
    let paris = capital(&capitals, "FR");
    assert_within_percent(
        distance_km(paris, capital(&capitals, "AU")),
        16_920.067,
        0.001,
    );
    assert_within_percent(
        distance_km(paris, capital(&capitals, "BR")),
        8_725.573,
        0.001,
    );
}

#[test]
fn antipodes_are_half_the_circumference_apart() {
    let mut a = bundled()[0].clone();
    let mut b = a.clone();
    (a.latitude, a.longitude) = (30.0, 10.0);
    (b.latitude, b.longitude) = (-30.0, -170.0);
    assert_within_percent(
        distance_km(&a, &b),
        std::f64::consts::PI * EARTH_RADIUS_KM,
        1e-9,
    );
}

#[test]
fn latency_is_distance_over_fibre_speed_inflated_plus_last_mile() {
    let capitals = bundled();
    let (paris, canberra) = (capital(&capitals, "FR"), capital(&capitals, "AU"));
    let seconds = distance_km(paris, canberra) / 200_000.0;
    let physical = LatencyModel::physical(paris, canberra);
    assert!((physical.as_secs_f64() - seconds).abs() < 1e-9);
    // About 84.6 ms: Paris to Canberra cannot be done faster in fibre.
    assert!(physical > Duration::from_millis(84) && physical < Duration::from_millis(85));

    let model = LatencyModel::new(1.5, Duration::from_millis(5)).unwrap();
    let one_way = model.one_way(paris, canberra);
    assert!((one_way.as_secs_f64() - (seconds * 1.5 + 0.005)).abs() < 1e-9);
    assert_eq!(model.one_way(paris, paris), Duration::from_millis(5));
    assert_eq!(
        model.one_way(paris, canberra),
        model.one_way(canberra, paris)
    );
}

#[test]
fn latency_model_refuses_bad_parameters() {
    for inflation in [0.99, -1.0, f64::NAN, f64::INFINITY] {
        let error = LatencyModel::new(inflation, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(error.contains("field inflation"), "{error}");
    }
    let error = LatencyModel::new(1.0, Duration::from_millis(1001))
        .unwrap_err()
        .to_string();
    assert!(error.contains("field last_mile"), "{error}");
    assert!(LatencyModel::new(1.0, Duration::from_secs(1)).is_ok());
}

#[test]
fn unchecked_model_saturates_instead_of_panicking() {
    let capitals = bundled();
    let model = LatencyModel {
        inflation: f64::INFINITY,
        last_mile: Duration::from_secs(1),
    };
    assert_eq!(
        model.one_way(capital(&capitals, "FR"), capital(&capitals, "AU")),
        Duration::MAX
    );
}

#[test]
fn spread_is_deterministic_per_seed() {
    let capitals = bundled();
    assert_eq!(spread(50, &capitals, 7), spread(50, &capitals, 7));
    assert_ne!(spread(50, &capitals, 7), spread(50, &capitals, 8));
}

#[test]
fn spread_fills_every_capital_once_before_any_twice() {
    let capitals = bundled();
    let n = capitals.len();
    let placed = spread(2 * n + 3, &capitals, 42);
    assert_eq!(placed.len(), 2 * n + 3);
    let first: HashSet<usize> = placed[..n].iter().copied().collect();
    assert_eq!(first.len(), n, "a capital got two before all had one");
    let mut counts = vec![0; n];
    for &index in &placed {
        counts[index] += 1;
    }
    assert!(counts.iter().all(|&c| c == 2 || c == 3));
    assert_eq!(counts.iter().filter(|&&c| c == 3).count(), 3);
}

#[test]
fn spread_over_nothing_places_nobody() {
    assert!(spread(3, &[], 1).is_empty());
    assert!(spread(0, &bundled(), 1).is_empty());
}

#[test]
fn quoted_fields_and_crlf_are_read() {
    let text = "code,country,capital,latitude,longitude,continent\r\n\
                KR,\"Korea, Republic of\",Seoul,37.566,126.9784,AS\r\n\
                XX,\"The \"\"Quoted\"\" Land\",\"Q\",0,0,AN\r\n";
    let capitals = parse_capitals(text, "test.csv").unwrap();
    assert_eq!(capitals[0].country, "Korea, Republic of");
    assert_eq!(capitals[0].continent, Continent::Asia);
    assert_eq!(capitals[1].country, "The \"Quoted\" Land");
    assert_eq!(capitals[1].capital, "Q");
}

#[test]
fn wrong_header_is_refused_naming_the_column() {
    let error = parse_capitals(
        "code,country,capital,lat,longitude,continent\nFR,France,Paris,48.8,2.3,EU\n",
        "capitals.csv",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("capitals.csv line 1, field latitude: expected the header"),
        "{error}"
    );
    let error = parse_capitals("", "capitals.csv").unwrap_err().to_string();
    assert!(
        error.starts_with("capitals.csv line 1, field code:"),
        "{error}"
    );
    let error = parse_capitals(
        "code,country,capital,latitude,longitude,continent,extra\n",
        "capitals.csv",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("capitals.csv line 1, field 7 (extra):"),
        "{error}"
    );
}

#[test]
fn wrong_number_of_fields_is_refused() {
    let error = capitals_error("FR,France,Paris,48.8,2.3,EU\nDE,Germany,Berlin,52.5\n");
    assert!(
        error.starts_with("capitals.csv line 3, field longitude: missing"),
        "{error}"
    );
    let error = capitals_error("KR,Korea, Republic of,Seoul,37.5,126.9,AS\n");
    assert!(
        error.starts_with("capitals.csv line 2, field 7 (extra): one field too many"),
        "{error}"
    );
}

#[test]
fn bad_quoting_is_refused() {
    let error = capitals_error("KR,\"Korea, Republic of,Seoul,37.5,126.9,AS\n");
    assert!(
        error.starts_with("capitals.csv line 2, field country: a quoted field is not closed"),
        "{error}"
    );
    let error = capitals_error("KR,Korea,\"Seoul\"x,37.5,126.9,AS\n");
    assert!(
        error.starts_with("capitals.csv line 2, field capital: text after the closing quote"),
        "{error}"
    );
}

#[test]
fn out_of_range_coordinates_are_refused() {
    let error = capitals_error("FR,France,Paris,91.5,2.3,EU\n");
    assert_eq!(
        error,
        "capitals.csv line 2, field latitude: \"91.5\" is not a latitude (-90 to 90)"
    );
    let error = capitals_error("FR,France,Paris,NaN,2.3,EU\n");
    assert!(
        error.contains("line 2, field latitude: \"NaN\" is not a latitude"),
        "{error}"
    );
    let error = capitals_error("FR,France,Paris,48.8,-180.5,EU\n");
    assert!(
        error.contains("line 2, field longitude: \"-180.5\" is not a longitude"),
        "{error}"
    );
    let error = capitals_error("FR,France,Paris,48.8,inf,EU\n");
    assert!(error.contains("field longitude"), "{error}");
    let error = capitals_error("FR,France,Paris,north,2.3,EU\n");
    assert!(error.contains("field latitude"), "{error}");
}

#[test]
fn unknown_continent_is_refused() {
    let error = capitals_error("FR,France,Paris,48.8,2.3,EUR\n");
    assert_eq!(
        error,
        "capitals.csv line 2, field continent: \"EUR\" is not a continent code (AF, AN, AS, EU, NA, OC, SA)"
    );
}

#[test]
fn bad_or_duplicate_codes_are_refused() {
    let error = capitals_error("fr,France,Paris,48.8,2.3,EU\n");
    assert!(
        error.starts_with("capitals.csv line 2, field code: \"fr\" is not a country code"),
        "{error}"
    );
    let error = capitals_error(
        "FR,France,Paris,48.8,2.3,EU\nDE,Germany,Berlin,52.5,13.4,EU\nFR,France,Lyon,45.7,4.8,EU\n",
    );
    assert_eq!(
        error,
        "capitals.csv line 4, field code: \"FR\" appears again (first on line 2); a country has one capital"
    );
    let error = capitals_error("FR,France,,48.8,2.3,EU\n");
    assert_eq!(error, "capitals.csv line 2, field capital: is empty");
}

#[test]
fn capitals_file_without_capitals_is_refused() {
    let error = capitals_error("\n");
    assert!(
        error.starts_with("capitals.csv line 3, field code: names no capital"),
        "{error}"
    );
}

#[test]
fn members_file_places_members_in_file_order() {
    let capitals = bundled();
    let text = "# the federation\r\nfr\n\n  DE , 2  # two in Berlin\nSG,1\nFR\n";
    let members = parse_members(text, "members.txt", &capitals).unwrap();
    let codes: Vec<&str> = members.iter().map(|&i| capitals[i].code.as_str()).collect();
    assert_eq!(codes, ["FR", "DE", "DE", "SG", "FR"]);
}

#[test]
fn unknown_country_in_members_is_refused() {
    let error = members_error("FR\n# next\nZZ\n");
    assert_eq!(
        error,
        "members.txt line 3, field country: \"ZZ\" has no capital in the dataset"
    );
    let error = members_error("FRA\n");
    assert!(
        error.starts_with("members.txt line 1, field country: \"FRA\" is not a country code"),
        "{error}"
    );
    let error = members_error(",3\n");
    assert_eq!(error, "members.txt line 1, field country: is empty");
}

#[test]
fn bad_count_in_members_is_refused() {
    let error = members_error("FR\nDE,2\n\nSG,0\n");
    assert_eq!(
        error,
        "members.txt line 4, field count: \"0\" is not a count of at least 1"
    );
    let error = members_error("SG,many\n");
    assert!(
        error.starts_with("members.txt line 1, field count: \"many\" is not a count"),
        "{error}"
    );
    let error = members_error("SG,1,2\n");
    assert!(
        error.starts_with("members.txt line 1, field 3 (extra): one field too many"),
        "{error}"
    );
    let error = members_error(&format!("FR,{MAX_MEMBERS}\nDE\n"));
    assert!(
        error.starts_with("members.txt line 2, field count:"),
        "{error}"
    );
}

#[test]
fn members_file_naming_no_member_is_refused() {
    let error = members_error("");
    assert!(
        error.starts_with("members.txt line 1, field country: names no member"),
        "{error}"
    );
    let error = members_error("# nobody yet\n\n");
    assert!(
        error.starts_with("members.txt line 3, field country: names no member"),
        "{error}"
    );
}
