//! Where each page's files are, and where they were last written.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use pagesync_schema::{PageId, Platform};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::Folder;
use crate::parsed;

/// A page's owner and platform now, and the owner its files were last written for.
pub(super) struct Location {
    pub owner: Option<Uuid>,
    pub platform: Platform,
    /// Whether its files were written before.
    pub written: bool,
    pub files_owner: Option<Uuid>,
}

impl Location {
    pub fn folder(&self) -> Folder {
        Folder {
            owner: self.owner,
            platform: self.platform,
        }
    }
}

pub(super) async fn locations(
    client: &impl GenericClient,
    pages: &BTreeSet<PageId>,
) -> Result<BTreeMap<PageId, Location>, tokio_postgres::Error> {
    let ids: Vec<&str> = pages.iter().map(PageId::as_str).collect();
    let rows = client
        .query(
            "SELECT p.page_id, p.owner_user_id, l.page_id IS NOT NULL, l.owner_user_id, p.platform
             FROM pages p LEFT JOIN page_file_locations l USING (page_id)
             WHERE p.page_id = ANY($1::text[])",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| -> Result<(PageId, Location), tokio_postgres::Error> {
            let location = Location {
                owner: r.try_get(1)?,
                // The column's CHECK allows only the two platforms.
                platform: parsed::get(r, 4)?,
                written: r.try_get(2)?,
                files_owner: r.try_get(3)?,
            };
            Ok((parsed::get(r, 0)?, location))
        })
        .collect()
}

pub(super) async fn record_locations(
    client: &impl GenericClient,
    locations: &BTreeMap<PageId, Location>,
) -> Result<(), tokio_postgres::Error> {
    let changed: Vec<(&str, Option<Uuid>)> = locations
        .iter()
        .filter(|(_, l)| !l.written || l.owner != l.files_owner)
        .map(|(p, l)| (p.as_str(), l.owner))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let (pages, owners): (Vec<&str>, Vec<Option<Uuid>>) = changed.into_iter().unzip();
    client
        .execute(
            "INSERT INTO page_file_locations (page_id, owner_user_id)
             SELECT * FROM unnest($1::text[], $2::uuid[])
             ON CONFLICT (page_id) DO UPDATE SET owner_user_id = EXCLUDED.owner_user_id",
            &[&pages, &owners],
        )
        .await?;
    Ok(())
}
