use super::parse::Parser;
use super::*;
use crate::canonical::canonical_json;
use crate::testing::{Model, arb_json};
use proptest::prelude::*;

fn ours(text: &str) -> Node {
    Parser::new(text).document().expect("valid JSON")
}

fn canonical(text: &str) -> String {
    Lenient::parse(text).unwrap().view().canonical()
}

#[test]
fn text_serde_json_reads_takes_the_fast_path() {
    let doc = Lenient::parse(r#"{"b":1,"a":"\u00e4 https:\/\/x"}"#).unwrap();
    assert!(!doc.is_lossy());
    assert_eq!(doc.view().canonical(), r#"{"a":"ä https://x","b":1}"#);
}

#[test]
fn lone_surrogates_are_kept_in_the_canonical_form_and_replaced_in_the_value() {
    let doc =
        Lenient::parse(r#"{"t":"hello \ud83d","u":"bye \uDC00 x","v":"ok \ud83d\ude00"}"#).unwrap();
    assert!(doc.is_lossy());
    assert_eq!(
        doc.view().canonical(),
        r#"{"t":"hello \ud83d","u":"bye \udc00 x","v":"ok 😀"}"#
    );
    assert_eq!(doc.value()["t"], "hello \u{fffd}");
    assert_eq!(doc.value()["u"], "bye \u{fffd} x");
    assert_eq!(doc.value()["v"], "ok \u{1f600}");
    assert_eq!(
        doc.view().get("v").and_then(JsonRef::as_str),
        Some("ok \u{1f600}")
    );
    assert_eq!(doc.view().get("t").and_then(JsonRef::as_str), None);
}

#[test]
fn a_high_surrogate_not_followed_by_a_low_one_is_lone_and_what_follows_is_kept() {
    assert_eq!(canonical(r#"["\ud83d\u0041"]"#), r#"["\ud83dA"]"#);
    assert_eq!(canonical(r#"["\ud83d\ud83d\ude00"]"#), r#"["\ud83d😀"]"#);
    assert_eq!(canonical(r#"["\ude00\ud83d"]"#), r#"["\ude00\ud83d"]"#);
    assert_eq!(canonical(r#"["\ud83d\\ude00"]"#), r#"["\ud83d\\ude00"]"#);
    assert_ne!(canonical(r#"["\ud800"]"#), canonical(r#"["\ud801"]"#));
    assert_ne!(canonical(r#"["\ud800"]"#), canonical(r#"["\ufffd"]"#));
}

#[test]
fn numbers_out_of_range_keep_their_text() {
    let digits = "7".repeat(400);
    let text = format!(r#"{{"a":1e400,"b":-{digits},"c":1.5,"d":"\ud800"}}"#);
    let doc = Lenient::parse(&text).unwrap();
    assert_eq!(
        doc.view().canonical(),
        format!(r#"{{"a":1e400,"b":-{digits},"c":1.5,"d":"\ud800"}}"#)
    );
    assert_eq!(doc.value()["a"], "1e400");
    assert_eq!(doc.value()["b"], format!("-{digits}"));
    assert_eq!(doc.value()["c"], 1.5);
    assert_eq!(
        doc.view().get("a").and_then(JsonRef::id_bytes).as_deref(),
        Some(&b"1e400"[..])
    );
    assert!(Lenient::parse("1e400").unwrap().is_lossy());
}

#[test]
fn the_last_of_duplicate_keys_wins() {
    let doc = Lenient::parse(r#"{"a":1,"b":"\ud800","a":2}"#).unwrap();
    assert_eq!(doc.view().canonical(), r#"{"a":2,"b":"\ud800"}"#);
    assert_eq!(doc.value()["a"], 2);
    assert_eq!(
        Lenient::parse(r#"{"a":1,"a":2}"#)
            .unwrap()
            .view()
            .canonical(),
        r#"{"a":2}"#
    );
}

#[test]
fn nesting_beyond_serde_jsons_limit_is_read_without_recursing_further() {
    let depth = 200_000;
    let text = format!("{}\"\\ud800\"{}", "[".repeat(depth), "]".repeat(depth));
    let doc = Lenient::parse(&text).unwrap();
    let canonical = doc.view().canonical();
    assert_eq!(canonical, text, "the deep part is kept as sent");
    let mut v = doc.value();
    for _ in 0..MAX_DEPTH {
        v = &v[0];
    }
    assert!(v.as_str().unwrap().starts_with("[["));
}

#[test]
fn what_is_not_json_is_refused() {
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\"}",
        "\"\\x\"",
        "\"\\u12\"",
        "01",
        "1.",
        "-",
        "1e",
        "tru",
        "\"a\u{1}\"",
        "[1] 2",
        "{1:2}",
        "[\"\\ud800\"",
    ] {
        assert!(Lenient::parse(bad).is_err(), "{bad:?} accepted");
        assert!(Parser::new(bad).document().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn controls_are_escaped_as_serde_json_escapes_them() {
    let all: String = (0u8..0x80).map(char::from).collect();
    let v = Value::String(all.clone());
    let mut ours = String::new();
    write_string(all.as_bytes(), &mut ours);
    assert_eq!(ours, v.to_string());
}

proptest! {
    #[test]
    fn our_reader_agrees_with_serde_json_wherever_serde_json_reads(
        (_, text) in arb_json(),
    ) {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let node = ours(&text);
            let mut written = String::new();
            node.write_canonical(&mut written);
            prop_assert_eq!(written, canonical_json(&v));
            prop_assert_eq!(node.lossy(), v);
        }
    }

    #[test]
    fn texts_have_one_canonical_form_exactly_when_they_are_the_same_value(
        (a, text_a) in arb_json(),
        (b, text_b) in arb_json(),
        seed in any::<u64>(),
    ) {
        let (ca, cb) = (canonical(&text_a), canonical(&text_b));
        prop_assert_eq!(a.normal() == b.normal(), ca == cb, "{} vs {}", text_a, text_b);
        // Another text of the same value, other escapes and whitespace.
        prop_assert_eq!(canonical(&a.to_text(seed)), ca);
        // The canonical form is itself JSON of the same value.
        prop_assert_eq!(canonical(&canonical(&text_a)), canonical(&text_a));
    }

    #[test]
    fn strings_of_any_code_units_round_trip(units in prop::collection::vec(any::<u16>(), 0..12)) {
        let text = Model::Str(units.clone()).to_text(7);
        let Node::String(wtf8) = ours(&text) else { panic!("{text}") };
        let back: Vec<u16> = pieces(&wtf8).flat_map(|p| match p {
            Piece::Text(t) => t.encode_utf16().collect::<Vec<_>>(),
            Piece::Surrogate(u) => vec![u],
        }).collect();
        prop_assert_eq!(back, units);
    }
}
