//! The contract the pagesync services share: event types and ids, the CloudEvents
//! envelope, subjects, the JetStream stream, webhook signatures, and the SQL migrations.

pub mod canonical;
pub mod dead_letters;
pub mod event;
pub mod event_id;
pub mod event_type;
pub mod fbtime;
pub mod ids;
pub mod lenient;
pub mod migrations;
pub mod platform;
pub mod signature;
pub mod stream;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tokens;

pub use event::{EnvelopeError, Event, NO_PAGE};
pub use event_type::{EventType, Source};
pub use ids::{EventId, IdError, PageId, Psid};
pub use platform::{Platform, UnknownPlatform};
pub use stream::{
    PublishError, PublishReport, Publisher, StreamName, StreamSpec, SubjectPrefix, ensure_stream,
};
