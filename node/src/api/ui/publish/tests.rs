//! The publish form's checks: what a draft turns into, and what each field refuses.

#![allow(clippy::unwrap_used)]

use super::*;

fn draft(values: &str, tlp: &str) -> Draft {
    Draft {
        values: values.to_owned(),
        tlp: tlp.to_owned(),
        ..Draft::default()
    }
}

#[test]
fn each_problem_is_reported_against_its_field() {
    let now = Timestamp(1_000);
    let mut typed = draft("198.51.100.1\nnot a value\n", "purple");
    typed.confidence = "150".into();
    typed.expires_days = "-3".into();
    let errors = check(&typed, now).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|(field, _)| *field).collect();
    for field in ["tlp", "confidence", "expires_days", "values"] {
        assert!(fields.contains(&field), "{field} in {errors:?}");
    }
    assert!(
        errors.iter().any(|(_, message)| message.contains("line 2")),
        "{errors:?}"
    );
}

#[test]
fn restricted_markings_need_recipients_and_others_go_to_the_federation() {
    let now = Timestamp(1_000);
    let errors = check(&draft("198.51.100.1", "red"), now).unwrap_err();
    assert_eq!(errors[0].0, "recipients");
    let mut typed = draft("198.51.100.1\nhxxp://evil[.]example/x\n", "green");
    typed.labels = "c2, , phishing".into();
    typed.expires_days = "30".into();
    let checked = check(&typed, now).unwrap();
    assert_eq!(checked.distribution, Distribution::Federation);
    assert_eq!(checked.items.len(), 2);
    let Item::Indicator(indicator) = &checked.items[1] else {
        panic!("an indicator");
    };
    assert_eq!(indicator.value.as_str(), "http://evil.example/x");
    assert_eq!(indicator.labels, ["c2", "phishing"]);
    assert_eq!(
        indicator.valid_until,
        Some(Timestamp(1_000 + 30 * 86_400_000))
    );
}

#[test]
fn a_draft_survives_being_carried_through_sign_in() {
    let typed = Draft {
        values: "198.51.100.1\n<script>x</script>".into(),
        tlp: "red".into(),
        confidence: "80".into(),
        expires_days: "7".into(),
        labels: "c2".into(),
        description: "\"quoted\" & <b>".into(),
        recipients: vec!["aa".into(), "bb".into()],
        ignore_warninglists: "on".into(),
    };
    // The hidden fields, as a browser would post them back.
    let markup = typed.carry().into_string();
    let mut posted = url::form_urlencoded::Serializer::new(String::new());
    for input in markup.split("<input ").skip(1) {
        let attribute = |name: &str| {
            let start = input.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            let end = start + input[start..].find('"').unwrap();
            input[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        };
        posted.append_pair(&attribute("name"), &attribute("value"));
    }
    let fields = Fields::parse(posted.finish().as_bytes());
    assert_eq!(Draft::carried(&fields), Some(typed));
    assert!(!markup.contains("<script>"), "{markup}");
}
