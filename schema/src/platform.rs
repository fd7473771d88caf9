//! The messaging platform an event or conversation belongs to (contract v3 §3, §8).

use std::fmt;
use std::str::FromStr;

/// `messenger` for page deliveries and Messenger polls, `instagram` for the page's
/// linked Instagram professional account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    #[default]
    Messenger,
    Instagram,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown platform {0:?} (expected messenger or instagram)")]
pub struct UnknownPlatform(pub String);

impl Platform {
    pub const ALL: [Platform; 2] = [Self::Messenger, Self::Instagram];

    /// The envelope's `platform` value, the `platform` column and the inbox field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
        }
    }

    /// The folder under `DATA_DIR` (or `users/<U>/`) that holds this platform's
    /// accounts: `facebook/<page_id>/` or `instagram/<account_id>/` (§4, §8).
    pub const fn data_folder(self) -> &'static str {
        match self {
            Self::Messenger => "facebook",
            Self::Instagram => "instagram",
        }
    }

    /// The delivery `object` whose entries belong to this platform.
    pub const fn webhook_object(self) -> &'static str {
        match self {
            Self::Messenger => "page",
            Self::Instagram => "instagram",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPlatform(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>().unwrap(), p);
        }
        assert_eq!(Platform::default(), Platform::Messenger);
        let err = "Instagram".parse::<Platform>().unwrap_err();
        assert!(err.to_string().contains("\"Instagram\""), "{err}");
    }

    #[test]
    fn folders_and_objects_follow_the_contract() {
        assert_eq!(Platform::Messenger.data_folder(), "facebook");
        assert_eq!(Platform::Instagram.data_folder(), "instagram");
        assert_eq!(Platform::Messenger.webhook_object(), "page");
        assert_eq!(Platform::Instagram.webhook_object(), "instagram");
    }
}
