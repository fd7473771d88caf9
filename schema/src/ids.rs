//! Identifiers that cross the system boundary, parsed once at the edge.
//!
//! A `PageId` or `Psid` is also a NATS subject token and a path segment under
//! `DATA_DIR`, so the accepted alphabet is deliberately narrow.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    NotAToken { kind: &'static str },
    #[error("{kind} {value:?} is reserved")]
    Reserved {
        kind: &'static str,
        value: &'static str,
    },
    #[error("event id must be 1 to {max} printable characters without spaces", max = EventId::MAX_LEN)]
    BadEventId,
}

/// True when `s` matches `^[A-Za-z0-9_-]{1,64}$`: safe as a subject token and a file name.
pub fn is_safe_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, reserved: [$($reserved:expr),*]) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if !is_safe_token(&s) {
                    return Err(IdError::NotAToken { kind: $kind });
                }
                $(if s == $reserved {
                    return Err(IdError::Reserved { kind: $kind, value: $reserved });
                })*
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_id!(
    /// A Facebook Page id. `_` is not one: it is the subject token of events
    /// without a page ([`crate::NO_PAGE`]).
    PageId,
    "page id",
    reserved: [crate::NO_PAGE]
);
token_id!(
    /// A page-scoped id of a customer (PSID). Only a file name and a column, so
    /// no token is reserved.
    Psid,
    "psid",
    reserved: []
);

/// The `id` of an event and, prefixed by its source, its `Nats-Msg-Id`.
///
/// Ids come from Facebook (`mid`s) or from hashes, so the rule is only that they
/// are printable ASCII without spaces: that keeps them valid as NATS header values.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Debug)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 512;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let printable = s.bytes().all(|b| b.is_ascii_graphic());
        if !s.is_empty() && s.len() <= Self::MAX_LEN && printable {
            Ok(Self(s))
        } else {
            Err(IdError::BadEventId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ids_are_narrow_tokens() {
        assert!(PageId::parse("101368371725791").is_ok());
        assert!(PageId::parse("a_b-C9").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "a.b",
            "a b",
            "*",
            ">",
            "ä",
            &"1".repeat(65),
        ] {
            assert!(PageId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Psid::parse("1".repeat(64)).is_ok());
    }

    #[test]
    fn underscore_means_no_page_so_it_is_no_page_id() {
        assert_eq!(
            PageId::parse("_"),
            Err(IdError::Reserved {
                kind: "page id",
                value: "_"
            })
        );
        assert!(PageId::parse("__").is_ok());
        assert!(serde_json::from_str::<PageId>("\"_\"").is_err());
    }

    #[test]
    fn event_ids_reject_whitespace_and_control_characters() {
        assert!(EventId::parse("mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c").is_ok());
        assert!(EventId::parse("m_1457764197618:41d102a3e1ae206a38").is_ok());
        for bad in ["", "a b", "a\r\nb", "ä", &"x".repeat(513)] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<PageId>("\"123\"").is_ok());
        assert!(serde_json::from_str::<PageId>("\"../etc\"").is_err());
    }
}
