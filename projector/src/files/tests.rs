use super::*;
use serde_json::json;

#[test]
fn newer_field_changes_override_the_snapshot_and_older_ones_do_not() {
    let page = PageId::parse("p1").unwrap();
    let bytes = render_page_metadata(
        &page,
        Some((json!({"id": "p1", "name": "Old", "about": "a"}), 100)),
        vec![
            ("about".into(), json!("stale"), 50),
            ("name".into(), json!("New"), 200),
        ],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "{\"data\":[{\"about\":\"a\",\"id\":\"p1\",\"name\":\"New\"}]}\n"
    );
    assert!(render_page_metadata(&page, None, vec![]).is_none());
}

#[test]
fn a_rendered_page_never_holds_a_token_whatever_the_stored_rows_hold() {
    let page = PageId::parse("p1").unwrap();
    let bytes = render_page_metadata(
        &page,
        Some((
            json!({"id": "p1", "access_token": "EAAB1", "page": {"access_token": "EAAB2"}}),
            1,
        )),
        vec![(
            "about".into(),
            json!({"page_token": "EAAB3", "text": "a"}),
            2,
        )],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "{\"data\":[{\"about\":{\"text\":\"a\"},\"id\":\"p1\",\"page\":{}}]}\n"
    );
}

#[test]
fn page_folders_depend_on_the_owner_and_the_platform() {
    let files = Files::new("/d");
    let page = PageId::parse("p1").unwrap();
    let folder = |owner, platform| Folder { owner, platform };
    let dir = |owner, platform| files.page_dir(folder(owner, platform), &page);
    assert_eq!(
        dir(None, Platform::Messenger),
        PathBuf::from("/d/facebook/p1")
    );
    assert_eq!(
        dir(None, Platform::Instagram),
        PathBuf::from("/d/instagram/p1")
    );
    let u = Uuid::nil();
    assert_eq!(
        dir(Some(u), Platform::Messenger),
        PathBuf::from(format!("/d/users/{u}/facebook/p1"))
    );
    assert_eq!(
        dir(Some(u), Platform::Instagram),
        PathBuf::from(format!("/d/users/{u}/instagram/p1"))
    );
}

#[test]
fn the_files_lock_key_is_pagefile() {
    assert_eq!(
        LOCK_FILES,
        format!(
            "SELECT pg_advisory_xact_lock({})",
            i64::from_be_bytes(*b"pagefile")
        )
    );
}

#[test]
fn atomic_replace_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    replace_atomically(&path, b"1").unwrap();
    replace_atomically(&path, b"2").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"2");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
