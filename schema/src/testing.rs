//! Property-test generators of JSON as Facebook may write it: lone surrogates,
//! numbers out of `f64` range, every escape form, duplicate keys, nesting. Each
//! generated text comes with the value it stands for, so tests can tell which
//! texts are the same value. (Feature `test-support`.)

use std::collections::BTreeMap;

use proptest::prelude::*;

/// A JSON value as generated: strings as UTF-16 code units, numbers as text,
/// object members in order with duplicates allowed.
#[derive(Debug, Clone)]
pub enum Model {
    Null,
    Bool(bool),
    Num(String),
    Str(Vec<u16>),
    Arr(Vec<Model>),
    Obj(Vec<(Vec<u16>, Model)>),
}

/// What a [`Model`] means: the last of duplicate keys, keys in order. Two texts
/// are the same value exactly when their models' `Normal`s are equal (the
/// generated numbers are chosen so that distinct texts are distinct values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Normal {
    Null,
    Bool(bool),
    Num(String),
    Str(Vec<u16>),
    Arr(Vec<Normal>),
    Obj(BTreeMap<Vec<u16>, Normal>),
}

impl Model {
    pub fn normal(&self) -> Normal {
        match self {
            Model::Null => Normal::Null,
            Model::Bool(b) => Normal::Bool(*b),
            Model::Num(n) => Normal::Num(n.clone()),
            Model::Str(s) => Normal::Str(s.clone()),
            Model::Arr(items) => Normal::Arr(items.iter().map(Model::normal).collect()),
            Model::Obj(members) => Normal::Obj(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.normal()))
                    .collect(),
            ),
        }
    }

    /// The text of this value, escapes and whitespace chosen by `seed`.
    pub fn to_text(&self, seed: u64) -> String {
        let mut w = Writer {
            out: String::new(),
            rng: seed,
        };
        w.value(self);
        w.out
    }
}

/// A value and one of its texts.
pub fn arb_json() -> impl Strategy<Value = (Model, String)> {
    (arb_model(), any::<u64>()).prop_map(|(m, seed)| {
        let text = m.to_text(seed);
        (m, text)
    })
}

/// An object whose top-level keys are drawn from `keys` (so generated items can
/// carry the members a test cares about) or are arbitrary.
pub fn arb_object(keys: &'static [&'static str]) -> impl Strategy<Value = (Model, String)> {
    let key = prop_oneof![
        prop::sample::select(keys).prop_map(|k| k.encode_utf16().collect::<Vec<u16>>()),
        arb_units(),
    ];
    (
        prop::collection::vec((key, arb_model()), 0..6),
        any::<u64>(),
    )
        .prop_map(|(members, seed)| {
            let m = Model::Obj(members);
            let text = m.to_text(seed);
            (m, text)
        })
}

pub fn arb_model() -> impl Strategy<Value = Model> {
    let leaf = prop_oneof![
        Just(Model::Null),
        any::<bool>().prop_map(Model::Bool),
        arb_number().prop_map(Model::Num),
        arb_units().prop_map(Model::Str),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Model::Arr),
            // Few distinct keys, so duplicates are common.
            prop::collection::vec((arb_units(), inner), 0..5).prop_map(Model::Obj),
        ]
    })
}

/// Numbers whose texts are distinct values: integers, a few floats, and numbers
/// out of `f64` range (at least 310 digits, or a huge exponent).
fn arb_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(&["0.5", "-2.25", "3.0e2", "1e-7", "-0"][..]).prop_map(str::to_owned),
        (any::<bool>(), "[1-9][0-9]{309,400}").prop_map(|(neg, d)| sign(neg) + &d),
        (
            any::<bool>(),
            prop::sample::select(&["1e400", "1E+401", "25e999", "1.5e310"][..])
        )
            .prop_map(|(neg, e)| sign(neg) + e),
    ]
}

fn sign(neg: bool) -> String {
    if neg { "-".into() } else { String::new() }
}

/// Code units: ASCII, controls, characters that have short escapes, non-ASCII,
/// pairs and lone surrogates.
fn arb_units() -> impl Strategy<Value = Vec<u16>> {
    let unit = prop_oneof![
        4 => 0x20u16..0x7f,
        1 => 0u16..0x20,
        1 => prop::sample::select(&[0x22u16, 0x5c, 0x2f, 0xe4, 0x20ac, 0x7f, 0xfffd][..]),
        1 => 0xd800u16..0xdc00,
        1 => 0xdc00u16..0xe000,
        1 => Just(0xd83d),
        1 => Just(0xde00),
    ];
    prop::collection::vec(unit, 0..8)
}

/// Writes a model's text, choosing escapes and whitespace by a small PRNG.
struct Writer {
    out: String,
    rng: u64,
}

impl Writer {
    /// splitmix64: deterministic per seed, so a failing case can be replayed.
    fn next(&mut self, n: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    fn space(&mut self) {
        let ws = [" ", "\n", "\t", "\r\n"];
        while self.next(4) == 0 {
            let i = self.next(4) as usize;
            self.out.push_str(ws[i]);
        }
    }

    fn value(&mut self, m: &Model) {
        self.space();
        match m {
            Model::Null => self.out.push_str("null"),
            Model::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Model::Num(n) => self.out.push_str(n),
            Model::Str(s) => self.string(s),
            Model::Arr(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(item);
                }
                self.space();
                self.out.push(']');
            }
            Model::Obj(members) => {
                self.out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.space();
                    self.string(k);
                    self.space();
                    self.out.push(':');
                    self.value(v);
                }
                self.space();
                self.out.push('}');
            }
        }
        self.space();
    }

    fn string(&mut self, units: &[u16]) {
        self.out.push('"');
        for c in char::decode_utf16(units.iter().copied()) {
            match c {
                Ok(c) => self.char(c),
                Err(lone) => self.escaped(lone.unpaired_surrogate()),
            }
        }
        self.out.push('"');
    }

    fn char(&mut self, c: char) {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = c == '"' || c == '\\' || c < ' ';
        match (self.next(3), short) {
            (0, Some(s)) => self.out.push_str(s),
            (1, _) | (_, None) if !must_escape => self.out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    self.escaped(*unit);
                }
            }
        }
    }

    fn escaped(&mut self, unit: u16) {
        if self.next(2) == 0 {
            self.out.push_str(&format!("\\u{unit:04x}"));
        } else {
            self.out.push_str(&format!("\\u{unit:04X}"));
        }
    }
}
