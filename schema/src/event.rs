//! One event and its CloudEvents 1.0 JSON envelope (contract §3).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::fbtime::format_time;
use crate::{EventId, EventType, PageId, Platform, Psid, Source, SubjectPrefix};

/// The page token of subjects and envelopes for events without a valid page id.
pub const NO_PAGE: &str = "_";

/// An event as every producer builds it and every consumer reads it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    pub source: Source,
    /// `None` for events without a valid page id (`invalid`, `unparsed`, foreign objects).
    pub page_id: Option<PageId>,
    /// Set on messaging types: the customer's page-scoped id.
    pub psid: Option<Psid>,
    /// Messenger, or Instagram for the page's linked account (v3 §8).
    pub platform: Platform,
    /// The event's own time.
    pub time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The Facebook item as received, or an item of the same shape.
    pub data: Box<RawValue>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("envelope specversion {0:?} is not 1.0")]
    SpecVersion(String),
    #[error("envelope field {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

/// The envelope on the wire. Strings are borrowed from the message when they hold
/// no escape, owned when they do (an id may contain `"` or `\`).
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    specversion: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    datacontenttype: Cow<'a, str>,
    #[serde(borrow)]
    pageid: Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    psid: Option<Cow<'a, str>>,
    /// Absent in envelopes written before contract v3: those are Messenger's.
    #[serde(default, borrow)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow)]
    receivedat: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

impl Event {
    /// The page token used in the subject and the envelope.
    pub fn page_token(&self) -> &str {
        self.page_id.as_ref().map_or(NO_PAGE, PageId::as_str)
    }

    /// `<prefix>.<page_id>.<type>`.
    pub fn subject(&self, prefix: &SubjectPrefix) -> String {
        format!("{prefix}.{}.{}", self.page_token(), self.event_type)
    }

    /// The `Nats-Msg-Id` header: `<source>:<id>`.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.source.as_str(), self.id)
    }

    /// The CloudEvents JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        let ty = self.event_type.cloudevents_type();
        let time = format_time(self.time);
        let received = format_time(self.received_at);
        let wire = Wire {
            specversion: "1.0".into(),
            id: self.id.as_str().into(),
            source: self.source.as_str().into(),
            ty: ty.into(),
            subject: self.page_token().into(),
            time: time.into(),
            datacontenttype: "application/json".into(),
            pageid: self.page_token().into(),
            psid: self.psid.as_ref().map(|p| p.as_str().into()),
            platform: Some(self.platform.as_str().into()),
            receivedat: received.into(),
            data: &self.data,
        };
        serde_json::to_vec(&wire).expect("an envelope of strings and raw JSON always serialises")
    }

    /// Parses and validates an envelope read from the stream.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let wire: Wire<'_> = serde_json::from_slice(bytes)?;
        if wire.specversion != "1.0" {
            return Err(EnvelopeError::SpecVersion(wire.specversion.into_owned()));
        }
        let bad = |field: &'static str, reason: String| EnvelopeError::Field { field, reason };
        let page_id = match &*wire.pageid {
            NO_PAGE => None,
            p => Some(PageId::parse(p).map_err(|e| bad("pageid", e.to_string()))?),
        };
        let psid = wire
            .psid
            .map(Psid::parse)
            .transpose()
            .map_err(|e| bad("psid", e.to_string()))?;
        let platform = wire
            .platform
            .map(|p| p.parse::<Platform>())
            .transpose()
            .map_err(|e| bad("platform", e.to_string()))?
            .unwrap_or_default();
        let time = |field, s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad(field, e.to_string()))
        };
        Ok(Self {
            id: EventId::parse(wire.id).map_err(|e| bad("id", e.to_string()))?,
            event_type: EventType::from_cloudevents_type(&wire.ty)
                .map_err(|e| bad("type", e.to_string()))?,
            source: wire
                .source
                .parse()
                .map_err(|_| bad("source", wire.source.clone().into_owned()))?,
            page_id,
            psid,
            platform,
            time: time("time", &wire.time)?,
            received_at: time("receivedat", &wire.receivedat)?,
            data: wire.data.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            id: EventId::parse("m_abc123").unwrap(),
            event_type: EventType::Message,
            source: Source::Ingest,
            page_id: Some(PageId::parse("101368371725791").unwrap()),
            psid: Some(Psid::parse("123456789").unwrap()),
            platform: Platform::Messenger,
            time: crate::fbtime::from_millis(1697051234567).unwrap(),
            received_at: crate::fbtime::from_millis(1700000000123).unwrap(),
            data: RawValue::from_string(
                r#"{"message":{"mid":"m_abc123","text":"H\u00e4llo"}}"#.into(),
            )
            .unwrap(),
        }
    }

    #[test]
    fn envelope_has_every_contract_field_and_keeps_data_verbatim() {
        let e = sample();
        let json: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], "m_abc123");
        assert_eq!(json["source"], "pagesync/ingest");
        assert_eq!(json["type"], "facebook.message");
        assert_eq!(json["subject"], "101368371725791");
        assert_eq!(json["pageid"], "101368371725791");
        assert_eq!(json["psid"], "123456789");
        assert_eq!(json["platform"], "messenger");
        assert_eq!(json["time"], "2023-10-11T19:07:14.567Z");
        assert_eq!(json["datacontenttype"], "application/json");
        assert!(
            String::from_utf8(e.to_json())
                .unwrap()
                .contains(r#""H\u00e4llo""#)
        );
        assert_eq!(
            e.subject(&"fb".parse().unwrap()),
            "fb.101368371725791.message"
        );
        assert_eq!(e.msg_id(), "pagesync/ingest:m_abc123");
    }

    #[test]
    fn envelope_round_trips() {
        let e = sample();
        let back = Event::from_json(&e.to_json()).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.event_type, e.event_type);
        assert_eq!(back.page_id, e.page_id);
        assert_eq!(back.psid, e.psid);
        assert_eq!(back.platform, e.platform);
        assert_eq!(back.time, e.time);
        assert_eq!(back.data.get(), e.data.get());
    }

    #[test]
    fn events_without_page_use_underscore_and_omit_psid() {
        let mut e = sample();
        e.page_id = None;
        e.psid = None;
        e.event_type = EventType::Unparsed;
        let json: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["pageid"], "_");
        assert!(json.get("psid").is_none());
        assert_eq!(e.subject(&"fb".parse().unwrap()), "fb._.unparsed");
    }

    #[test]
    fn ids_with_quotes_and_backslashes_round_trip() {
        let mut e = sample();
        e.id = EventId::parse(r#"m_q"uo\te"#).unwrap();
        let back = Event::from_json(&e.to_json()).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.msg_id(), r#"pagesync/ingest:m_q"uo\te"#);
    }

    #[test]
    fn envelope_strings_with_escapes_are_read() {
        let json = String::from_utf8(sample().to_json())
            .unwrap()
            .replace(r#""id":"m_abc123""#, r#""id":"m_\u0061bc\/123""#)
            .replace(
                r#""source":"pagesync/ingest""#,
                r#""source":"pagesync\/ingest""#,
            );
        let e = Event::from_json(json.as_bytes()).unwrap();
        assert_eq!(e.id.as_str(), "m_abc/123");
        assert_eq!(e.source, Source::Ingest);
    }

    #[test]
    fn data_that_serde_json_cannot_read_is_carried_verbatim() {
        let mut e = sample();
        let data = r#"{"t":"hello \ud83d","n":1e400}"#;
        e.data = RawValue::from_string(data.into()).unwrap();
        assert_eq!(Event::from_json(&e.to_json()).unwrap().data.get(), data);
    }

    #[test]
    fn envelopes_from_before_v3_are_messenger_and_unknown_platforms_are_refused() {
        let mut json: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        json.as_object_mut().unwrap().remove("platform");
        let e = Event::from_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(e.platform, Platform::Messenger);
        json["platform"] = "whatsapp".into();
        let err = Event::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("platform"), "{err}");
        let mut ig = sample();
        ig.platform = Platform::Instagram;
        assert_eq!(
            Event::from_json(&ig.to_json()).unwrap().platform,
            Platform::Instagram
        );
    }

    #[test]
    fn hostile_envelopes_are_refused() {
        let mut json: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        json["pageid"] = "../../etc".into();
        assert!(Event::from_json(json.to_string().as_bytes()).is_err());
        assert!(Event::from_json(b"[]").is_err());
    }
}
